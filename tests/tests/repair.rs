//! Self-healing with real processes: a store killed for good is rebuilt
//! elsewhere after the grace period and its surplus copies go when it
//! returns; a flipped byte is found by the scrub and repaired; objects left
//! by a gateway killed mid-drain are collected after the orphan delay, not
//! before; a drained store ends empty and only then may be removed.

#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cairn_tests::{poll_until, random_bytes, test_seed, Cluster, ClusterOptions, StoreSpec};
use serde_json::Value;

use common::*;

/// Longest a repair of a few tens of MiB may take on two shared cores.
const REPAIR_DEADLINE: Duration = Duration::from_secs(120);

/// Short grace and audits, no bandwidth limit.
fn fast_repair(stores: Vec<StoreSpec>) -> ClusterOptions {
    let mut options = ClusterOptions::new(stores);
    options.chunk_size = "8 MiB".into();
    options.repair =
        "grace = \"3s\"\naudit_every = \"2s\"\norphan_delay = \"15s\"\nbandwidth = \"0\"".into();
    options
}

/// Chunk health counts of every class summed: (healthy, anything worse).
fn health_totals(status: &Value) -> (u64, u64) {
    let mut healthy = 0;
    let mut worse = 0;
    for c in status["classes"].as_array().into_iter().flatten() {
        let k = &c["chunks"];
        healthy += k["healthy"].as_u64().unwrap_or(0);
        for bad in ["undergoal", "endangered", "missing", "at_risk"] {
            worse += k[bad].as_u64().unwrap_or(0);
        }
    }
    (healthy, worse)
}

/// What the gateway places on each store named in `stores`, against what
/// those stores' folders hold.
fn live_stores_match(cluster: &Cluster, stores: &[&str]) -> Result<(), String> {
    let chunks = cluster.chunks();
    let want = expected_keys(cluster, &chunks);
    let have = cluster.shard_keys_by_store();
    for s in stores {
        if want.get(*s) != have.get(*s) {
            return Err(format!(
                "{s}: gateway places {:?}, folder holds {:?}",
                want.get(*s),
                have.get(*s)
            ));
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_lost_store_is_rebuilt_after_the_grace_and_its_surplus_goes_when_it_returns() {
    let seed = test_seed("a_lost_store_is_rebuilt");
    // r5 and r6 share host h5: with r5 gone, five hosts remain for 4+1.
    let stores: Vec<StoreSpec> = [
        ("r1", "h1"),
        ("r2", "h2"),
        ("r3", "h3"),
        ("r4", "h4"),
        ("r5", "h5"),
        ("r6", "h5"),
    ]
    .iter()
    .map(|(n, h)| StoreSpec::new(n, h, &["hdd"]))
    .collect();
    let mut cluster = Cluster::start(fast_repair(stores));
    let mut nfs = cluster.mount().await;
    cluster.class_create("two", &["--replicas", "2"]);
    cluster.class_create("wide", &["--ec", "4+1"]);
    let two = mkdir(&mut nfs, "two").await;
    let wide = mkdir(&mut nfs, "wide").await;
    cluster.class_set("/two", "two");
    cluster.class_set("/wide", "wide");
    let mut files = write_mix(&mut nfs, &two, "/two", seed).await;
    files.extend(write_mix(&mut nfs, &wide, "/wide", seed + 1).await);
    for i in 0..3u64 {
        let data = random_bytes(seed + 10 + i, (6 << 20) + i as usize * 1000);
        files.push(write_file(&mut nfs, &two, "/two", &format!("big{i}"), data.clone()).await);
        files.push(write_file(&mut nfs, &wide, "/wide", &format!("big{i}"), data).await);
    }
    cluster.wait_drained(DRAIN_DEADLINE);
    let before = wait_stores_match_gateway(&cluster);
    let on_r5 = before
        .iter()
        .filter(|c| c.stores.iter().any(|s| s == "r5"))
        .count();
    assert!(on_r5 > 0, "r5 holds nothing, so losing it proves nothing");
    drop_cache(&cluster);

    cluster.store_mut("r5").kill9();
    let live = ["r1", "r2", "r3", "r4", "r6"];
    let repaired = poll_until(
        "every chunk healthy again without r5, as the live stores' folders show",
        REPAIR_DEADLINE,
        || {
            let chunks = cluster.chunks();
            if let Some(c) = chunks.iter().find(|c| c.stores.iter().any(|s| s == "r5")) {
                return Err(format!("chunk {} still placed on r5", c.key));
            }
            let status = cluster.try_cairn_json(&["status"])?;
            let (healthy, worse) = health_totals(&status);
            if worse > 0 || healthy != chunks.len() as u64 {
                return Err(format!("health: {}", status["classes"]));
            }
            live_stores_match(&cluster, &live)?;
            Ok(status)
        },
    );
    assert!(
        repaired["repair"]["repaired_chunks"].as_u64() >= Some(on_r5 as u64),
        "status counts the repairs: {}",
        repaired["repair"]
    );
    let states: BTreeMap<String, String> = repaired["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_owned(),
                s["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(states["r5"], "offline", "{states:?}");
    read_back(&mut nfs, &files, "after repairing r5's chunks elsewhere").await;

    // r5 returns: its copies are surplus now and are deleted; no chunk ever
    // drops below its class meanwhile.
    cluster.store_mut("r5").restart();
    let started = Instant::now();
    poll_until(
        "r5's folder holds only what the gateway places there (nothing)",
        REPAIR_DEADLINE,
        || {
            let status = cluster.try_cairn_json(&["status"])?;
            let (_, worse) = health_totals(&status);
            assert_eq!(
                worse,
                0,
                "a chunk fell below its class {:?} after r5 came back: {}",
                started.elapsed(),
                status["classes"]
            );
            let keys = cluster.store("r5").shard_keys();
            let placed: BTreeSet<String> = expected_keys(&cluster, &cluster.chunks())
                .remove("r5")
                .unwrap_or_default();
            if keys == placed {
                Ok(())
            } else {
                Err(format!(
                    "r5 holds {} objects, the gateway places {}",
                    keys.len(),
                    placed.len()
                ))
            }
        },
    );
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after r5 returned").await;
}

#[tokio::test]
async fn a_flipped_byte_is_found_by_the_scrub_and_repaired() {
    let seed = test_seed("a_flipped_byte_is_found");
    let stores: Vec<StoreSpec> = (1..=3)
        .map(|i| {
            let mut s = StoreSpec::new(&format!("s{i}"), &format!("h{i}"), &["hdd"]);
            s.scrub_every = Some("1s".into());
            s
        })
        .collect();
    let cluster = Cluster::start(fast_repair(stores));
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let data = random_bytes(seed, 3 << 20);
    let files = vec![write_file(&mut nfs, &root, "", "victim", data).await];
    cluster.wait_drained(DRAIN_DEADLINE);
    let chunks = wait_stores_match_gateway(&cluster);
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    let (store, key) = chunks[0].objects[0].clone();
    let path = cairn_chunkstore::layout::shard_path(&cluster.store(&store).data_dir(), &key);
    let mut raw = std::fs::read(&path).expect("read the shard file");
    raw[cairn_chunkstore::layout::SHARD_PAYLOAD_OFFSET as usize + 1000] ^= 0x40;
    std::fs::write(&path, &raw).expect("write the flipped byte");

    poll_until(
        "the scrub quarantines the shard and the gateway makes a new copy",
        REPAIR_DEADLINE,
        || {
            let logs = cluster.store(&store).logs();
            if !logs.contains("scrub found a corrupt shard") {
                return Err("no scrub report yet".into());
            }
            let now = cluster.chunks();
            let copies = now.first().map_or(0, |c| c.objects.len());
            let status = cluster.try_cairn_json(&["status"])?;
            let (healthy, worse) = health_totals(&status);
            if copies == 2
                && healthy == 1
                && worse == 0
                && !now[0].objects.contains(&(store.clone(), key.clone()))
            {
                Ok(())
            } else {
                Err(format!("chunk {now:?}; health {}", status["classes"]))
            }
        },
    );
    let quarantined =
        cairn_tests::cluster::files_below(&cluster.store(&store).data_dir().join("quarantine"));
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after the scrub repair").await;
    wait_stores_match_gateway(&cluster);
}

#[tokio::test]
async fn objects_of_a_gateway_killed_mid_drain_are_collected_after_the_delay() {
    let seed = test_seed("objects_of_a_gateway_killed");
    let stores: Vec<StoreSpec> = (1..=3)
        .map(|i| StoreSpec::new(&format!("s{i}"), &format!("h{i}"), &["hdd"]))
        .collect();
    let mut cluster = Cluster::start(fast_repair(stores));
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let mut files =
        vec![write_file(&mut nfs, &root, "", "kept", random_bytes(seed, 2 << 20)).await];
    cluster.wait_drained(DRAIN_DEADLINE);
    wait_stores_match_gateway(&cluster);

    // An object no chunk will ever reference, as a drain killed between its
    // put and its commit leaves behind.
    let secret = cairn_chunkstore::Secret::load(cluster.secret_path()).expect("secret");
    let mut client =
        cairn_chunkstore::StoreClient::connect(&cluster.store("s2").addr().to_string(), &secret)
            .await
            .expect("connect to s2");
    client
        .put("c00000000deadbeef", b"left behind")
        .await
        .expect("put");
    let put_at = Instant::now();
    // And a gateway killed while a large file drains.
    files.push(write_file(&mut nfs, &root, "", "big", random_bytes(seed + 1, 24 << 20)).await);
    poll_until("the big file's drain has begun", DRAIN_DEADLINE, || {
        let logs = cluster.gateway_logs();
        if cluster.backlog_bytes()? < 24 << 20 || logs.contains("chunk stored") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    cluster.kill9_gateway();
    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    cluster.wait_drained(DRAIN_DEADLINE);

    // Not before the delay (15 s)...
    while put_at.elapsed() < Duration::from_secs(10) {
        assert!(
            cluster
                .store("s2")
                .shard_keys()
                .contains("c00000000deadbeef"),
            "an unreferenced object was deleted after {:?}, before the orphan delay",
            put_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // ...but after it, and everything referenced stays.
    poll_until(
        "every store holds exactly what the gateway places there",
        REPAIR_DEADLINE,
        || {
            let keys = cluster.store("s2").shard_keys();
            if keys.contains("c00000000deadbeef") {
                return Err("the orphan is still there".into());
            }
            live_stores_match(&cluster, &["s1", "s2", "s3"])
        },
    );
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after the orphans were collected").await;
}

#[tokio::test]
async fn a_drained_store_ends_empty_and_only_then_may_be_removed() {
    let seed = test_seed("a_drained_store_ends_empty");
    let stores: Vec<StoreSpec> = (1..=4)
        .map(|i| StoreSpec::new(&format!("s{i}"), &format!("h{i}"), &["hdd"]))
        .collect();
    let cluster = Cluster::start(fast_repair(stores));
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let mut files = Vec::new();
    for i in 0..4u64 {
        let data = random_bytes(seed + i, (5 << 20) + i as usize);
        files.push(write_file(&mut nfs, &root, "", &format!("f{i}"), data).await);
    }
    cluster.wait_drained(DRAIN_DEADLINE);
    let chunks = wait_stores_match_gateway(&cluster);
    let target = ["s1", "s2", "s3", "s4"]
        .into_iter()
        .find(|s| chunks.iter().any(|c| c.stores.iter().any(|x| x == s)))
        .expect("some store holds a chunk");

    let refused = cluster
        .try_cairn(&["store", "remove", target])
        .expect_err("remove must be refused");
    assert!(
        refused.contains("drain") && refused.contains(target),
        "{refused}"
    );
    let said = cluster.cairn(&["store", "drain", target]);
    assert!(said.contains("draining"), "{said}");
    poll_until(
        &format!("{target} ends empty, no chunk ever below its class"),
        REPAIR_DEADLINE,
        || {
            let status = cluster.try_cairn_json(&["status"])?;
            let (_, worse) = health_totals(&status);
            assert_eq!(
                worse, 0,
                "a chunk fell below its class while {target} drained: {}",
                status["classes"]
            );
            let placed = cluster
                .chunks()
                .iter()
                .filter(|c| c.stores.iter().any(|s| s == target))
                .count();
            let left = cluster.store(target).shard_keys().len();
            if placed == 0 && left == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{placed} chunks placed on {target}, {left} objects in its folder"
                ))
            }
        },
    );
    let removed = cluster.cairn(&["store", "remove", target]);
    assert!(removed.contains("removed"), "{removed}");
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after draining a store").await;
}

/// `fill_percent` of every store, from `cairn store list --json`.
fn fills(cluster: &Cluster) -> Result<BTreeMap<String, f64>, String> {
    let v = cluster.try_cairn_json(&["store", "list"])?;
    Ok(v["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_owned(),
                s["fill_percent"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect())
}

#[tokio::test]
async fn a_new_host_fills_up_until_the_stores_are_within_ten_points() {
    let seed = test_seed("a_new_host_fills_up");
    let spec = |i: usize| {
        let mut s = StoreSpec::new(&format!("s{i}"), &format!("h{i}"), &["hdd"]);
        s.capacity = Some("400 MiB".into());
        s
    };
    let mut cluster = Cluster::start(fast_repair((1..=3).map(spec).collect()));
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let mut files = Vec::new();
    for i in 0..12u64 {
        let data = random_bytes(seed + i, 8 << 20);
        files.push(write_file(&mut nfs, &root, "", &format!("f{i}"), data).await);
    }
    cluster.wait_drained(DRAIN_DEADLINE);
    wait_stores_match_gateway(&cluster);
    // The gateway probes fill every 2 s.
    poll_until("three stores about 16% full", PROBE_DEADLINE, || {
        let f = fills(&cluster)?;
        if f.values().all(|&f| f > 12.0) {
            Ok(())
        } else {
            Err(format!("fills {f:?}"))
        }
    });

    // NFS FSSTAT shows the cluster's raw capacity: the stores' capacities
    // less their reserves (256 MiB each in these tests), not the cache.
    let st = nfs.fsstat().await.expect("fsstat");
    assert_eq!(st.tbytes, (3 * (400 - 256)) << 20, "{st:?}");
    assert!(st.fbytes < st.tbytes, "{st:?}");

    cluster.add_store(spec(4));
    let spread = |f: &BTreeMap<String, f64>| {
        let max = f.values().copied().fold(f64::MIN, f64::max);
        let min = f.values().copied().fold(f64::MAX, f64::min);
        max - min
    };
    poll_until(
        "fill ratios within 10 points, and each store's folder as the gateway places it",
        REPAIR_DEADLINE,
        || {
            let status = cluster.try_cairn_json(&["status"])?;
            let (_, worse) = health_totals(&status);
            assert_eq!(
                worse, 0,
                "a chunk fell below its class while rebalancing: {}",
                status["classes"]
            );
            let f = fills(&cluster)?;
            if spread(&f) > 10.0 {
                return Err(format!("fills {f:?}"));
            }
            live_stores_match(&cluster, &["s1", "s2", "s3", "s4"])
        },
    );
    let moved = cluster.store("s4").shard_keys().len();
    assert!(moved > 0, "nothing moved to s4");
    let status = cluster.status();
    let rebalance = &status["repair"]["rebalance"];
    assert!(
        rebalance["moved_chunks"].as_u64() >= Some(moved as u64),
        "status counts the moves: {rebalance}"
    );
    let mut nfs = cluster.mount().await;
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after rebalancing").await;
}

#[tokio::test]
async fn a_flap_repairs_nothing_and_a_gateway_killed_mid_repair_finishes_it() {
    let seed = test_seed("a_flap_repairs_nothing");
    let stores: Vec<StoreSpec> = (1..=3)
        .map(|i| StoreSpec::new(&format!("s{i}"), &format!("h{i}"), &["hdd"]))
        .collect();
    let mut options = fast_repair(stores);
    // Slow repairs (a pause after each 8 MiB chunk), so the gateway dies mid-way.
    options.repair =
        "grace = \"5s\"\naudit_every = \"2s\"\norphan_delay = \"15s\"\nbandwidth = \"4 MiB\""
            .into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let mut files = Vec::new();
    for i in 0..6u64 {
        let data = random_bytes(seed + i, 8 << 20);
        files.push(write_file(&mut nfs, &root, "", &format!("f{i}"), data).await);
    }
    cluster.wait_drained(DRAIN_DEADLINE);
    let before = wait_stores_match_gateway(&cluster);
    // The store holding the most copies is the one that flaps, then dies.
    let victim = ["s1", "s2", "s3"]
        .into_iter()
        .max_by_key(|s| {
            before
                .iter()
                .filter(|c| c.stores.iter().any(|x| x == s))
                .count()
        })
        .expect("three stores");
    let live: Vec<&str> = ["s1", "s2", "s3"]
        .into_iter()
        .filter(|s| *s != victim)
        .collect();

    // A flap shorter than the grace period: the store is back, nothing moved.
    cluster.store_mut(victim).kill9();
    cluster.wait_store_online(victim, false, PROBE_DEADLINE);
    cluster.store_mut(victim).restart();
    cluster.wait_store_online(victim, true, PROBE_DEADLINE);
    let status = cluster.status();
    assert_eq!(
        status["repair"]["repaired_chunks"], 0,
        "{}",
        status["repair"]
    );
    assert_eq!(cluster.chunks(), before, "a flap moved chunks");

    // Lost for good; the gateway is killed once the repair is under way.
    cluster.store_mut(victim).kill9();
    poll_until("a first chunk repaired", REPAIR_DEADLINE, || {
        let v = cluster.try_cairn_json(&["status"])?;
        match v["repair"]["repaired_chunks"].as_u64() {
            Some(n) if n >= 1 => Ok(()),
            _ => Err(v["repair"].to_string()),
        }
    });
    cluster.kill9_gateway();
    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    poll_until(
        "every chunk healthy on the two live stores, their folders exactly what the gateway places",
        REPAIR_DEADLINE,
        || {
            let status = cluster.try_cairn_json(&["status"])?;
            let (healthy, worse) = health_totals(&status);
            if worse > 0 || healthy == 0 {
                return Err(format!("health {}", status["classes"]));
            }
            live_stores_match(&cluster, &live)
        },
    );
    drop_cache(&cluster);
    read_back(
        &mut nfs,
        &files,
        "after a repair interrupted by a gateway kill",
    )
    .await;
}
