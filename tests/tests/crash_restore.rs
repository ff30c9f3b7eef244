//! The crash loop over a real cluster: a workload of creates, overwrites,
//! renames, class changes and deletes; the gateway killed -9 at a random
//! point of it, again and again, alternating a plain restart with a rebuild
//! from the stores (`cairn restore` into a wiped folder).
//!
//! After a plain restart every acknowledged stable write is there, exact.
//! After a restore, a file is exact, or named lost by the restore (and then
//! reading it fails: never silent zeros), or its last change was within the
//! recovery window before the kill (the metadata ships every 300 ms here and
//! data drains a few seconds after its last write): then any version the
//! test wrote, or its absence, is allowed; never bytes nobody wrote.

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_tests::{random_bytes, test_seed, Cluster, ClusterOptions, Nfs, NfsError};
use nfs3_types::nfs3::{nfs_fh3, nfsstat3, stable_how};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use common::*;

const KILLS: usize = 20;
/// The whole loop stops early past this (the kills done are still checked).
const LOOP_CAP: Duration = Duration::from_secs(360);
/// Changes older than this at the kill must survive a restore: shipping
/// every 300 ms, a 1 s quiet, a 2 s packing wait and the upload.
const WINDOW: Duration = Duration::from_secs(8);
const DIRS: [&str; 2] = ["a", "b"];
const CLASSES: [&str; 2] = ["two", "three"];

/// Every version of one file the test wrote, oldest first, with when its
/// write was acknowledged.
#[derive(Clone, Debug, Default)]
struct History {
    versions: Vec<(Vec<u8>, Instant)>,
}

impl History {
    fn current(&self) -> &[u8] {
        self.versions.last().map_or(&[][..], |v| &v.0)
    }
    fn changed(&self) -> Instant {
        self.versions.last().map_or_else(Instant::now, |v| v.1)
    }
}

/// What the test knows: path → history; the paths of every file name.
type Oracle = BTreeMap<String, History>;

async fn dir_handle(nfs: &mut Nfs, dir: &str) -> nfs_fh3 {
    nfs.lookup_path(&format!("/{dir}"))
        .await
        .unwrap_or_else(|e| panic!("lookup /{dir}: {e}"))
}

/// One random operation, acknowledged before it enters the oracle.
async fn step(
    nfs: &mut Nfs,
    cluster: &Cluster,
    oracle: &mut Oracle,
    rng: &mut SmallRng,
    serial: &mut u64,
) {
    let dir = DIRS[rng.random_range(0..DIRS.len())];
    // Anchors (`k…`) are only read: they age through every round, so each
    // restore has old files to prove itself on, re-laid by class changes.
    let existing: Vec<String> = oracle
        .keys()
        .filter(|p| !p.contains("/k"))
        .cloned()
        .collect();
    let pick = |rng: &mut SmallRng| existing[rng.random_range(0..existing.len())].clone();
    match rng.random_range(0..10) {
        0..=3 => {
            *serial += 1;
            let name = format!("f{serial}");
            let len = [100, 5_000, 70_000, 300_000, 1_100_000][rng.random_range(0..5)];
            let data = random_bytes(rng.random(), len);
            let fh = dir_handle(nfs, dir).await;
            let file = nfs.create(&fh, &name, 0o644).await.expect("create");
            let versions = &mut oracle.entry(format!("/{dir}/{name}")).or_default().versions;
            versions.push((Vec::new(), Instant::now()));
            nfs.write_all(&file, 0, &data, stable_how::FILE_SYNC)
                .await
                .expect("write");
            versions.push((data, Instant::now()));
        }
        4..=5 if !existing.is_empty() => {
            let path = pick(rng);
            let mut data = oracle[&path].current().to_vec();
            if data.is_empty() {
                return;
            }
            let at = rng.random_range(0..data.len());
            let patch = random_bytes(rng.random(), (data.len() - at).min(20_000));
            data[at..at + patch.len()].copy_from_slice(&patch);
            let fh = nfs.lookup_path(&path).await.expect("lookup to overwrite");
            nfs.write_all(&fh, at as u64, &patch, stable_how::FILE_SYNC)
                .await
                .expect("overwrite");
            let h = oracle.get_mut(&path).expect("known");
            h.versions.push((data, Instant::now()));
        }
        6 if !existing.is_empty() => {
            let path = pick(rng);
            *serial += 1;
            let to = format!("/{dir}/r{serial}");
            let (from_dir, from_name) = path[1..].split_once('/').expect("dir/name");
            let (fd, td) = (dir_handle(nfs, from_dir).await, dir_handle(nfs, dir).await);
            nfs.rename(&fd, from_name, &td, &to[dir.len() + 2..])
                .await
                .expect("rename");
            let mut h = oracle.remove(&path).expect("known");
            // The name changed now: within the window, either name may be
            // what a restore shows.
            h.versions.push((h.current().to_vec(), Instant::now()));
            oracle.insert(to, h);
        }
        7 if !existing.is_empty() => {
            let path = pick(rng);
            let (d, n) = path[1..].split_once('/').expect("dir/name");
            let fh = dir_handle(nfs, d).await;
            nfs.remove(&fh, n).await.expect("remove");
            oracle.remove(&path);
        }
        8 => {
            let class = CLASSES[rng.random_range(0..CLASSES.len())];
            cluster.class_set(&format!("/{dir}"), class);
        }
        _ => {
            // A read of a random file: data from the cache or the stores.
            let all: Vec<String> = oracle.keys().cloned().collect();
            if !all.is_empty() {
                let path = &all[rng.random_range(0..all.len())];
                let fh = nfs.lookup_path(path).await.expect("lookup to read");
                let got = nfs.read_all(&fh).await.expect("read");
                assert!(got == oracle[path].current(), "{path} reads other bytes");
            }
        }
    }
}

/// After a plain restart: every file exact, nothing else.
async fn check_exact(nfs: &mut Nfs, oracle: &Oracle, round: usize) {
    for (path, h) in oracle {
        let fh = nfs
            .lookup_path(path)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {path} is gone after a restart: {e}"));
        let got = nfs
            .read_all(&fh)
            .await
            .unwrap_or_else(|e| panic!("round {round}: read {path}: {e}"));
        assert!(
            got == h.current(),
            "round {round}: {path} differs after a restart ({} bytes, want {})",
            got.len(),
            h.current().len()
        );
    }
}

/// After a restore: reconciles the oracle with what came back (see the
/// module doc), deleting what was lost so the next round starts clean.
async fn check_restored(
    nfs: &mut Nfs,
    oracle: &mut Oracle,
    said: &str,
    killed: Instant,
    round: usize,
) {
    let lost: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('/'))
        .collect();
    let mut keep = Oracle::new();
    for (path, h) in std::mem::take(oracle) {
        let recent = killed.duration_since(h.changed()) < WINDOW;
        let fh = match nfs.lookup_path(&path).await {
            Ok(fh) => fh,
            Err(NfsError::Status(nfsstat3::NFS3ERR_NOENT)) if recent => continue,
            Err(e) => panic!("round {round}: {path} (changed {:?} before the kill) is gone after the restore: {e}\n{said}", killed.duration_since(h.changed())),
        };
        let named = lost.contains(&path.as_str());
        match nfs.read_all(&fh).await {
            Ok(got) if got == h.current() => {
                assert!(
                    !named,
                    "round {round}: {path} reads back whole but is reported lost\n{said}"
                );
                keep.insert(path, h);
            }
            Ok(got) => {
                assert!(
                    recent && h.versions.iter().any(|(v, _)| *v == got),
                    "round {round}: {path} reads {} bytes nobody wrote (or an old version past the window; last change {:?} before the kill)\n{said}",
                    got.len(),
                    killed.duration_since(h.changed())
                );
                let mut h = h;
                let at = h.versions.iter().rposition(|(v, _)| *v == got).unwrap_or(0);
                h.versions.truncate(at + 1);
                keep.insert(path, h);
            }
            Err(NfsError::Status(nfsstat3::NFS3ERR_IO)) => {
                assert!(
                    named,
                    "round {round}: {path} fails to read but the restore did not name it\n{said}"
                );
                assert!(recent, "round {round}: {path} was lost though its last change was {:?} before the kill\n{said}", killed.duration_since(h.changed()));
                let (d, n) = path[1..].split_once('/').expect("dir/name");
                let dir = nfs.lookup_path(&format!("/{d}")).await.expect("dir");
                nfs.remove(&dir, n).await.expect("remove a lost file");
            }
            Err(e) => panic!("round {round}: read {path}: {e}"),
        }
    }
    *oracle = keep;
}

#[tokio::test]
async fn killed_again_and_again_with_restores_loses_nothing_acknowledged() {
    let seed = test_seed("killed_again_and_again_with_restores");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut options = ClusterOptions::new(three_hosts());
    options.backup = "ship_every = \"300ms\"".into();
    let mut cluster = Cluster::start(options);
    cluster.class_create("two", &["--replicas", "2"]);
    cluster.class_create("three", &["--replicas", "3"]);
    let mut nfs = cluster.mount().await;
    for d in DIRS {
        mkdir(&mut nfs, d).await;
    }
    let mut oracle = Oracle::new();
    for (i, d) in DIRS.iter().cycle().take(6).enumerate() {
        let dir = dir_handle(&mut nfs, d).await;
        let name = format!("k{i}");
        let data = random_bytes(rng.random(), 50_000 + 100_000 * i);
        write_file(&mut nfs, &dir, &format!("/{d}"), &name, data.clone()).await;
        oracle.insert(
            format!("/{d}/{name}"),
            History {
                versions: vec![(data, Instant::now())],
            },
        );
    }
    cluster.wait_drained(DRAIN_DEADLINE);
    // A gateway that never shipped has nothing to restore from.
    wait_shipped(&cluster, Instant::now());
    let mut serial = 0u64;
    let started = Instant::now();
    let mut kills = 0;
    // Files past the window at a restore's kill: each must have come back.
    let mut old_checked = 0;
    while kills < KILLS && started.elapsed() < LOOP_CAP {
        for _ in 0..rng.random_range(3..25) {
            step(&mut nfs, &cluster, &mut oracle, &mut rng, &mut serial).await;
        }
        // Half the rounds let the drain catch up before more work, so
        // files of every age meet the kill.
        if rng.random_range(0..2) == 0 {
            cluster.wait_drained(DRAIN_DEADLINE);
            for _ in 0..rng.random_range(0..10) {
                step(&mut nfs, &cluster, &mut oracle, &mut rng, &mut serial).await;
            }
        }
        cluster.kill9_gateway();
        let killed = Instant::now();
        kills += 1;
        if kills % 2 == 1 {
            cluster.start_gateway();
            nfs = cluster.mount().await;
            check_exact(&mut nfs, &oracle, kills).await;
        } else {
            let dir = cluster.gateway_data_dir();
            std::fs::remove_dir_all(&dir).expect("wipe the gateway's folder");
            std::fs::create_dir(&dir).expect("recreate it");
            let said = restore(&cluster, &["s1", "s2", "s3"], &[])
                .unwrap_or_else(|e| panic!("round {kills}: restore failed: {e}"));
            cluster.start_gateway();
            nfs = cluster.mount().await;
            old_checked += oracle
                .values()
                .filter(|h| killed.duration_since(h.changed()) >= WINDOW)
                .count();
            check_restored(&mut nfs, &mut oracle, &said, killed, kills).await;
        }
        eprintln!(
            "round {kills}: {} files checked, {:?} in",
            oracle.len(),
            started.elapsed()
        );
    }
    eprintln!("{old_checked} files older than {WINDOW:?} were checked after restores");
    assert!(
        old_checked >= 24,
        "only {old_checked} files were old enough at a restore to prove anything"
    );
    assert!(
        kills >= KILLS,
        "only {kills} kills in {LOOP_CAP:?}: the loop is too slow to prove anything"
    );
}
