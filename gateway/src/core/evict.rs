//! Eviction: dropping the cache copy of slots that are safely drained, so
//! the ingest cache keeps room. A slot is evicted only when it is clean
//! (its block holds its current bytes), no write to its file is in flight,
//! and its version did not move between the check and the commit.

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
            let batch = self.meta.read(|v| v.clean_cached_slots(256))?;
            if batch.is_empty() {
                return Ok(done);
            }
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
                let (index, version) = (slot.index, slot.version);
                let evicted = self
                    .meta
                    .write(false, move |tx| {
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
                progressed = true;
            }
            if !progressed {
                return Ok(done);
            }
        }
    }

    /// Frees the cache file's bytes of one slot; returns the bytes freed.
    async fn punch(&self, id: InodeId, index: u64) -> Result<u64, FsError> {
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || cache.punch(id, index * SLOT_SIZE, SLOT_SIZE)).await?
    }
}
