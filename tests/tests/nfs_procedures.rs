//! NFSv3 procedures that libnfs-utils cannot reach, driven with `nfs3_client`
//! against a real `cairn gateway`: SETATTR, RENAME, SYMLINK/READLINK,
//! MKDIR/RMDIR, REMOVE, guarded and exclusive CREATE, UNSTABLE WRITE + COMMIT,
//! LINK, READDIR/READDIRPLUS pagination, FSSTAT/FSINFO, ACCESS, large offsets.

use std::collections::{HashMap, HashSet};

use cairn_tests::client::{entry_names, mode_attr};
use cairn_tests::{expect_status, mount, random_bytes, Creds, Gateway, GatewayOptions, Nfs};
use nfs3_types::nfs3::{
    ftype3, nfs_fh3, nfsstat3, nfstime3, sattr3, set_atime, set_gid3, set_mtime, set_size3,
    set_uid3, stable_how, ACCESS3_DELETE, ACCESS3_EXTEND, ACCESS3_LOOKUP, ACCESS3_MODIFY,
    ACCESS3_READ, FSF3_LINK, FSF3_SYMLINK,
};

async fn setup() -> (Gateway, Nfs) {
    let gw = Gateway::start();
    let nfs = mount(&gw, Creds::root()).await;
    (gw, nfs)
}

/// Creates `name` in `dir` holding `data` (FILE_SYNC).
async fn put(nfs: &mut Nfs, dir: &nfs_fh3, name: &str, data: &[u8]) -> nfs_fh3 {
    let fh = nfs.create(dir, name, 0o644).await.expect("create");
    if !data.is_empty() {
        nfs.write_all(&fh, 0, data, stable_how::FILE_SYNC)
            .await
            .expect("write");
    }
    fh
}

async fn content(nfs: &mut Nfs, dir: &nfs_fh3, name: &str) -> Vec<u8> {
    let fh = nfs.lookup(dir, name).await.expect("lookup");
    nfs.read_all(&fh).await.expect("read")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

#[tokio::test]
async fn setattr_changes_mode_owner_size_and_times() {
    let (_gw, mut nfs) = setup().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "f", 0o644).await.unwrap();
    let a = nfs.getattr(&f).await.unwrap();
    assert_eq!(a.type_, ftype3::NF3REG);
    assert_eq!(a.mode & 0o7777, 0o644, "mode from CREATE");
    assert_eq!((a.uid, a.gid, a.size, a.nlink), (0, 0, 0, 1));

    nfs.setattr(&f, mode_attr(0o600)).await.unwrap();
    assert_eq!(nfs.getattr(&f).await.unwrap().mode & 0o7777, 0o600);

    let owner = sattr3 {
        uid: set_uid3::Some(1000),
        gid: set_gid3::Some(1001),
        ..Default::default()
    };
    nfs.setattr(&f, owner).await.unwrap();
    let a = nfs.getattr(&f).await.unwrap();
    assert_eq!((a.uid, a.gid), (1000, 1001), "chown by root");

    // Truncate, then extend: the extension reads as zeros.
    nfs.write(&f, 0, b"0123456789", stable_how::FILE_SYNC)
        .await
        .unwrap();
    let size = |n| sattr3 {
        size: set_size3::Some(n),
        ..Default::default()
    };
    nfs.setattr(&f, size(4)).await.unwrap();
    assert_eq!(nfs.getattr(&f).await.unwrap().size, 4);
    assert_eq!(nfs.read_all(&f).await.unwrap(), b"0123");
    nfs.setattr(&f, size(10)).await.unwrap();
    assert_eq!(nfs.getattr(&f).await.unwrap().size, 10);
    assert_eq!(nfs.read_all(&f).await.unwrap(), b"0123\0\0\0\0\0\0");

    // Client-chosen times, to the nanosecond.
    let mtime = nfstime3 {
        seconds: 1_000_000_000,
        nseconds: 123_456_789,
    };
    let atime = nfstime3 {
        seconds: 1_100_000_000,
        nseconds: 5,
    };
    let times = sattr3 {
        atime: set_atime::SET_TO_CLIENT_TIME(atime),
        mtime: set_mtime::SET_TO_CLIENT_TIME(mtime),
        ..Default::default()
    };
    nfs.setattr(&f, times).await.unwrap();
    let a = nfs.getattr(&f).await.unwrap();
    assert_eq!(a.mtime, mtime, "mtime set to client time");
    assert_eq!(a.atime, atime, "atime set to client time");

    // Server time.
    let times = sattr3 {
        mtime: set_mtime::SET_TO_SERVER_TIME,
        ..Default::default()
    };
    nfs.setattr(&f, times).await.unwrap();
    let a = nfs.getattr(&f).await.unwrap();
    let skew = i64::from(a.mtime.seconds) - now_secs();
    assert!(
        skew.abs() < 120,
        "server-time mtime {:?} is {skew} s off",
        a.mtime
    );

    // A ctime guard that does not match: NOT_SYNC, nothing changes, and the
    // connection stays in step (exactly one reply).
    let stale_guard = nfstime3 {
        seconds: 1,
        nseconds: 0,
    };
    let res = nfs
        .setattr_guarded(&f, mode_attr(0o640), Some(stale_guard))
        .await;
    expect_status(
        res,
        &[nfsstat3::NFS3ERR_NOT_SYNC],
        "SETATTR with a wrong guard",
    );
    nfs.null().await.expect("connection usable after NOT_SYNC");
    let a = nfs.getattr(&f).await.unwrap();
    assert_eq!(a.mode & 0o7777, 0o600, "guarded SETATTR must not apply");
    nfs.setattr_guarded(&f, mode_attr(0o640), Some(a.ctime))
        .await
        .expect("SETATTR with the current ctime as guard");
    assert_eq!(nfs.getattr(&f).await.unwrap().mode & 0o7777, 0o640);
}

#[tokio::test]
async fn rename_moves_replaces_and_refuses() {
    let (_gw, mut nfs) = setup().await;
    let root = nfs.root.clone();
    let a = nfs.mkdir(&root, "a", 0o755).await.unwrap();
    let b = nfs.mkdir(&root, "b", 0o755).await.unwrap();
    let x = put(&mut nfs, &a, "x", b"x data").await;
    let x_id = nfs.getattr(&x).await.unwrap().fileid;

    // Same directory.
    nfs.rename(&a, "x", &a, "x2").await.unwrap();
    expect_status(
        nfs.lookup(&a, "x").await,
        &[nfsstat3::NFS3ERR_NOENT],
        "old name",
    );
    assert_eq!(content(&mut nfs, &a, "x2").await, b"x data");
    assert_eq!(
        nfs.getattr(&x).await.unwrap().fileid,
        x_id,
        "handle survives rename"
    );

    // Onto itself: a no-op that must not lose the file.
    nfs.rename(&a, "x2", &a, "x2").await.unwrap();
    assert_eq!(content(&mut nfs, &a, "x2").await, b"x data");

    // Replacing an existing file: the old target's inode goes away.
    let t = put(&mut nfs, &a, "t", b"old target").await;
    nfs.rename(&a, "x2", &a, "t").await.unwrap();
    assert_eq!(content(&mut nfs, &a, "t").await, b"x data");
    expect_status(
        nfs.lookup(&a, "x2").await,
        &[nfsstat3::NFS3ERR_NOENT],
        "renamed-away name",
    );
    expect_status(
        nfs.getattr(&t).await,
        &[nfsstat3::NFS3ERR_STALE],
        "replaced file's handle",
    );

    // Across directories, file and directory.
    nfs.rename(&a, "t", &b, "t").await.unwrap();
    assert_eq!(content(&mut nfs, &b, "t").await, b"x data");
    expect_status(
        nfs.lookup(&a, "t").await,
        &[nfsstat3::NFS3ERR_NOENT],
        "moved file",
    );
    let sub = nfs.mkdir(&a, "sub", 0o755).await.unwrap();
    put(&mut nfs, &sub, "inner", b"inner").await;
    nfs.rename(&a, "sub", &b, "sub").await.unwrap();
    let moved = nfs.lookup(&b, "sub").await.unwrap();
    assert_eq!(content(&mut nfs, &moved, "inner").await, b"inner");

    // A directory into its own subtree.
    let p = nfs.mkdir(&root, "p", 0o755).await.unwrap();
    let q = nfs.mkdir(&p, "q", 0o755).await.unwrap();
    expect_status(
        nfs.rename(&root, "p", &q, "p").await,
        &[nfsstat3::NFS3ERR_INVAL],
        "rename a directory into its own subtree",
    );
    assert!(
        nfs.lookup(&root, "p").await.is_ok(),
        "refused rename moved p"
    );

    // Onto a non-empty directory: refused; onto an empty one: allowed.
    nfs.mkdir(&root, "e1", 0o755).await.unwrap();
    let e2 = nfs.mkdir(&root, "e2", 0o755).await.unwrap();
    put(&mut nfs, &e2, "keep", b"k").await;
    expect_status(
        nfs.rename(&root, "e1", &root, "e2").await,
        &[nfsstat3::NFS3ERR_NOTEMPTY, nfsstat3::NFS3ERR_EXIST],
        "rename onto a non-empty directory",
    );
    assert_eq!(content(&mut nfs, &e2, "keep").await, b"k");
    nfs.mkdir(&root, "e3", 0o755).await.unwrap();
    nfs.rename(&root, "e1", &root, "e3").await.unwrap();
    expect_status(
        nfs.lookup(&root, "e1").await,
        &[nfsstat3::NFS3ERR_NOENT],
        "e1 after rename",
    );

    // Type mismatches and a missing source.
    put(&mut nfs, &root, "plain", b"p").await;
    expect_status(
        nfs.rename(&root, "plain", &root, "e3").await,
        &[nfsstat3::NFS3ERR_ISDIR, nfsstat3::NFS3ERR_EXIST],
        "rename a file onto a directory",
    );
    expect_status(
        nfs.rename(&root, "e3", &root, "plain").await,
        &[nfsstat3::NFS3ERR_NOTDIR, nfsstat3::NFS3ERR_EXIST],
        "rename a directory onto a file",
    );
    expect_status(
        nfs.rename(&root, "missing", &root, "other").await,
        &[nfsstat3::NFS3ERR_NOENT],
        "rename a missing name",
    );
}

#[tokio::test]
async fn symlink_and_readlink() {
    let (_gw, mut nfs) = setup().await;
    let root = nfs.root.clone();
    let target = "../some/where/not-there";
    let ln = nfs.symlink(&root, "ln", target).await.unwrap();
    assert_eq!(nfs.readlink(&ln).await.unwrap(), target.as_bytes());
    let looked_up = nfs.lookup(&root, "ln").await.unwrap();
    let a = nfs.getattr(&looked_up).await.unwrap();
    assert_eq!(a.type_, ftype3::NF3LNK, "LOOKUP must not follow the link");
    assert_eq!(nfs.readlink(&looked_up).await.unwrap(), target.as_bytes());
    expect_status(
        nfs.symlink(&root, "ln", "elsewhere").await,
        &[nfsstat3::NFS3ERR_EXIST],
        "SYMLINK over an existing name",
    );
    let f = put(&mut nfs, &root, "f", b"data").await;
    expect_status(
        nfs.readlink(&f).await,
        &[nfsstat3::NFS3ERR_INVAL],
        "READLINK of a regular file",
    );
    nfs.remove(&root, "ln").await.unwrap();
    expect_status(
        nfs.lookup(&root, "ln").await,
        &[nfsstat3::NFS3ERR_NOENT],
        "removed link",
    );
}

#[tokio::test]
async fn mkdir_and_rmdir() {
    let (_gw, mut nfs) = setup().await;
    let root = nfs.root.clone();
    let root_links = nfs.getattr(&root).await.unwrap().nlink;
    let d = nfs.mkdir(&root, "d", 0o750).await.unwrap();
    let a = nfs.getattr(&d).await.unwrap();
    assert_eq!(a.type_, ftype3::NF3DIR);
    assert_eq!(a.mode & 0o7777, 0o750);
    assert_eq!(a.nlink, 2, "a new directory has . and its entry");
    assert_eq!(
        nfs.getattr(&root).await.unwrap().nlink,
        root_links + 1,
        "a subdirectory's .. links its parent"
    );
    expect_status(
        nfs.mkdir(&root, "d", 0o755).await,
        &[nfsstat3::NFS3ERR_EXIST],
        "MKDIR over an existing name",
    );
    let f = put(&mut nfs, &d, "f", b"x").await;
    expect_status(
        nfs.rmdir(&root, "d").await,
        &[nfsstat3::NFS3ERR_NOTEMPTY],
        "RMDIR of a non-empty directory",
    );
    expect_status(
        nfs.rmdir(&d, "f").await,
        &[nfsstat3::NFS3ERR_NOTDIR],
        "RMDIR of a file",
    );
    expect_status(
        nfs.lookup(&f, "anything").await,
        &[nfsstat3::NFS3ERR_NOTDIR],
        "LOOKUP in a file",
    );
    nfs.remove(&d, "f").await.unwrap();
    nfs.rmdir(&root, "d").await.unwrap();
    expect_status(
        nfs.lookup(&root, "d").await,
        &[nfsstat3::NFS3ERR_NOENT],
        "removed dir",
    );
    expect_status(
        nfs.getattr(&d).await,
        &[nfsstat3::NFS3ERR_STALE],
        "removed dir's handle",
    );
    assert_eq!(nfs.getattr(&root).await.unwrap().nlink, root_links);
    expect_status(
        nfs.rmdir(&root, "d").await,
        &[nfsstat3::NFS3ERR_NOENT],
        "RMDIR of a missing name",
    );
}

#[tokio::test]
async fn remove_deletes_files_only() {
    let (_gw, mut nfs) = setup().await;
    let root = nfs.root.clone();
    let f = put(&mut nfs, &root, "f", b"bye").await;
    nfs.remove(&root, "f").await.unwrap();
    expect_status(
        nfs.lookup(&root, "f").await,
        &[nfsstat3::NFS3ERR_NOENT],
        "removed file",
    );
    expect_status(
        nfs.getattr(&f).await,
        &[nfsstat3::NFS3ERR_STALE],
        "removed file's handle",
    );
    expect_status(
        nfs.read(&f, 0, 10).await,
        &[nfsstat3::NFS3ERR_STALE],
        "READ of a removed file",
    );
    expect_status(
        nfs.remove(&root, "f").await,
        &[nfsstat3::NFS3ERR_NOENT],
        "REMOVE of a missing name",
    );
    nfs.mkdir(&root, "dir", 0o755).await.unwrap();
    expect_status(
        nfs.remove(&root, "dir").await,
        &[
            nfsstat3::NFS3ERR_ISDIR,
            nfsstat3::NFS3ERR_PERM,
            nfsstat3::NFS3ERR_ACCES,
        ],
        "REMOVE of a directory",
    );
    assert!(
        nfs.lookup(&root, "dir").await.is_ok(),
        "refused REMOVE deleted the dir"
    );
}

#[tokio::test]
async fn guarded_and_unchecked_create() {
    let (_gw, mut nfs) = setup().await;
    let root = nfs.root.clone();
    let g = nfs.create_guarded(&root, "g", 0o640).await.unwrap();
    let id = nfs.getattr(&g).await.unwrap().fileid;
    nfs.write(&g, 0, b"kept", stable_how::FILE_SYNC)
        .await
        .unwrap();
    expect_status(
        nfs.create_guarded(&root, "g", 0o640).await,
        &[nfsstat3::NFS3ERR_EXIST],
        "GUARDED create of an existing name",
    );
    let again = nfs
        .create(&root, "g", 0o640)
        .await
        .expect("UNCHECKED over existing");
    assert_eq!(nfs.getattr(&again).await.unwrap().fileid, id, "same file");

    let f = put(&mut nfs, &root, "plain", b"").await;
    expect_status(
        nfs.create(&f, "child", 0o644).await,
        &[nfsstat3::NFS3ERR_NOTDIR],
        "CREATE inside a file",
    );
    let long = "n".repeat(256);
    expect_status(
        nfs.create(&root, &long, 0o644).await,
        &[nfsstat3::NFS3ERR_NAMETOOLONG],
        "a 256-byte name",
    );
    let longest = "n".repeat(255);
    nfs.create(&root, &longest, 0o644)
        .await
        .expect("a 255-byte name");
    assert!(nfs.lookup(&root, &longest).await.is_ok());

    // Reading past the end: no data, eof.
    let (data, eof) = nfs.read(&g, 100, 10).await.unwrap();
    assert!(
        data.is_empty() && eof,
        "READ past EOF gave {} bytes, eof={eof}",
        data.len()
    );
}

#[tokio::test]
async fn exclusive_create_honours_the_verifier() {
    let (_gw, mut nfs) = setup().await;
    let root = nfs.root.clone();
    let v1 = *b"verif-01";
    let v2 = *b"verif-02";
    let first = nfs.create_exclusive(&root, "x", v1).await.unwrap();
    let id = nfs.getattr(&first).await.unwrap().fileid;
    // A retransmission (same verifier) succeeds and names the same file.
    let retry = nfs
        .create_exclusive(&root, "x", v1)
        .await
        .expect("EXCLUSIVE create retried with the same verifier");
    assert_eq!(nfs.getattr(&retry).await.unwrap().fileid, id);
    expect_status(
        nfs.create_exclusive(&root, "x", v2).await,
        &[nfsstat3::NFS3ERR_EXIST],
        "EXCLUSIVE create with another verifier",
    );
    expect_status(
        nfs.create_guarded(&root, "x", 0o644).await,
        &[nfsstat3::NFS3ERR_EXIST],
        "GUARDED create over an exclusive-created file",
    );
    // What a client does next: set the real attributes.
    nfs.setattr(&first, mode_attr(0o604)).await.unwrap();
    let a = nfs.getattr(&first).await.unwrap();
    assert_eq!(a.mode & 0o7777, 0o604);
    assert_eq!(a.size, 0);
}

#[tokio::test]
async fn unstable_writes_then_commit_read_back() {
    let (_gw, mut nfs) = setup().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "u", 0o644).await.unwrap();
    let piece = 100 * 1024;
    let data = random_bytes(7, 3 * piece);
    let mut verfs = Vec::new();
    // Out of order, as a client with several writes in flight would send them.
    for i in [1usize, 0, 2] {
        let res = nfs
            .write(
                &f,
                (i * piece) as u64,
                &data[i * piece..(i + 1) * piece],
                stable_how::UNSTABLE,
            )
            .await
            .unwrap();
        verfs.push(res.verf);
    }
    assert!(
        verfs.windows(2).all(|w| w[0] == w[1]),
        "write verifier changed between writes: {verfs:?}"
    );
    let commit = nfs.commit(&f, 0, 0).await.unwrap();
    assert_eq!(
        commit.verf, verfs[0],
        "COMMIT verifier differs from WRITE's"
    );
    assert_eq!(nfs.getattr(&f).await.unwrap().size, data.len() as u64);
    assert_eq!(nfs.read_all(&f).await.unwrap(), data);

    let res = nfs
        .write(&f, 0, b"sync", stable_how::FILE_SYNC)
        .await
        .unwrap();
    assert_eq!(
        res.committed,
        stable_how::FILE_SYNC,
        "FILE_SYNC answered weaker"
    );
    let res = nfs
        .write(&f, 4, b"data", stable_how::DATA_SYNC)
        .await
        .unwrap();
    assert_ne!(
        res.committed,
        stable_how::UNSTABLE,
        "DATA_SYNC answered UNSTABLE"
    );
    assert_eq!(res.verf, commit.verf, "verifier changed without a restart");
    // A ranged COMMIT is fine too.
    nfs.commit(&f, 0, 8).await.unwrap();
    let (head, _) = nfs.read(&f, 0, 8).await.unwrap();
    assert_eq!(head, b"syncdata");
}

#[tokio::test]
async fn link_counts_names_and_refusals() {
    let (_gw, mut nfs) = setup().await;
    let root = nfs.root.clone();
    let f = put(&mut nfs, &root, "f", b"linked data").await;
    let d = nfs.mkdir(&root, "d", 0o755).await.unwrap();
    nfs.link(&f, &d, "g").await.unwrap();
    let a = nfs.getattr(&f).await.unwrap();
    assert_eq!(a.nlink, 2, "nlink after LINK");
    let g = nfs.lookup(&d, "g").await.unwrap();
    assert_eq!(
        nfs.getattr(&g).await.unwrap().fileid,
        a.fileid,
        "link names the same inode"
    );
    assert_eq!(nfs.read_all(&g).await.unwrap(), b"linked data");
    // Writes through one name show through the other.
    nfs.write(&g, 0, b"LINKED", stable_how::FILE_SYNC)
        .await
        .unwrap();
    assert_eq!(content(&mut nfs, &root, "f").await, b"LINKED data");

    expect_status(
        nfs.link(&f, &d, "g").await,
        &[nfsstat3::NFS3ERR_EXIST],
        "LINK over an existing name",
    );
    expect_status(
        nfs.link(&d, &root, "dirlink").await,
        &[
            nfsstat3::NFS3ERR_ISDIR,
            nfsstat3::NFS3ERR_PERM,
            nfsstat3::NFS3ERR_INVAL,
            nfsstat3::NFS3ERR_ACCES,
        ],
        "LINK to a directory",
    );

    // Removing one name leaves the inode and the other name.
    nfs.remove(&root, "f").await.unwrap();
    let a = nfs
        .getattr(&f)
        .await
        .expect("handle of a still-linked inode");
    assert_eq!(a.nlink, 1, "nlink after removing one name");
    assert_eq!(nfs.read_all(&g).await.unwrap(), b"LINKED data");
    nfs.remove(&d, "g").await.unwrap();
    expect_status(
        nfs.getattr(&g).await,
        &[nfsstat3::NFS3ERR_STALE],
        "last name removed",
    );
}

#[tokio::test]
async fn readdir_and_readdirplus_paginate() {
    let (_gw, mut nfs) = setup().await;
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, "big", 0o755).await.unwrap();
    let mut ids = HashMap::new();
    for i in 0..400 {
        // Names of varied length so that page boundaries move around.
        let name = format!("entry-{i:04}-{}", "x".repeat(i % 37));
        let fh = nfs.create(&d, &name, 0o644).await.unwrap();
        ids.insert(name, nfs.getattr(&fh).await.unwrap().fileid);
    }
    let want: HashSet<&String> = ids.keys().collect();

    let (entries, pages) = nfs.readdir_all(&d, 1024).await.unwrap();
    assert!(
        pages > 5,
        "1 KiB READDIR pages should split 400 entries, got {pages} page(s)"
    );
    let names = entry_names(&entries);
    assert_once(&names, &want, "READDIR");
    for e in &entries {
        let n = String::from_utf8_lossy(e.name.as_ref()).into_owned();
        if let Some(id) = ids.get(&n) {
            assert_eq!(e.fileid, *id, "READDIR fileid of {n}");
        }
    }
    let cookies: HashSet<u64> = entries.iter().map(|e| e.cookie).collect();
    assert_eq!(cookies.len(), entries.len(), "READDIR cookies repeat");

    let (plus, pages) = nfs.readdirplus_all(&d, 512, 4096).await.unwrap();
    assert!(
        pages > 5,
        "small READDIRPLUS pages should split 400 entries, got {pages}"
    );
    let names: Vec<String> = plus
        .iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    assert_once(&names, &want, "READDIRPLUS");
    for e in &plus {
        let n = String::from_utf8_lossy(&e.name).into_owned();
        let Some(id) = ids.get(&n) else { continue };
        let attrs = e
            .attrs
            .as_ref()
            .unwrap_or_else(|| panic!("READDIRPLUS {n}: no attributes"));
        assert_eq!(attrs.fileid, *id, "READDIRPLUS attributes of {n}");
        let fh = e
            .handle
            .as_ref()
            .unwrap_or_else(|| panic!("READDIRPLUS {n}: no handle"));
        assert_eq!(
            nfs.getattr(fh).await.unwrap().fileid,
            *id,
            "READDIRPLUS handle of {n}"
        );
    }

    // Resuming from a cookie in the middle gives exactly the rest, even when
    // entries already returned are removed and new ones appear meanwhile.
    let first = nfs.readdir_page(&d, 0, [0; 8], 1024).await.unwrap();
    let verf = first.cookieverf.0;
    let seen = entry_names(&first.reply.entries.0);
    assert!(!seen.is_empty() && !first.reply.eof);
    let resume = first.reply.entries.0.last().unwrap().cookie;
    nfs.remove(&d, &seen[0]).await.unwrap();
    nfs.create(&d, "zz-new", 0o644).await.unwrap();
    let mut rest = Vec::new();
    let mut cookie = resume;
    loop {
        let page = nfs.readdir_page(&d, cookie, verf, 1024).await.unwrap();
        if let Some(last) = page.reply.entries.0.last() {
            cookie = last.cookie;
        }
        rest.extend(entry_names(&page.reply.entries.0));
        if page.reply.eof {
            break;
        }
    }
    let mut all: Vec<String> = seen.clone();
    all.extend(rest.iter().filter(|n| *n != "zz-new").cloned());
    assert_once(&all, &want, "READDIR resumed across changes");
}

#[track_caller]
fn assert_once(names: &[String], want: &HashSet<&String>, what: &str) {
    let mut count: HashMap<&String, usize> = HashMap::new();
    for n in names {
        *count.entry(n).or_default() += 1;
    }
    let twice: Vec<_> = count
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .collect();
    let missing: Vec<_> = want.iter().filter(|n| !count.contains_key(**n)).collect();
    let extra: Vec<_> = count.keys().filter(|n| !want.contains(**n)).collect();
    assert!(
        twice.is_empty() && missing.is_empty() && extra.is_empty(),
        "{what}: {} listed twice {twice:?}, {} missing {missing:?}, {} unexpected {extra:?}",
        twice.len(),
        missing.len(),
        extra.len()
    );
}

#[tokio::test]
async fn fsstat_and_fsinfo_report_real_numbers() {
    let (gw, mut nfs) = setup().await;
    let st = nfs.fsstat().await.unwrap();
    assert!(
        st.tbytes > 0 && st.fbytes > 0 && st.abytes > 0,
        "FSSTAT bytes: {st:?}"
    );
    assert!(
        st.tfiles > 0 && st.ffiles > 0 && st.afiles > 0,
        "FSSTAT files: {st:?}"
    );
    assert!(
        st.fbytes <= st.tbytes && st.abytes <= st.tbytes,
        "free > total: {st:?}"
    );
    let disk = rustix::fs::statvfs(gw.data_dir()).expect("statvfs data dir");
    let disk_total = disk.f_blocks * disk.f_frsize;
    assert!(
        st.tbytes <= disk_total,
        "FSSTAT total {} B is more than the data disk's {} B: not real capacity",
        st.tbytes,
        disk_total
    );

    let info = nfs.fsinfo().await.unwrap();
    assert!(
        info.rtmax >= 4096 && info.wtmax >= 4096,
        "FSINFO sizes: {info:?}"
    );
    assert!(
        info.maxfilesize > 4 << 30,
        "FSINFO maxfilesize {} not past 4 GiB",
        info.maxfilesize
    );
    assert_eq!(
        info.properties & (FSF3_LINK | FSF3_SYMLINK),
        FSF3_LINK | FSF3_SYMLINK,
        "FSINFO should advertise LINK and SYMLINK support"
    );
}

#[tokio::test]
async fn access_answers_from_the_mode_bits() {
    let (_gw, mut nfs) = setup().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "f", 0o644).await.unwrap();
    let all = ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND;
    assert_eq!(
        nfs.access(&f, all).await.unwrap() & all,
        all,
        "root on a 0644 file"
    );
    let dir_bits = ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
    assert_eq!(
        nfs.access(&root, dir_bits).await.unwrap() & dir_bits,
        dir_bits,
        "root on /"
    );
    // Another user on the same root-owned 0644 file: read only.
    let mut other = nfs.as_user(Creds::user(1000, 1000)).await.unwrap();
    let got = other.access(&f, all).await.unwrap();
    assert_eq!(
        got & ACCESS3_READ,
        ACCESS3_READ,
        "uid 1000 may read a 0644 file"
    );
    assert_eq!(
        got & (ACCESS3_MODIFY | ACCESS3_EXTEND),
        0,
        "uid 1000 may not write it"
    );
    assert_eq!(got & !all, 0, "ACCESS granted bits that were not asked for");
}

#[tokio::test]
async fn sparse_file_past_4_gib() {
    let gw = Gateway::start_with(GatewayOptions {
        cache_max_size: "16 GiB".into(),
        ..Default::default()
    });
    let mut nfs = mount(&gw, Creds::root()).await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "sparse", 0o644).await.unwrap();
    let four_gib: u64 = 1 << 32;
    nfs.write(&f, four_gib, b"past", stable_how::FILE_SYNC)
        .await
        .unwrap();
    nfs.write(&f, 5 * (1 << 30), b"end", stable_how::FILE_SYNC)
        .await
        .unwrap();
    let a = nfs.getattr(&f).await.unwrap();
    assert_eq!(a.size, 5 * (1 << 30) + 3);
    let (hole, _) = nfs.read(&f, 3 << 30, 4096).await.unwrap();
    assert_eq!(hole, vec![0u8; 4096], "a hole reads as zeros");
    let (edge, _) = nfs.read(&f, four_gib - 2, 6).await.unwrap();
    assert_eq!(edge, b"\0\0past", "data at exactly 4 GiB");
    let (tail, eof) = nfs.read(&f, 5 * (1 << 30), 100).await.unwrap();
    assert_eq!(tail, b"end");
    assert!(eof, "READ to the end must say eof");
}

#[tokio::test]
async fn bogus_handles_are_refused() {
    let (_gw, mut nfs) = setup().await;
    for (what, data) in [
        ("empty handle", Vec::new()),
        ("64 random bytes", random_bytes(3, 64)),
        ("8 zero bytes", vec![0u8; 8]),
    ] {
        let fh = nfs_fh3 { data: data.into() };
        expect_status(
            nfs.getattr(&fh).await,
            &[nfsstat3::NFS3ERR_BADHANDLE, nfsstat3::NFS3ERR_STALE],
            what,
        );
    }
    // The connection is still fine.
    let root = nfs.root.clone();
    nfs.getattr(&root).await.unwrap();
}
