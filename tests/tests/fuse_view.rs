//! `cairn mount DIR`: the gateway's FUSE view used by local tools. Plain
//! `std::fs` calls go through it and NFS sees the result; an NFS change
//! shows through the view within a second; `user.*` extended attributes
//! are kept; `cairn umount` takes it away.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_tests::gateway::run_cairn;
use cairn_tests::{mount, poll_until, random_bytes, Creds, Gateway};
use nfs3_types::nfs3::stable_how;

fn cairn(gw: &Gateway, args: &[&str]) -> std::process::Output {
    let config = gw.config_path().to_string_lossy().into_owned();
    let mut all = args.to_vec();
    all.extend(["--config", &config]);
    run_cairn(&all, Duration::from_secs(60)).expect("run cairn")
}

fn is_mountpoint(dir: &Path) -> bool {
    std::process::Command::new("mountpoint")
        .arg("-q")
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_mount_serves_local_tools_and_nfs_sees_the_same_tree() {
    let gw = Gateway::start();
    let dir = gw.scratch().join("view");
    std::fs::create_dir(&dir).unwrap();
    let out = cairn(&gw, &["mount", &dir.to_string_lossy()]);
    assert!(out.status.success(), "cairn mount: {out:?}");
    assert!(is_mountpoint(&dir));

    // Files, folders, renames, links and symlinks through the view.
    let data = random_bytes(5, 3 * 1024 * 1024 + 17);
    std::fs::create_dir(dir.join("d")).unwrap();
    std::fs::write(dir.join("d/big.bin"), &data).unwrap();
    std::fs::rename(dir.join("d/big.bin"), dir.join("d/moved.bin")).unwrap();
    std::fs::hard_link(dir.join("d/moved.bin"), dir.join("hard.bin")).unwrap();
    std::os::unix::fs::symlink("d/moved.bin", dir.join("link")).unwrap();
    assert_eq!(std::fs::read(dir.join("link")).unwrap(), data);
    assert_eq!(std::fs::metadata(dir.join("hard.bin")).unwrap().nlink(), 2);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["d", "hard.bin", "link"]);
    let st = rustix::fs::statvfs(&dir).unwrap();
    assert!(st.f_blocks > 0, "statfs shows no capacity");
    assert_eq!(st.f_namemax, 255);

    // user.* extended attributes are kept; other namespaces are refused.
    let file = dir.join("d/moved.bin");
    rustix::fs::setxattr(&file, "user.note", b"kept", rustix::fs::XattrFlags::empty()).unwrap();
    let mut buf = [0u8; 64];
    let n = rustix::fs::getxattr(&file, "user.note", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"kept");
    assert!(
        rustix::fs::setxattr(&file, "user.note", b"x", rustix::fs::XattrFlags::CREATE).is_err()
    );
    assert!(
        rustix::fs::setxattr(&file, "trusted.x", b"x", rustix::fs::XattrFlags::empty()).is_err()
    );
    rustix::fs::removexattr(&file, "user.note").unwrap();
    assert!(rustix::fs::getxattr(&file, "user.note", &mut buf).is_err());

    // NFS sees what the view wrote...
    let mut nfs = mount(&gw, Creds::root()).await;
    let fh = nfs.lookup_path("/d/moved.bin").await.unwrap();
    assert_eq!(nfs.read_all(&fh).await.unwrap(), data);
    // ...and the view sees an NFS change within a second.
    let root = nfs.root.clone();
    let fresh = nfs.create(&root, "from-nfs", 0o644).await.unwrap();
    nfs.write_all(&fresh, 0, b"hello", stable_how::FILE_SYNC)
        .await
        .unwrap();
    let start = Instant::now();
    poll_until("the NFS file in the view", Duration::from_secs(5), || {
        std::fs::read(dir.join("from-nfs")).map_err(|e| e.to_string())
    });
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    nfs.write_all(&fresh, 0, b"HELLO, again", stable_how::FILE_SYNC)
        .await
        .unwrap();
    poll_until(
        "the NFS overwrite in the view",
        Duration::from_secs(5),
        || match std::fs::read(dir.join("from-nfs")) {
            Ok(b) if b == b"HELLO, again" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );

    let out = cairn(&gw, &["umount", &dir.to_string_lossy()]);
    assert!(out.status.success(), "cairn umount: {out:?}");
    assert!(!is_mountpoint(&dir));
    assert!(!dir.join("d").exists());
}
