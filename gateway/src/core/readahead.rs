//! Readahead for cold sequential reads: spots sequential streams per file
//! and fetches the evicted slots ahead of them, several at once, so a cold
//! read does not wait one store round trip per 4 MiB block.
//!
//! NFSv3 has no open or close, so streams are keyed by inode: up to
//! [`STREAMS_PER_FILE`] per file (two readers of one file keep one each), for
//! the [`FILES`] files read most recently. A read continues a stream when it
//! starts within [`SLACK`] of where the stream got to (clients send reads
//! out of order); from the [`SEQUENTIAL_AFTER`]th such read on, if its reads
//! cover at least half of the span they reach over, the stream
//! keeps [`FIRST_WINDOW`] slots fetched ahead of it, doubling with each slot
//! it enters up to `[read] readahead`. A read that continues no stream starts
//! a new one, which fetches nothing yet: random reads never read ahead.
//!
//! Promises: a prefetched block is served only for a slot whose current block
//! it is (looked up by [`BlockId`], never reused, and cut to the slot's valid
//! length at read time), so a rewritten or truncated slot never shows old
//! bytes; nothing past the end of the file and no slot still in the ingest
//! cache is fetched; a block being prefetched is fetched once (a read that
//! needs it waits for that fetch; a failed prefetch is dropped, and the read
//! fetches the block itself and reports what fails); at most
//! [`Readahead::budget`] blocks are held, a stream's blocks go once it has
//! read past them, and the least recently used stream's go first when a new
//! one needs room; a dropped block's task is aborted, and so is every task
//! when the core is dropped.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use cairn_metadata::{BlockId, BlockLocation, InodeId, Slot, SLOT_SIZE};
use tokio::sync::{watch, Semaphore};
use tokio::task::AbortHandle;
use tracing::debug;

use super::data::MAX_IO;
use super::{BlockSource, Fs, FsError};

/// Slots a stream keeps ahead when it turns sequential.
pub(crate) const FIRST_WINDOW: u64 = 2;
/// Streams tracked per file: a couple of readers of one file each keep theirs.
const STREAMS_PER_FILE: usize = 2;
/// Files whose streams are tracked (the least recently read are forgotten).
const FILES: usize = 64;
/// Most prefetches running at once, over all streams. Up to this, one
/// stream's whole window is fetched at once: a window spans several chunks,
/// whose copies sit on different stores, so every store link carries part
/// of a cold sequential read, not only the two holding the current chunk.
const MAX_FETCHES: u64 = 32;
/// How far from where a stream got to a read may start and still continue
/// it: clients keep several reads in flight, which arrive out of order.
const SLACK: u64 = 2 * MAX_IO as u64;
/// Reads in a row (the first included) before a stream reads ahead.
const SEQUENTIAL_AFTER: u32 = 3;

/// Sequential streams and the blocks fetched ahead of them.
pub(crate) struct Readahead {
    /// The most slots one stream keeps ahead; 0 turns readahead off.
    max_window: u64,
    fetches: Arc<Semaphore>,
    state: Mutex<State>,
}

struct State {
    /// Each file's streams, the most recently read first.
    files: lru::LruCache<InodeId, Vec<Stream>>,
    /// Blocks fetched (or being fetched) ahead, by block.
    held: HashMap<BlockId, Held>,
    /// Counts reads, to tell which stream was read least recently.
    tick: u64,
    next_stream: u64,
}

/// One reader's way through a file.
#[derive(Debug)]
struct Stream {
    id: u64,
    /// Where its first read started.
    start: u64,
    /// The end of the furthest read.
    end: u64,
    /// Reads that continued it (the first included).
    reads: u32,
    /// Bytes those reads asked for.
    bytes: u64,
    /// Slots kept ahead (0 until sequential).
    window: u64,
    /// The slot of the furthest read byte, when last looked at.
    slot: u64,
    /// Slots below this one were already looked at for fetching.
    issued: u64,
    /// `State::tick` at its last read.
    used: u64,
}

/// Which stream a block was fetched for: its file and its id.
type Owner = (InodeId, u64);

struct Held {
    owner: Owner,
    slot: u64,
    done: watch::Receiver<Fetched>,
    task: AbortHandle,
}

#[derive(Clone)]
enum Fetched {
    Pending,
    Ready(Arc<Vec<u8>>),
    Failed,
}

/// Slots to fetch for a stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Ahead {
    owner: Owner,
    pub(crate) slots: Range<u64>,
}

impl Readahead {
    /// Keeps up to `bytes` ahead of each sequential stream (whole slots,
    /// rounded up); 0 turns readahead off.
    pub(crate) fn new(bytes: u64) -> Self {
        Readahead {
            max_window: bytes.div_ceil(SLOT_SIZE),
            fetches: Arc::new(Semaphore::new(
                bytes.div_ceil(SLOT_SIZE).clamp(1, MAX_FETCHES) as usize,
            )),
            state: Mutex::new(State {
                files: lru::LruCache::new(NonZeroUsize::new(FILES).unwrap_or(NonZeroUsize::MIN)),
                held: HashMap::new(),
                tick: 0,
                next_stream: 0,
            }),
        }
    }

    /// The most blocks held at once: two streams' full windows, and the slot
    /// each is in and the one before (reads of it may still be arriving).
    pub(crate) fn budget(&self) -> usize {
        (2 * (self.max_window + 2)) as usize
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a read of `len` bytes at `offset` of `id`, a file of `size`
    /// bytes; returns the slots to fetch ahead when it continues a
    /// sequential stream that has not yet asked for them.
    pub(crate) fn plan(&self, id: InodeId, offset: u64, len: u64, size: u64) -> Option<Ahead> {
        if self.max_window == 0 || len == 0 || size == 0 {
            return None;
        }
        let end = offset + len;
        let mut guard = self.lock();
        let State {
            files,
            held,
            tick,
            next_stream,
        } = &mut *guard;
        *tick += 1;
        let mut gone: Vec<Owner> = Vec::new();
        if !files.contains(&id) {
            if let Some((file, streams)) = files.push(id, Vec::new()) {
                gone.extend(streams.iter().map(|s| (file, s.id)));
            }
        }
        let streams = files.get_mut(&id)?;
        let continued = streams
            .iter()
            .position(|s| offset + SLACK >= s.end && offset <= s.end + SLACK);
        let plan = match continued {
            None => {
                *next_stream += 1;
                streams.insert(
                    0,
                    Stream {
                        id: *next_stream,
                        start: offset,
                        end,
                        reads: 1,
                        bytes: len,
                        window: 0,
                        slot: (end - 1) / SLOT_SIZE,
                        issued: 0,
                        used: *tick,
                    },
                );
                if streams.len() > STREAMS_PER_FILE {
                    gone.extend(streams.pop().map(|s| (id, s.id)));
                }
                None
            }
            Some(i) => {
                let mut s = streams.remove(i);
                s.reads = s.reads.saturating_add(1);
                s.bytes = s.bytes.saturating_add(len);
                s.start = s.start.min(offset);
                s.end = s.end.max(end);
                s.used = *tick;
                let plan = advance(&mut s, self.max_window, size);
                let owner = (id, s.id);
                streams.insert(0, s);
                // The blocks this stream has read past (keeping the slot
                // before this read's: reads of it may still arrive).
                let here = offset / SLOT_SIZE;
                release(held, |h| h.owner == owner && h.slot + 1 < here);
                plan.map(|slots| Ahead { owner, slots })
            }
        };
        release(held, |h| gone.contains(&h.owner));
        plan
    }

    /// Starts fetching `loc`, the block of slot `slot`, for the stream
    /// `ahead` was planned for (unless it is held already, or there is no
    /// room left that an older stream's blocks can make).
    pub(crate) fn start(
        &self,
        ahead: &Ahead,
        slot: u64,
        loc: BlockLocation,
        source: Arc<dyn BlockSource>,
    ) {
        let mut guard = self.lock();
        if guard.held.contains_key(&loc.block) {
            return;
        }
        if guard.held.len() >= self.budget() && !guard.make_room(ahead.owner) {
            return;
        }
        let (tx, rx) = watch::channel(Fetched::Pending);
        let fetches = self.fetches.clone();
        let block = loc.block;
        let task = tokio::spawn(async move {
            let Ok(_permit) = fetches.acquire_owned().await else {
                return;
            };
            let fetched = match source.fetch(&loc).await {
                Ok(bytes) => Fetched::Ready(Arc::new(bytes)),
                Err(e) => {
                    debug!(block = %loc.block, cause = %e, "a readahead fetch failed; a read of the block fetches it itself");
                    Fetched::Failed
                }
            };
            tx.send_replace(fetched);
        })
        .abort_handle();
        guard.held.insert(
            block,
            Held {
                owner: ahead.owner,
                slot,
                done: rx,
                task,
            },
        );
    }

    /// The bytes of `block` when it is held, once its fetch is done; `None`
    /// when it is not held or its fetch failed or was dropped.
    pub(crate) async fn wait(&self, block: BlockId) -> Option<Arc<Vec<u8>>> {
        let mut done = self.lock().held.get(&block)?.done.clone();
        loop {
            let now = done.borrow_and_update().clone();
            match now {
                Fetched::Ready(bytes) => return Some(bytes),
                Fetched::Failed => {
                    self.lock().held.remove(&block);
                    return None;
                }
                Fetched::Pending => {}
            }
            // An error: the task was aborted (its block dropped) meanwhile.
            done.changed().await.ok()?;
        }
    }

    /// Drops every held block and stream.
    fn forget(&self) {
        let mut state = self.lock();
        release(&mut state.held, |_| true);
        state.files.clear();
    }

    /// Blocks held or being fetched.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.lock().held.len()
    }

    /// Whether every held block's fetch has finished.
    #[cfg(test)]
    pub(crate) fn settled(&self) -> bool {
        self.lock()
            .held
            .values()
            .all(|h| !matches!(*h.done.borrow(), Fetched::Pending))
    }
}

impl State {
    /// Drops one block of the least recently read stream other than
    /// `owner` (its furthest ahead first); false when there is none.
    fn make_room(&mut self, owner: Owner) -> bool {
        let files = &self.files;
        let used = |(file, id): Owner| {
            files
                .peek(&file)
                .and_then(|v| v.iter().find(|s| s.id == id))
                .map_or(0, |s| s.used)
        };
        let victim = self
            .held
            .iter()
            .filter(|(_, h)| h.owner != owner)
            .min_by_key(|(_, h)| (used(h.owner), std::cmp::Reverse(h.slot)))
            .map(|(b, _)| *b);
        match victim.and_then(|b| self.held.remove(&b)) {
            Some(h) => {
                h.task.abort();
                true
            }
            None => false,
        }
    }
}

/// Moves a stream on after a read that continued it; returns the slots it
/// newly wants fetched (none past the last slot of a file of `size` bytes).
fn advance(s: &mut Stream, max_window: u64, size: u64) -> Option<Range<u64>> {
    // Sequential: enough reads, which cover at least half the span they
    // reach over. Small random reads that happen to land near each other
    // (a few KiB each, a megabyte apart) are no stream: a wrong readahead
    // costs a whole block per read.
    if s.reads < SEQUENTIAL_AFTER || s.bytes.saturating_mul(2) < s.end - s.start {
        return None;
    }
    let here = (s.end - 1) / SLOT_SIZE;
    if s.window == 0 {
        s.window = FIRST_WINDOW.min(max_window);
    } else if here > s.slot {
        s.window = (s.window * 2).min(max_window);
    }
    s.slot = here;
    let last = ((size - 1) / SLOT_SIZE).min(here + s.window);
    let from = s.issued.max(here + 1);
    if from > last {
        return None;
    }
    s.issued = last + 1;
    Some(from..last + 1)
}

/// Drops the held blocks `which` picks, aborting their fetches.
fn release(held: &mut HashMap<BlockId, Held>, which: impl Fn(&Held) -> bool) {
    held.retain(|_, h| {
        let drop = which(h);
        if drop {
            h.task.abort();
        }
        !drop
    });
}

impl Drop for Readahead {
    fn drop(&mut self) {
        release(&mut self.lock().held, |_| true);
    }
}

impl Fs {
    /// Notes a read of `len` bytes at `offset` of `id` (a file of `size`
    /// bytes) and, when it continues a sequential stream, starts fetching
    /// the evicted slots ahead of it. Best effort: a failure only means
    /// less is fetched ahead.
    pub(super) fn read_ahead(&self, id: InodeId, offset: u64, len: u64, size: u64) {
        let Some(source) = &self.blocks else {
            return;
        };
        let Some(ahead) = self.readahead.plan(id, offset, len, size) else {
            return;
        };
        let (first, last) = (ahead.slots.start, ahead.slots.end - 1);
        let slots = match self.meta.read(|v| v.slots(id, first, last)) {
            Ok(slots) => slots,
            Err(e) => {
                debug!(inode = %id, cause = %e, "no readahead: the slots could not be looked up");
                return;
            }
        };
        for slot in slots {
            // Slots in the cache read from it; lost ones fail on their own.
            let Some(block) = slot.block.filter(|_| !slot.cached && !slot.lost) else {
                continue;
            };
            if let Ok(Some(loc)) = self.meta.read(|v| v.block_location(block)) {
                self.readahead
                    .start(&ahead, slot.index, loc, source.clone());
            }
        }
    }

    /// Forgets the blocks fetched ahead and the streams (`cairn cache drop`).
    pub fn forget_read_ahead(&self) {
        self.readahead.forget();
    }

    /// Bytes `from..from + len` of an evicted slot (fewer past its valid
    /// length): from its block as fetched ahead (waiting for that fetch if
    /// it is under way), or else only the frames that hold them, from the
    /// stores.
    pub(super) async fn evicted_range(
        &self,
        slot: &Slot,
        from: u64,
        len: u64,
        known: Option<cairn_metadata::BlockLocation>,
    ) -> Result<Vec<u8>, FsError> {
        if let Some(block) = slot.block.filter(|_| !slot.lost) {
            if let Some(bytes) = self.readahead.wait(block).await {
                let have = bytes.len().min(slot.valid_len as usize);
                let a = (from as usize).min(have);
                let b = from.saturating_add(len).min(have as u64) as usize;
                return Ok(bytes[a..b].to_vec());
            }
        }
        self.slot_range(slot, from, len, known).await
    }
}
