//! Eviction: dropping the cache copy of slots that are safely drained, so
//! the ingest cache keeps room. A slot is evicted only when it is clean
//! (its block holds its current bytes), no write to its file is in flight,
//! and its version did not move between the check and the commit. Slots go
//! least recently used first, as far as [`Fs::touch`] has seen them.
//! [`Fs::make_room`] evicts before a cache write that would not fit, so
//! drained data never stands in the way of new writes.

use std::sync::atomic::Ordering::Relaxed;

use cairn_metadata::{InodeId, SLOT_SIZE};

use super::{Fs, FsError};

/// What one eviction pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    pub slots: u64,
    pub bytes: u64,
}

impl Fs {
    /// Evicts clean slots until `want` bytes are freed (all of them with
    /// `None`).
    pub async fn evict(&self, want: Option<u64>) -> Result<Evicted, FsError> {
        let mut done = Evicted::default();
        loop {
            let mut batch = self.meta.read(|v| v.clean_cached_slots(4096))?;
            if batch.is_empty() {
                return Ok(done);
            }
            // Least recently used first: slots not seen lately come before
            // those the recent list holds, and those by their age in it.
            let rank = self.recency();
            batch.sort_by_key(|s| {
                std::cmp::Reverse(rank.get(&(s.inode, s.index)).copied().unwrap_or(usize::MAX))
            });
            let mut progressed = false;
            for slot in batch {
                if want.is_some_and(|w| done.bytes >= w) {
                    return Ok(done);
                }
                let id = slot.inode;
                if self.writes_in_flight(id) {
                    continue;
                }
                let _guard = self.data_lock(id).lock().await;
                if self.writes_in_flight(id) {
                    continue;
                }
                let (index, version) = (slot.index, slot.version);
                // Durable before the punch: after a power loss the slot must
                // never claim cached bytes that are gone.
                let evicted = self
                    .meta
                    .write(true, move |tx| {
                        let ok = tx.mark_evicted(id, index, version)?;
                        if ok && index == 0 {
                            tx.remove_inline(id)?;
                        }
                        Ok::<_, FsError>(ok)
                    })
                    .await?;
                if !evicted {
                    continue;
                }
                let freed = self.punch(id, index).await?;
                done.slots += 1;
                done.bytes += freed;
                self.counters.evicted_slots.fetch_add(1, Relaxed);
                self.counters.evicted_bytes.fetch_add(freed, Relaxed);
                progressed = true;
            }
            if !progressed {
                return Ok(done);
            }
        }
    }

    /// Before writing `need` bytes to the cache: if the cache is at its
    /// limit or its disk at the reserve, evicts clean data to make room (and
    /// a little more, so the next writes find room too). Whatever cannot be
    /// freed, the cache write itself refuses.
    pub(crate) async fn make_room(&self, need: u64) -> Result<(), FsError> {
        let short = self.cache.room_short(need);
        if short == 0 {
            return Ok(());
        }
        let want = short.saturating_add(self.cache.max_bytes() / 20);
        let done = self.evict(Some(want)).await?;
        if done.bytes > 0 {
            tracing::info!(
                freed = done.bytes,
                slots = done.slots,
                need,
                "the cache had no room for a write; evicted drained data"
            );
        }
        Ok(())
    }

    /// Frees the cache file's bytes of one slot; returns the bytes freed.
    async fn punch(&self, id: InodeId, index: u64) -> Result<u64, FsError> {
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || cache.punch(id, index * SLOT_SIZE, SLOT_SIZE)).await?
    }
}

impl Fs {
    /// Notes that slots `first..=last` of `id` were just read or written.
    pub(crate) fn touch(&self, id: InodeId, first: u64, last: u64) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        for index in first..=last.min(first + 256) {
            recent.put((id, index), ());
        }
    }

    /// Each remembered slot's age rank: 0 is the most recently used.
    fn recency(&self) -> std::collections::HashMap<(InodeId, u64), usize> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .enumerate()
            .map(|(rank, (key, ()))| (*key, rank))
            .collect()
    }
}
