//! The gateway is no single point of failure: its metadata is shipped to the
//! stores, and `cairn restore` rebuilds a gateway from nothing but the
//! stores' addresses and the cluster secret.

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use cairn_tests::{poll_until, random_bytes, test_seed, Cluster, ClusterOptions};
use nfs3_types::nfs3::{sattr3, set_gid3, set_mode3, set_uid3};

use common::*;

#[tokio::test]
async fn a_lost_gateway_is_rebuilt_from_the_stores_with_one_of_them_gone() {
    let seed = test_seed("a_lost_gateway_is_rebuilt");
    let mut options = ClusterOptions::new(three_hosts());
    // One snapshot at start; everything after travels as shipped changes.
    options.backup = "snapshot_every = \"1h\"\nship_every = \"300ms\"".into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    cluster.class_create("precious", &["--replicas", "3"]);
    let docs = mkdir(&mut nfs, "docs").await;
    let plain = mkdir(&mut nfs, "plain").await;
    cluster.class_set("/docs", "precious");
    let mut files = write_mix(&mut nfs, &docs, "/docs", seed).await;
    files.extend(write_mix(&mut nfs, &plain, "/plain", seed + 1).await);
    let f1 = nfs.lookup_path("/docs/f1").await.expect("lookup");
    nfs.link(&f1, &plain, "hard").await.expect("link");
    nfs.symlink(&docs, "link", "f4096").await.expect("symlink");
    let f4096 = nfs.lookup_path("/plain/f4096").await.expect("lookup");
    let attrs = sattr3 {
        mode: set_mode3::Some(0o640),
        uid: set_uid3::Some(1234),
        gid: set_gid3::Some(5678),
        ..Default::default()
    };
    nfs.setattr(&f4096, attrs).await.expect("setattr");
    cluster.wait_drained(DRAIN_DEADLINE);
    let since = Instant::now();
    let backup = wait_shipped(&cluster, since);
    assert!(
        backup["changesets"].as_u64() >= Some(1),
        "the changes after the first snapshot were shipped as changesets: {backup}"
    );

    lose_the_gateway(&mut cluster);
    cluster.store_mut("s3").kill9();
    let listed = restore(&cluster, &["s1", "s2"], &["--list"]).expect("restore --list");
    assert!(listed.contains("generation "), "{listed}");
    let said = restore(&cluster, &["s1", "s2", "s3"], &[]).expect("restore");
    assert!(said.contains("store unreachable"), "s3 is reported: {said}");
    assert!(said.contains("restored generation"), "{said}");
    assert!(said.contains("nothing else is lost"), "{said}");
    assert!(
        cluster.gateway_data_dir().join("gateway.toml").exists(),
        "restore writes a config to start from"
    );

    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after the restore").await;
    let hard = nfs.lookup_path("/plain/hard").await.expect("hard link");
    assert_eq!(hard, nfs.lookup_path("/docs/f1").await.unwrap());
    assert_eq!(nfs.getattr(&hard).await.unwrap().nlink, 2);
    let link = nfs.lookup_path("/docs/link").await.expect("symlink");
    assert_eq!(nfs.readlink(&link).await.unwrap(), b"f4096");
    let fh = nfs.lookup_path("/plain/f4096").await.unwrap();
    let a = nfs.getattr(&fh).await.unwrap();
    assert_eq!((a.mode & 0o7777, a.uid, a.gid), (0o640, 1234, 5678));
    let class = cluster.cairn(&["class", "get", "/docs"]);
    assert!(class.contains("precious"), "{class}");
}

#[tokio::test]
async fn a_damaged_newest_generation_is_skipped_for_an_older_good_one() {
    let seed = test_seed("a_damaged_newest_generation");
    let mut options = ClusterOptions::new(three_hosts());
    options.backup = "snapshot_every = \"1s\"\nship_every = \"300ms\"\nkeep = 5".into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let files = vec![write_file(&mut nfs, &root, "", "kept", random_bytes(seed, 300_000)).await];
    cluster.wait_drained(DRAIN_DEADLINE);
    let since = Instant::now();
    wait_shipped(&cluster, since);
    // Two more generations after the file's.
    let generations = |cluster: &Cluster| {
        let mut g: Vec<String> = cluster
            .store("s1")
            .backup_keys()
            .into_iter()
            .map(|k| k[1..17].to_owned())
            .collect();
        g.sort();
        g.dedup();
        g
    };
    let before = generations(&cluster);
    poll_until(
        "two generations newer than the file",
        Duration::from_secs(60),
        || {
            let now = generations(&cluster);
            let newer = now.iter().filter(|g| !before.contains(g)).count();
            if newer >= 2 {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        },
    );
    lose_the_gateway(&mut cluster);
    let all = generations(&cluster);
    let newest = all.last().expect("a generation").clone();
    // Truncate the newest snapshot on every store.
    for s in ["s1", "s2", "s3"] {
        for key in cluster.store(s).backup_keys() {
            if key.starts_with(&format!("m{newest}-s")) {
                let path = cairn_chunkstore::layout::shard_path(&cluster.store(s).data_dir(), &key);
                let len = std::fs::metadata(&path).unwrap().len();
                let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.set_len(len - 100).unwrap();
            }
        }
    }
    let said = restore(&cluster, &["s1", "s2", "s3"], &[]).expect("restore");
    assert!(
        said.contains(&format!("skipped generation {newest}")),
        "the damaged generation is named: {said}"
    );
    assert!(said.contains("restored generation"), "{said}");
    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after restoring an older generation").await;
}

#[tokio::test]
async fn an_acknowledged_write_to_a_remote_durable_class_survives_losing_the_gateway() {
    let seed = test_seed("an_acknowledged_write_to_a_remote");
    let mut options = ClusterOptions::new(three_hosts());
    // Nothing drains or ships on its own within this test.
    options.quiet = "10m".into();
    options.backup = "snapshot_every = \"1h\"\nship_every = \"10m\"".into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    let said = cluster.cairn(&["class", "create", "sure", "--durability", "remote"]);
    assert!(said.contains("durability remote"), "{said}");
    let sure = mkdir(&mut nfs, "sure").await;
    let local = mkdir(&mut nfs, "local").await;
    cluster.class_set("/sure", "sure");
    // Wait for the first snapshot (taken at start), so the directories and
    // the class are in it or in what the remote-durable write ships.
    wait_shipped(&cluster, Instant::now() - Duration::from_secs(3600));
    // FILE_SYNC writes: acknowledged as stable.
    let kept = vec![
        write_file(
            &mut nfs,
            &sure,
            "/sure",
            "big",
            random_bytes(seed, (5 << 20) + 3),
        )
        .await,
        write_file(
            &mut nfs,
            &sure,
            "/sure",
            "small",
            random_bytes(seed + 1, 1000),
        )
        .await,
    ];
    let lost = write_file(
        &mut nfs,
        &local,
        "/local",
        "cached",
        random_bytes(seed + 2, 2 << 20),
    )
    .await;
    assert!(cluster.backlog_bytes().unwrap() >= lost.data.len() as u64);

    lose_the_gateway(&mut cluster);
    let said = restore(&cluster, &["s1", "s2", "s3"], &[]).expect("restore");
    assert!(said.contains("restored generation"), "{said}");
    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    drop_cache(&cluster);
    read_back(
        &mut nfs,
        &kept,
        "remote-durable writes after losing the gateway",
    )
    .await;
    // The control: the local-durability file was acknowledged too, but only
    // the cache had it.
    let gone = nfs.lookup_path("/local/cached").await;
    let survived = match gone {
        Ok(fh) => nfs.read_all(&fh).await.is_ok_and(|b| b == lost.data),
        Err(_) => false,
    };
    assert!(
        !survived,
        "a local-durability file in a lost cache cannot have survived"
    );
}

#[tokio::test]
async fn fsck_deep_finds_a_damaged_copy_and_repair_rebuilds_it() {
    let seed = test_seed("fsck_deep_finds");
    let cluster = Cluster::start(ClusterOptions::new(three_hosts()));
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let files = vec![write_file(&mut nfs, &root, "", "f", random_bytes(seed, 3 << 20)).await];
    cluster.wait_drained(DRAIN_DEADLINE);
    let chunks = wait_stores_match_gateway(&cluster);
    let clean = cluster.cairn(&["fsck", "--deep"]);
    assert!(clean.contains("every copy and shard is present"), "{clean}");

    let (store, key) = chunks[0].objects[0].clone();
    let path = cairn_chunkstore::layout::shard_path(&cluster.store(&store).data_dir(), &key);
    let mut raw = std::fs::read(&path).unwrap();
    raw[cairn_chunkstore::layout::SHARD_PAYLOAD_OFFSET as usize + 10] ^= 1;
    std::fs::write(&path, &raw).unwrap();
    let found = cluster
        .try_cairn(&["fsck", "--deep"])
        .expect_err("fsck must fail");
    assert!(found.contains("corrupt") && found.contains(&key), "{found}");

    let said = cluster.cairn(&["fsck", "--deep", "--repair"]);
    assert!(said.contains("handed to the repair"), "{said}");
    poll_until(
        "fsck --deep is clean again",
        Duration::from_secs(60),
        || {
            cluster
                .try_cairn(&["fsck", "--deep"])
                .map(|_| ())
                .map_err(|e| e.lines().take(3).collect::<Vec<_>>().join(" | "))
        },
    );
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after fsck --deep --repair").await;
}
