//! A gateway and real chunk-store processes: replica classes placed on
//! distinct hosts with the labels they ask (checked against the stores' own
//! folders), reads served from the stores once the cache is dropped or lost,
//! a store killed with SIGKILL, file bytes absent from the stores' disks and
//! from the wire, the secret absent from every log, and many small files
//! packed into few remote objects.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cairn_chunkstore::{Secret, StoreClient};
use cairn_tests::cluster::{contains_bytes, random_hex};
use cairn_tests::{
    poll_until, random_bytes, sha256, test_seed, ChunkInfo, Cluster, ClusterOptions, Nfs, StoreSpec,
};
use nfs3_types::nfs3::{nfs_fh3, stable_how};
use serde_json::Value;

/// Longest a drain of a few tens of MiB may take on two shared cores.
const DRAIN_DEADLINE: Duration = Duration::from_secs(90);
/// The gateway probes its stores every 2 s.
const PROBE_DEADLINE: Duration = Duration::from_secs(20);

/// The file sizes every class directory gets.
const SIZES: [usize; 6] = [0, 1, 4096, 64 * 1024 + 1, (1 << 20) + 1, 9 << 20];

/// s1 and s2 share host h1; s3 is h2; s4 is h3 and the only `ssd`.
fn four_stores() -> Vec<StoreSpec> {
    vec![
        StoreSpec::new("s1", "h1", &["hdd"]),
        StoreSpec::new("s2", "h1", &["hdd"]),
        StoreSpec::new("s3", "h2", &["hdd"]),
        StoreSpec::new("s4", "h3", &["ssd"]),
    ]
}

/// A file the test wrote and must read back.
struct Written {
    path: String,
    data: Vec<u8>,
}

async fn mkdir(nfs: &mut Nfs, name: &str) -> nfs_fh3 {
    let root = nfs.root.clone();
    nfs.mkdir(&root, name, 0o755)
        .await
        .unwrap_or_else(|e| panic!("mkdir /{name}: {e}"))
}

/// Creates `dir/name` and writes `data` with FILE_SYNC writes.
async fn write_file(
    nfs: &mut Nfs,
    dir: &nfs_fh3,
    dir_path: &str,
    name: &str,
    data: Vec<u8>,
) -> Written {
    let path = format!("{dir_path}/{name}");
    let fh = nfs
        .create(dir, name, 0o644)
        .await
        .unwrap_or_else(|e| panic!("create {path}: {e}"));
    nfs.write_all(&fh, 0, &data, stable_how::FILE_SYNC)
        .await
        .unwrap_or_else(|e| panic!("write {path}: {e}"));
    Written { path, data }
}

/// Writes one file of every size in [`SIZES`] into `dir_path`.
async fn write_mix(nfs: &mut Nfs, dir: &nfs_fh3, dir_path: &str, seed: u64) -> Vec<Written> {
    let mut out = Vec::new();
    for (i, &len) in SIZES.iter().enumerate() {
        let data = random_bytes(seed ^ ((i as u64 + 1) << 32), len);
        out.push(write_file(nfs, dir, dir_path, &format!("f{len}"), data).await);
    }
    out
}

/// Reads every file over NFS and compares it byte for byte.
async fn read_back(nfs: &mut Nfs, files: &[Written], when: &str) {
    for f in files {
        let fh = nfs
            .lookup_path(&f.path)
            .await
            .unwrap_or_else(|e| panic!("{when}: lookup {}: {e}", f.path));
        let got = nfs
            .read_all(&fh)
            .await
            .unwrap_or_else(|e| panic!("{when}: read {}: {e}", f.path));
        if got != f.data {
            let first = got
                .iter()
                .zip(&f.data)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(f.data.len()));
            let zeros = got.iter().filter(|&&b| b == 0).count();
            panic!(
                "{when}: {} reads back wrong: {} bytes (sha256 {}), wrote {} (sha256 {}); \
                 first difference at byte {first}; {zeros} zero bytes read",
                f.path,
                got.len(),
                sha256(&got),
                f.data.len(),
                sha256(&f.data)
            );
        }
    }
}

/// The `chunks` counts of class `name` in `cairn status --json`.
fn class_health(status: &Value, name: &str) -> Value {
    status["classes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .map(|c| c["chunks"].clone())
        .unwrap_or_else(|| panic!("class {name} not in status: {status}"))
}

/// What a class asks of every chunk: copies, one label rule per copy
/// (`None` is `*`), copies on distinct hosts.
struct Goal {
    copies: usize,
    rules: Vec<Option<&'static str>>,
}

/// Whether the copies' stores can be matched one to one with the rules.
fn labels_match(rules: &[Option<&str>], stores: &[&StoreSpec]) -> bool {
    fn go(rules: &[Option<&str>], stores: &[&StoreSpec], used: &mut Vec<bool>) -> bool {
        let Some((rule, rest)) = rules.split_first() else {
            return true;
        };
        for i in 0..stores.len() {
            let ok = rule.is_none_or(|l| stores[i].labels.iter().any(|s| s == l));
            if !used[i] && ok {
                used[i] = true;
                if go(rest, stores, used) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    rules.len() == stores.len() && go(rules, stores, &mut vec![false; stores.len()])
}

/// Checks every chunk against its class's goal; returns the chunks per class.
fn check_placement(
    cluster: &Cluster,
    chunks: &[ChunkInfo],
    goals: &BTreeMap<&str, Goal>,
) -> BTreeMap<String, usize> {
    let mut per_class: BTreeMap<String, usize> = BTreeMap::new();
    for c in chunks {
        let goal = goals
            .get(c.class.as_str())
            .unwrap_or_else(|| panic!("chunk {} has unexpected class {:?}", c.key, c.class));
        let specs: Vec<&StoreSpec> = c.stores.iter().map(|n| &cluster.store(n).spec).collect();
        let distinct: BTreeSet<&str> = c.stores.iter().map(String::as_str).collect();
        let hosts: BTreeSet<&str> = specs.iter().map(|s| s.host.as_str()).collect();
        assert_eq!(
            c.stores.len(),
            goal.copies,
            "chunk {} of class {} has {} copies, wants {}: {:?}",
            c.key,
            c.class,
            c.stores.len(),
            goal.copies,
            c.stores
        );
        assert_eq!(
            distinct.len(),
            goal.copies,
            "chunk {} names a store twice: {:?}",
            c.key,
            c.stores
        );
        assert_eq!(
            hosts.len(),
            goal.copies,
            "chunk {} of class {} shares a host: stores {:?} on hosts {hosts:?}",
            c.key,
            c.class,
            c.stores
        );
        assert!(
            labels_match(&goal.rules, &specs),
            "chunk {} of class {}: stores {:?} (labels {:?}) do not meet the label rules {:?}",
            c.key,
            c.class,
            c.stores,
            specs.iter().map(|s| &s.labels).collect::<Vec<_>>(),
            goal.rules
        );
        *per_class.entry(c.class.clone()).or_default() += 1;
    }
    per_class
}

/// Which keys each store should hold, from the gateway's chunk list.
fn expected_keys(cluster: &Cluster, chunks: &[ChunkInfo]) -> BTreeMap<String, BTreeSet<String>> {
    let mut want: BTreeMap<String, BTreeSet<String>> = cluster
        .stores()
        .iter()
        .map(|s| (s.name().to_owned(), BTreeSet::new()))
        .collect();
    for c in chunks {
        for s in &c.stores {
            want.get_mut(s)
                .unwrap_or_else(|| panic!("chunk {} on unknown store {s}", c.key))
                .insert(c.key.clone());
        }
    }
    want
}

/// Polls until every store's own folder holds exactly the keys the gateway
/// places on it (a chunk the drain abandoned may linger until the collector
/// runs); returns the gateway's chunk list.
fn wait_stores_match_gateway(cluster: &Cluster) -> Vec<ChunkInfo> {
    poll_until(
        "the stores' folders hold exactly the chunks `cairn store chunks` lists",
        Duration::from_secs(30),
        || {
            let chunks = cluster.chunks();
            let want = expected_keys(cluster, &chunks);
            let have = cluster.shard_keys_by_store();
            if want == have {
                Ok(chunks)
            } else {
                Err(format!(
                    "gateway places {want:?}; store folders hold {have:?}"
                ))
            }
        },
    )
}

/// `cairn cache drop`, then checks the cache holds no byte any more.
fn drop_cache(cluster: &Cluster) {
    let said = cluster.cache_drop();
    let status = cluster.status();
    assert_eq!(
        status["cache"]["used_bytes"], 0,
        "the cache still holds data after `cairn cache drop` (it said {said:?}): {}",
        status["cache"]
    );
}

/// Stops the gateway, empties its cache folder and starts it again.
fn restart_with_empty_cache(cluster: &mut Cluster) {
    cluster.stop_gateway();
    let cache = cluster.cache_dir();
    assert!(cache.is_dir(), "no cache folder at {}", cache.display());
    std::fs::remove_dir_all(&cache).expect("empty the cache folder");
    std::fs::create_dir(&cache).expect("recreate the cache folder");
    cluster.start_gateway();
}

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
            serde_json::json!({"healthy": n, "undergoal": 0, "at_risk": 0, "missing": 0}),
            "status of class {class} ({n} chunks listed)"
        );
    }
    assert_eq!(
        status["chunks"].as_u64(),
        Some(chunks.len() as u64),
        "status: {status}"
    );
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
async fn a_killed_store_loses_nothing_and_the_drain_waits_for_it() {
    let seed = test_seed("a_killed_store_loses_nothing");
    let mut cluster = Cluster::start(ClusterOptions::new(four_stores()));
    let mut nfs = cluster.mount().await;
    cluster.class_create("fast", &["--replicas", "1", "--labels", "ssd"]);
    cluster.class_create("two", &["--replicas", "2"]);
    cluster.class_create("three", &["--replicas", "3"]);
    let mut dirs = BTreeMap::new();
    for (class, dir) in [("fast", "/fast"), ("two", "/r2"), ("three", "/r3")] {
        let fh = mkdir(&mut nfs, &dir[1..]).await;
        cluster.class_set(dir, class);
        dirs.insert(dir, fh);
    }
    let mut files = Vec::new();
    files.extend(write_mix(&mut nfs, &dirs["/r2"], "/r2", seed).await);
    files.extend(write_mix(&mut nfs, &dirs["/r3"], "/r3", seed + 1).await);
    cluster.wait_drained(DRAIN_DEADLINE);
    let chunks = wait_stores_match_gateway(&cluster);
    let on_s4 = chunks
        .iter()
        .filter(|c| c.stores.iter().any(|s| s == "s4"))
        .count();
    assert!(
        on_s4 > 0,
        "s4 holds no chunk, so killing it proves nothing: {chunks:?}"
    );
    drop_cache(&cluster);

    cluster.store_mut("s4").kill9();
    read_back(&mut nfs, &files, "with s4 killed").await;
    cluster.wait_store_online("s4", false, PROBE_DEADLINE);
    let status = cluster.status();
    let three = class_health(&status, "three");
    assert_eq!(three["missing"], 0, "{status}");
    assert!(
        three["undergoal"].as_u64() >= Some(1),
        "chunks of class three with their s4 copy gone must count as undergoal: {status}"
    );

    // New writes: the `fast` ones cannot drain while s4 is down.
    let fast_files = vec![
        write_file(
            &mut nfs,
            &dirs["/fast"],
            "/fast",
            "g1",
            random_bytes(seed + 2, (1 << 20) + 1),
        )
        .await,
        write_file(
            &mut nfs,
            &dirs["/fast"],
            "/fast",
            "g2",
            random_bytes(seed + 3, 4096),
        )
        .await,
    ];
    let fast_bytes: u64 = fast_files.iter().map(|f| f.data.len() as u64).sum();
    files.push(
        write_file(
            &mut nfs,
            &dirs["/r3"],
            "/r3",
            "after-kill",
            random_bytes(seed + 4, 2 << 20),
        )
        .await,
    );
    poll_until(
        "the gateway reports that class fast has nowhere to go",
        DRAIN_DEADLINE,
        || {
            let logs = cluster.gateway_logs();
            if logs.contains("no chunk store can take a chunk of class fast") {
                Ok(())
            } else {
                Err("no such log line yet".into())
            }
        },
    );
    let backlog = cluster.backlog_bytes().expect("status");
    assert!(
        backlog >= fast_bytes,
        "the fast files ({fast_bytes} B) cannot have drained with s4 down, yet the backlog is {backlog} B"
    );
    read_back(&mut nfs, &fast_files, "undrained, with s4 down").await;
    cluster.assert_gateway_running();

    cluster.store_mut("s4").restart();
    cluster.wait_store_online("s4", true, PROBE_DEADLINE);
    cluster.wait_drained(DRAIN_DEADLINE);
    let chunks = wait_stores_match_gateway(&cluster);
    let fast: Vec<&ChunkInfo> = chunks.iter().filter(|c| c.class == "fast").collect();
    assert!(
        !fast.is_empty(),
        "no chunk of class fast after s4 came back: {chunks:?}"
    );
    for c in &fast {
        assert_eq!(c.stores, ["s4"], "chunk {} of class fast", c.key);
    }
    files.extend(fast_files);
    drop_cache(&cluster);
    read_back(
        &mut nfs,
        &files,
        "after s4 came back and the cache was dropped",
    )
    .await;
}

/// While one class has nowhere to go (its only store is down), the other
/// classes' files still drain: a store that is down delays only the chunks
/// that need it.
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

const MARKER: &[u8] = b"CAIRN-MARKER-7f3a";
const SMALL_MARKER: &[u8] = b"CAIRN-SMALL-91be";
const NAME_MARKER: &str = "CAIRN-NAME-MARKER-c0de";

/// File content and file names appear neither in any store's folder nor in
/// the bytes between the gateway and a store (through a recording proxy),
/// on the way in (drain) or out (reads after a cache drop).
#[tokio::test]
async fn file_bytes_and_names_reach_no_store_disk_and_no_wire_in_clear() {
    let mut options = ClusterOptions::new(vec![
        StoreSpec::new("near", "h1", &["hdd"]),
        StoreSpec::new("far", "h2", &["hdd"]),
    ]);
    options.proxied_store = Some("far".into());
    let cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let big: Vec<u8> = MARKER.iter().copied().cycle().take(2 << 20).collect();
    let small: Vec<u8> = SMALL_MARKER.iter().copied().cycle().take(4096).collect();
    assert!(contains_bytes(&big, MARKER) && contains_bytes(&small, SMALL_MARKER));
    let files = vec![
        write_file(&mut nfs, &root, "", &format!("{NAME_MARKER}.bin"), big).await,
        write_file(&mut nfs, &root, "", "small", small).await,
    ];
    cluster.wait_drained(DRAIN_DEADLINE);
    let chunks = wait_stores_match_gateway(&cluster);
    assert!(
        chunks.iter().any(|c| c.stores.iter().any(|s| s == "far")),
        "nothing went to the proxied store: {chunks:?}"
    );
    let sent: usize = cluster
        .proxy()
        .relayed()
        .iter()
        .map(|r| r.upstream.len())
        .sum();
    assert!(
        sent >= 2 << 20,
        "only {sent} bytes went through the proxy to the store"
    );

    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after cache drop").await;
    let received: usize = cluster
        .proxy()
        .relayed()
        .iter()
        .map(|r| r.downstream.len())
        .sum();
    eprintln!(
        "proxy: {} connections, {sent} bytes to the store, {received} back",
        cluster.proxy().relayed().len()
    );

    let needles: [(&str, &[u8]); 3] = [
        ("file content", MARKER),
        ("small file content", SMALL_MARKER),
        ("file name", NAME_MARKER.as_bytes()),
    ];
    let mut found = Vec::new();
    let mut scanned = 0usize;
    for store in cluster.stores() {
        for path in store.all_files() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            scanned += bytes.len();
            for (what, needle) in needles {
                if contains_bytes(&bytes, needle) {
                    found.push(format!("{what} in {}", path.display()));
                }
            }
        }
    }
    for (i, r) in cluster.proxy().relayed().iter().enumerate() {
        for (what, needle) in needles {
            if contains_bytes(&r.upstream, needle) {
                found.push(format!("{what} on connection {i}, gateway to store"));
            }
            if contains_bytes(&r.downstream, needle) {
                found.push(format!("{what} on connection {i}, store to gateway"));
            }
        }
    }
    assert!(
        scanned >= 2 * (2 << 20),
        "only {scanned} bytes in the store folders"
    );
    assert!(found.is_empty(), "clear text found: {found:#?}");
}

/// A client that does not hold the secret gets nothing from a store, which
/// keeps serving; the secret shows in no log of any process at debug level.
#[tokio::test]
async fn a_client_without_the_secret_is_refused_and_the_secret_is_in_no_log() {
    let seed = test_seed("a_client_without_the_secret");
    let mut options = ClusterOptions::new(vec![
        StoreSpec::new("a", "ha", &["hdd"]),
        StoreSpec::new("b", "hb", &["hdd"]),
    ]);
    options.log_level = "debug".into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let mut files = vec![write_file(&mut nfs, &root, "", "one", random_bytes(seed, 300_000)).await];
    cluster.wait_drained(DRAIN_DEADLINE);
    let keys = cluster.store("a").shard_keys();
    assert!(!keys.is_empty(), "nothing drained to store a");

    let wrong_hex = random_hex(32);
    let wrong = Secret::from_bytes(wrong_hex.as_bytes());
    let addr = cluster.store("a").addr();
    for attempt in 0..3 {
        match StoreClient::connect(addr, &wrong).await {
            Ok(mut c) => {
                let listed = c.list(None, 100).await;
                panic!("attempt {attempt}: a client with another secret connected; list gave {listed:?}");
            }
            Err(e) => eprintln!("wrong secret refused as expected: {e}"),
        }
    }
    // The store still serves the holder of the secret, and the gateway.
    let right = Secret::load(cluster.secret_path()).expect("load the secret");
    let mut client = StoreClient::connect(addr, &right)
        .await
        .expect("connect with the secret");
    client.health().await.expect("health");
    let listed: BTreeSet<String> = client
        .list(None, 1000)
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        listed, keys,
        "the store's listing over the wire and its folder differ"
    );
    assert!(cluster.store_mut("a").is_running(), "store a died");
    files.push(write_file(&mut nfs, &root, "", "two", random_bytes(seed + 1, 200_000)).await);
    cluster.wait_drained(DRAIN_DEADLINE);
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after the refused clients").await;

    let store_log = cluster.store("a").logs();
    assert!(
        store_log.contains("handshake refused"),
        "store a did not log the refused clients, so its log proves little:\n{store_log}"
    );
    let secret = cluster.secret_text();
    assert_eq!(secret.len(), 64);
    let mut outputs = cluster.raw_logs();
    for args in [
        ["status"].as_slice(),
        &["store", "list"],
        &["store", "chunks"],
        &["class", "list"],
    ] {
        let out = cluster.cairn_raw(args);
        outputs.push((format!("cairn {args:?} stdout").into(), out.stdout));
        outputs.push((format!("cairn {args:?} stderr").into(), out.stderr));
    }
    let total: usize = outputs.iter().map(|(_, b)| b.len()).sum();
    assert!(total > 1000, "only {total} bytes of logs to search");
    let needles = [
        ("the secret", secret.as_bytes()),
        ("the secret's first half", &secret.as_bytes()[..32]),
        ("the secret's second half", &secret.as_bytes()[32..]),
        ("the refused client's secret", wrong_hex.as_bytes()),
    ];
    for (path, bytes) in &outputs {
        for (what, needle) in needles {
            assert!(
                !contains_bytes(bytes, needle),
                "{what} appears in {}",
                path.display()
            );
        }
    }
}

/// 10,000 files of 4 KiB through one NFS connection drain into a few dozen
/// remote objects (every replica counted), and read back after a cache drop.
#[tokio::test]
async fn ten_thousand_small_files_drain_into_a_few_dozen_objects() {
    const FILES: usize = 10_000;
    const DIRS: usize = 10;
    const MOST_OBJECTS: usize = 36;
    let seed = test_seed("ten_thousand_small_files");
    let cluster = Cluster::start(ClusterOptions::new(vec![
        StoreSpec::new("a", "ha", &["hdd"]),
        StoreSpec::new("b", "hb", &["hdd"]),
        StoreSpec::new("c", "hc", &["hdd"]),
    ]));
    let mut nfs = cluster.mount().await;
    let content = |i: usize| random_bytes(seed ^ ((i as u64) << 20), 4096);
    let started = Instant::now();
    let mut dirs = Vec::new();
    for d in 0..DIRS {
        dirs.push(mkdir(&mut nfs, &format!("d{d}")).await);
    }
    for i in 0..FILES {
        let d = i % DIRS;
        let name = format!("f{i:05}");
        let fh = nfs
            .create(&dirs[d], &name, 0o644)
            .await
            .unwrap_or_else(|e| panic!("create d{d}/{name}: {e}"));
        nfs.write(&fh, 0, &content(i), stable_how::FILE_SYNC)
            .await
            .unwrap_or_else(|e| panic!("write d{d}/{name}: {e}"));
    }
    let written = started.elapsed();
    cluster.wait_drained(DRAIN_DEADLINE);
    let drained = started.elapsed();
    let chunks = wait_stores_match_gateway(&cluster);
    let objects: usize = cluster.stores().iter().map(|s| s.shard_keys().len()).sum();
    let stored: u64 = cluster
        .stores()
        .iter()
        .flat_map(|s| s.all_files())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "{FILES} files of 4 KiB: written in {written:?}, drained by {drained:?}, \
         {} chunks, {objects} remote objects, {stored} bytes in the store folders",
        chunks.len()
    );
    assert!(
        stored >= 2 * (FILES as u64) * 4096,
        "the stores hold {stored} bytes, less than two copies of {FILES} × 4 KiB"
    );
    assert!(
        objects <= MOST_OBJECTS,
        "{FILES} files of 4 KiB became {objects} remote objects ({} chunks), more than {MOST_OBJECTS}",
        chunks.len()
    );

    drop_cache(&cluster);
    let mut rng_state = seed;
    let mut sample = BTreeSet::new();
    while sample.len() < 100 {
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        sample.insert((rng_state >> 33) as usize % FILES);
    }
    let files: Vec<Written> = sample
        .into_iter()
        .map(|i| Written {
            path: format!("/d{}/f{i:05}", i % DIRS),
            data: content(i),
        })
        .collect();
    read_back(&mut nfs, &files, "after cache drop").await;
}
