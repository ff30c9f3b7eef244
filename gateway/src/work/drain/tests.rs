//! The drainer on memory and fault-injecting stores: a normal drain, a put
//! that fails midway, a full store, a class that cannot be met, and the
//! archive re-layout from replicas to erasure shards.

use std::sync::Arc;
use std::time::Duration;

use cairn_chunkstore::Secret;
use cairn_config::{ByteSize, DrainConfig};
use cairn_metadata::{InodeId, StoreId};
use tempfile::TempDir;

use super::Drainer;
use crate::class::ClassSpec;
use crate::core::{CreateHow, Credentials, Fs, SetAttr, Stability};
use crate::store::faulty::{Faulty, Op};
use crate::store::memory::{Identity, MemoryStore};
use crate::store::Stores;

/// A core on a tempdir reading through `n` faulty memory stores, and a
/// drainer with no quiet period and one-byte chunks (no packing wait).
struct Kit {
    _dir: TempDir,
    fs: Arc<Fs>,
    stores: Vec<Arc<Faulty>>,
    drainer: Drainer,
}

async fn kit(n: u64) -> Kit {
    let dir = tempfile::tempdir().unwrap();
    let fs = Fs::open(
        &dir.path().join("meta.db"),
        &dir.path().join("cache"),
        1 << 30,
    )
    .unwrap();
    let pool = Arc::new(
        Stores::new(Secret::from_bytes(&[7u8; 32]), 4, 0)
            .with_read_limits(Duration::from_millis(200), Duration::from_secs(5)),
    );
    let mut faulty = Vec::new();
    for i in 0..n {
        let name = format!("s{i}");
        let addr = format!("memory:{name}");
        let (n2, a2) = (name.clone(), addr.clone());
        let id: StoreId = fs
            .metadata()
            .write(true, move |tx| tx.upsert_store(&n2, &a2, "", "", ""))
            .await
            .unwrap();
        let memory = Arc::new(MemoryStore::new(Identity::named(&name, 1 << 30)));
        let f = Arc::new(Faulty::new(memory));
        pool.add(id, &name, f.clone());
        faulty.push(f);
    }
    pool.probe().await;
    let fs = Arc::new(fs.with_blocks(pool.clone()));
    fs.classes().default_id().await.unwrap();
    let cfg = DrainConfig {
        quiet: cairn_config::Duration::secs(0),
        chunk_size: ByteSize(1),
        ..DrainConfig::default()
    };
    let drainer = Drainer::new(fs.clone(), pool, cfg);
    Kit {
        _dir: dir,
        fs,
        stores: faulty,
        drainer,
    }
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A file `name` holding `bytes`, written stable.
async fn write(fs: &Fs, name: &str, bytes: &[u8]) -> InodeId {
    let cred = Credentials::root();
    let f = fs
        .create(
            &cred,
            InodeId::ROOT,
            name.as_bytes(),
            CreateHow::Guarded(SetAttr::default()),
        )
        .await
        .unwrap();
    fs.write(&cred, f.id, 0, bytes.to_vec(), Stability::FileSync)
        .await
        .unwrap();
    f.id
}

async fn dirty(fs: &Fs, id: InodeId) -> usize {
    fs.dirty_slots_of(id).await.unwrap().len()
}

/// Evicts every clean slot, then reads the file back (from the stores).
async fn read_back(fs: &Fs, id: InodeId, len: usize) -> Vec<u8> {
    fs.evict(None).await.unwrap();
    let (bytes, _, _) = fs
        .read(&Credentials::root(), id, 0, len as u32)
        .await
        .unwrap();
    bytes
}

fn puts(stores: &[Arc<Faulty>]) -> u64 {
    stores.iter().map(|s| s.calls(Op::Put)).sum()
}

#[tokio::test]
async fn a_drain_attaches_the_blocks_and_the_data_reads_back_from_the_stores() {
    let k = kit(2).await;
    let body = data(100_000);
    let id = write(&k.fs, "a", &body).await;
    assert_eq!(dirty(&k.fs, id).await, 1);
    assert_eq!(k.drainer.drain_once().await.unwrap(), 1);
    assert_eq!(dirty(&k.fs, id).await, 0);
    assert_eq!(puts(&k.stores), 2, "two replicas by default");
    assert_eq!(read_back(&k.fs, id, body.len()).await, body);
}

#[tokio::test]
async fn a_put_that_fails_midway_attaches_nothing_and_the_next_pass_succeeds() {
    let k = kit(2).await;
    let body = data(50_000);
    let id = write(&k.fs, "a", &body).await;
    k.stores[1].fail_nth(Op::Put, 1);
    let e = k.drainer.drain_once().await.expect_err("a put failed");
    assert!(e.to_string().contains("put"), "{e}");
    assert_eq!(dirty(&k.fs, id).await, 1, "the slot stays dirty");
    assert_eq!(k.drainer.drain_once().await.unwrap(), 1);
    assert_eq!(dirty(&k.fs, id).await, 0);
    assert_eq!(read_back(&k.fs, id, body.len()).await, body);
}

#[tokio::test]
async fn a_full_store_keeps_the_slot_dirty_until_it_has_room() {
    let k = kit(2).await;
    let body = data(10_000);
    let id = write(&k.fs, "a", &body).await;
    k.stores[0].set_full(true);
    k.drainer.drain_once().await.expect_err("a store is full");
    assert_eq!(dirty(&k.fs, id).await, 1);
    k.stores[0].set_full(false);
    assert_eq!(k.drainer.drain_once().await.unwrap(), 1);
    assert_eq!(dirty(&k.fs, id).await, 0);
}

#[tokio::test]
async fn a_class_that_cannot_be_met_stays_dirty_and_stores_nothing() {
    let k = kit(2).await;
    let spec = ClassSpec::parse("three", Some(3), None, None, None, true, false).unwrap();
    let class = k.fs.classes().create(&spec).await.unwrap();
    let id = write(&k.fs, "a", &data(10_000)).await;
    k.fs.set_class_tree(id, class).await.unwrap();
    let e = k
        .drainer
        .drain_once()
        .await
        .expect_err("3 strict copies on 2 stores");
    assert!(e.to_string().contains("three"), "{e}");
    assert_eq!(dirty(&k.fs, id).await, 1);
    assert_eq!(puts(&k.stores), 0, "no object stored");
}

#[tokio::test]
async fn the_archive_transition_re_lays_replicas_as_erasure_shards() {
    let k = kit(3).await;
    let spec = ClassSpec::parse("cold", Some(2), None, None, None, false, true)
        .unwrap()
        .with_archive(Some("1s"), Some("2+1"), None, None)
        .unwrap();
    let class = k.fs.classes().create(&spec).await.unwrap();
    let body = data(300_000);
    let id = write(&k.fs, "a", &body).await;
    k.fs.set_class_tree(id, class).await.unwrap();
    assert_eq!(k.drainer.drain_once().await.unwrap(), 1);
    assert_eq!(puts(&k.stores), 2);
    // Due once the chunk is a second old: poll rather than sleep blindly.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while k.drainer.archive_one().await.unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "never archived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(puts(&k.stores), 5, "three shards more");
    let chunks =
        k.fs.replica_chunks_before(class, cairn_metadata::Timestamp::now(), 10)
            .await
            .unwrap();
    assert!(chunks.is_empty(), "no replica chunk left: {chunks:?}");
    assert_eq!(read_back(&k.fs, id, body.len()).await, body);
}

#[tokio::test]
async fn the_jobs_drain_in_the_background_and_stop_on_one_shutdown() {
    let k = kit(2).await;
    let id = write(&k.fs, "a", &data(10_000)).await;
    let shutdown = crate::work::runner::Shutdown::new();
    let board = crate::work::runner::Board::default();
    let workers = super::spawn(k.drainer.clone(), &shutdown, &board);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dirty(&k.fs, id).await > 0 {
        assert!(std::time::Instant::now() < deadline, "never drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.stop();
    for w in workers {
        tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("a job stops after its current step")
            .unwrap();
    }
    let names: Vec<String> = board.snapshot().into_keys().collect();
    assert_eq!(names, ["archive", "collect", "drain", "probe", "trash"]);
    assert!(board
        .snapshot()
        .values()
        .all(|s| s.state == crate::work::runner::JobState::Stopped));
}

#[tokio::test]
async fn a_persistence_request_nobody_serves_fails_as_unavailable() {
    let (persistence, requests) = crate::core::Persistence::channel();
    drop(requests);
    let e = persistence
        .persist(InodeId(5))
        .await
        .expect_err("no server");
    assert!(
        matches!(e, crate::core::FsError::Unavailable { chunk: None, .. }),
        "{e}"
    );
}
