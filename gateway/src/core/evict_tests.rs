//! Unit tests of eviction: evicted slots read back through their blocks,
//! and the least recently used slots go first.

use std::collections::HashMap;

use cairn_metadata::InodeId;

use super::data::MAX_IO;
use super::tests::{file, root};
use super::*;

/// Blocks kept in memory, keyed by chunk and offset: the stores' stand-in.
/// It logs every fetch, and fetches of blocks at or past a chunk offset
/// wait while its gate is closed there.
pub(super) struct MemBlocks {
    blocks: std::sync::Mutex<HashMap<(u64, u64), Vec<u8>>>,
    /// Every fetch, whole or ranged, in the order they were asked for:
    /// (chunk, offset).
    log: std::sync::Mutex<Vec<(u64, u64)>>,
    /// Whole-block fetches, and the ranges asked for: (from, len).
    wholes: std::sync::atomic::AtomicUsize,
    ranges: std::sync::Mutex<Vec<(u64, u64)>>,
    /// Fetches at or past this chunk offset wait.
    closed_from: std::sync::atomic::AtomicU64,
    opened: tokio::sync::Notify,
}

impl Default for MemBlocks {
    fn default() -> Self {
        MemBlocks {
            blocks: Default::default(),
            log: Default::default(),
            wholes: Default::default(),
            ranges: Default::default(),
            closed_from: std::sync::atomic::AtomicU64::new(u64::MAX),
            opened: tokio::sync::Notify::new(),
        }
    }
}

impl MemBlocks {
    /// Makes fetches at or past `offset` wait (`open`: lets them, and
    /// those waiting, go on).
    pub(super) fn close_from(&self, offset: u64) {
        self.closed_from
            .store(offset, std::sync::atomic::Ordering::SeqCst);
    }

    pub(super) fn open(&self) {
        self.close_from(u64::MAX);
        self.opened.notify_waiters();
    }

    pub(super) fn fetches(&self) -> Vec<(u64, u64)> {
        self.log.lock().unwrap().clone()
    }

    /// Waits while the gate is closed at `offset`.
    async fn gate(&self, offset: u64) {
        loop {
            let opened = self.opened.notified();
            if offset < self.closed_from.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            opened.await;
        }
    }
}

impl BlockSource for MemBlocks {
    fn fetch<'a>(
        &'a self,
        loc: &'a cairn_metadata::BlockLocation,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, FsError>> + Send + 'a>>
    {
        Box::pin(async move {
            self.log.lock().unwrap().push((loc.chunk.0, loc.offset));
            self.wholes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.gate(loc.offset).await;
            let blocks = self.blocks.lock().unwrap();
            blocks
                .get(&(loc.chunk.0, loc.offset))
                .cloned()
                .ok_or(FsError::Unavailable {
                    chunk: Some(loc.chunk),
                    why: "not in memory".into(),
                })
        })
    }

    fn fetch_range<'a>(
        &'a self,
        loc: &'a cairn_metadata::BlockLocation,
        from: u64,
        len: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, FsError>> + Send + 'a>>
    {
        Box::pin(async move {
            self.log.lock().unwrap().push((loc.chunk.0, loc.offset));
            self.ranges.lock().unwrap().push((from, len));
            self.gate(loc.offset).await;
            let blocks = self.blocks.lock().unwrap();
            let block = blocks
                .get(&(loc.chunk.0, loc.offset))
                .ok_or(FsError::Unavailable {
                    chunk: Some(loc.chunk),
                    why: "not in memory".into(),
                })?;
            let from = (from as usize).min(block.len());
            Ok(block[from..(from + len as usize).min(block.len())].to_vec())
        })
    }
}

/// Drains every dirty slot of `id` into `mem` as one chunk, as the
/// drainer would (without encryption).
pub(super) async fn drain_into(fs: &Fs, mem: &MemBlocks, id: InodeId) {
    let class = fs
        .metadata()
        .write(true, |tx| {
            tx.upsert_class("default", "{}", cairn_metadata::Timestamp::now())
        })
        .await
        .unwrap();
    let dirty = fs
        .metadata()
        .read(|v| v.dirty_slots(cairn_metadata::Timestamp(i64::MAX), 100))
        .unwrap();
    let chunk = fs
        .metadata()
        .write(true, move |tx| {
            tx.new_chunk(class, 0, cairn_metadata::Timestamp::now())
        })
        .await
        .unwrap();
    let mut blocks = Vec::new();
    let mut offset = 0;
    for d in dirty.into_iter().filter(|d| d.inode == id) {
        let bytes = fs.slot_content(id, d.index).await.unwrap().unwrap();
        mem.blocks
            .lock()
            .unwrap()
            .insert((chunk.0, offset), bytes.clone());
        blocks.push(cairn_metadata::NewBlock {
            inode: id,
            index: d.index,
            version: d.version,
            offset,
            stored_len: bytes.len() as u64,
            plain_len: bytes.len() as u64,
            checksum: Vec::new(),
        });
        offset += bytes.len() as u64;
    }
    let n = blocks.len();
    let attached = fs
        .metadata()
        .write(true, move |tx| {
            let store = tx.upsert_store("mem", "memory:0", "z", "h", "")?;
            tx.attach_chunk(
                chunk,
                cairn_metadata::ChunkLayout::Replicas,
                &[(0, store)],
                &[],
                &blocks,
            )
        })
        .await
        .unwrap();
    assert_eq!(attached, n);
}

/// A fresh core in a temp folder, its drained blocks kept in memory.
async fn over_mem() -> (tempfile::TempDir, std::sync::Arc<MemBlocks>, Fs) {
    let dir = tempfile::tempdir().unwrap();
    let mem = std::sync::Arc::new(MemBlocks::default());
    let fs = Fs::open(
        &dir.path().join("meta.db"),
        &dir.path().join("cache"),
        1 << 30,
    )
    .unwrap()
    .with_blocks(mem.clone());
    (dir, mem, fs)
}

/// A file "big" of `size` bytes (`i % 253` at `i`) written and drained
/// into `mem`, on a fresh core over it.
async fn big_drained(
    size: usize,
) -> (
    tempfile::TempDir,
    std::sync::Arc<MemBlocks>,
    Fs,
    Inode,
    Vec<u8>,
) {
    let (dir, mem, fs) = over_mem().await;
    let f = file(&fs, InodeId::ROOT, "big").await;
    let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    for (i, part) in data.chunks(MAX_IO as usize).enumerate() {
        let off = (i * MAX_IO as usize) as u64;
        fs.write(&root(), f.id, off, part.to_vec(), Stability::Unstable)
            .await
            .unwrap();
    }
    drain_into(&fs, &mem, f.id).await;
    (dir, mem, fs, f, data)
}

#[tokio::test]
async fn evicted_slots_read_and_rewrite_through_their_blocks() {
    let size = cairn_metadata::SLOT_SIZE as usize + 1_000_000;
    let (_dir, _mem, fs, f, data) = big_drained(size).await;
    assert_eq!(fs.metadata().read(|v| v.backlog()).unwrap().slots, 0);
    let evicted = fs.evict(None).await.unwrap();
    assert_eq!(evicted.slots, 2);
    assert_eq!(
        fs.cache().used_bytes(),
        0,
        "evicted bytes still take cache space"
    );
    // Reads come from the blocks, across the slot boundary too.
    let edge = cairn_metadata::SLOT_SIZE - 10;
    let (back, _, _) = fs.read(&root(), f.id, edge, 20).await.unwrap();
    assert_eq!(back, &data[edge as usize..edge as usize + 20]);
    // A small write into an evicted slot keeps the bytes around it.
    fs.write(&root(), f.id, 100, vec![0xee; 10], Stability::FileSync)
        .await
        .unwrap();
    let (back, _, _) = fs.read(&root(), f.id, 0, 200).await.unwrap();
    let mut want = data[..200].to_vec();
    want[100..110].fill(0xee);
    assert_eq!(back, want);
    // Truncating into an evicted slot then growing shows zeros, not old bytes.
    let cut = SetAttr {
        size: Some(cairn_metadata::SLOT_SIZE + 10),
        ..SetAttr::default()
    };
    fs.setattr(&root(), f.id, cut, None).await.unwrap();
    let grow = SetAttr {
        size: Some(size as u64),
        ..SetAttr::default()
    };
    fs.setattr(&root(), f.id, grow, None).await.unwrap();
    let (back, _, _) = fs
        .read(&root(), f.id, cairn_metadata::SLOT_SIZE, 20)
        .await
        .unwrap();
    assert_eq!(
        &back[..10],
        &data[cairn_metadata::SLOT_SIZE as usize..cairn_metadata::SLOT_SIZE as usize + 10]
    );
    assert!(
        back[10..].iter().all(|&b| b == 0),
        "bytes past a truncate came back"
    );
}

#[tokio::test]
async fn eviction_takes_the_least_recently_used_slots_first() {
    let (_dir, mem, fs) = over_mem().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let f = file(&fs, InodeId::ROOT, name).await;
        fs.write(&root(), f.id, 0, vec![7u8; 200_000], Stability::FileSync)
            .await
            .unwrap();
        drain_into(&fs, &mem, f.id).await;
        ids.push(f.id);
    }
    // "a" is read last, so it is the most recently used.
    for id in ids.iter().rev() {
        fs.read(&root(), *id, 0, 10).await.unwrap();
    }
    let done = fs.evict(Some(1)).await.unwrap();
    assert_eq!(done.slots, 1);
    let cached = |id: InodeId| fs.metadata().read(|v| v.slots(id, 0, 0)).unwrap()[0].cached;
    assert!(
        cached(ids[0]) && cached(ids[1]),
        "a recently used slot was evicted"
    );
    assert!(!cached(ids[2]), "the least recently used slot stayed");
}

#[tokio::test]
async fn a_small_read_of_an_evicted_slot_asks_only_for_its_range() {
    let slot = cairn_metadata::SLOT_SIZE;
    let size = slot as usize + 100_000;
    let (_dir, mem, fs, f, data) = big_drained(size).await;
    fs.evict(None).await.unwrap();
    for (off, n) in [
        (8192u64, 4096usize),
        (slot - 2048, 4096),
        (size as u64 - 100, 4096),
    ] {
        let (got, _, _) = fs.read(&root(), f.id, off, n as u32).await.unwrap();
        assert_eq!(
            got,
            &data[off as usize..(off as usize + n).min(size)],
            "at {off}"
        );
    }
    let wholes = mem.wholes.load(std::sync::atomic::Ordering::SeqCst);
    let ranges = mem.ranges.lock().unwrap().clone();
    assert_eq!(wholes, 0, "no whole block fetched for a small read");
    assert_eq!(
        ranges,
        [
            (8192, 4096),
            (slot - 2048, 2048),
            (0, 2048),
            (100_000 - 100, 100)
        ]
    );
}
