//! The bucket-store benchmark, for `bench/s3.sh`: a three-node Garage on
//! 127.0.0.1 and a gateway whose one store is a prefix of a Garage bucket
//! (class: 1 replica, label `s3`, on the export root), against a plain
//! `object_store` S3 client on the same bucket, in the same run:
//!
//! - drain: `nfs-cp` of a `SIZE_MB` MiB random file into the gateway, then
//!   the time until `cairn status` shows no backlog (counted from nfs-cp's
//!   end, less the 500 ms quiet), against the plain client PUTting the same
//!   bytes as 32 MiB objects (the drain's chunk size), 4 at once (its
//!   `store_concurrency`);
//! - cold read: `cairn cache drop`, then `nfs-cp` of the file out of the
//!   gateway, against the plain client reading the same objects with
//!   ranged GETs of 4 MiB (cairn's block), 4 at once;
//! - small files: `COUNT` files of 4 KiB (CREATE + FILE_SYNC WRITE over one
//!   NFS connection), drained; the S3 requests Garage counted meanwhile
//!   (its `api_s3_request_counter`), per operation.
//!
//! Prints `key=value` lines. `CAIRN_BIN` names the cairn binary,
//! `CAIRN_GARAGE` the garage binary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use nfs3_types::nfs3::stable_how;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as S3Path;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use cairn_tests::garage::{Garage, REGION};
use cairn_tests::{libnfs, random_bytes, BucketStore, Cluster, ClusterOptions};

const CHUNK: usize = 32 << 20;
const BLOCK: usize = 4 << 20;
const IN_FLIGHT: usize = 4;
const QUIET: Duration = Duration::from_millis(500);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mb_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn main() -> Result<()> {
    let size = env("SIZE_MB", 1024) << 20;
    let count = env("COUNT", 10_000);
    let rt = tokio::runtime::Runtime::new()?;
    let garage = Garage::start(&["bench"]);
    let credentials = garage.dir().join("bench.credentials");
    garage.write_credentials(&credentials);
    let mut options = ClusterOptions::new(Vec::new());
    options.quiet = "500ms".into();
    options.log_level = "warn".into();
    options.buckets = vec![BucketStore {
        name: "bucket".into(),
        table: garage.store_table(0, "bench", "cairn", &credentials, &["s3"]),
        online: true,
    }];
    let cluster = Cluster::start(options);
    cluster.class_create("bucket", &["--replicas", "1", "--labels", "s3"]);
    cluster.class_set("/", "bucket");
    let plain = AmazonS3Builder::new()
        .with_endpoint(garage.endpoint())
        .with_bucket_name("bench")
        .with_region(REGION)
        .with_access_key_id(&garage.key_id)
        .with_secret_access_key(&garage.secret_key)
        .with_virtual_hosted_style_request(false)
        .with_client_options(ClientOptions::new().with_allow_http(true))
        .build()?;
    let plain: Arc<dyn ObjectStore> = Arc::new(plain);

    // The source, made once: the same bytes for both.
    let src = cluster.scratch().join("source.bin");
    cairn_tests::write_random_file(&src, 0x5eed, size as u64)?;
    let bytes = std::fs::read(&src)?;

    // Drain.
    libnfs::upload(cluster.gateway_port(), &src, "big.bin").map_err(anyhow::Error::msg)?;
    let t = Instant::now();
    cluster.wait_drained(Duration::from_secs(1800));
    let drain_secs = (t.elapsed().saturating_sub(QUIET)).as_secs_f64();
    let t = Instant::now();
    rt.block_on(async {
        let pieces: Vec<(usize, Vec<u8>)> = bytes
            .chunks(CHUNK)
            .map(|c| c.to_vec())
            .enumerate()
            .collect();
        let mut puts = futures_util::stream::iter(pieces.into_iter().map(|(i, piece)| {
            let plain = plain.clone();
            async move {
                plain
                    .put(
                        &S3Path::from(format!("plain/{i:05}")),
                        PutPayload::from(piece),
                    )
                    .await
            }
        }))
        .buffer_unordered(IN_FLIGHT);
        while let Some(r) = puts.next().await {
            r.context("plain put")?;
        }
        anyhow::Ok(())
    })?;
    let put_secs = t.elapsed().as_secs_f64();
    println!("drain_mb_s={:.1}", mb_s(size, drain_secs));
    println!("plain_put_mb_s={:.1}", mb_s(size, put_secs));
    println!("drain_ratio={:.2}", put_secs / drain_secs);

    // Cold read.
    cluster.cache_drop();
    let out = cluster.scratch().join("out.bin");
    let t = Instant::now();
    libnfs::download(cluster.gateway_port(), "big.bin", &out).map_err(anyhow::Error::msg)?;
    let read_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(std::fs::read(&out)? == bytes, "the file read back differs");
    std::fs::remove_file(&out)?;
    let t = Instant::now();
    let got: usize = rt.block_on(async {
        let ranges: Vec<(String, usize)> = (0..size)
            .step_by(BLOCK)
            .map(|at| (format!("plain/{:05}", at / CHUNK), at % CHUNK))
            .collect();
        let mut gets = futures_util::stream::iter(ranges.into_iter().map(|(key, at)| {
            let plain = plain.clone();
            async move {
                let options = GetOptions {
                    range: Some(GetRange::Bounded(at as u64..(at + BLOCK) as u64)),
                    ..GetOptions::default()
                };
                plain
                    .get_opts(&S3Path::from(key), options)
                    .await?
                    .bytes()
                    .await
            }
        }))
        .buffer_unordered(IN_FLIGHT);
        let mut total = 0;
        while let Some(r) = gets.next().await {
            total += r.context("plain ranged get")?.len();
        }
        anyhow::Ok(total)
    })?;
    let get_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(got == size, "the plain client read {got} bytes");
    println!("cold_read_mb_s={:.1}", mb_s(size, read_secs));
    println!("plain_get_mb_s={:.1}", mb_s(size, get_secs));
    println!("cold_read_ratio={:.2}", get_secs / read_secs);

    // Small files: the requests they cost.
    let before = garage.s3_requests(0);
    let t = Instant::now();
    rt.block_on(async {
        let mut nfs = cluster.mount().await;
        let root = nfs.root.clone();
        let dir = nfs.mkdir(&root, "small", 0o755).await.context("mkdir")?;
        for i in 0..count {
            let fh = nfs
                .create(&dir, &format!("f{i:05}"), 0o644)
                .await
                .context("create")?;
            nfs.write_all(&fh, 0, &random_bytes(i as u64, 4096), stable_how::FILE_SYNC)
                .await
                .context("write")?;
        }
        anyhow::Ok(())
    })?;
    let create_secs = t.elapsed().as_secs_f64();
    cluster.wait_drained(Duration::from_secs(600));
    let after = garage.s3_requests(0);
    let spent: BTreeMap<&String, u64> = after
        .iter()
        .map(|(op, n)| (op, n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let chunks = cluster.chunks().len();
    println!("small_files={count}");
    println!(
        "small_create_files_per_sec={:.0}",
        count as f64 / create_secs
    );
    println!("small_chunks_total={chunks}");
    for (op, n) in &spent {
        println!("small_requests_{op}={n}");
    }
    Ok(())
}
