//! The S3 backend against a real three-node Garage cluster on 127.0.0.1:
//! the chunk-store contract every backend keeps, and wrong settings that
//! fail with what to fix.

use std::time::Duration;

use cairn_gateway::store::s3::{S3Settings, S3Store};
use cairn_gateway::store::{conformance, ChunkStore, StoreError};
use cairn_tests::garage::{Garage, REGION};
use cairn_tests::gateway::allocate_port;

/// How long a fresh cluster may take to serve S3 (its layout spreads).
const SETTLE: Duration = Duration::from_secs(60);

fn settings(garage: &Garage, bucket: &str, prefix: &str, cluster_id: &str) -> S3Settings {
    S3Settings {
        name: format!("bucket-{prefix}"),
        endpoint: garage.endpoint(),
        bucket: bucket.to_owned(),
        region: REGION.to_owned(),
        prefix: prefix.to_owned(),
        access_key_id: garage.key_id.clone(),
        secret_access_key: garage.secret_key.clone(),
        path_style: true,
        zone: "garage".to_owned(),
        host: "garage".to_owned(),
        labels: vec!["s3".to_owned()],
        capacity: 1 << 30,
        reserve: 0,
        cluster_id: cluster_id.to_owned(),
        scrub_every: Duration::ZERO,
        scrub_bandwidth: 0,
    }
}

async fn start(buckets: &'static [&'static str]) -> Garage {
    tokio::task::spawn_blocking(move || Garage::start(buckets))
        .await
        .expect("garage start")
}

/// The store's capacity once the cluster serves, polled (never slept).
async fn settled(store: &S3Store) {
    let start = tokio::time::Instant::now();
    loop {
        match store.capacity().await {
            Ok(_) => return,
            Err(e) if start.elapsed() > SETTLE => panic!("garage never served S3: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_keeps_the_chunk_store_contract() {
    let garage = start(&["cairn"]).await;
    let store = S3Store::new(settings(&garage, "cairn", "cluster-a", "id-a")).unwrap();
    settled(&store).await;
    conformance::check_all(&store).await;
    // Objects stay under their prefix: a second cluster's prefix in the
    // same bucket sees none of them, and its own are its own.
    store.put("c0000000000000b01", b"cluster a").await.unwrap();
    let other = S3Store::new(settings(&garage, "cairn", "cluster-b", "id-b")).unwrap();
    assert!(other.list(None, 100).await.unwrap().is_empty());
    other.put("c0000000000000b01", b"cluster b").await.unwrap();
    let a = store.get("c0000000000000b01", 0, 9, None).await.unwrap();
    let b = other.get("c0000000000000b01", 0, 9, None).await.unwrap();
    assert_eq!(
        (a.as_slice(), b.as_slice()),
        (&b"cluster a"[..], &b"cluster b"[..])
    );
    let (ida, idb) = (
        store.capacity().await.unwrap(),
        other.capacity().await.unwrap(),
    );
    assert_ne!(ida.store_uuid, idb.store_uuid);

    // An object past 16 MiB goes up in 8 MiB parts and reads back whole,
    // across a part boundary, and verified.
    let big: Vec<u8> = (0..(40usize << 20)).map(|i| (i % 251) as u8).collect();
    let before = garage.s3_requests(0);
    let put = store.put("c0000000000000b02", &big).await.unwrap();
    let after = garage.s3_requests(0);
    let count =
        |m: &std::collections::BTreeMap<String, u64>, op: &str| m.get(op).copied().unwrap_or(0);
    assert_eq!(
        (
            count(&after, "CreateMultipartUpload") - count(&before, "CreateMultipartUpload"),
            count(&after, "UploadPart") - count(&before, "UploadPart"),
        ),
        (1, 5),
        "{after:?}"
    );
    assert_eq!(put.len, big.len() as u64);
    assert_eq!(store.stat("c0000000000000b02").await.unwrap(), put);
    let across = store
        .get("c0000000000000b02", (8 << 20) - 10, 20, None)
        .await
        .unwrap();
    assert_eq!(across, &big[(8 << 20) - 10..(8 << 20) + 10]);
    let whole = store
        .get("c0000000000000b02", 0, big.len() as u64, None)
        .await
        .unwrap();
    assert!(whole == big, "the multipart object reads back different");
    store.get("c0000000000000b02", 0, 0, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_settings_fail_with_what_to_fix_and_change_nothing() {
    let garage = start(&["cairn"]).await;
    let good = S3Store::new(settings(&garage, "cairn", "p1", "id-a")).unwrap();
    settled(&good).await;
    good.put("c0000000000000c01", b"kept").await.unwrap();

    // A bucket that does not exist.
    let missing = S3Store::new(settings(&garage, "no-such-bucket", "p1", "id-a")).unwrap();
    let err = missing.capacity().await.unwrap_err();
    let text = err.to_string();
    eprintln!("refused as it should be: {text}");
    assert!(!err.retryable(), "{text}");
    assert!(
        text.contains("no-such-bucket") && text.contains("fix"),
        "{text}"
    );

    // Credentials the bucket refuses.
    let mut wrong = settings(&garage, "cairn", "p1", "id-a");
    wrong.secret_access_key = "0".repeat(64);
    let err = S3Store::new(wrong).unwrap().capacity().await.unwrap_err();
    let text = err.to_string();
    eprintln!("refused as it should be: {text}");
    assert!(matches!(err, StoreError::Refused { .. }), "{text}");
    assert!(
        text.contains("credentials") && text.contains("fix"),
        "{text}"
    );

    // A region the endpoint does not serve.
    let mut elsewhere = settings(&garage, "cairn", "p1", "id-a");
    elsewhere.region = "mars-north-1".to_owned();
    let err = S3Store::new(elsewhere)
        .unwrap()
        .capacity()
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("refused as it should be: {text}");
    assert!(!err.retryable(), "{text}");
    assert!(
        text.contains("fix: set `region` to the bucket's region (now \"mars-north-1\")"),
        "{text}"
    );

    // Another cluster's prefix.
    let foreign = S3Store::new(settings(&garage, "cairn", "p1", "id-b")).unwrap();
    let err = foreign.put("c0000000000000c02", b"x").await.unwrap_err();
    let text = err.to_string();
    eprintln!("refused as it should be: {text}");
    assert!(
        text.contains("another cairn cluster") && text.contains("fix"),
        "{text}"
    );

    // Nobody listening at the endpoint: retryable, names the address.
    let mut gone = settings(&garage, "cairn", "p1", "id-a");
    gone.endpoint = format!("http://127.0.0.1:{}", allocate_port());
    let err = S3Store::new(gone).unwrap().capacity().await.unwrap_err();
    assert!(err.retryable(), "{err}");

    // Nothing the refused stores tried changed what the good one holds.
    assert_eq!(
        good.get("c0000000000000c01", 0, 4, None).await.unwrap(),
        b"kept"
    );
    let keys: Vec<String> = good
        .list(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["c0000000000000c01"]);
}
