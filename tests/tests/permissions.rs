//! Who may do what: AUTH_SYS uid/gid against POSIX mode bits, `squash`, and
//! refusal of clients outside `allowed_networks` (a connection from
//! 127.0.0.2 when only 127.0.0.1/32 is allowed).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use cairn_tests::client::{mode_attr, tcp_connect_from};
use cairn_tests::rawrpc::{self, Reply};
use cairn_tests::{expect_status, mount, Creds, Gateway, GatewayOptions, Nfs, Squash};
use nfs3_types::nfs3::{
    nfs_fh3, nfsstat3, sattr3, set_size3, stable_how, ACCESS3_LOOKUP, ACCESS3_READ,
};
use tokio::io::AsyncWriteExt;

async fn put(nfs: &mut Nfs, dir: &nfs_fh3, name: &str, mode: u32, data: &[u8]) -> nfs_fh3 {
    let fh = nfs.create(dir, name, mode).await.expect("create");
    nfs.setattr(&fh, mode_attr(mode)).await.expect("chmod");
    nfs.write(&fh, 0, data, stable_how::FILE_SYNC)
        .await
        .expect("write");
    fh
}

#[tokio::test]
async fn another_uid_cannot_write_a_0644_file_nor_list_a_0700_dir() {
    let gw = Gateway::start();
    let mut root = mount(&gw, Creds::root()).await;
    let r = root.root.clone();
    let file = put(&mut root, &r, "rootfile", 0o644, b"root's data").await;
    let private = root.mkdir(&r, "private", 0o700).await.unwrap();
    root.setattr(&private, mode_attr(0o700)).await.unwrap();
    put(&mut root, &private, "secret", 0o644, b"s").await;
    let public = root.mkdir(&r, "pub", 0o777).await.unwrap();
    root.setattr(&public, mode_attr(0o777)).await.unwrap();

    let mut user = root.as_user(Creds::user(1000, 1000)).await.unwrap();
    assert_eq!(
        user.read_all(&file)
            .await
            .expect("uid 1000 reads a 0644 file"),
        b"root's data"
    );
    expect_status(
        user.write(&file, 0, b"evil", stable_how::FILE_SYNC).await,
        &[nfsstat3::NFS3ERR_ACCES],
        "uid 1000 writes root's 0644 file",
    );
    let truncate = sattr3 {
        size: set_size3::Some(0),
        ..Default::default()
    };
    expect_status(
        user.setattr(&file, truncate).await,
        &[nfsstat3::NFS3ERR_ACCES, nfsstat3::NFS3ERR_PERM],
        "uid 1000 truncates root's 0644 file",
    );
    expect_status(
        user.setattr(&file, mode_attr(0o666)).await,
        &[nfsstat3::NFS3ERR_PERM, nfsstat3::NFS3ERR_ACCES],
        "uid 1000 chmods root's file",
    );
    assert_eq!(
        root.read_all(&file).await.unwrap(),
        b"root's data",
        "content changed"
    );
    assert_eq!(
        root.getattr(&file).await.unwrap().mode & 0o7777,
        0o644,
        "mode changed"
    );

    expect_status(
        user.readdir_all(&private, 4096).await,
        &[nfsstat3::NFS3ERR_ACCES],
        "uid 1000 lists a 0700 root directory (READDIR)",
    );
    expect_status(
        user.readdirplus_all(&private, 4096, 32768).await,
        &[nfsstat3::NFS3ERR_ACCES],
        "uid 1000 lists a 0700 root directory (READDIRPLUS)",
    );
    expect_status(
        user.lookup(&private, "secret").await,
        &[nfsstat3::NFS3ERR_ACCES],
        "uid 1000 looks up in a 0700 root directory",
    );
    let granted = user
        .access(&private, ACCESS3_READ | ACCESS3_LOOKUP)
        .await
        .unwrap();
    assert_eq!(
        granted, 0,
        "ACCESS grants uid 1000 {granted:#x} on a 0700 root directory"
    );
    assert!(
        root.readdir_all(&private, 4096).await.is_ok(),
        "root lists it"
    );

    expect_status(
        user.create(&r, "mine", 0o644).await,
        &[nfsstat3::NFS3ERR_ACCES],
        "uid 1000 creates in root's 0755 directory",
    );
    // Where it may create, the new file is its own.
    let mine = user
        .create(&public, "mine", 0o644)
        .await
        .expect("create in a 0777 dir");
    let a = user.getattr(&mine).await.unwrap();
    assert_eq!(
        (a.uid, a.gid),
        (1000, 1000),
        "owner of a file uid 1000 created"
    );
    user.write(&mine, 0, b"ok", stable_how::FILE_SYNC)
        .await
        .expect("owner writes its own file");

    // Group bits count for a member of the file's group, not for others.
    let grp = put(&mut root, &r, "grp", 0o640, b"g").await;
    root.setattr(
        &grp,
        sattr3 {
            gid: nfs3_types::nfs3::set_gid3::Some(1000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        user.read_all(&grp).await.expect("group member reads 0640"),
        b"g"
    );
    let mut stranger = root.as_user(Creds::user(2000, 2000)).await.unwrap();
    expect_status(
        stranger.read(&grp, 0, 10).await,
        &[nfsstat3::NFS3ERR_ACCES],
        "a non-member reads a 0640 file",
    );
    // Supplementary groups count too.
    let mut member = root
        .as_user(Creds {
            uid: 3000,
            gid: 3000,
            gids: vec![3000, 1000],
        })
        .await
        .unwrap();
    assert_eq!(
        member
            .read_all(&grp)
            .await
            .expect("supplementary group member reads 0640"),
        b"g"
    );
}

/// squash = "all": every caller becomes anon_uid/anon_gid.
#[tokio::test]
async fn squash_all_makes_new_files_anonymous() {
    let mut gw = Gateway::start();
    let mut root = mount(&gw, Creds::root()).await;
    let r = root.root.clone();
    let public = root.mkdir(&r, "pub", 0o777).await.unwrap();
    root.setattr(&public, mode_attr(0o777)).await.unwrap();
    let rootfile = put(&mut root, &r, "rootfile", 0o644, b"root's").await;
    drop(root);

    let mut opts = gw.options().clone();
    opts.squash = Squash::All;
    gw.set_options(opts);
    gw.restart();

    for (creds, name) in [
        (Creds::user(1000, 1000), "from-1000"),
        (Creds::root(), "from-root"),
    ] {
        let mut nfs = mount(&gw, creds.clone()).await;
        let fh = nfs
            .create(&public, name, 0o644)
            .await
            .unwrap_or_else(|e| panic!("create as {creds:?} under squash=all: {e}"));
        let a = nfs.getattr(&fh).await.unwrap();
        assert_eq!(
            (a.uid, a.gid),
            (65534, 65534),
            "squash=all: a file created as {creds:?} should be the anonymous user's"
        );
        let d = nfs
            .mkdir(&public, format!("{name}-dir"), 0o755)
            .await
            .unwrap();
        let a = nfs.getattr(&d).await.unwrap();
        assert_eq!(
            (a.uid, a.gid),
            (65534, 65534),
            "squash=all: directory owner"
        );
    }
    // Root is squashed too: it may not write root's 0644 file any more.
    let mut nfs = mount(&gw, Creds::root()).await;
    expect_status(
        nfs.write(&rootfile, 0, b"x", stable_how::FILE_SYNC).await,
        &[nfsstat3::NFS3ERR_ACCES],
        "squashed root writes a root-owned 0644 file",
    );
}

/// squash = "root": only uid 0 becomes anon (here a custom anon_uid/gid).
#[tokio::test]
async fn squash_root_maps_only_root() {
    let mut gw = Gateway::start();
    let mut root = mount(&gw, Creds::root()).await;
    let r = root.root.clone();
    let public = root.mkdir(&r, "pub", 0o777).await.unwrap();
    root.setattr(&public, mode_attr(0o777)).await.unwrap();
    drop(root);

    gw.set_options(GatewayOptions {
        squash: Squash::Root,
        anon_uid: 4242,
        anon_gid: 4343,
        ..gw.options().clone()
    });
    gw.restart();

    let mut root = mount(&gw, Creds::root()).await;
    let fh = root.create(&public, "by-root", 0o644).await.unwrap();
    let a = root.getattr(&fh).await.unwrap();
    assert_eq!(
        (a.uid, a.gid),
        (4242, 4343),
        "squash=root: owner of a file root created"
    );
    let mut user = root.as_user(Creds::user(1000, 1000)).await.unwrap();
    let fh = user.create(&public, "by-1000", 0o644).await.unwrap();
    let a = user.getattr(&fh).await.unwrap();
    assert_eq!(
        (a.uid, a.gid),
        (1000, 1000),
        "squash=root leaves other users alone"
    );
}

#[tokio::test]
async fn clients_outside_allowed_networks_are_refused() {
    let gw = Gateway::start_with(GatewayOptions {
        allowed_networks: Some(vec!["127.0.0.1/32".into()]),
        ..Default::default()
    });
    let inside = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let outside = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    let mut nfs = Nfs::connect_from(gw.addr(), Creds::root(), Some(inside))
        .await
        .expect("a client from 127.0.0.1 mounts");
    nfs.null().await.expect("NULL from 127.0.0.1");

    // A bare NULL call from 127.0.0.2: the connection must close with no reply.
    let mut raw = tcp_connect_from(gw.addr(), Some(outside), 0)
        .await
        .expect("connect from 127.0.0.2 (Linux routes all of 127/8 to lo)");
    // The server may already have closed; a failed write is a refusal too.
    let _ = raw.write_all(&rawrpc::nfs_null_call(0x5eed)).await;
    match rawrpc::read_reply(&mut raw, Duration::from_secs(10)).await {
        Reply::Closed => {}
        Reply::Record(r) => panic!(
            "a NULL call from 127.0.0.2 got a {}-byte reply; allowed_networks is 127.0.0.1/32",
            r.len()
        ),
        Reply::Silent => {
            panic!("a connection from 127.0.0.2 was neither answered nor closed in 10 s")
        }
    }

    // And a real client from there cannot mount.
    match Nfs::connect_from(gw.addr(), Creds::root(), Some(outside)).await {
        Ok(_) => panic!("a client from 127.0.0.2 mounted; allowed_networks is 127.0.0.1/32"),
        Err(e) => assert!(
            !matches!(e, cairn_tests::NfsError::Timeout(_)),
            "refusal should close the connection, not hang: {e}"
        ),
    }

    // The allowed client is unaffected.
    let root = nfs.root.clone();
    nfs.getattr(&root).await.expect("127.0.0.1 still served");
}
