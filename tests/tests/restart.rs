//! Gateway restarts, graceful and kill -9: file handles taken before keep
//! working after; a deleted file's handle is STALE (and stays so when its
//! inode number is reused); the write verifier changes with every start.

use cairn_tests::{expect_status, mount, random_bytes, Creds, Gateway, Nfs};
use nfs3_types::nfs3::{nfs_fh3, nfsstat3, stable_how};

async fn handles_survive(kill: bool) {
    let mut gw = Gateway::start();
    let mut nfs = mount(&gw, Creds::root()).await;
    let root = nfs.root.clone();
    let dir = nfs.mkdir(&root, "dir", 0o755).await.unwrap();
    let file = nfs.create(&dir, "f", 0o644).await.unwrap();
    let data = random_bytes(11, 200_000);
    nfs.write_all(&file, 0, &data, stable_how::FILE_SYNC)
        .await
        .unwrap();
    let before = nfs.getattr(&file).await.unwrap();
    let dir_id = nfs.getattr(&dir).await.unwrap().fileid;
    let root_id = nfs.getattr(&root).await.unwrap().fileid;
    let gone = nfs.create(&root, "gone", 0o644).await.unwrap();
    nfs.remove(&root, "gone").await.unwrap();

    if kill {
        gw.kill9();
    } else {
        gw.stop();
    }
    gw.restart();
    nfs.reconnect().await.expect("reconnect after restart");

    assert_eq!(
        nfs.getattr(&root).await.unwrap().fileid,
        root_id,
        "old root handle"
    );
    assert_eq!(
        nfs.getattr(&dir).await.unwrap().fileid,
        dir_id,
        "old dir handle"
    );
    let after = nfs
        .getattr(&file)
        .await
        .expect("old file handle after restart");
    assert_eq!(after.fileid, before.fileid);
    assert_eq!(after.size, before.size);
    assert_eq!(after.mtime, before.mtime, "mtime must survive a restart");
    assert_eq!(
        nfs.read_all(&file).await.unwrap(),
        data,
        "data through the old handle"
    );
    nfs.write(&file, 0, b"after", stable_how::FILE_SYNC)
        .await
        .expect("write through the old handle");
    let again = nfs
        .lookup(&dir, "f")
        .await
        .expect("lookup through the old dir handle");
    assert_eq!(nfs.getattr(&again).await.unwrap().fileid, before.fileid);
    expect_status(
        nfs.getattr(&gone).await,
        &[nfsstat3::NFS3ERR_STALE],
        "deleted file's handle after restart",
    );

    // A fresh MOUNT names the same root.
    let mut fresh = mount(&gw, Creds::root()).await;
    let fresh_root = fresh.root.clone();
    assert_eq!(fresh.getattr(&fresh_root).await.unwrap().fileid, root_id);
}

#[tokio::test]
async fn handles_survive_a_graceful_restart() {
    handles_survive(false).await;
}

#[tokio::test]
async fn handles_survive_kill_9() {
    handles_survive(true).await;
}

/// Creates and deletes files so that a reused inode number would point an old
/// handle at a new file; the old handle must stay STALE.
#[tokio::test]
async fn deleted_handles_stay_stale_when_ids_are_reused() {
    let mut gw = Gateway::start();
    let mut nfs = mount(&gw, Creds::root()).await;
    let root = nfs.root.clone();
    let mut stale: Vec<(nfs_fh3, u64)> = Vec::new();
    for round in 0..5 {
        let fh = nfs
            .create(&root, format!("tmp{round}"), 0o644)
            .await
            .unwrap();
        let id = nfs.getattr(&fh).await.unwrap().fileid;
        nfs.remove(&root, format!("tmp{round}")).await.unwrap();
        stale.push((fh, id));
        // The next create may well get the same inode number.
        nfs.create(&root, format!("new{round}"), 0o644)
            .await
            .unwrap();
    }
    check_stale(&mut nfs, &stale, "before restart").await;
    gw.kill9();
    gw.restart();
    nfs.reconnect().await.unwrap();
    check_stale(&mut nfs, &stale, "after restart").await;
    for round in 5..8 {
        nfs.create(&root, format!("new{round}"), 0o644)
            .await
            .unwrap();
    }
    check_stale(&mut nfs, &stale, "after more creates").await;
}

async fn check_stale(nfs: &mut Nfs, handles: &[(nfs_fh3, u64)], when: &str) {
    for (fh, id) in handles {
        match nfs.getattr(fh).await {
            Err(e) if e.status() == Some(nfsstat3::NFS3ERR_STALE) => {}
            Ok(a) => panic!(
                "{when}: handle of deleted inode {id} resolves to inode {} ({:?})",
                a.fileid, a.type_
            ),
            Err(e) => panic!("{when}: handle of deleted inode {id}: expected STALE, got {e}"),
        }
    }
}

#[tokio::test]
async fn write_verifier_changes_on_every_start() {
    let mut gw = Gateway::start();
    let mut nfs = mount(&gw, Creds::root()).await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "v", 0o644).await.unwrap();
    let mut seen = Vec::new();
    for (i, kill) in [true, false, true].into_iter().enumerate() {
        let w = nfs
            .write(&f, 0, b"unstable", stable_how::UNSTABLE)
            .await
            .unwrap();
        let c = nfs.commit(&f, 0, 0).await.unwrap();
        assert_eq!(
            c.verf, w.verf,
            "COMMIT and WRITE verifiers differ within one run"
        );
        assert!(
            !seen.contains(&w.verf),
            "start {i}: write verifier {:?} was already used by an earlier run",
            w.verf
        );
        seen.push(w.verf);
        if kill {
            gw.kill9();
        } else {
            gw.stop();
        }
        gw.restart();
        nfs.reconnect().await.unwrap();
    }
    let w = nfs
        .write(&f, 0, b"unstable", stable_how::UNSTABLE)
        .await
        .unwrap();
    assert!(
        !seen.contains(&w.verf),
        "verifier reused after the last restart"
    );
    assert_eq!(nfs.read_all(&f).await.unwrap(), b"unstable");
}
