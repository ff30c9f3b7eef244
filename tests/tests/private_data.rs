//! The gateway's and the stores' data is for their own user only: metadata
//! (and its WAL, which holds small files' bytes), cache files, shards,
//! configs and logs. Every folder is 0700 and every file 0600 after a start,
//! whatever the umask; data left group- or world-readable by an older
//! version is made private at start, with a message saying what changed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cairn_tests::{mount, random_bytes, Creds, Gateway, GatewayOptions};
use nfs3_types::nfs3::stable_how;

/// Every path below `root` (and `root`) that other users can read, write
/// or enter, with its mode.
fn open_to_others(root: &Path) -> Vec<String> {
    open_to_others_but(root, None)
}

/// As [`open_to_others`], leaving out the folder `skip` and what is below it.
fn open_to_others_but(root: &Path, skip: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(path) = todo.pop() {
        if Some(path.as_path()) == skip {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.mode() & 0o077 != 0 {
            out.push(format!("{} {:04o}", path.display(), meta.mode() & 0o7777));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&path).expect("read_dir") {
                todo.push(e.expect("entry").path());
            }
        }
    }
    out
}

/// Writes a small file (kept in the metadata and its WAL) and a large one
/// (in the cache), so every kind of data file exists.
async fn write_some(gw: &Gateway) {
    let mut nfs = mount(gw, Creds::root()).await;
    let root = nfs.root.clone();
    for (name, len) in [("small", 100usize), ("large", 3 << 20)] {
        let fh = nfs.create(&root, name, 0o600).await.expect("create");
        nfs.write_all(&fh, 0, &random_bytes(1, len), stable_how::FILE_SYNC)
            .await
            .expect("write");
    }
}

#[tokio::test]
async fn a_gateways_data_folder_is_private_to_its_user() {
    let gw = Gateway::start();
    write_some(&gw).await;
    let data = gw.data_dir();
    for name in ["meta.db", "meta.db-wal", "cache"] {
        assert!(data.join(name).exists(), "{name} is missing");
    }
    let open = open_to_others(&data);
    assert!(
        open.is_empty(),
        "other users can reach the gateway's data: {open:#?}"
    );
}

#[tokio::test]
async fn cairn_up_keeps_its_whole_folder_private() {
    let gw = Gateway::start_up();
    write_some(&gw).await;
    let up = gw.up_dir();
    assert!(up.join("cluster.secret").exists() && up.join("stores").is_dir());
    let open = open_to_others(&up);
    assert!(
        open.is_empty(),
        "other users can reach cairn up's data: {open:#?}"
    );
}

#[tokio::test]
async fn group_and_world_access_left_by_an_older_gateway_is_taken_away_at_start() {
    let mut gw = Gateway::start();
    write_some(&gw).await;
    gw.stop();
    let data = gw.data_dir();
    let set = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()))
    };
    set(&data, 0o755);
    set(&data.join("meta.db"), 0o644);
    set(&data.join("cache"), 0o755);
    gw.restart();
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").mode() & 0o7777;
    assert_eq!(mode(&data), 0o700, "the data folder");
    assert_eq!(mode(&data.join("meta.db")), 0o600, "meta.db");
    assert_eq!(mode(&data.join("cache")), 0o700, "the cache folder");
    let logs = gw.logs();
    let db = data.join("meta.db").display().to_string();
    assert!(
        logs.lines()
            .any(|l| l.contains(&db) && l.contains("0644") && l.contains("0600")),
        "no message saying meta.db went from 0644 to 0600:\n{logs}"
    );
    let open = open_to_others(&data);
    assert!(open.is_empty(), "still open to others: {open:#?}");
}

#[tokio::test]
async fn with_smb_the_data_folder_only_lets_others_pass_through_to_the_view() {
    let gw = Gateway::start_with(GatewayOptions {
        smb: true,
        ..GatewayOptions::default()
    });
    write_some(&gw).await;
    let data = gw.data_dir();
    let mode = std::fs::metadata(&data).expect("stat").mode() & 0o7777;
    assert_eq!(mode, 0o711, "the data folder: search only for others");
    // Samba's own folder (its modes are Samba's) aside, all is private.
    let open: Vec<String> = open_to_others_but(&data, Some(&data.join("smb")))
        .into_iter()
        .filter(|p| *p != format!("{} 0711", data.display()))
        .collect();
    assert!(open.is_empty(), "other users can reach: {open:#?}");
}
