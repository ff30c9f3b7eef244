//! The drain pass: picks quiet dirty slots, packs them by class into
//! chunks and hands each to an [`Upload`]; and cache eviction by
//! watermark, which runs after each pass.

use std::collections::BTreeMap;

use cairn_metadata::{ClassId, DirtySlot, Timestamp};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::upload::Upload;
use super::{class_of, gone, Drainer, PACK_WAIT, PASS};
use crate::class::Layout;
use crate::core::FsError;
use crate::error::Error;

impl Drainer {
    /// One pass: drains what is quiet now. Returns the slots attached.
    ///
    /// Slots of one class are packed into chunks of `chunk_size`. A class
    /// with less than a chunk's worth waiting is held back until its oldest
    /// slot has waited `PACK_WAIT` more than the quiet period, so a stream
    /// of small files still fills chunks. Chunks upload concurrently: enough
    /// to keep every store's link full (see [`chunks_in_flight`]); a class
    /// that cannot be placed does not hold up the others.
    pub async fn drain_once(&self) -> Result<usize, Error> {
        let quiet = i64::try_from(self.cfg.quiet.get().as_nanos()).unwrap_or(i64::MAX);
        let now = Timestamp::now().0;
        let quiet_before = Timestamp(now.saturating_sub(quiet));
        let pack_before = Timestamp(quiet_before.0.saturating_sub(PACK_WAIT.as_nanos() as i64));
        let dirty = self.fs.dirty_slots(quiet_before, PASS).await?;
        if dirty.is_empty() {
            return Ok(0);
        }
        let full_pass = dirty.len() >= PASS;
        let default = self.fs.classes().default_id().await?;
        let mut by_class: BTreeMap<ClassId, Vec<DirtySlot>> = BTreeMap::new();
        for slot in dirty {
            by_class
                .entry(slot.class.unwrap_or(default))
                .or_default()
                .push(slot);
        }
        let target = self.cfg.chunk_size.bytes().max(1);
        let mut uploads = JoinSet::new();
        let mut attached = 0;
        let mut first_error = None;
        for (class, slots) in by_class {
            let waiting: u64 = slots
                .iter()
                .map(|s| {
                    s.size
                        .saturating_sub(s.index * cairn_metadata::SLOT_SIZE)
                        .min(cairn_metadata::SLOT_SIZE)
                })
                .sum();
            let oldest = slots.iter().map(|s| s.since).min().unwrap_or(Timestamp(0));
            if waiting < target && oldest > pack_before && !full_pass {
                continue;
            }
            // A class that cannot be read is not drained (see `catalog`):
            // its slots stay dirty in the cache; the others go on.
            let (name, spec) = match class_of(self.fs.classes(), class) {
                Ok(found) => found,
                Err(e) => {
                    first_error.get_or_insert(e.into());
                    continue;
                }
            };
            let mut batch: Vec<(DirtySlot, Vec<u8>)> = Vec::new();
            let mut size = 0u64;
            let mut slots = slots.into_iter().peekable();
            while let Some(slot) = slots.next() {
                if !self.fs.writes_in_flight(slot.inode) {
                    if let Some(bytes) = self
                        .fs
                        .slot_content(slot.inode, slot.index)
                        .await
                        .or_else(gone)?
                    {
                        size += bytes.len() as u64;
                        batch.push((slot, bytes));
                    }
                }
                if !batch.is_empty() && (size >= target || slots.peek().is_none()) {
                    let object = match spec.layout {
                        Layout::Replicas { .. } => target,
                        Layout::ErasureCoded { k, .. } => target / u64::from(k.max(1)),
                    };
                    let in_flight = chunks_in_flight(
                        self.stores.upload_depth(object),
                        spec.copies(),
                        self.cfg.store_concurrency,
                    );
                    while uploads.len() >= in_flight {
                        collect_upload(uploads.join_next().await, &mut attached, &mut first_error);
                    }
                    let job = Upload {
                        fs: self.fs.clone(),
                        stores: self.stores.clone(),
                        class,
                        name: name.clone(),
                        spec: spec.clone(),
                        items: std::mem::take(&mut batch),
                    };
                    uploads.spawn(job.run());
                    size = 0;
                }
            }
        }
        while let Some(done) = uploads.join_next().await {
            collect_upload(Some(done), &mut attached, &mut first_error);
        }
        match first_error {
            Some(e) if attached == 0 => Err(e),
            Some(e) => {
                warn!(cause = %e, attached, "part of a drain pass failed; the rest was stored");
                Ok(attached)
            }
            None => Ok(attached),
        }
    }

    /// Evicts clean data when the cache passes 90% of its size (down to
    /// 70%), or its disk's free space falls under twice the reserve.
    pub(super) async fn keep_cache_room(&self) -> Result<(), FsError> {
        let want = self.fs.cache().pressure();
        if want > 0 {
            let done = self.fs.evict(Some(want)).await?;
            if done.bytes == 0 {
                return Ok(());
            }
            info!(
                freed = done.bytes,
                slots = done.slots,
                "cache above its high watermark or its disk nearly full; evicted clean data"
            );
        }
        Ok(())
    }
}

fn collect_upload(
    done: Option<Result<Result<usize, Error>, tokio::task::JoinError>>,
    attached: &mut usize,
    first_error: &mut Option<Error>,
) {
    let error = match done {
        Some(Ok(Ok(n))) => {
            *attached += n;
            return;
        }
        Some(Ok(Err(e))) => e,
        Some(Err(e)) => Error::Fs(FsError::from(e)),
        None => return,
    };
    first_error.get_or_insert(error);
}

/// Chunks at most in flight at once: enough for every store link to have
/// `depth` objects (summed over the stores) on their way when each chunk
/// writes `copies` of them, plus one being sealed; never fewer than
/// `[drain] store_concurrency`, never more than [`MAX_CHUNKS_IN_FLIGHT`]
/// (each is held in memory).
fn chunks_in_flight(depth: usize, copies: usize, configured: usize) -> usize {
    (depth.div_ceil(copies.max(1)) + 1).clamp(configured.max(1), MAX_CHUNKS_IN_FLIGHT)
}

/// See [`chunks_in_flight`].
const MAX_CHUNKS_IN_FLIGHT: usize = 16;

#[cfg(test)]
#[test]
fn chunks_in_flight_fill_every_link() {
    // Three stores, two uploads each, two copies a chunk: three chunks fill
    // them, one more is sealed; the configured four stay the floor.
    assert_eq!(chunks_in_flight(6, 2, 4), 4);
    // Twelve stores: today's four would leave most links idle.
    assert_eq!(chunks_in_flight(24, 2, 4), 13);
    assert_eq!(chunks_in_flight(200, 1, 4), MAX_CHUNKS_IN_FLIGHT);
}
