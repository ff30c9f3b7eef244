//! A gateway and real chunk-store processes under faults and scrutiny: a
//! store killed with SIGKILL, file bytes absent from the stores' disks and
//! from the wire, the secret absent from every log, and many small files
//! packed into few remote objects.

#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use cairn_chunkstore::{Secret, StoreClient};
use cairn_tests::cluster::{contains_bytes, random_hex};
use cairn_tests::{
    poll_until, random_bytes, test_seed, ChunkInfo, Cluster, ClusterOptions, StoreSpec,
};
use nfs3_types::nfs3::stable_how;

use common::*;

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
        // Chunk objects; the gateway ships its metadata backups (`m…`) too.
        .filter(|k| k.starts_with('c'))
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
    // A drain pass packs the files that have been quiet for `[drain] quiet`
    // (1 s here) into one chunk, so the chunk count follows how long the
    // writes last, not how many files there are: 18 to 22 chunks of 2
    // copies for 27 s of writing on this machine, 29 for 38 s under a CI
    // run's load. At most one chunk per second of writing, plus a few cut
    // when full: a few dozen objects, never 10,000.
    const SLACK_CHUNKS: usize = 4;
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
    // Chunk objects only: the metadata backups (`m…`) hold the files' names
    // and their inline bytes too, and must not count here.
    let stored: u64 = cluster
        .stores()
        .iter()
        .flat_map(|s| s.all_files())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('c'))
        })
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
    let most_objects = 2 * (written.as_secs() as usize + SLACK_CHUNKS);
    assert!(
        objects <= most_objects,
        "{FILES} files of 4 KiB written in {written:?} became {objects} remote objects ({} chunks), more than {most_objects}",
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
