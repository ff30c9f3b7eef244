//! Ownership and mode rules over NFSv3, written from POSIX (chown, chmod,
//! open) and RFC 1813 (SETATTR, ACCESS): who may change a file's owner or
//! group, and what ACCESS answers to the owner, a group member and others
//! for each mode.

use cairn_tests::client::mode_attr;
use cairn_tests::{expect_status, mount, Creds, Gateway, Nfs};
use nfs3_types::nfs3::{
    nfs_fh3, nfsstat3, sattr3, set_gid3, set_uid3, stable_how, ACCESS3_EXECUTE, ACCESS3_EXTEND,
    ACCESS3_MODIFY, ACCESS3_READ,
};

fn chown_attr(uid: Option<u32>, gid: Option<u32>) -> sattr3 {
    sattr3 {
        uid: uid.map_or(set_uid3::None, set_uid3::Some),
        gid: gid.map_or(set_gid3::None, set_gid3::Some),
        ..Default::default()
    }
}

/// A file created by root in the export root, then given `uid`, `gid` and `mode`.
async fn file_of(root: &mut Nfs, name: &str, uid: u32, gid: u32, mode: u32) -> nfs_fh3 {
    let dir = root.root.clone();
    let fh = root.create(&dir, name, 0o644).await.expect("create");
    root.write(&fh, 0, b"data", stable_how::FILE_SYNC)
        .await
        .expect("write");
    root.setattr(&fh, chown_attr(Some(uid), Some(gid)))
        .await
        .expect("chown");
    root.setattr(&fh, mode_attr(mode)).await.expect("chmod");
    fh
}

#[tokio::test]
async fn only_the_owner_or_root_may_chown_even_to_the_current_values() {
    let gw = Gateway::start();
    let mut root = mount(&gw, Creds::root()).await;
    let suid = file_of(&mut root, "suid", 0, 0, 0o4755).await;
    let theirs = file_of(&mut root, "theirs", 2000, 2000, 0o2755).await;

    let mut user = root.as_user(Creds::user(1000, 1000)).await.unwrap();
    for (what, attrs) in [
        ("uid and gid", chown_attr(Some(0), Some(0))),
        ("uid", chown_attr(Some(0), None)),
        ("gid", chown_attr(None, Some(0))),
    ] {
        expect_status(
            user.setattr(&suid, attrs).await,
            &[nfsstat3::NFS3ERR_PERM],
            &format!("uid 1000 sets a root file's {what} to its current value"),
        );
    }
    expect_status(
        user.setattr(&theirs, chown_attr(Some(2000), Some(2000)))
            .await,
        &[nfsstat3::NFS3ERR_PERM],
        "uid 1000 chowns uid 2000's file to its current owner",
    );
    let a = root.getattr(&suid).await.unwrap();
    assert_eq!(
        (a.mode & 0o7777, a.uid, a.gid),
        (0o4755, 0, 0),
        "a refused chown changed the root-owned set-uid file"
    );
    let a = root.getattr(&theirs).await.unwrap();
    assert_eq!((a.mode & 0o7777, a.uid, a.gid), (0o2755, 2000, 2000));

    // The owner may "chown" to itself, and chgrp to a group it is in, but
    // not give the file away nor pick a group it is not in.
    let mut owner = root
        .as_user(Creds {
            uid: 2000,
            gid: 2000,
            gids: vec![2000, 3000],
        })
        .await
        .unwrap();
    owner
        .setattr(&theirs, chown_attr(Some(2000), None))
        .await
        .expect("the owner chowns its file to itself");
    owner
        .setattr(&theirs, chown_attr(None, Some(3000)))
        .await
        .expect("the owner chgrps to a group it is in");
    expect_status(
        owner.setattr(&theirs, chown_attr(None, Some(4000))).await,
        &[nfsstat3::NFS3ERR_PERM],
        "the owner chgrps to a group it is not in",
    );
    expect_status(
        owner.setattr(&theirs, chown_attr(Some(1000), None)).await,
        &[nfsstat3::NFS3ERR_PERM],
        "the owner gives its file away",
    );
    let a = root.getattr(&theirs).await.unwrap();
    assert_eq!((a.uid, a.gid), (2000, 3000));
    assert_eq!(
        a.mode & 0o6000,
        0,
        "a non-root chown keeps set-uid/set-gid bits"
    );

    // Root may change anything, to anything.
    root.setattr(&theirs, chown_attr(Some(1000), Some(1000)))
        .await
        .expect("root chowns");
    let a = root.getattr(&theirs).await.unwrap();
    assert_eq!((a.uid, a.gid), (1000, 1000));
}

#[tokio::test]
async fn access_follows_the_mode_bits_for_owner_group_and_others() {
    let gw = Gateway::start();
    let mut root = mount(&gw, Creds::root()).await;
    let owner = Creds {
        uid: 1000,
        gid: 1000,
        gids: vec![1000],
    };
    let member = Creds {
        uid: 1001,
        gid: 1001,
        gids: vec![1001, 1000],
    };
    let other = Creds::user(1002, 1002);
    let all = ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_EXECUTE;
    let rw = ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND;
    // (mode, what the owner, a group member and another user are granted)
    let cases = [
        (0o477, ACCESS3_READ, all, all),
        (0o077, 0, all, all),
        (0o700, all, 0, 0),
        (0o640, rw, ACCESS3_READ, 0),
        (0o604, rw, 0, ACCESS3_READ),
        (0o000, 0, 0, 0),
        (0o111, ACCESS3_EXECUTE, ACCESS3_EXECUTE, ACCESS3_EXECUTE),
    ];
    for (i, (mode, want_owner, want_member, want_other)) in cases.into_iter().enumerate() {
        let fh = file_of(&mut root, &format!("f{i}"), 1000, 1000, mode).await;
        for (who, creds, want) in [
            ("owner", &owner, want_owner),
            ("group member", &member, want_member),
            ("other", &other, want_other),
        ] {
            let mut nfs = root.as_user(creds.clone()).await.unwrap();
            let granted = nfs.access(&fh, all).await.unwrap();
            assert_eq!(
                granted, want,
                "ACCESS on a {mode:04o} file for the {who}: granted {granted:#x}, want {want:#x}"
            );
        }
    }
    // Root reads and writes whatever the mode, and executes only what
    // someone may execute.
    let fh = file_of(&mut root, "none", 1000, 1000, 0o000).await;
    assert_eq!(root.access(&fh, all).await.unwrap(), rw);
}
