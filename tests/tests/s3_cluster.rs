//! Buckets as chunk stores in a whole cluster, against a real three-node
//! Garage on 127.0.0.1: a class with one copy on a cairn store and one in a
//! bucket (ciphertext only in Garage's folders, reads through a lost Garage
//! node and lost cairn stores), a gateway rebuilt from the bucket alone, and
//! an erasure-coded class over three buckets that reads and repairs through
//! one bucket gone.

#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use cairn_chunkstore::Secret;
use cairn_gateway::store::s3::{cluster_id, S3Settings, S3Store};
use cairn_gateway::store::ChunkStore;
use cairn_tests::cluster::{contains_bytes, files_below};
use cairn_tests::garage::{Garage, REGION};
use cairn_tests::{random_bytes, test_seed, BucketStore, Cluster, ClusterOptions, StoreSpec};

use common::*;

async fn start_garage(buckets: &'static [&'static str]) -> Garage {
    tokio::task::spawn_blocking(move || Garage::start(buckets))
        .await
        .expect("garage start")
}

/// The keys under `prefix` of `bucket`, listed through Garage's S3 API.
async fn bucket_keys(
    garage: &Garage,
    bucket: &str,
    prefix: &str,
    secret: &Path,
) -> BTreeSet<String> {
    let secret = Secret::load(secret).expect("cluster secret");
    let store = S3Store::new(S3Settings {
        name: "lister".into(),
        endpoint: garage.endpoint(),
        bucket: bucket.into(),
        region: REGION.into(),
        prefix: prefix.into(),
        access_key_id: garage.key_id.clone(),
        secret_access_key: garage.secret_key.clone(),
        path_style: true,
        zone: String::new(),
        host: String::new(),
        labels: Vec::new(),
        capacity: 1 << 30,
        reserve: 0,
        cluster_id: cluster_id(&secret),
    })
    .expect("client");
    let mut keys = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list(after.as_deref(), 1000)
            .await
            .expect("list the bucket");
        let full = page.len() == 1000;
        after = page.last().map(|e| e.key.clone());
        keys.extend(page.into_iter().map(|e| e.key));
        if !full {
            return keys;
        }
    }
}

/// A file of `len` bytes that is `marker` over and over: plaintext anyone
/// could spot in a store's folders.
fn marked(marker: &[u8], len: usize) -> Vec<u8> {
    marker.iter().copied().cycle().take(len).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_copy_local_one_in_a_bucket_ciphertext_only_and_reads_through_lost_nodes() {
    let seed = test_seed("one_copy_local_one_in_a_bucket");
    let mut garage = start_garage(&["cairn"]).await;
    let credentials = garage.dir().join("cairn.credentials");
    garage.write_credentials(&credentials);
    let mut options = ClusterOptions::new(vec![
        StoreSpec::new("d1", "h1", &["local"]),
        StoreSpec::new("d2", "h2", &["local"]),
    ]);
    options.buckets = vec![BucketStore {
        name: "b1".into(),
        table: garage.store_table(0, "cairn", "c1", &credentials, &["s3"]),
    }];
    // Every store (the bucket too) gets each metadata backup object.
    options.backup = "ship_every = \"300ms\"\ncopies = 3".into();
    let mut cluster = Cluster::start(options);

    // The bucket is a store like the others, with its configured quota.
    let listed = cluster.cairn_json(&["store", "list"]);
    let b1 = listed["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == "b1")
        .unwrap_or_else(|| panic!("b1 missing from store list: {listed}"))
        .clone();
    assert_eq!(b1["labels"], serde_json::json!(["s3"]), "{b1}");
    assert_eq!(b1["capacity"], 20u64 << 30, "{b1}");
    assert_eq!(b1["state"], "online", "{b1}");

    let mut nfs = cluster.mount().await;
    cluster.class_create("mixed", &["--replicas", "2", "--labels", "local,s3"]);
    let dir = mkdir(&mut nfs, "mix").await;
    cluster.class_set("/mix", "mixed");
    let mut files = write_mix(&mut nfs, &dir, "/mix", seed).await;
    let marker = format!("cairn-plaintext-marker-{seed:016x}").into_bytes();
    for (name, len) in [("marked-small", 4096), ("marked-big", 3 << 20)] {
        files.push(write_file(&mut nfs, &dir, "/mix", name, marked(&marker, len)).await);
    }
    // Many small files: packed into a few objects, not one PUT each.
    for i in 0..200 {
        let data = random_bytes(seed ^ (500 + i as u64), 4096);
        files.push(write_file(&mut nfs, &dir, "/mix", &format!("tiny{i}"), data).await);
    }
    cluster.wait_drained(DRAIN_DEADLINE);

    // Every chunk of the class: one copy on a cairn store, one in the
    // bucket, and the bucket's own listing holds each object.
    let chunks: Vec<_> = cluster
        .chunks()
        .into_iter()
        .filter(|c| c.class == "mixed")
        .collect();
    assert!(!chunks.is_empty(), "no chunk of class mixed");
    assert!(
        chunks.len() <= 20,
        "204 files drained into {} chunks: small files are not packed",
        chunks.len()
    );
    let in_bucket = bucket_keys(&garage, "cairn", "c1", cluster.secret_path()).await;
    for c in &chunks {
        let mut stores = c.stores.clone();
        stores.sort();
        assert!(
            stores == ["b1", "d1"] || stores == ["b1", "d2"],
            "chunk {} is on {stores:?}, not one local copy and one in the bucket",
            c.key
        );
        for (store, key) in c.objects.iter().filter(|(s, _)| s == "b1") {
            assert!(
                in_bucket.contains(key),
                "{key} on {store} is not in the bucket's listing: {in_bucket:?}"
            );
        }
    }
    // Garage stored ciphertext only: the marker is in none of its files.
    let mut looked = 0;
    for dir in garage.data_dirs() {
        for file in files_below(&dir) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            looked += bytes.len();
            assert!(
                !contains_bytes(&bytes, &marker),
                "plaintext in Garage's {}",
                file.display()
            );
        }
    }
    assert!(
        looked > 3 << 20,
        "Garage's data folders hold only {looked} bytes"
    );

    drop_cache(&cluster);
    read_back(&mut nfs, &files, "cache dropped").await;
    let since = Instant::now();
    wait_shipped(&cluster, since);

    // A Garage node dies (the bucket stays up through Garage's own
    // replication), then both cairn stores: every byte comes from the
    // bucket, to a gateway with an empty cache.
    garage.kill_node(1);
    cluster.store_mut("d1").kill9();
    cluster.store_mut("d2").kill9();
    restart_with_empty_cache(&mut cluster);
    cluster.wait_store_online("b1", true, PROBE_DEADLINE);
    let mut nfs = cluster.mount().await;
    read_back(&mut nfs, &files, "from the bucket alone").await;

    // The gateway is lost too: `cairn restore` from the bucket alone, its
    // table in a copy of the gateway's config.
    lose_the_gateway(&mut cluster);
    let from = cluster.scratch().join("from.toml");
    std::fs::write(
        &from,
        format!(
            "data_dir = \"/var/lib/cairn\"\n[cluster]\nsecret_file = {:?}\n\n[[stores]]\nname = \"b1\"\n{}\n",
            cluster.secret_path().display().to_string(),
            garage.store_table(0, "cairn", "c1", &credentials, &["s3"])
        ),
    )
    .expect("write the restore config");
    let out = std::process::Command::new(cairn_tests::gateway::cairn_bin())
        .arg("restore")
        .arg("--from")
        .arg(&from)
        .arg("--data")
        .arg(cluster.gateway_data_dir())
        .output()
        .expect("run cairn restore");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "cairn restore failed: {said}");
    assert!(said.contains("restored generation"), "{said}");
    assert!(said.contains("nothing else is lost"), "{said}");
    let written = std::fs::read_to_string(cluster.gateway_data_dir().join("gateway.toml"))
        .expect("restore writes a config");
    assert!(written.contains("kind = \"s3\""), "{written}");
    cluster.start_gateway();
    cluster.wait_store_online("b1", true, PROBE_DEADLINE);
    let mut nfs = cluster.mount().await;
    read_back(&mut nfs, &files, "restored from the bucket").await;
}
