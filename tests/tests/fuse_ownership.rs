//! Ownership and mode rules through `cairn mount`, written from POSIX
//! (chown(2), chmod(2), open(2)) and run as real users with the tools
//! they use (`setpriv` to become a uid with its groups, then `sh`, `cat`,
//! `chown`, `chgrp`, `chmod`): who may change a file's owner, group and
//! mode, and which opens the owner, a group member and others get.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use cairn_tests::view::mount_view_at;
use cairn_tests::Gateway;

/// A user: uid, primary gid and every group it is in.
struct User {
    uid: u32,
    gid: u32,
    groups: &'static str,
}

const OWNER: User = User {
    uid: 1000,
    gid: 1000,
    groups: "1000",
};
const MEMBER: User = User {
    uid: 1001,
    gid: 1001,
    groups: "1001,1000",
};
const OTHER: User = User {
    uid: 1002,
    gid: 1002,
    groups: "1002",
};

/// Runs `sh -c script` as `user` in `dir`; whether it succeeded.
fn as_user(user: &User, dir: &Path, script: &str) -> bool {
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={}", user.uid),
            &format!("--regid={}", user.gid),
            &format!("--groups={}", user.groups),
            "--",
            "sh",
            "-c",
            script,
        ])
        .current_dir(dir)
        .output()
        .expect("run setpriv");
    out.status.success()
}

/// A mount point others can reach, as `/mnt/...` would be.
fn open_mount_point() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("cairn-view-")
        .tempdir()
        .expect("mount point");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("a mount point others may enter");
    dir
}

fn mode_of(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).expect("stat");
    (m.mode() & 0o7777, m.uid(), m.gid())
}

#[test]
fn chown_and_chmod_through_the_view_only_by_owner_or_root() {
    let gw = Gateway::start();
    let point = open_mount_point();
    let view = mount_view_at(&gw, &point.path().join("v"));
    let dir = &view.dir;
    let file = dir.join("f");
    std::fs::write(&file, b"data").unwrap();
    std::os::unix::fs::chown(&file, Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(mode_of(&file), (0o4755, 1000, 1000));

    // Not the owner: no chown (even to the current owner), no chgrp, no chmod.
    assert!(!as_user(&OTHER, dir, "chown 1000:1000 f"));
    assert!(!as_user(&MEMBER, dir, "chgrp 1000 f"));
    assert!(!as_user(&OTHER, dir, "chmod 0777 f"));
    assert_eq!(
        mode_of(&file),
        (0o4755, 1000, 1000),
        "a refused change changed the file"
    );

    // The owner: chmod, chgrp among its groups, never give the file away.
    assert!(as_user(&OWNER, dir, "chmod 0640 f"));
    assert_eq!(mode_of(&file).0, 0o640);
    assert!(
        !as_user(&OWNER, dir, "chgrp 1001 f"),
        "chgrp to a group the owner is not in"
    );
    assert!(
        !as_user(&OWNER, dir, "chown 1001 f"),
        "the owner gives its file away"
    );
    assert!(
        as_user(&OWNER, dir, "chown 1000:1000 f"),
        "the owner chowns to itself"
    );
    assert_eq!(mode_of(&file), (0o640, 1000, 1000));
}

#[test]
fn opens_through_the_view_follow_the_mode_bits() {
    let gw = Gateway::start();
    let point = open_mount_point();
    let view = mount_view_at(&gw, &point.path().join("v"));
    let dir = &view.dir;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // (mode, what the owner, a group member and another may: (read, write))
    let cases = [
        (0o477, (true, false), (true, true), (true, true)),
        (0o077, (false, false), (true, true), (true, true)),
        (0o640, (true, true), (true, false), (false, false)),
        (0o604, (true, true), (false, false), (true, false)),
        (0o000, (false, false), (false, false), (false, false)),
    ];
    for (i, (mode, owner, member, other)) in cases.into_iter().enumerate() {
        let name = format!("f{i}");
        let path = dir.join(&name);
        std::fs::write(&path, b"data").unwrap();
        std::os::unix::fs::chown(&path, Some(1000), Some(1000)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        for (who, user, (read, write)) in [
            ("owner", &OWNER, owner),
            ("group member", &MEMBER, member),
            ("other", &OTHER, other),
        ] {
            assert_eq!(
                as_user(user, dir, &format!("cat {name} > /dev/null")),
                read,
                "read of a {mode:04o} file by the {who}"
            );
            assert_eq!(
                as_user(user, dir, &format!("echo x >> {name}")),
                write,
                "write to a {mode:04o} file by the {who}"
            );
        }
        // Root reads and writes whatever the mode.
        assert!(std::fs::read(&path).is_ok());
    }
}
