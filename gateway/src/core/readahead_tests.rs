//! Unit tests of readahead: sequential reads of evicted data fetch the slots
//! ahead (once each, in order, never past the end), random reads do not, a
//! read waits for a block being fetched ahead, and a rewritten or truncated
//! slot never shows the bytes fetched ahead of its change.

use std::sync::Arc;

use cairn_metadata::{InodeId, SLOT_SIZE};

use super::data::MAX_IO;
use super::evict_tests::{drain_into, MemBlocks};
use super::readahead::{Readahead, FIRST_WINDOW};
use super::tests::{file, root};
use super::*;

const MIB: u64 = 1 << 20;

/// A core reading ahead up to `[read] readahead` = 64 MiB (16 slots), with
/// a file of `slots` full slots, drained to `mem` and evicted from the cache.
async fn evicted_file(slots: u64) -> (tempfile::TempDir, Fs, Arc<MemBlocks>, InodeId, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let mem = Arc::new(MemBlocks::default());
    let fs = Fs::open(
        &dir.path().join("meta.db"),
        &dir.path().join("cache"),
        1 << 30,
    )
    .unwrap()
    .with_blocks(mem.clone())
    .with_readahead(64 * MIB);
    let f = file(&fs, InodeId::ROOT, "big").await;
    let data: Vec<u8> = (0..slots * SLOT_SIZE)
        .map(|i| (i % 251) as u8 ^ (i / SLOT_SIZE) as u8)
        .collect();
    for (i, part) in data.chunks(MAX_IO as usize).enumerate() {
        fs.write(
            &root(),
            f.id,
            i as u64 * u64::from(MAX_IO),
            part.to_vec(),
            Stability::Unstable,
        )
        .await
        .unwrap();
    }
    drain_into(&fs, &mem, f.id).await;
    assert_eq!(fs.evict(None).await.unwrap().slots, slots);
    (dir, fs, mem, f.id, data)
}

/// The slots fetched so far, in the order asked for (one chunk holds them
/// all, slot after slot).
fn fetched_slots(mem: &MemBlocks) -> Vec<u64> {
    mem.fetches()
        .iter()
        .map(|(_, off)| off / SLOT_SIZE)
        .collect()
}

/// The slots fetched so far, each once, in the order first asked for. (The
/// stand-in keeps no hot blocks, as the stores do, so a slot a reader is in
/// is fetched again by each read of it.)
fn first_fetches(mem: &MemBlocks) -> Vec<u64> {
    let mut seen = Vec::new();
    for slot in fetched_slots(mem) {
        if !seen.contains(&slot) {
            seen.push(slot);
        }
    }
    seen
}

/// How often `slot` was fetched.
fn fetches_of(mem: &MemBlocks, slot: u64) -> usize {
    fetched_slots(mem).iter().filter(|&&s| s == slot).count()
}

/// Yields to the prefetch tasks until `done` holds (or fails, saying `what`
/// never happened).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{what} never happened");
}

/// Lets the prefetch tasks run until every one has finished.
async fn settle(fs: &Fs) {
    until("the prefetches finishing", || fs.readahead.settled()).await;
}

async fn read_checked(fs: &Fs, id: InodeId, data: &[u8], offset: u64, len: u64) {
    let (back, _, _) = fs.read(&root(), id, offset, len as u32).await.unwrap();
    let want = &data[offset as usize..(offset + len).min(data.len() as u64) as usize];
    assert!(back == want, "wrong bytes at {offset}+{len}");
}

/// Three reads in a row from the start of the file: the third starts
/// fetching slots 1 and 2 ahead, which hang at `mem`'s gate when `hold`.
async fn start_reading(fs: &Fs, mem: &MemBlocks, id: InodeId, data: &[u8], hold: bool) {
    read_checked(fs, id, data, 0, MIB).await;
    read_checked(fs, id, data, MIB, MIB).await;
    if hold {
        mem.close_from(SLOT_SIZE);
    }
    read_checked(fs, id, data, 2 * MIB, MIB).await;
}

#[tokio::test]
async fn sequential_reads_fetch_the_slots_ahead_once_each_in_order() {
    let (_dir, fs, mem, id, data) = evicted_file(8).await;
    // Three reads in a row make a stream sequential: slots 1 and 2 are
    // fetched ahead; entering slot 1 doubles the window to 4 (slots 3-5).
    for i in 0..5 {
        read_checked(&fs, id, &data, i * MIB, MIB).await;
    }
    settle(&fs).await;
    assert_eq!(first_fetches(&mem), [0, 1, 2, 3, 4, 5]);
    // To the end: every slot past the first fetched ahead, once.
    for i in 5..8 * SLOT_SIZE / MIB {
        read_checked(&fs, id, &data, i * MIB, MIB).await;
    }
    settle(&fs).await;
    assert_eq!(first_fetches(&mem), (0..8).collect::<Vec<_>>());
    for slot in 1..8 {
        assert_eq!(fetches_of(&mem, slot), 1, "slot {slot} fetched again");
    }
}

#[tokio::test]
async fn random_reads_fetch_only_what_they_read() {
    let (_dir, fs, mem, id, data) = evicted_file(8).await;
    let order = [5, 1, 7, 3, 0, 6, 2, 4];
    for slot in order {
        read_checked(&fs, id, &data, slot * SLOT_SIZE + 4096, 65_536).await;
    }
    settle(&fs).await;
    assert_eq!(fetched_slots(&mem), order);
    assert_eq!(fs.readahead.held(), 0, "a random reader got blocks ahead");
}

#[tokio::test]
async fn a_read_of_a_block_being_fetched_ahead_waits_for_that_fetch() {
    let (_dir, fs, mem, id, data) = evicted_file(8).await;
    start_reading(&fs, &mem, id, &data, true).await;
    until("slot 1 being fetched ahead", || {
        fetched_slots(&mem).contains(&1)
    })
    .await;
    // A read of slot 1 while its fetch hangs: it waits for that fetch.
    let open_later = async {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        mem.open();
    };
    let who = root();
    let (back, _) = tokio::join!(fs.read(&who, id, SLOT_SIZE, MAX_IO), open_later);
    let (back, _, _) = back.unwrap();
    assert!(back == data[SLOT_SIZE as usize..(SLOT_SIZE + MIB) as usize]);
    settle(&fs).await;
    assert_eq!(
        fetches_of(&mem, 1),
        1,
        "slot 1 was fetched again while fetched ahead"
    );
}

#[tokio::test]
async fn a_slot_changed_after_it_was_fetched_ahead_reads_its_new_bytes() {
    let (_dir, fs, mem, id, mut data) = evicted_file(4).await;
    start_reading(&fs, &mem, id, &data, false).await;
    settle(&fs).await;
    assert_eq!(
        first_fetches(&mem),
        [0, 1, 2],
        "slots 1 and 2 not fetched ahead"
    );
    assert_eq!(fs.readahead.held(), 2);

    // Slot 2 rewritten, drained to a new block and evicted again.
    let at = 2 * SLOT_SIZE + 100;
    fs.write(&root(), id, at, vec![0xab; 100], Stability::FileSync)
        .await
        .unwrap();
    data[at as usize..at as usize + 100].fill(0xab);
    drain_into(&fs, &mem, id).await;
    assert_eq!(fs.evict(None).await.unwrap().slots, 1);
    read_checked(&fs, id, &data, 2 * SLOT_SIZE, MIB).await;

    // Slot 1 cut to 10 bytes and grown again keeps its block: the rest
    // of it reads as zeros, not as the bytes fetched ahead.
    let slot_1 = |fs: &Fs| fs.metadata().read(|v| v.slots(id, 1, 1)).unwrap()[0].clone();
    let before = slot_1(&fs);
    for size in [SLOT_SIZE + 10, 4 * SLOT_SIZE] {
        let set = SetAttr {
            size: Some(size),
            ..SetAttr::default()
        };
        fs.setattr(&root(), id, set, None).await.unwrap();
    }
    let after = slot_1(&fs);
    assert!(!after.cached && after.block == before.block && after.valid_len == 10);
    data[SLOT_SIZE as usize + 10..2 * SLOT_SIZE as usize].fill(0);
    read_checked(&fs, id, &data, SLOT_SIZE, MIB).await;
    read_checked(&fs, id, &data, SLOT_SIZE + MIB, MIB).await;
}

#[tokio::test]
async fn dropping_the_core_stops_its_fetches_ahead() {
    let (dir, fs, mem, id, data) = evicted_file(4).await;
    start_reading(&fs, &mem, id, &data, true).await;
    until("slots 1 and 2 being fetched ahead", || {
        first_fetches(&mem).len() == 3
    })
    .await;
    assert_eq!(first_fetches(&mem), [0, 1, 2]);
    drop(fs);
    drop(dir);
    // The aborted tasks drop their hold on the source.
    until("the fetches ahead ending with the core", || {
        Arc::strong_count(&mem) == 1
    })
    .await;
}

#[test]
fn small_reads_scattered_near_each_other_never_read_ahead() {
    let id = InodeId(7);
    let ra = Readahead::new(64 * MIB);
    let size = 64 * SLOT_SIZE;
    // 4 KiB reads, each within SLACK of the last but a megabyte on: they
    // continue one stream, which covers a sliver of its span.
    for i in 0..40 {
        assert_eq!(ra.plan(id, i * MIB + 4096, 4096, size), None, "read {i}");
    }
    // 4 KiB reads in order are sequential.
    let planned = (0..8).filter_map(|i| ra.plan(InodeId(8), i * 4096, 4096, size));
    assert_eq!(planned.count(), 1);
}

#[test]
fn the_window_doubles_to_its_limit_and_stops_at_the_end_of_the_file() {
    let id = InodeId(7);
    let plans = |ra: &Readahead, size: u64| -> Vec<std::ops::Range<u64>> {
        (0..size.div_ceil(MIB))
            .filter_map(|i| ra.plan(id, i * MIB, MIB.min(size - i * MIB), size))
            .map(|a| a.slots)
            .collect()
    };
    // 16 MiB ahead at most (4 slots): 2, then 4 after entering slot 1.
    let ra = Readahead::new(16 * MIB);
    assert_eq!(FIRST_WINDOW, 2);
    let size = 40 * SLOT_SIZE;
    let got = plans(&ra, size);
    assert_eq!(&got[..4], [1..3, 3..6, 6..7, 7..8]);
    let wanted: Vec<u64> = got.iter().flat_map(|r| r.clone()).collect();
    assert_eq!(
        wanted,
        (1..40).collect::<Vec<_>>(),
        "a slot asked twice or skipped"
    );

    // 10 MiB: slots 0-2; nothing past slot 2 is asked for.
    let ra = Readahead::new(64 * MIB);
    assert_eq!(plans(&ra, 10 * MIB), vec![1..3]);
    // Off.
    assert!(plans(&Readahead::new(0), size).is_empty());
}
