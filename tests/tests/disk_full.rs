//! A gateway on a disk smaller than its cache limit, for real: its data
//! folder is a small tmpfs. Filling it through NFS must end in clean
//! NFS3ERR_NOSPC on writes while deletes, truncates, new names and restarts
//! keep working; with chunk stores, drained data must make way for new
//! writes; and a disk filled by someone else is reported as exactly that.

use std::time::Duration;

use cairn_tests::{
    expect_status, mount, random_bytes, sha256, Cluster, ClusterOptions, Creds, Gateway,
    GatewayOptions, Nfs, NfsError, StoreSpec,
};
use nfs3_types::nfs3::{nfs_fh3, nfsstat3, sattr3, set_size3, stable_how};

const MIB: u64 = 1 << 20;

/// Writes `files` of `size` bytes each (FILE_SYNC, 1 MiB a call) until one
/// is refused with NOSPC; returns the names fully written. Panics on any
/// other error, or if all of them fit.
async fn fill_until_nospc(nfs: &mut Nfs, prefix: &str, size: usize, files: usize) -> Vec<String> {
    let root = nfs.root.clone();
    let mut written = Vec::new();
    for i in 0..files {
        let name = format!("{prefix}{i}");
        let fh = nfs.create(&root, &name, 0o644).await.expect("create");
        let data = random_bytes(i as u64, size);
        for (n, chunk) in data.chunks(MIB as usize).enumerate() {
            match nfs
                .write(&fh, (n as u64) * MIB, chunk, stable_how::FILE_SYNC)
                .await
            {
                Ok(_) => {}
                Err(NfsError::Status(nfsstat3::NFS3ERR_NOSPC)) => return written,
                Err(e) => panic!("writing {name} at {} MiB: {e}", n),
            }
        }
        written.push(name);
    }
    panic!("{files} files of {size} bytes all fit: the disk never filled");
}

/// The operations a client frees space and keeps working with, each of
/// which must succeed on a gateway whose cache filled its disk.
async fn metadata_changes_work(nfs: &mut Nfs, written: &[String], round: u32) {
    let root = nfs.root.clone();
    nfs.mkdir(&root, &format!("dir{round}"), 0o755)
        .await
        .expect("MKDIR with the cache full");
    nfs.create(&root, &format!("new{round}"), 0o644)
        .await
        .expect("CREATE with the cache full");
    let cut = nfs.lookup(&root, &written[0]).await.expect("lookup");
    let truncate = sattr3 {
        size: set_size3::Some(4096),
        ..sattr3::default()
    };
    nfs.setattr(&cut, truncate)
        .await
        .expect("truncating SETATTR with the cache full");
    nfs.remove(&root, &written[1])
        .await
        .expect("REMOVE with the cache full");
}

#[tokio::test]
async fn a_cache_larger_than_its_disk_refuses_writes_but_never_deletes() {
    let mut gw = Gateway::start_with(GatewayOptions {
        // The default: far more than the disk.
        cache_max_size: "64 GiB".into(),
        data_disk: Some(128 * MIB),
        ..GatewayOptions::default()
    });
    let mut nfs = mount(&gw, Creds::root()).await;
    let written = fill_until_nospc(&mut nfs, "a", (8 * MIB) as usize, 40).await;
    assert!(written.len() >= 6, "only {} files fit", written.len());
    metadata_changes_work(&mut nfs, &written, 1).await;
    // The space freed is usable again.
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "after", 0o644).await.expect("create");
    nfs.write_all(
        &fh,
        0,
        &random_bytes(7, MIB as usize),
        stable_how::FILE_SYNC,
    )
    .await
    .expect("a write after space was freed");

    // Full again, then a restart: it starts, and deletes still work.
    fill_until_nospc(&mut nfs, "b", (8 * MIB) as usize, 40).await;
    drop(nfs);
    gw.restart();
    let mut nfs = mount(&gw, Creds::root()).await;
    metadata_changes_work(&mut nfs, &written[3..], 2).await;
    let root = nfs.root.clone();
    let keep = nfs.lookup(&root, &written[2]).await.expect("lookup");
    assert_eq!(
        sha256(&nfs.read_all(&keep).await.expect("read")),
        sha256(&random_bytes(2, (8 * MIB) as usize)),
        "a file written before the disk filled reads back exact"
    );
    gw.assert_running();
    let logs = gw.logs();
    assert!(
        logs.contains("cache.max_size") && logs.contains("using"),
        "no warning that cache.max_size was capped to the disk:\n{logs}"
    );
}

/// Writes `data` to `/name` in 1 MiB FILE_SYNC calls.
async fn put(nfs: &mut Nfs, name: &str, data: &[u8]) -> nfs_fh3 {
    let root = nfs.root.clone();
    let fh = nfs.create(&root, name, 0o644).await.expect("create");
    nfs.write_all(&fh, 0, data, stable_how::FILE_SYNC)
        .await
        .unwrap_or_else(|e| panic!("writing /{name}: {e}"));
    fh
}

#[tokio::test]
async fn drained_data_makes_room_for_new_writes() {
    let mut options = ClusterOptions::new(vec![
        StoreSpec::new("s1", "h1", &["hdd"]),
        StoreSpec::new("s2", "h2", &["hdd"]),
    ]);
    options.gateway_disk = Some(128 * MIB);
    let mut cluster = Cluster::start(options);
    let mut nfs = Nfs::connect(cluster.gateway_addr(), Creds::root())
        .await
        .expect("mount");
    // Each file is more than half the disk: the second fits only once the
    // first, drained, leaves the cache.
    let (a, b) = (
        random_bytes(1, (72 * MIB) as usize),
        random_bytes(2, (72 * MIB) as usize),
    );
    put(&mut nfs, "a", &a).await;
    cluster.wait_drained(Duration::from_secs(120));
    put(&mut nfs, "b", &b).await;
    let root = nfs.root.clone();
    for (name, data) in [("a", &a), ("b", &b)] {
        let fh = nfs.lookup(&root, name).await.expect("lookup");
        assert_eq!(
            sha256(&nfs.read_all(&fh).await.expect("read")),
            sha256(data),
            "/{name} reads back exact"
        );
    }
    // And the gateway starts again on that disk, with its stores.
    drop(nfs);
    cluster.stop_gateway();
    cluster.start_gateway();
    let mut nfs = Nfs::connect(cluster.gateway_addr(), Creds::root())
        .await
        .expect("mount after restart");
    let root = nfs.root.clone();
    let fh = nfs.lookup(&root, "a").await.expect("lookup");
    assert_eq!(sha256(&nfs.read_all(&fh).await.expect("read")), sha256(&a));
    let c = random_bytes(3, (8 * MIB) as usize);
    put(&mut nfs, "c", &c).await;
    cluster.assert_gateway_running();
}

#[tokio::test]
async fn a_disk_full_at_start_is_reported_as_a_full_disk() {
    let mut gw = Gateway::start_with(GatewayOptions {
        data_disk: Some(64 * MIB),
        ..GatewayOptions::default()
    });
    let mut nfs = mount(&gw, Creds::root()).await;
    put(&mut nfs, "small", &random_bytes(5, (2 * MIB) as usize)).await;
    drop(nfs);
    gw.stop();
    // Someone else fills the disk while the gateway is down.
    let filler = gw.disk().fill("filler");
    assert!(gw.disk().avail() < MIB, "the disk did not fill");
    match gw.try_start() {
        Err(stderr) => {
            let data = gw.data_dir();
            assert!(
                stderr.contains(&format!("the disk holding {}", data.display()))
                    && stderr.contains("bytes free")
                    && !stderr.contains("the ingest cache is full"),
                "the start failed without naming the full disk:\n{stderr}"
            );
        }
        Ok(()) => {
            // Started anyway: it must say why writes are refused.
            let mut nfs = mount(&gw, Creds::root()).await;
            let root = nfs.root.clone();
            let fh = nfs.create(&root, "x", 0o644).await;
            if let Ok(fh) = fh {
                expect_status(
                    nfs.write(
                        &fh,
                        0,
                        &random_bytes(6, MIB as usize),
                        stable_how::FILE_SYNC,
                    )
                    .await,
                    &[nfsstat3::NFS3ERR_NOSPC],
                    "a write to a full disk",
                );
            }
            let logs = gw.logs();
            assert!(
                !logs.contains("the ingest cache is full"),
                "a full disk was blamed on the cache:\n{logs}"
            );
            gw.stop();
        }
    }
    // Once space is freed, it starts and serves the old data.
    std::fs::remove_file(&filler).expect("remove the filler");
    gw.try_start().expect("start once the disk has room");
    let mut nfs = mount(&gw, Creds::root()).await;
    let root = nfs.root.clone();
    let fh = nfs.lookup(&root, "small").await.expect("lookup");
    assert_eq!(
        sha256(&nfs.read_all(&fh).await.expect("read")),
        sha256(&random_bytes(5, (2 * MIB) as usize))
    );
    gw.assert_running();
}
