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
    let store = direct(garage, bucket, prefix, secret);
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

/// A client of `prefix` of `bucket` beside the gateway's (same cluster).
fn direct(garage: &Garage, bucket: &str, prefix: &str, secret: &Path) -> S3Store {
    let secret = Secret::load(secret).expect("cluster secret");
    S3Store::new(S3Settings {
        name: "beside".into(),
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
        scrub_every: std::time::Duration::ZERO,
        scrub_bandwidth: 0,
    })
    .expect("client")
}

/// A Garage with bucket "cairn" and the test key in a credentials file.
async fn garage_with_key() -> (Garage, std::path::PathBuf) {
    let garage = start_garage(&["cairn"]).await;
    let credentials = garage.dir().join("cairn.credentials");
    garage.write_credentials(&credentials);
    (garage, credentials)
}

/// A bucket store on prefix `name` of bucket "cairn", its own failure
/// domain (`host = name`), label `s3`, through Garage node `node`; `extra`
/// lines end its table.
fn prefix_store(
    garage: &Garage,
    node: usize,
    credentials: &Path,
    name: &str,
    extra: &str,
) -> BucketStore {
    BucketStore {
        name: name.into(),
        table: format!(
            "{}\nhost = \"{name}\"\n{extra}",
            garage.store_table(node, "cairn", name, credentials, &["s3"])
        ),
        online: true,
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
    let (mut garage, credentials) = garage_with_key().await;
    let mut options = ClusterOptions::new(vec![
        StoreSpec::new("d1", "h1", &["local"]),
        StoreSpec::new("d2", "h2", &["local"]),
    ]);
    options.buckets = vec![BucketStore {
        name: "b1".into(),
        table: garage.store_table(0, "cairn", "c1", &credentials, &["s3"]),
        online: true,
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
    // table in a copy of the gateway's config, its keys in the standard
    // AWS environment variables this time.
    lose_the_gateway(&mut cluster);
    let from = cluster.scratch().join("from.toml");
    std::fs::write(
        &from,
        format!(
            "data_dir = \"/var/lib/cairn\"\n[cluster]\nsecret_file = {:?}\n\n[[stores]]\nname = \"b1\"\n{}\n",
            cluster.secret_path().display().to_string(),
            garage
                .store_table(0, "cairn", "c1", &credentials, &["s3"])
                .lines()
                .filter(|l| !l.starts_with("credentials_file"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )
    .expect("write the restore config");
    let out = std::process::Command::new(cairn_tests::gateway::cairn_bin())
        .arg("restore")
        .arg("--from")
        .arg(&from)
        .arg("--data")
        .arg(cluster.gateway_data_dir())
        .env("AWS_ACCESS_KEY_ID", &garage.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &garage.secret_key)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec_2_1_over_three_bucket_prefixes_reads_and_repairs_through_one_gone() {
    let seed = test_seed("ec_2_1_over_three_bucket_prefixes");
    let (mut garage, credentials) = garage_with_key().await;
    // Four prefixes of one bucket, each its own failure domain (`host`);
    // p1 goes through Garage node 3's endpoint, the others through node 1.
    let bucket = |name: &str, node: usize| prefix_store(&garage, node, &credentials, name, "");
    let mut options = ClusterOptions::new(Vec::new());
    options.buckets = vec![
        bucket("p1", 2),
        bucket("p2", 0),
        bucket("p3", 0),
        bucket("p4", 0),
    ];
    options.chunk_size = "8 MiB".into();
    options.repair =
        "grace = \"3s\"\naudit_every = \"2s\"\norphan_delay = \"15s\"\nbandwidth = \"0\"".into();
    let cluster = Cluster::start(options);
    let said = cluster.cairn(&["class", "create", "arch", "--ec", "2+1", "--spread", "host"]);
    assert!(said.contains("needs 3 host domains"), "{said}");
    cluster.class_set("/", "arch");
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let mut files = write_mix(&mut nfs, &root, "", seed).await;
    for i in 0..3 {
        let data = random_bytes(seed ^ (100 + i as u64), (5 << 20) + i * 4099);
        files.push(write_file(&mut nfs, &root, "", &format!("big{i}"), data).await);
    }
    cluster.wait_drained(DRAIN_DEADLINE);
    let shards_on = |cluster: &Cluster, store: &str| {
        cluster
            .chunks()
            .iter()
            .filter(|c| c.class == "arch")
            .flat_map(|c| c.objects.clone())
            .filter(|(s, _)| s == store)
            .count()
    };
    let chunks: Vec<_> = cluster
        .chunks()
        .into_iter()
        .filter(|c| c.class == "arch")
        .collect();
    for c in &chunks {
        let hosts: BTreeSet<&String> = c.stores.iter().collect();
        assert_eq!(
            (c.layout.as_str(), hosts.len()),
            ("ec 2+1", 3),
            "chunk {} on {:?}",
            c.key,
            c.stores
        );
    }
    assert!(
        shards_on(&cluster, "p1") > 0,
        "p1 holds no shard: {chunks:?}"
    );

    // p1's way to the bucket is gone (its Garage node is down; the others
    // still serve): every byte reads, rebuilt from the other two shards.
    garage.kill_node(2);
    cluster.wait_store_online("p1", false, PROBE_DEADLINE);
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "with p1 unreachable").await;
    let status = cluster.status();
    let p1 = status["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == "p1")
        .cloned()
        .unwrap_or_default();
    assert!(
        p1["why"].as_str().is_some_and(|w| !w.is_empty()),
        "cairn status says why p1 is not answering: {p1}"
    );

    // After the grace, repair rebuilds p1's shards onto the spare.
    cairn_tests::poll_until(
        "every arch chunk whole again without p1",
        std::time::Duration::from_secs(120),
        || {
            let on_p1 = shards_on(&cluster, "p1");
            let status = cluster.try_cairn_json(&["status"])?;
            let health = class_health(&status, "arch");
            match (on_p1, health["healthy"].as_u64()) {
                (0, Some(n)) if n == chunks.len() as u64 => Ok(()),
                _ => Err(format!("{on_p1} shards on p1; health {health}")),
            }
        },
    );
    assert!(shards_on(&cluster, "p4") > 0, "nothing was rebuilt onto p4");
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "after the repair, p1 still gone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_bucket_slows_the_drain_and_loses_nothing() {
    let seed = test_seed("a_throttling_bucket");
    let (garage, credentials) = garage_with_key().await;
    let proxy = cairn_tests::slowdown::SlowDown::start(garage.s3_addr(0));
    let mut options = ClusterOptions::new(vec![
        StoreSpec::new("d1", "h1", &["local"]),
        StoreSpec::new("d2", "h2", &["local"]),
    ]);
    options.buckets = vec![BucketStore {
        name: "b1".into(),
        table: garage
            .store_table(0, "cairn", "c1", &credentials, &["s3"])
            .replace(&garage.endpoint(), &proxy.endpoint()),
        online: true,
    }];
    let mut cluster = Cluster::start(options);
    cluster.class_create("mixed", &["--replicas", "2", "--labels", "local,s3"]);
    cluster.class_set("/", "mixed");

    // The provider throttles every request while the files are written
    // and their drain starts.
    proxy.set_throttling(true);
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let mut files = write_mix(&mut nfs, &root, "", seed).await;
    for i in 0..50 {
        let data = random_bytes(seed ^ (700 + i as u64), 10_000 + i * 997);
        files.push(write_file(&mut nfs, &root, "", &format!("small{i}"), data).await);
    }
    cairn_tests::poll_until(
        "the gateway's requests to the bucket are being throttled",
        std::time::Duration::from_secs(60),
        || match proxy.refused() {
            n if n >= 10 => Ok(()),
            n => Err(format!("{n} requests answered 503 SlowDown")),
        },
    );
    let logs = cluster.logs();
    assert!(
        logs.contains("SlowDown") || logs.contains("503"),
        "the gateway's log shows the throttling"
    );
    proxy.set_throttling(false);

    // Once the provider takes requests again, every chunk gets its copy in
    // the bucket, and reads from the bucket alone are exact.
    cluster.wait_drained(DRAIN_DEADLINE);
    cairn_tests::poll_until(
        "every chunk of the class has its copy in the bucket",
        std::time::Duration::from_secs(120),
        || {
            let chunks = cluster.chunks();
            let status = cluster.try_cairn_json(&["status"])?;
            let health = class_health(&status, "mixed");
            let off_bucket = chunks
                .iter()
                .filter(|c| !c.stores.iter().any(|s| s == "b1"))
                .count();
            match (off_bucket, health["healthy"].as_u64()) {
                (0, Some(n)) if n == chunks.len() as u64 && n > 0 => Ok(()),
                _ => Err(format!(
                    "{off_bucket} of {} chunks not in the bucket; health {health}",
                    chunks.len()
                )),
            }
        },
    );
    cluster.store_mut("d1").kill9();
    cluster.store_mut("d2").kill9();
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "from the bucket after the throttling").await;
    assert!(proxy.refused() >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bucket_settings_are_named_in_status_and_the_rest_works() {
    let seed = test_seed("wrong_bucket_settings");
    let (garage, credentials) = garage_with_key().await;
    let wrong_keys = garage.dir().join("wrong.credentials");
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&wrong_keys)
            .and_then(|mut f| {
                use std::io::Write;
                writeln!(
                    f,
                    "access_key_id = \"{}\"\nsecret_access_key = \"{}\"",
                    garage.key_id,
                    "0".repeat(64)
                )
            })
            .expect("write the wrong credentials");
    }
    let mut options = ClusterOptions::new(vec![
        StoreSpec::new("d1", "h1", &[]),
        StoreSpec::new("d2", "h2", &[]),
    ]);
    options.buckets = vec![
        BucketStore {
            name: "missing".into(),
            table: garage.store_table(0, "no-such-bucket", "c1", &credentials, &["s3"]),
            online: false,
        },
        BucketStore {
            name: "refused".into(),
            table: garage.store_table(0, "cairn", "c1", &wrong_keys, &["s3"]),
            online: false,
        },
    ];
    let cluster = Cluster::start(options);
    // Both bucket stores are offline, each with what to fix.
    let why_of = |name: &str| {
        cluster.status()["stores"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .map(|s| s["why"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    cairn_tests::poll_until(
        "cairn status says why each bucket store is offline",
        std::time::Duration::from_secs(30),
        || {
            let (missing, refused) = (why_of("missing"), why_of("refused"));
            if missing.contains("no-such-bucket")
                && missing.contains("fix")
                && refused.contains("fix")
            {
                Ok(())
            } else {
                Err(format!("missing: {missing:?}; refused: {refused:?}"))
            }
        },
    );
    let table = cluster.cairn(&["status"]);
    assert!(table.contains("  missing: "), "{table}");
    assert!(table.contains("  refused: "), "{table}");

    // The cairn stores carry the data meanwhile, and nothing is lost.
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let files = write_mix(&mut nfs, &root, "", seed).await;
    cluster.wait_drained(DRAIN_DEADLINE);
    for c in cluster.chunks() {
        assert!(
            c.stores.iter().all(|s| s == "d1" || s == "d2"),
            "chunk {} placed on {:?}",
            c.key,
            c.stores
        );
    }
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "with both bucket stores refused").await;

    // A config mistake stops the start, naming every problem.
    let bad = cluster.scratch().join("bad.toml");
    let text = cluster.gateway_config_text()
        + "\n[[stores]]\nname = \"half\"\nkind = \"s3\"\nbucket = \"cairn\"\n";
    std::fs::write(&bad, text).expect("write the bad config");
    let out = std::process::Command::new(cairn_tests::gateway::cairn_bin())
        .arg("gateway")
        .arg("--config")
        .arg(&bad)
        .output()
        .expect("run cairn gateway");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    for field in ["stores[4].endpoint", "stores[4].capacity"] {
        assert!(said.contains(field), "{field} is named: {said}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_scrubs_a_bucket_and_repair_replaces_a_rotten_object() {
    use object_store::{Attribute, Attributes, ObjectStore, PutOptions, PutPayload};
    let seed = test_seed("the_gateway_scrubs_a_bucket");
    let (garage, credentials) = garage_with_key().await;
    // Two bucket prefixes (their own hosts), scrubbed every 2 s at no cap.
    let bucket = |name: &str| {
        let extra = "scrub_every = \"2s\"\nscrub_bandwidth = \"0\"";
        prefix_store(&garage, 0, &credentials, name, extra)
    };
    let mut options = ClusterOptions::new(vec![StoreSpec::new("d1", "h1", &["local"])]);
    options.buckets = vec![bucket("b1"), bucket("b2")];
    let mut cluster = Cluster::start(options);
    cluster.class_create("mixed", &["--replicas", "2", "--labels", "local,s3"]);
    cluster.class_set("/", "mixed");
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let files = write_mix(&mut nfs, &root, "", seed).await;
    cluster.wait_drained(DRAIN_DEADLINE);

    // Rot one object in a bucket: other bytes under the same key, with the
    // crc32c cairn stored it with (as bit rot at the provider would leave).
    let (victim, key) = cluster
        .chunks()
        .iter()
        .flat_map(|c| c.objects.clone())
        .find(|(s, _)| s.starts_with('b'))
        .expect("an object in a bucket");
    let lister = direct(&garage, "cairn", &victim, cluster.secret_path());
    let stat = lister.stat(&key).await.expect("stat the victim");
    let mut bytes = lister.get(&key, 0, stat.len, None).await.expect("read it");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let raw = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(garage.endpoint())
        .with_bucket_name("cairn")
        .with_region(REGION)
        .with_access_key_id(&garage.key_id)
        .with_secret_access_key(&garage.secret_key)
        .with_virtual_hosted_style_request(false)
        .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
        .build()
        .expect("raw client");
    let mut attributes = Attributes::new();
    attributes.insert(
        Attribute::Metadata("cairn-crc32c".into()),
        format!("{:08x}", stat.crc).into(),
    );
    raw.put_opts(
        &object_store::path::Path::from(format!("{victim}/o/{key}")),
        PutPayload::from(bytes),
        PutOptions {
            attributes,
            ..Default::default()
        },
    )
    .await
    .expect("rot the object");
    assert_eq!(lister.stat(&key).await.expect("stat").crc, stat.crc);

    // The scrub finds it, the repair makes the copy again on the other
    // bucket, and the bucket copies alone read back exact.
    let other = if victim == "b1" { "b2" } else { "b1" };
    cairn_tests::poll_until(
        "the rotten copy is replaced",
        std::time::Duration::from_secs(90),
        || {
            let placed = cluster
                .chunks()
                .iter()
                .flat_map(|c| c.objects.clone())
                .any(|(s, k)| s == victim && k == key);
            if placed {
                Err(format!("{key} still placed on {victim}"))
            } else {
                Ok(())
            }
        },
    );
    let logs = cluster.logs();
    assert!(
        logs.contains("bit rot in a bucket"),
        "the scrub logs what it found"
    );
    let chunks = cluster.chunks();
    let remade = chunks
        .iter()
        .find(|c| c.objects.iter().any(|(_, k)| *k == key))
        .expect("the chunk is still there");
    assert!(
        remade.stores.iter().any(|s| s == other),
        "the copy was made again on {other}: {remade:?}"
    );
    cluster.store_mut("d1").kill9();
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "from the buckets after the repair").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_disks_age_into_ec_shards_across_three_buckets() {
    let seed = test_seed("replicas_on_disks_age_into_ec_shards");
    let (garage, credentials) = garage_with_key().await;
    // Three prefixes standing for buckets at three providers.
    let bucket = |name: &str| {
        prefix_store(
            &garage,
            0,
            &credentials,
            name,
            &format!("zone = \"{name}\""),
        )
    };
    let mut options = ClusterOptions::new(vec![
        StoreSpec::new("d1", "h1", &["local"]),
        StoreSpec::new("d2", "h2", &["local"]),
    ]);
    options.buckets = vec![bucket("p1"), bucket("p2"), bucket("p3")];
    let mut cluster = Cluster::start(options);
    let said = cluster.cairn(&[
        "class",
        "create",
        "aging",
        "--replicas",
        "2",
        "--labels",
        "local",
        "--archive-after",
        "3s",
        "--archive-ec",
        "2+1",
        "--archive-labels",
        "s3",
        "--archive-spread",
        "zone",
    ]);
    assert!(
        said.contains("archived chunks needs 3 zone domains"),
        "{said}"
    );
    cluster.class_set("/", "aging");
    let mut nfs = cluster.mount().await;
    let root = nfs.root.clone();
    let mut files = write_mix(&mut nfs, &root, "", seed).await;
    files.push(
        write_file(
            &mut nfs,
            &root,
            "",
            "extra",
            random_bytes(seed + 9, 5 << 20),
        )
        .await,
    );
    cluster.wait_drained(DRAIN_DEADLINE);

    // Every chunk ends as 2+1 shards, one in each bucket, and nothing of it
    // stays on the disks.
    cairn_tests::poll_until(
        "every chunk re-laid as shards across the three buckets",
        std::time::Duration::from_secs(90),
        || {
            let chunks = cluster.chunks();
            let left: Vec<_> = chunks
                .iter()
                .filter(|c| {
                    let mut on = c.stores.clone();
                    on.sort();
                    c.layout != "ec 2+1" || on != ["p1", "p2", "p3"]
                })
                .collect();
            match (left.is_empty(), chunks.is_empty()) {
                (true, false) => Ok(()),
                _ => Err(format!("not yet: {left:?}")),
            }
        },
    );
    for d in ["d1", "d2"] {
        cairn_tests::poll_until(
            &format!("{d} holds no chunk object any more"),
            std::time::Duration::from_secs(60),
            || match cluster.store(d).shard_keys().len() {
                0 => Ok(()),
                n => Err(format!("{n} objects left")),
            },
        );
    }
    cluster.store_mut("d1").kill9();
    cluster.store_mut("d2").kill9();
    drop_cache(&cluster);
    read_back(&mut nfs, &files, "from the shards in the buckets").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_nothing_references_is_collected_from_a_bucket() {
    let (garage, credentials) = garage_with_key().await;
    let mut options = ClusterOptions::new(vec![StoreSpec::new("d1", "h1", &[])]);
    options.buckets = vec![BucketStore {
        name: "b1".into(),
        table: garage.store_table(0, "cairn", "c1", &credentials, &[]),
        online: true,
    }];
    options.repair = "audit_every = \"1s\"\norphan_delay = \"3s\"".into();
    let mut cluster = Cluster::start(options);
    // A chunk object no chunk references (a drain that died between its
    // put and its commit leaves one), put beside the gateway's.
    let stray = "c00000000000f0001";
    let side = direct(&garage, "cairn", "c1", cluster.secret_path());
    side.put(stray, b"left behind")
        .await
        .expect("put the stray");
    // The gateway lists the bucket at its first audit after a start.
    cluster.stop_gateway();
    cluster.start_gateway();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let keys = bucket_keys(&garage, "cairn", "c1", cluster.secret_path()).await;
        if !keys.contains(stray) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stray object is still in the bucket after 60 s: {keys:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
