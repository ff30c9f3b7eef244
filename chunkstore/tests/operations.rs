//! Every operation round-trips through a real server over the Noise link:
//! put (streamed, multi-message), full and ranged get, stat, paged list,
//! delete, capacity, health; and the shard file has the documented layout.

mod common;

use cairn_chunkstore::layout::{
    check_block_for, shard_path, ShardHeader, SHARD_PAYLOAD_OFFSET, V3_CHECK_BLOCK,
};
use cairn_chunkstore::{Status, StoreError};
use common::{Rng, TestStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_stat_list_delete_round_trip() {
    let store = TestStore::start().await;
    let mut client = store.client().await;
    client.health().await.unwrap();

    let mut rng = Rng(7);
    let big = rng.bytes(3 * 1024 * 1024 + 17); // spans many Noise messages and put pieces
    let small = rng.bytes(1000);
    let stat = client.put("chunk-b", &big).await.unwrap();
    assert_eq!(stat.len, big.len() as u64);
    assert_eq!(stat.crc, crc32c::crc32c(&big));
    client.put("chunk-a", &small).await.unwrap();
    client.put("chunk-empty", &[]).await.unwrap();

    assert_eq!(
        client.get("chunk-b", 0, big.len() as u64).await.unwrap(),
        big
    );
    assert_eq!(
        client.get("chunk-b", 70_000, 200_000).await.unwrap(),
        &big[70_000..270_000]
    );
    assert_eq!(client.get("chunk-a", 999, 1).await.unwrap(), &small[999..]);
    assert_eq!(client.get("chunk-empty", 0, 0).await.unwrap(), b"");

    let err = client.get("chunk-a", 900, 101).await.unwrap_err();
    assert_eq!(err.status(), Status::InvalidRange, "{err}");
    assert!(err.to_string().contains(&store.addr.to_string()), "{err}");
    assert!(!err.retryable());
    let err = client.get("missing", 0, 1).await.unwrap_err();
    assert_eq!(err.status(), Status::NotFound, "{err}");
    assert!(err.to_string().contains("get"), "{err}");

    let stat = client.stat("chunk-a").await.unwrap();
    assert_eq!((stat.len, stat.crc), (1000, crc32c::crc32c(&small)));

    let keys: Vec<(String, u64)> = client
        .list(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.len))
        .collect();
    assert_eq!(
        keys,
        [
            ("chunk-a".to_owned(), 1000),
            ("chunk-b".to_owned(), big.len() as u64),
            ("chunk-empty".to_owned(), 0)
        ]
    );
    let page = client.list(Some("chunk-a"), 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].key, "chunk-b");
    assert!(client
        .list(Some("chunk-empty"), 10)
        .await
        .unwrap()
        .is_empty());

    let cap = client.capacity().await.unwrap();
    assert_eq!(
        (cap.zone.as_str(), cap.host.as_str(), cap.name.as_str()),
        ("zone-a", "host-a", "store-a")
    );
    assert_eq!(cap.labels, ["hdd"]);
    assert_eq!(cap.shards, 3);
    assert_eq!(cap.stored, 1000 + big.len() as u64);
    assert!(cap.total >= cap.free && cap.total > 0, "{cap:?}");
    assert_eq!(cap.store_uuid.len(), 36);

    // Overwrite, then delete (idempotently).
    client.put("chunk-a", b"new").await.unwrap();
    assert_eq!(client.get("chunk-a", 0, 3).await.unwrap(), b"new");
    assert!(client.delete("chunk-a").await.unwrap());
    assert!(!client.delete("chunk-a").await.unwrap());
    assert_eq!(
        client.stat("chunk-a").await.unwrap_err().status(),
        Status::NotFound
    );

    // Bad keys are refused before anything is sent.
    let err = client.put("../escape", b"x").await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidKey { .. }), "{err}");
    assert!(client.is_connected());

    // The file on disk has the documented header and holds the payload as sent.
    let raw = std::fs::read(shard_path(&store.data_dir(), "chunk-b")).unwrap();
    assert_eq!(&raw[0..8], b"CAIRNSHD");
    assert_eq!(u16::from_le_bytes([raw[8], raw[9]]), 4);
    assert_eq!(
        u64::from_le_bytes(raw[12..20].try_into().unwrap()),
        big.len() as u64
    );
    assert_eq!(
        u32::from_le_bytes(raw[20..24].try_into().unwrap()),
        crc32c::crc32c(&big)
    );
    // 32 KiB check blocks for a payload this small, each with its crc: 96
    // full ones and 17 bytes.
    let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().unwrap());
    assert_eq!(u32_at(24), 32 << 10);
    assert_eq!(check_block_for(big.len() as u64), 32 << 10);
    let blocks = big.chunks(32 << 10).count();
    assert_eq!(blocks, 97);
    for (i, block) in big.chunks(32 << 10).enumerate() {
        assert_eq!(u32_at(28 + 4 * i), crc32c::crc32c(block), "block {i}");
    }
    let payload_at = SHARD_PAYLOAD_OFFSET as usize;
    assert_eq!(payload_at, 4096, "the payload starts on a 4 KiB boundary");
    assert!(raw[28 + 4 * blocks..payload_at].iter().all(|&b| b == 0));
    assert_eq!(&raw[payload_at..], &big[..]);
    assert!(common::temp_files(&store.data_dir()).is_empty());
}

/// A shard a version-3 store wrote (1 MiB check blocks) still reads, whole
/// and by range, and a flipped byte in it is still caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_3_shards_still_read() {
    let store = TestStore::start().await;
    let mut client = store.client().await;
    let data = Rng(9).bytes((2 << 20) + 333);
    client.put("old", &data).await.unwrap();
    let path = shard_path(&store.data_dir(), "old");
    let mut raw = std::fs::read(&path).unwrap();
    let v3 = ShardHeader {
        len: data.len() as u64,
        crc: crc32c::crc32c(&data),
        check_block: V3_CHECK_BLOCK,
        block_crcs: data.chunks(1 << 20).map(crc32c::crc32c).collect(),
    };
    raw[..SHARD_PAYLOAD_OFFSET as usize].fill(0);
    let header = v3.encode();
    raw[..header.len()].copy_from_slice(&header);
    assert_eq!(raw[8], 3);
    std::fs::write(&path, &raw).unwrap();

    let len = data.len() as u64;
    assert_eq!(client.get("old", 0, len).await.unwrap(), data);
    let at = (1 << 20) - 5;
    assert_eq!(
        client.get("old", at as u64, 4096).await.unwrap(),
        &data[at..at + 4096]
    );
    assert_eq!(client.stat("old").await.unwrap().len, len);

    // Its check blocks are a megabyte: a flip anywhere in the first one
    // fails a read of any range in it.
    raw[SHARD_PAYLOAD_OFFSET as usize + 900_000] ^= 0x02;
    std::fs::write(&path, &raw).unwrap();
    let err = client.get("old", 0, 10).await.unwrap_err();
    assert_eq!(err.status(), Status::Corrupt, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once() {
    let store = TestStore::start().await;
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let (addr, secret) = (store.addr, store.secret.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = cairn_chunkstore::StoreClient::connect(addr, &secret)
                .await
                .unwrap();
            let data = Rng(i + 1).bytes(100_000 + i as usize);
            for round in 0..4 {
                let key = format!("c{i}-{round}");
                client.put(&key, &data).await.unwrap();
                assert_eq!(client.get(&key, 0, data.len() as u64).await.unwrap(), data);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut client = store.client().await;
    assert_eq!(client.list(None, 10_000).await.unwrap().len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_folder_and_data_survives_restart() {
    let mut store = TestStore::start().await;
    let mut client = store.client().await;
    client.put("kept", b"durable bytes").await.unwrap();
    store.stop().await.unwrap();

    // A leftover temp from a crashed put is cleaned up at start.
    let bucket = cairn_chunkstore::layout::shard_dir(&store.data_dir(), "kept");
    std::fs::write(bucket.join(".kept.0123456789abcdef.tmp"), b"partial").unwrap();

    let (addr, _stop, _task) = common::spawn(store.cfg.clone()).await.unwrap();
    assert!(common::temp_files(&store.data_dir()).is_empty());
    let mut client = cairn_chunkstore::StoreClient::connect(addr, &store.secret)
        .await
        .unwrap();
    assert_eq!(client.get("kept", 0, 13).await.unwrap(), b"durable bytes");
    assert_eq!(client.list(None, 10).await.unwrap().len(), 1);
}
