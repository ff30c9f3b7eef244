//! The pool on memory and faulty stores: health marking, and block reads
//! falling through to the next copy.

use std::sync::Arc;
use std::time::Duration;

use cairn_chunkstore::Secret;
use cairn_metadata::{BlockId, BlockLocation, ChunkId, ChunkLayout, StoreId, StoreState};

use super::crypto::block_aad;
use super::faulty::{Faulty, Op};
use super::memory::{Identity, MemoryStore};
use super::{ChunkStore, ObjectKey, Reach, Stores};
use crate::core::{BlockSource, FsError};

const HOUR: Duration = Duration::from_secs(3600);

fn pool() -> Stores {
    Stores::new(Secret::from_bytes(&[7u8; 32]), 2, 0)
        .with_read_limits(Duration::from_millis(100), Duration::from_secs(5))
}

/// A faulty memory store added to `stores` as `id`.
pub(super) fn add(stores: &Stores, id: u64) -> Arc<Faulty> {
    let name = format!("s{id}");
    let memory = Arc::new(MemoryStore::new(Identity::named(&name, 1 << 30)));
    let faulty = Arc::new(Faulty::new(memory));
    stores.add(StoreId(id), &name, faulty.clone());
    faulty
}

#[tokio::test]
async fn a_store_that_fails_is_suspect_then_offline_and_online_when_it_answers() {
    let stores = pool();
    let s = add(&stores, 1);
    let id = StoreId(1);
    assert_eq!(stores.health(id, HOUR).0, Reach::Suspect, "unprobed");
    stores.probe().await;
    assert_eq!(stores.health(id, HOUR), (Reach::Online, StoreState::Active));
    assert!(stores.is_online(id));
    let view = &stores.views()[0];
    assert_eq!(
        (view.id, view.host.as_str(), view.capacity),
        (id, "s1", 1 << 30)
    );

    s.fail_always(Op::Capacity, true);
    stores.probe().await;
    assert_eq!(stores.health(id, HOUR).0, Reach::Suspect, "within grace");
    assert_eq!(
        stores.health(id, Duration::ZERO).0,
        Reach::Offline,
        "past grace"
    );
    assert!(!stores.is_online(id));
    assert!(!stores.placeable()[0].online);

    s.fail_always(Op::Capacity, false);
    stores.probe().await;
    assert_eq!(stores.health(id, Duration::ZERO).0, Reach::Online);

    // A failed operation marks the store too; a refusal does not.
    s.fail_nth(Op::Stat, 1);
    stores.stat(id, "k").await.expect_err("injected failure");
    assert_eq!(stores.health(id, HOUR).0, Reach::Suspect);
    stores.probe().await;
    stores.stat(id, "k").await.expect_err("not found");
    assert_eq!(
        stores.health(id, HOUR).0,
        Reach::Online,
        "not found is an answer"
    );
    stores.set_life(id, StoreState::Draining);
    assert_eq!(stores.health(id, HOUR).1, StoreState::Draining);
    assert!(
        !stores.placeable()[0].online,
        "a draining store takes no copies"
    );
}

#[tokio::test]
async fn a_silent_store_is_given_up_on_at_the_stall_limit() {
    let stores = pool();
    let s = add(&stores, 1);
    stores.probe().await;
    s.set_silent(true);
    let e = stores.get(StoreId(1), "k", 0, 1).await.expect_err("silent");
    assert!(matches!(e, super::StoreError::Timeout { .. }), "{e}");
    assert_eq!(stores.health(StoreId(1), HOUR).0, Reach::Suspect);
}

#[tokio::test]
async fn puts_count_at_once_and_unknown_stores_are_refused() {
    let stores = pool();
    add(&stores, 1);
    stores.probe().await;
    let before = stores.views()[0].used;
    stores
        .put(StoreId(1), "k", Arc::new(vec![1u8; 1000]))
        .await
        .expect("put");
    assert_eq!(stores.views()[0].used, before + 1000);
    let e = stores
        .stat(StoreId(9), "k")
        .await
        .expect_err("no such store");
    assert!(
        matches!(e, super::StoreError::UnknownStore { id: 9 }),
        "{e}"
    );
    let keys = stores.list_keys(StoreId(1), None).await.expect("list");
    assert_eq!(keys, ["k"]);
}

/// A block sealed as the drainer seals it, on every store in `on`.
async fn store_block(stores: &Stores, on: &[&Arc<Faulty>], plain: &[u8]) -> BlockLocation {
    let chunk = ChunkId(5);
    let offset = 0;
    let sealed = stores
        .key()
        .seal(plain, &block_aad(chunk, offset))
        .expect("seal");
    let key = ObjectKey::Chunk(chunk).to_string();
    for s in on {
        s.put(&key, &sealed).await.expect("put the block");
    }
    BlockLocation {
        block: BlockId(1),
        chunk,
        offset,
        stored_len: sealed.len() as u64,
        plain_len: plain.len() as u64,
        layout: ChunkLayout::Replicas,
        placements: (1..=on.len() as u64).map(|i| (0, StoreId(i))).collect(),
    }
}

#[tokio::test]
async fn a_replica_that_fails_verification_falls_through_to_the_next() {
    let stores = pool();
    let (a, b) = (add(&stores, 1), add(&stores, 2));
    stores.probe().await;
    let plain = b"the block's plain bytes".to_vec();
    let loc = store_block(&stores, &[&a, &b], &plain).await;
    a.set_flip(true);
    let got = stores.fetch(&loc).await.expect("read from the second copy");
    assert_eq!(got, plain);
    assert_eq!((a.calls(Op::Get), b.calls(Op::Get)), (1, 1), "both tried");
    assert!(stores.is_online(StoreId(1)), "a bad copy is no dead store");
}

#[tokio::test]
async fn a_block_with_no_good_copy_is_unavailable() {
    let stores = pool();
    let (a, b) = (add(&stores, 1), add(&stores, 2));
    stores.probe().await;
    let loc = store_block(&stores, &[&a, &b], b"bytes").await;
    a.set_flip(true);
    b.fail_always(Op::Get, true);
    let e = stores.fetch(&loc).await.expect_err("no good copy");
    assert!(
        matches!(e, FsError::Unavailable { chunk, .. } if chunk == Some(loc.chunk)),
        "{e}"
    );
    // Once a copy reads back, the block does (nothing bad was cached).
    b.fail_always(Op::Get, false);
    assert_eq!(stores.fetch(&loc).await.expect("read"), b"bytes");
}
