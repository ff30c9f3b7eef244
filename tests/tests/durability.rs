//! Nothing lost: what a class change, a future mtime, a clean stop or an
//! unplaceable class must never cost, and how data that truly was lost with
//! a gateway shows (an I/O error and its path, never silent zeros).

#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cairn_tests::{random_bytes, test_seed, Cluster, ClusterOptions, NfsError};
use nfs3_types::nfs3::{nfsstat3, nfstime3, sattr3, set_mtime, stable_how};

use common::*;

/// The object keys of the chunks whose class is `class`.
fn objects_of_class(cluster: &Cluster, class: &str) -> BTreeSet<(String, String)> {
    cluster
        .chunks()
        .into_iter()
        .filter(|c| c.class == class)
        .flat_map(|c| c.objects)
        .collect()
}

/// Whether `(store, key)` is in that store's folder.
fn on_store(cluster: &Cluster, object: &(String, String)) -> bool {
    cluster
        .shard_keys_by_store()
        .get(&object.0)
        .is_some_and(|keys| keys.contains(&object.1))
}

#[tokio::test]
async fn a_file_being_relaid_when_the_gateway_is_lost_reads_back_from_its_old_copies() {
    let seed = test_seed("a_file_being_relaid");
    let mut options = ClusterOptions::new(three_hosts());
    options.backup = "ship_every = \"300ms\"".into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    let dir = mkdir(&mut nfs, "data").await;
    let files = write_mix(&mut nfs, &dir, "/data", seed).await;
    cluster.wait_drained(DRAIN_DEADLINE);
    // A class no store can take: the re-lay starts (every slot goes back
    // through the drain) and can never finish, so the shipped metadata
    // holds the file mid-re-lay.
    cluster.class_create("nowhere", &["--replicas", "2", "--labels", "ssd,ssd"]);
    cluster.class_set("/data", "nowhere");
    poll_until_backlog(&cluster, |b| b > 0, "the re-lay sends the files back");
    wait_shipped(&cluster, Instant::now());

    lose_the_gateway(&mut cluster);
    let said = restore(&cluster, &["s1", "s2", "s3"], &[]).expect("restore");
    assert!(
        said.contains("nothing else is lost"),
        "a re-lay in progress is no loss: {said}"
    );
    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    read_back(&mut nfs, &files, "after a restore mid-re-lay").await;
}

#[tokio::test]
async fn old_copies_replaced_by_a_relay_stay_until_the_change_is_shipped() {
    let seed = test_seed("old_copies_stay_until_shipped");
    let mut options = ClusterOptions::new(three_hosts());
    // Changes ship only when a remote-durable write asks (or at a stop).
    options.backup = "snapshot_every = \"1h\"\nship_every = \"1h\"".into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    cluster.class_create("sync", &["--replicas", "2", "--durability", "remote"]);
    cluster.class_create("three", &["--replicas", "3"]);
    let dir = mkdir(&mut nfs, "data").await;
    let sync = mkdir(&mut nfs, "sync").await;
    cluster.class_set("/sync", "sync");
    let files = write_mix(&mut nfs, &dir, "/data", seed).await;
    cluster.wait_drained(DRAIN_DEADLINE);
    let old = objects_of_class(&cluster, "default");
    assert!(!old.is_empty(), "the files drained under the default class");
    // A remote-durable write ships every change so far: the drained files.
    write_file(&mut nfs, &sync, "/sync", "marker", b"ship".to_vec()).await;

    cluster.class_set("/data", "three");
    cairn_tests::poll_until(
        "the re-laid files leave the default class's chunks",
        DRAIN_DEADLINE,
        || match objects_of_class(&cluster, "default").is_empty() {
            true => Ok(()),
            false => Err(format!("{:?}", objects_of_class(&cluster, "default"))),
        },
    );
    // The gateway no longer needs the old copies, but the shipped metadata
    // still points at them: they must stay on the stores. Watched for
    // longer than the trash delay and a collection pass.
    let until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < until {
        for object in &old {
            assert!(
                on_store(&cluster, object),
                "{object:?} was deleted before the change that dropped it was shipped"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    lose_the_gateway(&mut cluster);
    restore(&cluster, &["s1", "s2", "s3"], &[]).expect("restore");
    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    read_back(&mut nfs, &files, "after a restore from before the re-lay").await;
}

#[tokio::test]
async fn a_file_dated_in_the_future_still_drains() {
    let seed = test_seed("a_file_dated_in_the_future");
    let cluster = Cluster::start(ClusterOptions::new(three_hosts()));
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let file = write_file(&mut nfs, &root, "", "future", random_bytes(seed, 300_000)).await;
    let fh = nfs.lookup_path("/future").await.expect("lookup");
    // 2100-01-01, as `touch -d` or a copy keeping timestamps would set.
    let attrs = sattr3 {
        mtime: set_mtime::SET_TO_CLIENT_TIME(nfstime3 {
            seconds: 4_102_444_800,
            nseconds: 0,
        }),
        ..Default::default()
    };
    nfs.setattr(&fh, attrs).await.expect("set a future mtime");
    cluster.wait_drained(DRAIN_DEADLINE);
    drop_cache(&cluster);
    read_back(&mut nfs, &[file], "from the stores").await;
    assert_eq!(
        nfs.getattr(&fh).await.unwrap().mtime.seconds,
        4_102_444_800,
        "the drain kept the client's mtime"
    );
}

#[tokio::test]
async fn a_clean_stop_ships_the_last_changes_and_restore_keeps_the_config() {
    let seed = test_seed("a_clean_stop_ships");
    let mut options = ClusterOptions::new(three_hosts());
    options.backup = "snapshot_every = \"1h\"\nship_every = \"1h\"".into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    let dir = mkdir(&mut nfs, "late").await;
    let files = write_mix(&mut nfs, &dir, "/late", seed).await;
    cluster.wait_drained(DRAIN_DEADLINE);
    let status = cluster.stop_gateway();
    assert!(status.success(), "the gateway stops cleanly: {status}");
    assert!(
        cluster
            .gateway_logs()
            .contains("shipped the last metadata changes"),
        "the stop says it shipped"
    );
    let dir = cluster.gateway_data_dir();
    std::fs::remove_dir_all(&dir).expect("wipe the gateway's folder");
    std::fs::create_dir(&dir).expect("recreate it empty");
    let said = restore(&cluster, &["s1", "s2", "s3"], &[]).expect("restore");
    assert!(said.contains("nothing else is lost"), "{said}");

    // The written config serves as the lost gateway did.
    let written = std::fs::read_to_string(dir.join("gateway.toml")).expect("restored config");
    let cfg: toml::Table = toml::from_str(&written).expect("the restored config parses");
    assert_eq!(
        cfg["nfs"]["listen"].as_str(),
        Some(cluster.gateway_addr().to_string().as_str()),
        "{written}"
    );
    assert_eq!(
        cfg["cache"]["max_size"].as_str(),
        Some("2 GiB"),
        "{written}"
    );
    assert_eq!(cfg["drain"]["quiet"].as_str(), Some("1s"), "{written}");
    let data_dir = cfg["data_dir"].as_str().unwrap_or_default();
    assert!(data_dir.starts_with('/'), "data_dir is absolute: {written}");
    let secret = cfg["cluster"]["secret_file"].as_str().unwrap_or_default();
    assert!(
        secret.starts_with('/'),
        "secret_file is absolute: {written}"
    );
    if let Err(e) = cairn_config::GatewayConfig::load(&dir.join("gateway.toml")) {
        panic!("the restored config does not validate: {e}\n{written}");
    }

    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after a clean stop and a restore").await;
}

#[tokio::test]
async fn data_lost_with_the_gateway_reads_as_an_error_and_is_named() {
    let seed = test_seed("data_lost_with_the_gateway");
    let mut options = ClusterOptions::new(three_hosts());
    options.backup = "ship_every = \"300ms\"".into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let kept = write_file(&mut nfs, &root, "", "kept", random_bytes(seed, 200_000)).await;
    cluster.wait_drained(DRAIN_DEADLINE);
    cluster.class_create("nowhere", &["--replicas", "2", "--labels", "ssd,ssd"]);
    let pending = mkdir(&mut nfs, "pending").await;
    cluster.class_set("/pending", "nowhere");
    let big = random_bytes(seed + 1, 300_000);
    write_file(&mut nfs, &pending, "/pending", "big", big.clone()).await;
    let small = write_file(&mut nfs, &pending, "/pending", "small", b"inline".to_vec()).await;
    wait_shipped(&cluster, Instant::now());

    lose_the_gateway(&mut cluster);
    let said = restore(&cluster, &["s1", "s2", "s3"], &[]).expect("restore");
    assert!(said.contains("lost: 1 file(s)"), "{said}");
    assert!(
        said.contains("/pending/big"),
        "the lost file by path: {said}"
    );
    assert!(
        !said.contains("/pending/small"),
        "inline bytes travel with the metadata: {said}"
    );
    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    read_back(&mut nfs, &[kept, small], "what was not lost").await;
    let fh = nfs.lookup_path("/pending/big").await.expect("lookup");
    match nfs.read(&fh, 0, 4096).await {
        Err(NfsError::Status(nfsstat3::NFS3ERR_IO)) => {}
        other => panic!("a lost range must read as NFS3ERR_IO, got {other:?}"),
    }
    let fsck = cluster.cairn_json(&["fsck"]);
    assert_eq!(
        fsck["lost"][0]["path"].as_str(),
        Some("/pending/big"),
        "{fsck}"
    );

    // Overwritten, it reads again and is no longer reported.
    nfs.write_all(&fh, 0, &big, stable_how::FILE_SYNC)
        .await
        .expect("overwrite the lost file");
    assert_eq!(nfs.read_all(&fh).await.expect("read after overwrite"), big);
    let fsck = cluster.cairn_json(&["fsck"]);
    assert_eq!(fsck["lost"], serde_json::json!([]), "{fsck}");
}

#[tokio::test]
async fn a_class_that_cannot_be_placed_pins_its_data_and_says_so() {
    let seed = test_seed("a_class_that_cannot_be_placed");
    // Three hosts, one zone.
    let cluster = Cluster::start(ClusterOptions::new(three_hosts()));
    let pinned = "stays pinned in the gateway's cache";
    let made = cluster.cairn(&[
        "class",
        "create",
        "zones",
        "--replicas",
        "3",
        "--spread",
        "zone",
        "--strict",
    ]);
    assert!(made.contains(pinned), "class create: {made}");
    let made = cluster.cairn(&["class", "create", "wide", "--ec", "4+1"]);
    assert!(made.contains(pinned), "class create: {made}");
    let made = cluster.cairn(&["class", "create", "single", "--replicas", "1"]);
    assert!(
        made.contains("survives the loss of 0 store(s)"),
        "fewer copies than the default is said: {made}"
    );

    let mut nfs = cluster.mount().await;
    let strict = mkdir(&mut nfs, "strict").await;
    let wide = mkdir(&mut nfs, "wide").await;
    let set = cluster.cairn(&["class", "set", "/strict", "zones"]);
    assert!(set.contains(pinned), "class set: {set}");
    cluster.class_set("/wide", "wide");
    let a = write_file(
        &mut nfs,
        &strict,
        "/strict",
        "a",
        random_bytes(seed, 200_000),
    )
    .await;
    let b = write_file(
        &mut nfs,
        &wide,
        "/wide",
        "b",
        random_bytes(seed + 1, 200_000),
    )
    .await;
    let root = nfs.root.clone();
    write_file(
        &mut nfs,
        &root,
        "",
        "control",
        random_bytes(seed + 2, 200_000),
    )
    .await;
    // The control file drains; the other two never do.
    poll_until_backlog(&cluster, |b| b == 400_000, "only the pinned files wait");
    let status = cluster.status();
    for class in ["zones", "wide"] {
        let why = status["classes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == class)
            .map(|c| c["why"].to_string())
            .unwrap_or_default();
        assert!(why.contains(pinned), "status of {class}: {why}");
        assert!(
            objects_of_class(&cluster, class).is_empty(),
            "class {class} stored a chunk it cannot meet"
        );
    }
    // Pinned: `cache drop` keeps them, and they read back.
    cluster.cache_drop();
    read_back(&mut nfs, &[a, b], "pinned in the cache").await;
}

/// Polls `cairn status` until `backlog_bytes` satisfies `ok`.
fn poll_until_backlog(cluster: &Cluster, ok: impl Fn(u64) -> bool, what: &str) {
    cairn_tests::poll_until(what, DRAIN_DEADLINE, || {
        let b = cluster.backlog_bytes()?;
        if ok(b) {
            Ok(())
        } else {
            Err(format!("backlog {b}"))
        }
    });
}

#[tokio::test]
async fn chunks_no_store_can_take_are_left_out_of_the_repair_eta() {
    let seed = test_seed("chunks_no_store_can_take");
    let mut options = ClusterOptions::new(three_hosts());
    options.repair = "grace = \"2s\"\naudit_every = \"2s\"\nbandwidth = \"0\"".into();
    let mut cluster = Cluster::start(options);
    cluster.class_create("three", &["--replicas", "3"]);
    let mut nfs = cluster.mount().await;
    let dir = mkdir(&mut nfs, "three").await;
    cluster.class_set("/three", "three");
    write_file(&mut nfs, &dir, "/three", "f", random_bytes(seed, 300_000)).await;
    cluster.wait_drained(DRAIN_DEADLINE);
    // Three copies on three hosts; one host gone leaves nowhere to put the
    // third copy back.
    cluster.store_mut("s3").kill9();
    let repair = cairn_tests::poll_until(
        "the repairer sees the chunk it cannot place",
        DRAIN_DEADLINE,
        || {
            let r = cluster.try_cairn_json(&["status"])?["repair"].clone();
            match r["unplaceable_chunks"].as_u64() {
                Some(n) if n >= 1 => Ok(r),
                _ => Err(r.to_string()),
            }
        },
    );
    assert_eq!(repair["waiting_chunks"], 0, "{repair}");
    assert_eq!(repair["waiting_bytes"], 0, "{repair}");
    assert!(
        repair["eta_seconds"].is_null(),
        "no ETA for work that cannot be done: {repair}"
    );
    let text = cluster.cairn(&["status"]);
    assert!(text.contains("1 have no store to go to"), "{text}");
}

#[tokio::test]
async fn a_gateway_started_while_a_store_is_down_still_ships() {
    let seed = test_seed("a_gateway_started_while_a_store_is_down");
    let mut options = ClusterOptions::new(three_hosts());
    options.backup = "ship_every = \"300ms\"".into();
    let mut cluster = Cluster::start(options);
    wait_shipped(&cluster, Instant::now());
    cluster.store_mut("s3").kill9();
    cluster.stop_gateway();
    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let file = write_file(&mut nfs, &root, "", "after", random_bytes(seed, 100_000)).await;
    cluster.wait_drained(DRAIN_DEADLINE);
    // Well inside `repair.grace` (10 min): s3 still counts as expected back.
    let backup = wait_shipped(&cluster, Instant::now());
    eprintln!("shipped with s3 down: {backup}");

    lose_the_gateway(&mut cluster);
    restore(&cluster, &["s1", "s2"], &[]).expect("restore from the two left");
    cluster.start_gateway();
    let mut nfs = cluster.mount().await;
    read_back(&mut nfs, &[file], "restored from s1 and s2").await;
}
