//! Faults a store must survive without losing or changing what it holds: a
//! flipped byte on disk, a client without the secret, garbage and lying
//! frames, a second daemon, a foreign or uninitialised folder, a full disk.

mod common;

use std::time::Duration;

use cairn_chunkstore::layout::{shard_path, SHARD_PAYLOAD_OFFSET};
use cairn_chunkstore::protocol::{encode_request, Request};
use cairn_chunkstore::transport::NoiseStream;
use cairn_chunkstore::{init, Secret, Status, StoreClient, StoreError};
use cairn_config::ByteSize;
use common::{eventually, files_under, Rng, TestStore};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_is_detected_on_get_and_quarantined() {
    let store = TestStore::start().await;
    let mut client = store.client().await;
    let data = Rng(3).bytes(200_000);
    client.put("victim", &data).await.unwrap();
    client.put("bystander", b"fine").await.unwrap();

    let path = shard_path(&store.data_dir(), "victim");
    let mut raw = std::fs::read(&path).unwrap();
    raw[SHARD_PAYLOAD_OFFSET as usize + 150_000] ^= 0x01;
    std::fs::write(&path, &raw).unwrap();

    // A range in another check block (32 KiB for a shard this small) is
    // served: a get reads and checks only the check blocks that cover it.
    assert_eq!(client.get("victim", 0, 10).await.unwrap(), &data[..10]);
    assert!(path.exists());
    // A range that avoids the flipped byte but shares its check block is
    // refused: the whole check block is checked.
    // (140,000 and 150,000 both lie in the fifth 32 KiB block.)
    let err = client.get("victim", 140_000, 10).await.unwrap_err();
    assert_eq!(err.status(), Status::Corrupt, "{err}");
    assert!(!err.retryable());
    assert!(!path.exists(), "corrupt shard left in place");
    let quarantined = files_under(&store.data_dir().join("quarantine"));
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(std::fs::read(&quarantined[0]).unwrap(), raw);

    assert_eq!(
        client.get("victim", 0, 10).await.unwrap_err().status(),
        Status::NotFound
    );
    let keys: Vec<String> = client
        .list(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["bystander"]);
    assert_eq!(client.get("bystander", 0, 4).await.unwrap(), b"fine");

    // A truncated file is caught by its header's length.
    client.put("short", &data).await.unwrap();
    let path = shard_path(&store.data_dir(), "short");
    let raw = std::fs::read(&path).unwrap();
    std::fs::write(&path, &raw[..raw.len() - 1]).unwrap();
    assert_eq!(
        client.stat("short").await.unwrap_err().status(),
        Status::Corrupt
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_the_secret_is_refused_and_store_keeps_serving() {
    let store = TestStore::start().await;
    store
        .client()
        .await
        .put("private", b"ciphertext")
        .await
        .unwrap();

    let wrong = Secret::from_bytes(&[0x11; 64]);
    let err = StoreClient::connect(store.addr, &wrong).await.unwrap_err();
    assert!(matches!(err, StoreError::Handshake { .. }), "{err}");
    assert!(!err.retryable());
    assert!(err.to_string().contains(&store.addr.to_string()), "{err}");

    // A raw initiator with the wrong key gets no handshake reply, only a close.
    let tcp = TcpStream::connect(store.addr).await.unwrap();
    assert!(NoiseStream::initiate(tcp, &wrong).await.is_err());

    let mut client = store.client().await;
    assert_eq!(client.get("private", 0, 10).await.unwrap(), b"ciphertext");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_lying_frames_change_nothing_and_do_not_stop_the_store() {
    let store = TestStore::start().await;
    let mut client = store.client().await;
    let mut rng = Rng(0xfeed);
    let stored: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("shard-{i}"), rng.bytes(10_000 * (i + 1))))
        .collect();
    for (key, data) in &stored {
        client.put(key, data).await.unwrap();
    }
    let before = files_under(&store.data_dir().join("shards"));

    // A connection that announces a 65535-byte handshake message, sends 10
    // bytes and stays open: it must not hold up anyone else.
    let mut liar = TcpStream::connect(store.addr).await.unwrap();
    liar.write_all(&[0xff, 0xff]).await.unwrap();
    liar.write_all(&rng.bytes(10)).await.unwrap();

    // 1,000 unauthenticated connections of random or truncated bytes.
    for i in 0..1000u64 {
        let n = rng.below(300) as usize;
        let mut tcp = TcpStream::connect(store.addr).await.unwrap();
        let bytes = match i % 4 {
            0 => rng.bytes(n),
            // A plausible handshake length with a short or random body.
            1 => {
                let mut b = vec![0, 48];
                b.extend(rng.bytes(n / 5));
                b
            }
            // A length lie, then close.
            2 => vec![0xff, 0xff, 1, 2, 3],
            _ => vec![rng.below(256) as u8],
        };
        let _ = tcp.write_all(&bytes).await;
        drop(tcp);
    }

    // Authenticated peers sending malformed frames, and a put cut short.
    for i in 0..50u64 {
        let tcp = TcpStream::connect(store.addr).await.unwrap();
        let mut stream = NoiseStream::initiate(tcp, &store.secret).await.unwrap();
        match i % 5 {
            0 => {
                let n = 1 + rng.below(200) as usize;
                let body = rng.bytes(n);
                let _ = stream.write_frame(&body).await;
            }
            1 => {
                // Frame length far over the bound.
                let _ = stream.write(&u32::MAX.to_le_bytes()).await;
                let _ = stream.write(&rng.bytes(64)).await;
            }
            2 => {
                // Put that overwrites a real shard, but the data stops early.
                let put = Request::Put {
                    key: "shard-0".into(),
                    len: 50_000,
                };
                let _ = stream.write_frame(&encode_request(&put)).await;
                let _ = stream.write(&rng.bytes(20_000)).await;
            }
            3 => {
                // Delete with a path in the key.
                let mut body = encode_request(&Request::Delete {
                    key: "shard-1".into(),
                });
                body[2..8].copy_from_slice(b"../../");
                let _ = stream.write_frame(&body).await;
            }
            _ => {
                // A valid request with trailing junk.
                let mut body = encode_request(&Request::Delete {
                    key: "shard-2".into(),
                });
                body.push(0);
                let _ = stream.write_frame(&body).await;
            }
        }
        let _ = stream.flush().await;
        drop(stream);
    }

    // The store answers, holds exactly what it held, and drops cut-short temps.
    let mut client = store.client().await;
    client.health().await.unwrap();
    let data_dir = store.data_dir();
    eventually("no temp files left", || {
        common::temp_files(&data_dir).is_empty()
    })
    .await;
    assert_eq!(files_under(&store.data_dir().join("shards")), before);
    let listed: Vec<String> = client
        .list(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        listed,
        stored.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    );
    for (key, data) in &stored {
        assert_eq!(&client.get(key, 0, data.len() as u64).await.unwrap(), data);
    }
    drop(liar);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_daemon_on_the_same_folder_is_refused() {
    let store = TestStore::start().await;
    let err = common::spawn(store.cfg.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("another chunk-store daemon"),
        "{err}"
    );
    store.client().await.health().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_without_marker_or_of_another_cluster_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_secret(&tmp.path().join("cluster.secret"), 0x01);
    let cfg = common::config(tmp.path(), ByteSize(0));

    let err = common::spawn(cfg.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotInitialized { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("run `cairn chunkstore init --config"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&cfg.data_dir).unwrap().next().is_none(),
        "refusing must not write into the folder"
    );

    let first = init(&cfg).unwrap();
    assert!(first.created);
    assert!(
        first
            .to_string()
            .starts_with("initialised chunk-store folder"),
        "{first}"
    );
    let again = init(&cfg).unwrap();
    assert!(!again.created);
    assert_eq!(again.store_uuid, first.store_uuid);

    // Same folder, another cluster's secret.
    common::write_secret(&tmp.path().join("cluster.secret"), 0x02);
    let err = common::spawn(cfg.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::ForeignCluster { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("this drive belongs to another cluster"),
        "{err}"
    );
    assert!(matches!(init(&cfg), Err(StoreError::ForeignCluster { .. })));

    // init refuses a non-empty folder that has no marker.
    let other = tempfile::tempdir().unwrap();
    common::write_secret(&other.path().join("cluster.secret"), 0x01);
    let cfg = common::config(other.path(), ByteSize(0));
    std::fs::write(cfg.data_dir.join("someone-elses-file"), b"x").unwrap();
    let err = init(&cfg).unwrap_err();
    assert!(matches!(err, StoreError::NotEmpty { .. }), "{err}");
    assert!(!cfg.data_dir.join("cairn-store.marker").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_past_the_reserve_is_refused_with_no_space() {
    let store = TestStore::start_with(ByteSize::tib(1 << 20)).await;
    let mut client = store.client().await;
    let err = client.put("too-much", &[7u8; 100_000]).await.unwrap_err();
    assert_eq!(err.status(), Status::NoSpace, "{err}");
    assert!(!err.retryable());
    assert!(err.to_string().contains("too-much"), "{err}");
    // The connection stays in step and nothing was stored.
    client.health().await.unwrap();
    assert!(client.list(None, 10).await.unwrap().is_empty());
    assert!(common::temp_files(&store.data_dir()).is_empty());
    let cap = client.capacity().await.unwrap();
    assert_eq!(cap.reserve, ByteSize::tib(1 << 20).bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_is_a_retryable_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let secret = Secret::from_bytes(&[1; 32]);
    let err = tokio::time::timeout(Duration::from_secs(15), StoreClient::connect(addr, &secret))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.retryable(), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_gets_check_their_blocks_and_a_full_check_finds_any_flip() {
    let store = TestStore::start().await;
    let mut client = store.client().await;
    let data = Rng(9).bytes(3 << 20);
    client.put("three", &data).await.unwrap();
    let path = shard_path(&store.data_dir(), "three");
    let mut raw = std::fs::read(&path).unwrap();
    raw[SHARD_PAYLOAD_OFFSET as usize + (2 << 20) + 5] ^= 0x10;
    std::fs::write(&path, &raw).unwrap();

    // Blocks 0 and 1 are intact: a range in them reads (and reads only them).
    let got = client.get("three", 1000, 1 << 20).await.unwrap();
    assert_eq!(got, &data[1000..1000 + (1 << 20)]);
    assert!(path.exists());
    // A range touching block 2 is refused (a scrub's full check, len 0, checks all).
    let err = client.get("three", (2 << 20) + 100, 10).await.unwrap_err();
    assert_eq!(err.status(), Status::Corrupt, "{err}");
    assert!(!path.exists(), "corrupt shard left in place");
}
