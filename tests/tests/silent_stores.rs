//! Stores on a bad WAN link: a store whose link goes silent (TCP stays
//! connected, nothing comes back) or that is gone must not stall reads of
//! evicted data, nor stop the metadata backups that bound what a lost
//! gateway loses.

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use cairn_tests::{poll_until, random_bytes, test_seed, Cluster, ClusterOptions, StoreSpec};
use nfs3_types::nfs3::nfsstat3;

use common::*;

/// How long a read that has a healthy copy may take with another silenced.
const READ_WITH_ONE_SILENT: Duration = Duration::from_secs(5);

fn hosts(n: usize) -> Vec<StoreSpec> {
    (1..=n)
        .map(|i| StoreSpec::new(&format!("s{i}"), &format!("h{i}"), &["hdd"]))
        .collect()
}

/// Times a 64 KiB READ at `offset` of `path`.
async fn timed_read(
    nfs: &mut cairn_tests::Nfs,
    path: &str,
    offset: u64,
) -> (Duration, Result<Vec<u8>, cairn_tests::NfsError>) {
    let fh = nfs.lookup_path(path).await.expect("lookup");
    let start = Instant::now();
    let got = nfs.read(&fh, offset, 64 * 1024).await.map(|(b, _)| b);
    (start.elapsed(), got)
}

#[tokio::test]
async fn a_read_moves_past_a_silent_replica_and_fails_in_bounded_time_when_all_are_silent() {
    let seed = test_seed("a_read_moves_past_a_silent_replica");
    let mut options = ClusterOptions::new(hosts(2));
    options.proxied_store = Some("s1".into());
    options.also_proxied = vec!["s2".into()];
    options.read = "stall = \"2s\"\ntimeout = \"3s\"".into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    cluster.class_create("two", &["--replicas", "2"]);
    let dir = mkdir(&mut nfs, "r2").await;
    cluster.class_set("/r2", "two");
    // Blocks are at most 4 MiB: `first` is read at its start, `second` at
    // 5 MiB, a block of its own that the first read cannot have warmed.
    let first = write_file(&mut nfs, &dir, "/r2", "first", random_bytes(seed, 1 << 20)).await;
    let second = write_file(
        &mut nfs,
        &dir,
        "/r2",
        "second",
        random_bytes(seed + 1, 6 << 20),
    )
    .await;
    cluster.wait_drained(DRAIN_DEADLINE);
    let chunks = wait_stores_match_gateway(&cluster);
    for c in &chunks {
        assert_eq!(c.stores.len(), 2, "every chunk on both stores: {chunks:?}");
    }
    drop_cache(&cluster);

    // The copy a read tries first goes silent; the other stays healthy.
    let silent = chunks[0].stores[0].clone();
    cluster.proxy_of(&silent).set_silent(true);
    let (took, got) = timed_read(&mut nfs, &first.path, 0).await;
    let got = got.unwrap_or_else(|e| panic!("read {} with {silent} silent: {e}", first.path));
    assert_eq!(got, first.data[..64 * 1024], "bytes of {}", first.path);
    eprintln!("64 KiB read with {silent} silent: {took:?}");
    assert!(
        took < READ_WITH_ONE_SILENT,
        "a 64 KiB read with one of two replicas silent took {took:?} (more than {READ_WITH_ONE_SILENT:?})"
    );

    // Every holder silent: an I/O error within [read] timeout (3 s) and a
    // margin, never a hang.
    for s in ["s1", "s2"] {
        cluster.proxy_of(s).set_silent(true);
    }
    let (took, got) = timed_read(&mut nfs, &second.path, 5 << 20).await;
    eprintln!("64 KiB read with every replica silent: {took:?}, {got:?}");
    match got {
        Err(e) => assert_eq!(
            e.status(),
            Some(nfsstat3::NFS3ERR_IO),
            "every replica silent must read as an I/O error: {e}"
        ),
        Ok(b) => panic!("read {} bytes with every replica silent", b.len()),
    }
    assert!(
        took < Duration::from_secs(7),
        "the read with every replica silent failed only after {took:?}, [read] timeout is 3s"
    );
    cluster.assert_gateway_running();

    // The link back: reads are served again.
    for s in ["s1", "s2"] {
        cluster.proxy_of(s).set_silent(false);
    }
    let start = Instant::now();
    loop {
        let (_, got) = timed_read(&mut nfs, &second.path, 5 << 20).await;
        match got {
            Ok(b) => {
                assert_eq!(b, second.data[5 << 20..(5 << 20) + 64 * 1024]);
                break;
            }
            Err(e) if start.elapsed() > Duration::from_secs(30) => {
                panic!("the block does not read again once the links are back: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn metadata_backups_keep_shipping_while_a_backup_store_is_down() {
    let seed = test_seed("metadata_backups_keep_shipping");
    let mut options = ClusterOptions::new(hosts(3));
    options.backup = "snapshot_every = \"1h\"\nship_every = \"1s\"".into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    let dir = mkdir(&mut nfs, "docs").await;
    // The first snapshot goes to all three stores.
    wait_shipped(&cluster, Instant::now());

    cluster.store_mut("s3").kill9();
    // ship_every (1 s), one upload and the status's rounding.
    let bound = 4.0;
    let mut files = Vec::new();
    let mut worst: f64 = 0.0;
    let start = Instant::now();
    for i in 0..2000u64 {
        if start.elapsed() > Duration::from_secs(20) {
            break;
        }
        let data = random_bytes(seed + i, 1000 + 997 * (i % 64) as usize);
        files.push(write_file(&mut nfs, &dir, "/docs", &format!("f{i}"), data).await);
        let backup = cluster.status()["backup"].clone();
        let behind = backup["recovery_point_seconds"]
            .as_f64()
            .unwrap_or(f64::INFINITY);
        worst = worst.max(behind);
        assert!(
            behind <= bound,
            "{:.1} s after s3 went down the shipped metadata is {behind} s behind \
             (bound {bound} s, ship_every 1 s): {backup}",
            start.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "{} files written in {:?} with s3 down; worst recovery point {worst} s",
        files.len(),
        start.elapsed()
    );

    cluster.wait_drained(DRAIN_DEADLINE);
    wait_shipped(&cluster, Instant::now());
    // Lose the gateway: a restore from the two stores that stayed up has
    // every file written while the third was down.
    cluster.kill9_gateway();
    let data_dir = cluster.gateway_data_dir();
    std::fs::remove_dir_all(&data_dir).expect("wipe the gateway's folder");
    std::fs::create_dir(&data_dir).expect("recreate it empty");
    let said = restore(&cluster, &["s1", "s2"], &[]).expect("restore from s1 and s2");
    assert!(said.contains("restored generation"), "{said}");
    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "restored from s1 and s2").await;

    // Catching up: with all three back, a store that missed objects while
    // it was down gets a new snapshot once it answers again.
    cluster.store_mut("s3").restart();
    wait_shipped(&cluster, Instant::now());
    let before = newest_snapshot(&cluster, "s1");
    cluster.store_mut("s1").kill9();
    let root = nfs.root.clone();
    let late = write_file(&mut nfs, &root, "", "late", random_bytes(seed, 5000)).await;
    wait_shipped(&cluster, Instant::now());
    assert_eq!(
        newest_snapshot(&cluster, "s1"),
        before,
        "s1 is down, nothing reaches it"
    );
    cluster.store_mut("s1").restart();
    poll_until(
        "s1 gets a new snapshot once it answers again",
        Duration::from_secs(60),
        || match newest_snapshot(&cluster, "s1") {
            now if now > before => Ok(()),
            now => Err(format!("newest snapshot on s1: {now:?}")),
        },
    );
    read_back(&mut nfs, &[late], "after s1 came back").await;
}

/// The newest generation (16 hex digits) with a snapshot part on `store`.
fn newest_snapshot(cluster: &Cluster, store: &str) -> Option<String> {
    cluster
        .store(store)
        .backup_keys()
        .into_iter()
        .filter(|k| k.get(17..19) == Some("-s"))
        .map(|k| k[1..17].to_owned())
        .max()
}

#[tokio::test]
async fn an_erasure_coded_read_rebuilds_around_a_silent_data_shard() {
    let seed = test_seed("an_erasure_coded_read_rebuilds_around");
    let mut options = ClusterOptions::new(hosts(3));
    options.proxied_store = Some("s1".into());
    options.also_proxied = vec!["s2".into(), "s3".into()];
    let cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    cluster.class_create("ec", &["--ec", "2+1", "--spread", "host"]);
    let dir = mkdir(&mut nfs, "ec").await;
    cluster.class_set("/ec", "ec");
    let file = write_file(&mut nfs, &dir, "/ec", "f", random_bytes(seed, 1 << 20)).await;
    cluster.wait_drained(DRAIN_DEADLINE);
    let chunks = wait_stores_match_gateway(&cluster);
    let chunk = chunks
        .iter()
        .find(|c| c.class == "ec")
        .unwrap_or_else(|| panic!("no chunk of class ec: {chunks:?}"));
    // The store holding data shard 0, where the file's first bytes are.
    let (silent, _) = chunk
        .objects
        .iter()
        .find(|(_, key)| key.ends_with(".s00"))
        .unwrap_or_else(|| panic!("no shard 0 in {chunk:?}"))
        .clone();
    drop_cache(&cluster);

    cluster.proxy_of(&silent).set_silent(true);
    let (took, got) = timed_read(&mut nfs, &file.path, 0).await;
    let got = got.unwrap_or_else(|e| panic!("read {} with {silent} silent: {e}", file.path));
    assert_eq!(got, file.data[..64 * 1024], "bytes of {}", file.path);
    eprintln!("64 KiB erasure-coded read with {silent} (data shard 0) silent: {took:?}");
    assert!(
        took < READ_WITH_ONE_SILENT,
        "a 64 KiB read with data shard 0's store silent took {took:?} (more than {READ_WITH_ONE_SILENT:?})"
    );
}
