//! Self-healing: keeps every chunk at its class while stores fail, return,
//! rot or are retired.
//!
//! - A store that stops answering is suspect at once and offline once
//!   `[repair] grace` has passed ([`Stores::health`]); only then do its
//!   copies count as lost. One answer resets it, so a flapping link never
//!   starts a repair storm.
//! - An audit compares each answering store's listing with the metadata
//!   (the metadata read first, so an object written meanwhile is never
//!   taken for missing): a referenced object that is not listed (a scrub
//!   quarantined it, or the disk lost it) counts as lost; an object nothing
//!   references is put in the trash once it has been seen unreferenced for
//!   `orphan_delay`.
//! - Repair takes the most endangered chunk first (fewest spare copies or
//!   shards), makes the missing copies from a surviving replica or rebuilds
//!   the missing shards from `k` others, stores them where the class allows,
//!   and only then commits the new placements in one transaction; the lost
//!   or retired copies go to the trash, deleted when their store answers.
//! - A store being drained (`cairn store drain`) still serves reads; each of
//!   its copies is made elsewhere before it is dropped, so no chunk is ever
//!   below its class because of it.

mod audit;
mod chunk;
pub mod progress;
mod rebalance;
pub mod scrub;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_config::RepairConfig;
use cairn_metadata::{ChunkInfo, ChunkLayout, StoreId};
use tracing::warn;

pub use progress::Progress;

use crate::class::ClassSpec;
use crate::core::Fs;
use crate::error::Error;
use crate::health::{assess, Fleet};
use crate::store::{ObjectKey, Stores};
use crate::work::runner::{Job, Step};

/// Chunks repaired at once (the `tokio::join!` in `repair_one` has this many arms).
const REPAIR_PARALLEL: usize = 4;
/// Rebalancing stops once every active store's fill is within this of the
/// others' (as a fraction of its capacity).
const REBALANCE_SPREAD: f64 = 0.05;
/// Objects handed to the repair by `cairn fsck --deep --repair`.
pub type Condemned = Arc<Mutex<HashSet<(StoreId, String)>>>;

/// One chunk's standing, from the stores' health now.
#[derive(Debug)]
struct Need {
    info: ChunkInfo,
    spec: Arc<ClassSpec>,
    /// Placements that still hold good data and stay.
    keep: Vec<(u32, StoreId)>,
    /// Placements to give up once replaced: lost ones, and those on stores
    /// being drained (still readable).
    drop: Vec<(u32, StoreId)>,
    /// Copy or shard indices to make.
    make: Vec<u32>,
    /// Readable copies or shards beyond the minimum (lower: more urgent).
    spare: i64,
}

/// The background worker.
pub struct Repairer {
    fs: Arc<Fs>,
    stores: Arc<Stores>,
    cfg: RepairConfig,
    progress: Arc<Mutex<Progress>>,
    /// Referenced objects the last audit did not find on their store.
    missing: HashSet<(StoreId, String)>,
    /// Objects `cairn fsck --deep --repair` found bad: rebuilt like lost ones.
    condemned: Condemned,
    /// Objects no chunk references, and since when.
    unreferenced: HashMap<(StoreId, String), Instant>,
    /// When the audit last listed each store.
    listed: HashMap<StoreId, Instant>,
    /// Chunks the last pass left alone because their class cannot be read.
    unreadable: AtomicU64,
}

impl Repairer {
    pub fn new(fs: Arc<Fs>, stores: Arc<Stores>, cfg: RepairConfig) -> Self {
        Repairer {
            fs,
            stores,
            cfg,
            progress: Arc::new(Mutex::new(Progress::default())),
            missing: HashSet::new(),
            condemned: Arc::new(Mutex::new(HashSet::new())),
            unreferenced: HashMap::new(),
            listed: HashMap::new(),
            unreadable: AtomicU64::new(0),
        }
    }

    /// Where `cairn fsck --deep --repair` hands bad objects over.
    pub fn condemned(&self) -> Condemned {
        self.condemned.clone()
    }

    fn is_bad(&self, id: &(StoreId, String)) -> bool {
        self.missing.contains(id)
            || self
                .condemned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(id)
    }

    /// Shared with the admin socket for `cairn status`.
    pub fn progress(&self) -> Arc<Mutex<Progress>> {
        self.progress.clone()
    }

    fn with_progress<T>(&self, f: impl FnOnce(&mut Progress) -> T) -> T {
        f(&mut self.progress.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The pause after writing `bytes`, to keep to `[repair] bandwidth`.
    fn pause_for(&self, bytes: u64) -> Duration {
        match self.cfg.bandwidth.bytes() {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(bytes as f64 / rate as f64),
        }
    }

    /// Looks at every chunk and repairs the most endangered one. Returns the
    /// bytes written (0: nothing to do).
    pub async fn repair_one(&self) -> Result<u64, Error> {
        let needs = self.needs().await?;
        let (mut waiting, mut bytes, mut stuck, mut unplaceable) = (0u64, 0u64, 0u64, 0u64);
        let mut queue: Vec<usize> = Vec::new();
        for (i, need) in needs.iter().enumerate() {
            if need.make.is_empty() {
                continue;
            }
            if need.spare < 0 {
                stuck += 1;
                continue;
            }
            // No store can take a missing copy now: not work the ETA can
            // count on (status says why under the class).
            let size = per_object(&need.info);
            if self
                .targets(&need.spec, &need.info, &need.keep, &need.make, size)?
                .is_empty()
            {
                unplaceable += 1;
                continue;
            }
            waiting += 1;
            bytes += per_object(&need.info) * need.make.len() as u64;
            queue.push(i);
        }
        self.with_progress(|p| {
            p.waiting_chunks = waiting;
            p.waiting_bytes = bytes;
            p.stuck_chunks = stuck;
            p.unplaceable_chunks = unplaceable;
            if waiting == 0 {
                p.burst_since = None;
                p.burst_bytes = 0;
            } else if p.burst_since.is_none() {
                p.burst_since = Some(Instant::now());
            }
        });
        if queue.is_empty() {
            let moved = self.rebalance_one(needs).await?;
            if moved > 0 {
                self.with_progress(|p| {
                    p.rebalanced_chunks += 1;
                    p.rebalanced_bytes += moved;
                });
            }
            return Ok(moved);
        }
        // The most endangered first, a few chunks at once (each reads from
        // and writes to different stores, so they overlap well).
        queue.sort_by_key(|&i| needs[i].spare);
        queue.truncate(REPAIR_PARALLEL);
        let mut needs: Vec<Option<Need>> = needs.into_iter().map(Some).collect();
        let mut batch = queue.into_iter().map(|i| needs[i].take());
        let (a, b, c, d) = tokio::join!(
            self.repair_counted(batch.next().flatten()),
            self.repair_counted(batch.next().flatten()),
            self.repair_counted(batch.next().flatten()),
            self.repair_counted(batch.next().flatten()),
        );
        let mut written = 0;
        let mut first_error = None;
        for result in [a, b, c, d] {
            match result {
                Ok(n) => written += n,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if written == 0 => Err(e),
            Some(e) => {
                warn!(cause = %e, "a repair failed; the others went through");
                Ok(written)
            }
            None => Ok(written),
        }
    }

    /// Repairs one chunk (none: nothing) and counts it.
    async fn repair_counted(&self, need: Option<Need>) -> Result<u64, Error> {
        let Some(need) = need else {
            return Ok(0);
        };
        let written = self.repair(need).await?;
        self.with_progress(|p| {
            p.repaired_chunks += 1;
            p.repaired_bytes += written;
            p.burst_bytes += written;
        });
        Ok(written)
    }

    /// Every stored chunk's standing (see `health`). The chunk table is
    /// read off the runtime threads (`spawn_blocking`): large synchronous
    /// SQLite reads never run on them.
    async fn needs(&self) -> Result<Vec<Need>, Error> {
        let chunks = self.fs.chunks().await?;
        let catalog = self.fs.classes().snapshot()?;
        let fleet = Fleet::of(&self.stores, self.cfg.grace.get());
        let mut out = Vec::with_capacity(chunks.len());
        let mut unreadable = 0u64;
        for info in chunks {
            // A chunk whose class cannot be read is left as it is (see `catalog`).
            let Ok(spec) = catalog.effective(info.class, info.layout) else {
                unreadable += 1;
                continue;
            };
            let standing = assess(&info, &spec, &fleet, |shard, store| {
                self.is_bad(&(
                    store,
                    ObjectKey::of(info.id, info.layout, shard).to_string(),
                ))
            });
            out.push(Need {
                spare: standing.spare,
                keep: standing.keep,
                drop: standing.drop,
                make: standing.make,
                info,
                spec,
            });
        }
        if self.unreadable.swap(unreadable, Ordering::Relaxed) != unreadable && unreadable > 0 {
            warn!(chunks = unreadable, "chunks of classes whose spec cannot be read are left as they are; fix or recreate the class");
        }
        Ok(out)
    }
}

/// The repair as a background [`Job`]: an audit every `[repair]
/// audit_every` (the first 2 s after start), then one repair (or, with
/// nothing to repair, one rebalancing move) per step, paced by `[repair]
/// bandwidth`.
pub struct RepairJob {
    repairer: Repairer,
    next_audit: Instant,
}

impl Repairer {
    /// The job that runs this repairer under [`crate::work::runner::run`].
    pub fn job(self) -> RepairJob {
        RepairJob {
            repairer: self,
            next_audit: Instant::now() + Duration::from_secs(2),
        }
    }
}

impl Job for RepairJob {
    fn name(&self) -> &'static str {
        "repair"
    }

    async fn step(&mut self) -> Result<Step, Error> {
        if Instant::now() >= self.next_audit {
            if let Err(e) = self.repairer.audit().await {
                warn!(cause = %e, "store audit failed");
            }
            self.next_audit = Instant::now() + self.repairer.cfg.audit_every.get();
        }
        Ok(match self.repairer.repair_one().await? {
            0 => Step::Idle,
            bytes => match self.repairer.pause_for(bytes) {
                Duration::ZERO => Step::Busy,
                pause => Step::Throttled(pause),
            },
        })
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// Bytes of one copy or shard of the chunk.
fn per_object(info: &ChunkInfo) -> u64 {
    match info.layout {
        ChunkLayout::Replicas => info.size,
        ChunkLayout::Ec { shard_len, .. } => shard_len,
    }
}

fn what(info: &ChunkInfo) -> &'static str {
    match info.layout {
        ChunkLayout::Replicas => "copies",
        ChunkLayout::Ec { .. } => "shards",
    }
}
