//! libnfs-utils against a real gateway: `nfs-cp` files of edge sizes in and
//! back out with equal sha256, and `nfs-ls` of a 5,000-file directory that
//! shows every file exactly once.

use std::collections::HashMap;

use cairn_tests::{
    libnfs, mount, sha256, sha256_file, test_seed, write_random_file, Creds, Gateway,
};

/// Uploads a random file of `size` bytes as `name`, downloads it again and
/// compares sha256 and size, also through `nfs3_client` and `nfs-cat` for
/// small files.
async fn round_trip(gw: &Gateway, seed: u64, size: u64) {
    let port = gw.port();
    let name = format!("file-{size}.bin");
    let src = gw.scratch().join(format!("in-{size}"));
    let back = gw.scratch().join(format!("out-{size}"));
    let want = write_random_file(&src, seed ^ size, size).expect("write local source");

    if let Err(e) = libnfs::upload(port, &src, &name) {
        panic!("nfs-cp in ({size} B): {e}");
    }
    let mut nfs = mount(gw, Creds::root()).await;
    let root = nfs.root.clone();
    let fh = nfs
        .lookup(&root, &name)
        .await
        .expect("lookup uploaded file");
    let attrs = nfs.getattr(&fh).await.expect("getattr uploaded file");
    assert_eq!(attrs.size, size, "size of {name} on the server");

    if let Err(e) = libnfs::download(port, &name, &back) {
        panic!("nfs-cp out ({size} B): {e}");
    }
    let len = std::fs::metadata(&back).expect("downloaded file").len();
    assert_eq!(len, size, "downloaded size of {name}");
    assert_eq!(
        sha256_file(&back).unwrap(),
        want,
        "sha256 of {name} after the round trip"
    );

    if size <= 2 << 20 {
        let cat = libnfs::cat(&libnfs::file_url(port, &name)).expect("nfs-cat");
        assert_eq!(sha256(&cat), want, "sha256 of {name} through nfs-cat");
    }
    std::fs::remove_file(&src).ok();
    std::fs::remove_file(&back).ok();
}

#[tokio::test]
async fn nfs_cp_round_trips_empty_tiny_and_odd_sized_files() {
    let gw = Gateway::start();
    let seed = test_seed("nfs_cp_small");
    for size in [0, 1, (1 << 20) + 1] {
        round_trip(&gw, seed, size).await;
    }
}

#[tokio::test]
async fn nfs_cp_round_trips_300_mib() {
    let gw = Gateway::start();
    let seed = test_seed("nfs_cp_300_mib");
    round_trip(&gw, seed, 300 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfs_ls_lists_5000_files_exactly_once() {
    const FILES: usize = 5000;
    const CONNECTIONS: usize = 8;
    let gw = Gateway::start();
    // Create them over several connections at once: quick, and it lets the
    // server group its commits.
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let mut nfs = mount(&gw, Creds::root()).await;
        tasks.push(tokio::spawn(async move {
            let root = nfs.root.clone();
            for i in (c..FILES).step_by(CONNECTIONS) {
                let name = format!("f{i:05}");
                if let Err(e) = nfs.create_guarded(&root, &name, 0o644).await {
                    panic!("create {name}: {e}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("creator task");
    }

    let url = libnfs::root_url(gw.port());
    let entries = tokio::task::spawn_blocking(move || libnfs::ls(&url))
        .await
        .expect("nfs-ls task")
        .unwrap_or_else(|e| panic!("nfs-ls: {e}"));
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for e in &entries {
        *seen.entry(e.name.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| *k)
        .collect();
    let missing: Vec<String> = (0..FILES)
        .map(|i| format!("f{i:05}"))
        .filter(|n| !seen.contains_key(n.as_str()))
        .collect();
    let extra: Vec<_> = seen
        .keys()
        .filter(|k| {
            !(k.len() == 6
                && k.starts_with('f')
                && k[1..].parse::<usize>().is_ok_and(|i| i < FILES))
        })
        .collect();
    assert!(
        twice.is_empty() && missing.is_empty() && extra.is_empty(),
        "nfs-ls of {FILES} files: {} listed twice (e.g. {:?}), {} missing (e.g. {:?}), \
         {} unexpected (e.g. {:?}); {} lines in all",
        twice.len(),
        &twice[..twice.len().min(5)],
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
        entries.len()
    );
    assert!(
        entries
            .iter()
            .all(|e| e.size == 0 && e.mode.starts_with('-')),
        "every listed entry should be an empty regular file"
    );
}
