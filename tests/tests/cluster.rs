//! A gateway and real chunk-store processes: replica classes placed on
//! distinct hosts with the labels they ask (checked against the stores' own
//! folders), reads served from the stores once the cache is dropped or lost,
//! and a class that cannot be placed not holding back the others.

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_tests::{random_bytes, test_seed, Cluster, ClusterOptions, StoreSpec};

use common::*;

#[tokio::test]
async fn replicas_land_on_distinct_hosts_with_their_labels_and_read_back_from_the_stores() {
    let seed = test_seed("replicas_land_on_distinct_hosts");
    let mut cluster = Cluster::start(ClusterOptions::new(four_stores()));
    let listed = cluster.cairn_json(&["store", "list"]);
    for spec in four_stores() {
        let s = listed["stores"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == spec.name.as_str())
            .unwrap_or_else(|| panic!("{} missing from store list: {listed}", spec.name));
        assert_eq!(s["host"], spec.host.as_str(), "{s}");
        assert_eq!(s["labels"], serde_json::json!(spec.labels), "{s}");
    }

    let mut nfs = cluster.mount().await;
    let mut files = Vec::new();
    let classes: [(&str, &str, &[&str]); 3] = [
        ("two", "/r2", &["--replicas", "2", "--labels", "hdd"]),
        ("three", "/r3", &["--replicas", "3"]),
        ("mixed", "/mix", &["--replicas", "2", "--labels", "ssd,hdd"]),
    ];
    for (i, (class, dir, flags)) in classes.iter().enumerate() {
        cluster.class_create(class, flags);
        let fh = mkdir(&mut nfs, &dir[1..]).await;
        cluster.class_set(dir, class);
        files.extend(write_mix(&mut nfs, &fh, dir, seed + i as u64).await);
    }
    // And the built-in class, in the export root.
    let root = nfs.root.clone();
    files.push(
        write_file(
            &mut nfs,
            &root,
            "",
            "in-root",
            random_bytes(seed ^ 0xabc, 300_000),
        )
        .await,
    );

    let status = cluster.wait_drained(DRAIN_DEADLINE);
    let goals: BTreeMap<&str, Goal> = [
        (
            "two",
            Goal {
                copies: 2,
                rules: vec![Some("hdd"); 2],
            },
        ),
        (
            "three",
            Goal {
                copies: 3,
                rules: vec![None; 3],
            },
        ),
        (
            "mixed",
            Goal {
                copies: 2,
                rules: vec![Some("ssd"), Some("hdd")],
            },
        ),
        (
            "default",
            Goal {
                copies: 2,
                rules: vec![None; 2],
            },
        ),
    ]
    .into_iter()
    .collect();
    let chunks = wait_stores_match_gateway(&cluster);
    let per_class = check_placement(&cluster, &chunks, &goals);
    for class in goals.keys() {
        let n = per_class.get(*class).copied().unwrap_or(0);
        assert!(
            n >= 1,
            "class {class} has no chunk after the drain: {chunks:?}"
        );
        let health = class_health(&cluster.status(), class);
        assert_eq!(
            health,
            serde_json::json!({"healthy": n, "undergoal": 0, "at_risk": 0, "endangered": 0, "missing": 0}),
            "status of class {class} ({n} chunks listed)"
        );
    }
    assert_eq!(
        status["chunks"].as_u64(),
        Some(chunks.len() as u64),
        "status: {status}"
    );
    // Every background job reports in, and none is failing after a clean drain.
    let jobs = &cluster.status()["jobs"];
    for job in [
        "drain", "trash", "archive", "collect", "probe", "repair", "ship",
    ] {
        let state = jobs[job]["state"].as_str();
        assert!(
            matches!(state, Some("busy" | "idle" | "throttled")),
            "job {job} is {state:?} in cairn status: {jobs}"
        );
    }
    eprintln!("chunks per class: {per_class:?}");

    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after cache drop").await;

    restart_with_empty_cache(&mut cluster);
    nfs.reconnect().await.expect("reconnect after the restart");
    read_back(
        &mut nfs,
        &files,
        "after a restart with the cache folder emptied",
    )
    .await;
    cluster.assert_gateway_running();
}

/// The cache folder is lost while it still holds drained data (no `cache
/// drop` first): every byte must come back from the stores, not as zeros.
#[tokio::test]
async fn a_restart_with_the_cache_folder_emptied_reads_drained_data_from_the_stores() {
    let seed = test_seed("restart_with_the_cache_folder_emptied");
    let mut cluster = Cluster::start(ClusterOptions::new(vec![
        StoreSpec::new("a", "ha", &["hdd"]),
        StoreSpec::new("b", "hb", &["hdd"]),
        StoreSpec::new("c", "hc", &["hdd"]),
    ]));
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let files = write_mix(&mut nfs, &root, "", seed).await;
    cluster.wait_drained(DRAIN_DEADLINE);
    restart_with_empty_cache(&mut cluster);
    nfs.reconnect().await.expect("reconnect after the restart");
    read_back(
        &mut nfs,
        &files,
        "after a restart with the cache folder emptied",
    )
    .await;
}

/// kill -9 of a store that holds copies: every file still reads. For the
/// drain to have to wait, class `fast` keeps its one copy on label `ssd`,
/// which only s4 carries: with s4 down no placement exists for it, while the
/// classes with 2 and 3 replicas still find other hosts.
#[tokio::test]
async fn a_class_that_cannot_be_placed_does_not_hold_back_the_others() {
    let seed = test_seed("a_class_that_cannot_be_placed");
    let mut cluster = Cluster::start(ClusterOptions::new(vec![
        StoreSpec::new("a", "ha", &["hdd"]),
        StoreSpec::new("b", "hb", &["hdd"]),
        StoreSpec::new("c", "hc", &["ssd"]),
    ]));
    let mut nfs = cluster.mount().await;
    // Created first: the lower class id.
    cluster.class_create("fast", &["--replicas", "1", "--labels", "ssd"]);
    cluster.class_create("two", &["--replicas", "2", "--labels", "hdd"]);
    let fast_dir = mkdir(&mut nfs, "fast").await;
    cluster.class_set("/fast", "fast");
    let two_dir = mkdir(&mut nfs, "r2").await;
    cluster.class_set("/r2", "two");

    cluster.store_mut("c").kill9();
    cluster.wait_store_online("c", false, PROBE_DEADLINE);
    let stuck = write_file(
        &mut nfs,
        &fast_dir,
        "/fast",
        "stuck",
        random_bytes(seed, (1 << 20) + 1),
    )
    .await;
    let free = write_file(
        &mut nfs,
        &two_dir,
        "/r2",
        "free",
        random_bytes(seed + 1, 3 << 20),
    )
    .await;
    let started = Instant::now();
    let deadline = Duration::from_secs(30);
    loop {
        let backlog = cluster.backlog_bytes().expect("status");
        if backlog == stuck.data.len() as u64 {
            break;
        }
        if started.elapsed() > deadline {
            let logs = cluster.gateway_logs();
            let evidence: Vec<&str> = logs
                .lines()
                .filter(|l| l.contains("drain pass failed"))
                .take(5)
                .collect();
            panic!(
                "{} ({} B, class two) stayed undrained for {deadline:?} while class fast \
                 ({} B) could not be placed: backlog {backlog} B; gateway log:\n{}",
                free.path,
                free.data.len(),
                stuck.data.len(),
                evidence.join("\n")
            );
        }
        std::thread::sleep(cairn_tests::cluster::POLL_EVERY);
    }
    let chunks = cluster.chunks();
    assert!(chunks.iter().any(|c| c.class == "two"), "{chunks:?}");
}
