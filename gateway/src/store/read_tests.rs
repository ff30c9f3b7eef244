//! Block reads on memory stores: ranged reads move only the frames that
//! cover them (replicas and erasure shards, a failed shard rebuilt), v1
//! blocks still read, large reads use every replica, and a slow replica is
//! hedged around on a paused clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_chunkstore::Secret;
use cairn_metadata::{BlockId, BlockLocation, ChunkId, ChunkLayout, StoreId};

use super::crypto::block_aad;
use super::faulty::{Faulty, Op};
use super::frames::{self, FRAME};
use super::memory::{Identity, MemoryStore};
use super::{Capacity, ChunkStore, ListEntry, ObjectKey, ShardStat, StoreFuture, Stores};
use crate::core::BlockSource;

/// Counts the bytes `get` returns; says the store is sending when `busy`.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ChunkStore>,
    got: AtomicU64,
    busy: std::sync::atomic::AtomicBool,
}

impl ChunkStore for Counting {
    fn address(&self) -> &str {
        self.inner.address()
    }
    fn put<'a>(&'a self, key: &'a str, data: &'a [u8]) -> StoreFuture<'a, ShardStat> {
        self.inner.put(key, data)
    }
    fn get<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
        stall: Option<Duration>,
    ) -> StoreFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let bytes = self.inner.get(key, offset, len, stall).await?;
            self.got.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            Ok(bytes)
        })
    }
    fn stat<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ShardStat> {
        self.inner.stat(key)
    }
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        self.inner.delete(key)
    }
    fn list<'a>(&'a self, after: Option<&'a str>, limit: u32) -> StoreFuture<'a, Vec<ListEntry>> {
        self.inner.list(after, limit)
    }
    fn capacity(&self) -> StoreFuture<'_, Capacity> {
        self.inner.capacity()
    }
    fn heard(&self) -> Option<tokio::time::Instant> {
        self.busy
            .load(Ordering::SeqCst)
            .then(tokio::time::Instant::now)
    }
}

/// Stores 1..=n, each a counting wrapper around a faulty memory store.
struct Rig {
    stores: Stores,
    faulty: Vec<Arc<Faulty>>,
    counting: Vec<Arc<Counting>>,
}

impl Rig {
    async fn new(n: u64) -> Rig {
        let stores = Stores::new(Secret::from_bytes(&[7u8; 32]), 2, 0)
            .with_read_limits(Duration::from_millis(100), Duration::from_secs(30));
        let (mut faulty, mut counting) = (Vec::new(), Vec::new());
        for id in 1..=n {
            let name = format!("s{id}");
            let memory = Arc::new(MemoryStore::new(Identity::named(&name, 1 << 30)));
            let f = Arc::new(Faulty::new(memory));
            let c = Arc::new(Counting {
                inner: f.clone(),
                got: AtomicU64::new(0),
                busy: Default::default(),
            });
            stores.add(StoreId(id), &name, c.clone());
            faulty.push(f);
            counting.push(c);
        }
        stores.probe().await;
        Rig {
            stores,
            faulty,
            counting,
        }
    }

    /// Bytes got from every store since the last call.
    fn moved(&self) -> u64 {
        self.counting
            .iter()
            .map(|c| c.got.swap(0, Ordering::SeqCst))
            .sum()
    }

    /// `plain` as block `block` of its own chunk, sealed by `seal` and put
    /// whole on every store.
    async fn replicated(&self, block: u64, plain: &[u8], v1: bool) -> BlockLocation {
        let chunk = ChunkId(block);
        let sealed = if v1 {
            let key = self.stores.key();
            key.seal(plain, &block_aad(chunk, 0)).unwrap()
        } else {
            frames::seal(self.stores.key(), plain, chunk, 0).unwrap()
        };
        let key = ObjectKey::Chunk(chunk).to_string();
        for s in &self.faulty {
            s.put(&key, &sealed).await.unwrap();
        }
        BlockLocation {
            block: BlockId(block),
            chunk,
            offset: 0,
            stored_len: sealed.len() as u64,
            plain_len: plain.len() as u64,
            layout: ChunkLayout::Replicas,
            placements: (1..=self.faulty.len() as u64)
                .map(|i| (0, StoreId(i)))
                .collect(),
        }
    }
}

fn plain(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 + i / 509) as u8).collect()
}

const BLOCK: usize = 4 << 20;

#[tokio::test]
async fn a_4k_read_of_a_drained_block_moves_at_most_64k() {
    let rig = Rig::new(2).await;
    let p = plain(BLOCK);
    let loc = rig.replicated(1, &p, false).await;
    rig.moved();
    for from in [0u64, 8192, FRAME - 2048, (BLOCK - 4096) as u64, 1_000_001] {
        let got = rig.stores.fetch_range(&loc, from, 4096).await.unwrap();
        assert_eq!(got, &p[from as usize..from as usize + 4096], "at {from}");
        let moved = rig.moved();
        assert!(
            moved <= 64 * 1024,
            "{moved} bytes moved for 4 KiB at {from}"
        );
    }
    // The frames just read are kept: reading near them again moves nothing.
    let again = rig.stores.fetch_range(&loc, 4096, 8192).await.unwrap();
    assert_eq!(again, &p[4096..12288]);
    assert_eq!(rig.moved(), 0, "a kept frame was fetched again");
    // Past the end: clamped.
    let tail = rig
        .stores
        .fetch_range(&loc, (BLOCK - 10) as u64, 4096)
        .await;
    assert_eq!(tail.unwrap(), &p[BLOCK - 10..]);
}

#[tokio::test]
async fn v1_blocks_sealed_the_old_way_still_read() {
    let rig = Rig::new(2).await;
    for (id, len) in [(1, 100), (2, FRAME as usize), (3, BLOCK)] {
        let p = plain(len);
        let loc = rig.replicated(id, &p, true).await;
        let got = rig.stores.fetch_range(&loc, 10, 4096).await.unwrap();
        assert_eq!(got, &p[10..(10 + 4096).min(len)], "len {len}");
        assert_eq!(rig.stores.fetch(&loc).await.unwrap(), p, "len {len}");
    }
}

#[tokio::test]
async fn a_large_read_gets_from_both_replicas() {
    let rig = Rig::new(2).await;
    let p = plain(BLOCK);
    let loc = rig.replicated(1, &p, false).await;
    assert_eq!(rig.stores.fetch(&loc).await.unwrap(), p);
    let calls: Vec<u64> = rig.faulty.iter().map(|f| f.calls(Op::Get)).collect();
    assert!(calls.iter().all(|&c| c >= 1), "gets per store: {calls:?}");
    // A bad part from one replica is read again from the other.
    rig.stores.drop_hot();
    rig.faulty[0].set_flip(true);
    assert_eq!(rig.stores.fetch(&loc).await.unwrap(), p);
}

#[tokio::test]
async fn an_ec_ranged_read_rebuilds_around_a_failed_shard() {
    let rig = Rig::new(3).await;
    let p = plain(BLOCK);
    let chunk = ChunkId(4);
    let sealed = frames::seal(rig.stores.key(), &p, chunk, 0).unwrap();
    let shards = super::ec::encode(&sealed, 2, 1).unwrap();
    for (i, shard) in shards.iter().enumerate() {
        let key = ObjectKey::Shard {
            chunk,
            shard: i as u32,
        };
        rig.faulty[i].put(&key.to_string(), shard).await.unwrap();
    }
    let loc = BlockLocation {
        block: BlockId(4),
        chunk,
        offset: 0,
        stored_len: sealed.len() as u64,
        plain_len: p.len() as u64,
        layout: ChunkLayout::Ec {
            k: 2,
            m: 1,
            shard_len: shards[0].len() as u64,
        },
        placements: (0..3).map(|i| (i, StoreId(u64::from(i) + 1))).collect(),
    };
    rig.moved();
    // Straddling the two data shards.
    let mid = (BLOCK / 2 - 2048) as u64;
    let got = rig.stores.fetch_range(&loc, mid, 4096).await.unwrap();
    assert_eq!(got, &p[mid as usize..mid as usize + 4096]);
    assert!(rig.moved() <= 64 * 1024);
    rig.faulty[0].fail_always(Op::Get, true);
    rig.stores.drop_hot();
    for from in [mid, 4096] {
        let got = rig.stores.fetch_range(&loc, from, 4096).await.unwrap();
        assert_eq!(got, &p[from as usize..from as usize + 4096], "at {from}");
    }
    assert_eq!(rig.stores.fetch(&loc).await.unwrap(), p);
}

#[tokio::test(start_paused = true)]
async fn a_slow_replica_is_hedged_and_a_failing_one_skipped_at_once() {
    let rig = Rig::new(2).await;
    let p = plain(BLOCK);
    let loc = rig.replicated(1, &p, false).await;
    rig.faulty[0].set_delay(Some(Duration::from_secs(10)));
    let start = tokio::time::Instant::now();
    let got = rig.stores.fetch_range(&loc, 4096, 4096).await.unwrap();
    assert_eq!(got, &p[4096..8192]);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "waited {took:?} on the slow copy"
    );
    assert_eq!(rig.faulty[1].calls(Op::Get), 1, "the other copy was asked");
    assert_eq!(
        rig.stores.loads.in_flight(StoreId(1)),
        0,
        "the slow get was cancelled"
    );

    rig.faulty[0].set_delay(None);
    rig.faulty[0].fail_always(Op::Get, true);
    let start = tokio::time::Instant::now();
    let got = rig.stores.fetch_range(&loc, 3 * FRAME, 100).await.unwrap();
    assert_eq!(got, &p[3 * FRAME as usize..3 * FRAME as usize + 100]);
    assert!(
        start.elapsed() < super::load::HEDGE_FLOOR,
        "a failure moves on at once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_large_get_to_a_store_that_keeps_sending_is_hedged_late() {
    let rig = Rig::new(2).await;
    let p = plain(BLOCK);
    let loc = rig.replicated(1, &p, false).await;
    rig.faulty[0].set_delay(Some(Duration::from_secs(60)));
    // 512 KiB: one part, larger than a small get.
    let (from, len) = (2 * FRAME, 32 * FRAME);
    let want = &p[from as usize..(from + len) as usize];

    // Silent: hedged after the hedge delay (200 ms while unmeasured).
    let start = tokio::time::Instant::now();
    assert_eq!(rig.stores.fetch_range(&loc, from, len).await.unwrap(), want);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );

    // Sending on other connections: its turn on a busy link is waited for,
    // but not forever (8 hedge delays, at least 10 s).
    rig.stores.drop_hot();
    rig.counting[0].busy.store(true, Ordering::SeqCst);
    let asked = rig.faulty[1].calls(Op::Get);
    let start = tokio::time::Instant::now();
    assert_eq!(rig.stores.fetch_range(&loc, from, len).await.unwrap(), want);
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(10), "hedged at {took:?}");
    assert!(took < Duration::from_secs(20), "never hedged: {took:?}");
    assert_eq!(rig.faulty[1].calls(Op::Get), asked + 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_reads_spread_over_the_replicas() {
    let rig = Rig::new(2).await;
    let p = plain(64 * 1024);
    let (a, b) = (
        rig.replicated(1, &p, false).await,
        rig.replicated(2, &p, false).await,
    );
    for f in &rig.faulty {
        f.set_delay(Some(Duration::from_millis(50)));
    }
    let (x, y) = tokio::join!(
        rig.stores.fetch_range(&a, 0, 4096),
        rig.stores.fetch_range(&b, 0, 4096)
    );
    assert_eq!(
        (x.unwrap(), y.unwrap()),
        (p[..4096].to_vec(), p[..4096].to_vec())
    );
    let calls: Vec<u64> = rig.faulty.iter().map(|f| f.calls(Op::Get)).collect();
    assert_eq!(calls, [1, 1], "one read on each replica");
}

#[tokio::test(start_paused = true)]
async fn a_stall_on_every_copy_delays_a_read_and_a_forged_copy_fails_it_at_once() {
    let rig = Rig::new(2).await;
    let p = plain(BLOCK);
    let loc = rig.replicated(1, &p, false).await;
    for f in &rig.faulty {
        f.set_silent(true);
    }
    // Both links stall for 3 s, far less than `[read] timeout` (30 s).
    let faulty = rig.faulty.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        for f in &faulty {
            f.set_silent(false);
        }
    });
    let start = tokio::time::Instant::now();
    let got = rig.stores.fetch_range(&loc, 8192, 4096).await;
    assert_eq!(got.expect("read after the stall"), &p[8192..12288]);
    assert!(start.elapsed() >= Duration::from_secs(3));
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );

    // A copy that does not verify is no stall: no second round.
    for f in &rig.faulty {
        f.set_flip(true);
    }
    rig.stores.drop_hot();
    let start = tokio::time::Instant::now();
    rig.stores
        .fetch_range(&loc, 5 * FRAME, 4096)
        .await
        .expect_err("every copy is forged");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}
