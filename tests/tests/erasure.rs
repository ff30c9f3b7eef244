//! Erasure-coded classes with real processes: a 4+1 class over five hosts
//! reads on with any one store killed, answers EIO (never wrong bytes) with
//! two gone and reports the chunks missing, and recovers when they return;
//! 1 GiB under 4+1 costs at most 1.3x on the stores; and the archive
//! transition re-lays replica chunks as shards and deletes the replicas.

#[allow(dead_code)]
mod common;

use std::time::Duration;

use cairn_tests::cluster::files_below;
use cairn_tests::{
    libnfs, poll_until, random_bytes, test_seed, write_random_file, Cluster, ClusterOptions, Nfs,
    StoreSpec,
};
use nfs3_types::nfs3::nfsstat3;

use common::*;

/// Five stores, one per host, all `hdd`.
fn five_hosts() -> Vec<StoreSpec> {
    (1..=5)
        .map(|i| StoreSpec::new(&format!("e{i}"), &format!("h{i}"), &["hdd"]))
        .collect()
}

/// Every chunk of `class` is erasure-coded `layout` with one shard per
/// host, and each store's folder holds exactly what the gateway lists.
fn check_shards(cluster: &Cluster, class: &str, layout: &str, shards: usize) -> usize {
    let chunks = wait_stores_match_gateway(cluster);
    let mine: Vec<_> = chunks.iter().filter(|c| c.class == class).collect();
    assert!(!mine.is_empty(), "no chunk of class {class}: {chunks:?}");
    for c in &mine {
        assert_eq!(c.layout, layout, "chunk {} of class {class}: {c:?}", c.key);
        let mut hosts: Vec<&str> = c
            .stores
            .iter()
            .map(|s| cluster.store(s).spec.host.as_str())
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        assert_eq!(
            (c.objects.len(), hosts.len()),
            (shards, shards),
            "chunk {} must have {shards} shards on {shards} distinct hosts: {c:?}",
            c.key
        );
    }
    mine.len()
}

/// Reads every file in 1 MiB READs: each READ gives the written bytes or
/// NFS3ERR_IO, nothing else. Returns (good READs, EIO READs).
async fn read_exact_or_eio(nfs: &mut Nfs, files: &[Written]) -> (usize, usize) {
    const PIECE: usize = 1 << 20;
    let (mut good, mut eio) = (0, 0);
    for f in files {
        let fh = nfs.lookup_path(&f.path).await.expect("lookup");
        for start in (0..f.data.len()).step_by(PIECE) {
            let want = &f.data[start..(start + PIECE).min(f.data.len())];
            match nfs.read(&fh, start as u64, want.len() as u32).await {
                Ok((got, _)) if got == want => good += 1,
                Ok((got, _)) => panic!(
                    "{} at {start}: {} bytes read differ from the {} written",
                    f.path,
                    got.len(),
                    want.len()
                ),
                Err(e) if e.status() == Some(nfsstat3::NFS3ERR_IO) => eio += 1,
                Err(e) => panic!("{} at {start}: expected bytes or EIO, got {e}", f.path),
            }
        }
    }
    (good, eio)
}

#[tokio::test]
async fn ec_4_1_reads_through_any_one_lost_store_and_says_eio_with_two() {
    let seed = test_seed("ec_4_1_reads_through_any_one_lost_store");
    let mut options = ClusterOptions::new(five_hosts());
    options.chunk_size = "8 MiB".into();
    let mut cluster = Cluster::start(options);
    let mut nfs = cluster.mount().await;
    let said = cluster.cairn(&["class", "create", "wide", "--ec", "4+1", "--spread", "host"]);
    assert!(
        said.contains("needs 5 host domains, the cluster has 5"),
        "class create must state the geometry: {said}"
    );
    let dir = mkdir(&mut nfs, "ec").await;
    cluster.class_set("/ec", "wide");

    // About 100 MiB: the usual mix, large files, and many small and mid-size ones.
    let mut files = write_mix(&mut nfs, &dir, "/ec", seed).await;
    for i in 0..6 {
        let len = (9 << 20) + i * 77_777;
        let data = random_bytes(seed ^ (100 + i as u64), len);
        files.push(write_file(&mut nfs, &dir, "/ec", &format!("big{i}"), data).await);
    }
    for i in 0..60 {
        let len = 1000 + (i * 131_071) % (600 << 10);
        let data = random_bytes(seed ^ (1000 + i as u64), len);
        files.push(write_file(&mut nfs, &dir, "/ec", &format!("small{i}"), data).await);
    }
    let total: usize = files.iter().map(|f| f.data.len()).sum();
    assert!(total > 70 << 20, "wrote only {total} bytes");
    cluster.wait_drained(DRAIN_DEADLINE);
    let n_chunks = check_shards(&cluster, "wide", "ec 4+1", 5);
    let status = cluster.status();
    assert_eq!(
        class_health(&status, "wide")["healthy"],
        n_chunks as u64,
        "{status}"
    );

    // Shards rotate between chunks: every store holds data shards (0..4),
    // so each kill below makes reads rebuild.
    for store in ["e1", "e2", "e3", "e4", "e5"] {
        let data_shards = cluster
            .chunks()
            .iter()
            .flat_map(|c| c.objects.clone())
            .filter(|(s, key)| s == store && !key.ends_with(".s04"))
            .count();
        assert!(
            data_shards > 0,
            "{store} holds no data shard: {:?}",
            cluster.chunks()
        );
    }

    // Any one store down: every byte still reads, from the cache-less gateway.
    for victim in ["e1", "e2", "e3", "e4", "e5"] {
        drop_cache(&cluster);
        cluster.store_mut(victim).kill9();
        read_back(&mut nfs, &files, &format!("with {victim} killed")).await;
        cluster.store_mut(victim).restart();
        cluster.wait_store_online(victim, true, PROBE_DEADLINE);
    }

    // Two down: ranges on them cannot be rebuilt, the rest reads on.
    drop_cache(&cluster);
    cluster.store_mut("e2").kill9();
    cluster.store_mut("e4").kill9();
    cluster.wait_store_online("e2", false, PROBE_DEADLINE);
    cluster.wait_store_online("e4", false, PROBE_DEADLINE);
    let (good, eio) = read_exact_or_eio(&mut nfs, &files).await;
    assert!(
        eio > 0,
        "with two of five shards gone some reads must fail with EIO ({good} good)"
    );
    let status = cluster.status();
    assert_eq!(
        class_health(&status, "wide")["missing"],
        n_chunks as u64,
        "every chunk has a shard on e2 and on e4, so all count missing: {status}"
    );
    let why = status["classes"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "wide"))
        .map(|c| c["why"].to_string())
        .unwrap_or_default();
    assert!(
        why.contains("needs 5 host domains, 3 are online"),
        "status must say why the class cannot be met: {why}; stores {}",
        status["stores"]
    );
    cluster.assert_gateway_running();

    cluster.store_mut("e2").restart();
    cluster.store_mut("e4").restart();
    cluster.wait_store_online("e2", true, PROBE_DEADLINE);
    cluster.wait_store_online("e4", true, PROBE_DEADLINE);
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "with e2 and e4 back").await;
    let status = cluster.status();
    assert_eq!(
        class_health(&status, "wide")["healthy"],
        n_chunks as u64,
        "{status}"
    );
}

#[tokio::test]
async fn one_gib_under_4_1_costs_at_most_1_3x_on_the_stores() {
    let seed = test_seed("one_gib_under_4_1");
    let cluster = Cluster::start(ClusterOptions::new(five_hosts()));
    cluster.class_create("wide", &["--ec", "4+1"]);
    // nfs-cp URLs name files in the export root: the root gets the class.
    cluster.class_set("/", "wide");
    let src = cluster.scratch().join("gib.bin");
    let sum = write_random_file(&src, seed, 1 << 30).expect("write the source file");
    libnfs::upload(cluster.gateway_port(), &src, "gib.bin").expect("nfs-cp");
    std::fs::remove_file(&src).expect("remove the source");
    cluster.wait_drained(Duration::from_secs(300));
    check_shards(&cluster, "wide", "ec 4+1", 5);

    let on_disk: u64 = cluster
        .stores()
        .iter()
        .flat_map(|s| files_below(&s.data_dir().join("shards")))
        .map(|p| std::fs::metadata(&p).map_or(0, |m| m.len()))
        .sum();
    let ratio = on_disk as f64 / (1u64 << 30) as f64;
    assert!(
        ratio <= 1.3,
        "1 GiB under 4+1 takes {on_disk} bytes on the stores ({ratio:.3}x)"
    );
    let status = cluster.status();
    let class = status["classes"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "wide"))
        .cloned()
        .unwrap_or_else(|| panic!("no class wide in {status}"));
    let reported = class["stored_ratio"].as_f64().expect("stored_ratio");
    assert!(
        (1.25..=1.3).contains(&reported),
        "status reports stored/logical {reported} for 4+1: {class}"
    );

    drop_cache(&cluster);
    let back = cluster.scratch().join("back.bin");
    libnfs::download(cluster.gateway_port(), "gib.bin", &back).expect("nfs-cp back");
    assert_eq!(
        cairn_tests::sha256_file(&back).expect("hash"),
        sum,
        "1 GiB read back from the shards differs"
    );
}

#[tokio::test]
async fn the_archive_transition_relays_replicas_as_shards_and_deletes_them() {
    let seed = test_seed("the_archive_transition");
    let cluster = Cluster::start(ClusterOptions::new(five_hosts()));
    let mut nfs = cluster.mount().await;
    let said = cluster.cairn(&[
        "class",
        "create",
        "aging",
        "--replicas",
        "2",
        "--archive-after",
        "3s",
        "--archive-ec",
        "3+1",
    ]);
    assert!(
        said.contains("archived chunks needs 4 host domains"),
        "{said}"
    );
    let dir = mkdir(&mut nfs, "old").await;
    cluster.class_set("/old", "aging");
    let mut files = write_mix(&mut nfs, &dir, "/old", seed).await;
    files.push(
        write_file(
            &mut nfs,
            &dir,
            "/old",
            "extra",
            random_bytes(seed + 9, 5 << 20),
        )
        .await,
    );
    cluster.wait_drained(DRAIN_DEADLINE);

    // Every chunk is re-laid as 3+1 shards; the stores end up holding only
    // the shards (the replicas are deleted after the switch).
    let chunks = poll_until(
        "every chunk of class aging is erasure-coded 3+1",
        Duration::from_secs(60),
        || {
            let chunks = cluster.chunks();
            let left: Vec<_> = chunks
                .iter()
                .filter(|c| c.class == "aging" && c.layout != "ec 3+1")
                .collect();
            if left.is_empty() && !chunks.is_empty() {
                Ok(chunks)
            } else {
                Err(format!("still replicas: {left:?}"))
            }
        },
    );
    assert!(chunks
        .iter()
        .all(|c| c.objects.iter().all(|(_, key)| key.contains(".s"))));
    check_shards(&cluster, "aging", "ec 3+1", 4);
    let status = cluster.status();
    let health = class_health(&status, "aging");
    assert_eq!(
        health["healthy"].as_u64(),
        Some(chunks.len() as u64),
        "{status}"
    );
    assert!(
        cluster
            .gateway_logs()
            .contains("archived a chunk as erasure-coded shards"),
        "the gateway logs each re-layout"
    );
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after the archive transition").await;
}
