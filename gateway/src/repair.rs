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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_config::RepairConfig;
use cairn_metadata::{ChunkId, ChunkInfo, ChunkLayout, StoreId, Timestamp};
use tracing::{debug, info, warn};

use crate::admin::proto::{Rebalance, RepairProgress};
use crate::catalog::CatalogError;
use crate::class::{ClassSpec, Layout};
use crate::core::{Fs, FsError};
use crate::health::{assess, Fleet};
use crate::store::ec;
use crate::store::placement::place;
use crate::store::{ObjectKey, Reach, Stores};

/// Chunks repaired at once (the `tokio::join!` in `repair_one` has this many arms).
const REPAIR_PARALLEL: usize = 4;
/// Rebalancing stops once every active store's fill is within this of the
/// others' (as a fraction of its capacity).
const REBALANCE_SPREAD: f64 = 0.05;

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Class(#[from] CatalogError),
    #[error("chunk {chunk}: {why}")]
    Chunk { chunk: u64, why: String },
}

impl From<cairn_metadata::MetaError> for RepairError {
    fn from(e: cairn_metadata::MetaError) -> Self {
        RepairError::Fs(e.into())
    }
}

/// Objects handed to the repair by `cairn fsck --deep --repair`.
pub type Condemned = Arc<Mutex<HashSet<(StoreId, String)>>>;

/// What `cairn status` shows of the repair work.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// Chunks below their class (or on a store being drained) at the last
    /// pass, and their bytes on the stores.
    pub waiting_chunks: u64,
    pub waiting_bytes: u64,
    /// Chunks that cannot be repaired now (too few copies or shards left).
    pub stuck_chunks: u64,
    /// Chunks short of copies that no store can take now (left out of the
    /// waiting work and its ETA).
    pub unplaceable_chunks: u64,
    pub repaired_chunks: u64,
    pub repaired_bytes: u64,
    /// Bytes written by repairs since the queue last became non-empty, and
    /// when that was: the rate for the ETA.
    burst_bytes: u64,
    burst_since: Option<Instant>,
    pub last_audit: Option<Instant>,
    pub orphans_trashed: u64,
    /// Rebalancing: the fill gap between the fullest and the emptiest active
    /// store (points), and the copies moved so far.
    pub fill_spread_points: f64,
    pub rebalanced_chunks: u64,
    pub rebalanced_bytes: u64,
}

impl Progress {
    /// What `cairn status` shows of it.
    pub fn report(&self) -> RepairProgress {
        let rate = match self.burst_since {
            Some(t) if t.elapsed() > Duration::from_secs(1) && self.burst_bytes > 0 => {
                self.burst_bytes as f64 / t.elapsed().as_secs_f64()
            }
            _ => 0.0,
        };
        let eta = (rate > 0.0).then(|| (self.waiting_bytes as f64 / rate).round());
        RepairProgress {
            waiting_chunks: self.waiting_chunks,
            waiting_bytes: self.waiting_bytes,
            stuck_chunks: self.stuck_chunks,
            unplaceable_chunks: self.unplaceable_chunks,
            repaired_chunks: self.repaired_chunks,
            repaired_bytes: self.repaired_bytes,
            bytes_per_second: rate.round(),
            eta_seconds: eta,
            last_audit_seconds_ago: self.last_audit.map(|t| t.elapsed().as_secs()),
            orphans_trashed: self.orphans_trashed,
            rebalance: Rebalance {
                fill_spread_points: (self.fill_spread_points * 10.0).round() / 10.0,
                target_points: REBALANCE_SPREAD * 100.0,
                moved_chunks: self.rebalanced_chunks,
                moved_bytes: self.rebalanced_bytes,
            },
        }
    }
}

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

    /// Runs until the task is dropped.
    pub async fn run(mut self) {
        let mut next_audit = Instant::now() + Duration::from_secs(2);
        loop {
            if Instant::now() >= next_audit {
                if let Err(e) = self.audit().await {
                    warn!(cause = %e, "store audit failed");
                }
                next_audit = Instant::now() + self.cfg.audit_every.get();
            }
            let pause = match self.repair_one().await {
                Ok(0) => Duration::from_secs(1),
                Ok(bytes) => self.pause_for(bytes),
                Err(e) => {
                    warn!(cause = %e, "repair failed; will retry");
                    Duration::from_secs(2)
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    fn pause_for(&self, bytes: u64) -> Duration {
        match self.cfg.bandwidth.bytes() {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(bytes as f64 / rate as f64),
        }
    }

    /// Compares every answering store's listing with the metadata.
    pub async fn audit(&mut self) -> Result<(), RepairError> {
        let meta = self.fs.metadata();
        // The metadata first: anything referenced now was stored before.
        let chunks = meta.read(|v| v.chunks())?;
        let pending: HashSet<u64> = meta
            .read(|v| v.pending_chunk_ids())?
            .into_iter()
            .map(|c| c.0)
            .collect();
        let mut referenced: HashSet<(StoreId, String)> = HashSet::new();
        for c in &chunks {
            for &(shard, store) in &c.placements {
                referenced.insert((store, ObjectKey::of(c.id, c.layout, shard).to_string()));
            }
        }
        let mut missing = HashSet::new();
        let mut seen_unreferenced = HashMap::new();
        for view in self.stores.views() {
            let store = view.id;
            if !view.online {
                continue;
            }
            let Ok(listed) = self.stores.list_keys(store, None).await else {
                continue;
            };
            for key in &listed {
                // Only chunk objects: metadata backups (`m…`) have their own
                // pruning (ship.rs).
                let Some(chunk) = key.parse::<ObjectKey>().ok().and_then(|k| k.chunk()) else {
                    continue;
                };
                let id = (store, key.clone());
                if !referenced.contains(&id) && !pending.contains(&chunk.0) {
                    let since = self
                        .unreferenced
                        .get(&id)
                        .copied()
                        .unwrap_or_else(Instant::now);
                    seen_unreferenced.insert(id, since);
                }
            }
            let listed: HashSet<&String> = listed.iter().collect();
            for (s, key) in referenced.iter().filter(|(s, _)| *s == store) {
                if !listed.contains(key) {
                    warn!(store = %self.stores.name(*s), key, "a referenced object is missing from its store; it will be rebuilt");
                    missing.insert((*s, key.clone()));
                }
            }
        }
        self.missing = missing;
        let delay = self.cfg.orphan_delay.get();
        let due: Vec<(StoreId, String)> = seen_unreferenced
            .iter()
            .filter(|(_, since)| since.elapsed() >= delay)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            seen_unreferenced.remove(id);
        }
        self.unreferenced = seen_unreferenced;
        if !due.is_empty() {
            info!(objects = due.len(), "deleting objects no chunk references");
            let n = due.len() as u64;
            meta.write(true, move |tx| tx.put_in_trash(&due, Timestamp::now()))
                .await
                .map_err(FsError::from)?;
            self.with_progress(|p| p.orphans_trashed += n);
        }
        self.with_progress(|p| p.last_audit = Some(Instant::now()));
        Ok(())
    }

    /// Looks at every chunk and repairs the most endangered one. Returns the
    /// bytes written (0: nothing to do).
    pub async fn repair_one(&self) -> Result<u64, RepairError> {
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
    async fn repair_counted(&self, need: Option<Need>) -> Result<u64, RepairError> {
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
    async fn needs(&self) -> Result<Vec<Need>, RepairError> {
        let meta = self.fs.metadata().clone();
        let classes = self.fs.classes().clone();
        let (chunks, catalog) = tokio::task::spawn_blocking(move || {
            Ok::<_, RepairError>((meta.read(|v| v.chunks())?, classes.snapshot()?))
        })
        .await
        .map_err(FsError::from)??;
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

    /// When nothing needs repair and the active stores' fills (cairn's bytes
    /// on each, from the metadata, over its capacity) differ by more than
    /// [`REBALANCE_SPREAD`]: moves one copy or shard from the fullest store
    /// to a less full one the chunk's class allows, if that narrows the gap.
    async fn rebalance_one(&self, needs: Vec<Need>) -> Result<u64, RepairError> {
        let views = self.stores.placeable();
        let mut load: HashMap<u64, u64> = HashMap::new();
        for n in &needs {
            for &(_, s) in &n.info.placements {
                *load.entry(s.0).or_default() += per_object(&n.info);
            }
        }
        let fill = |id: u64, extra: i64| {
            let v = views.iter().find(|v| v.id.0 == id);
            let cap = v.map_or(0, |v| v.capacity).max(1);
            (load.get(&id).copied().unwrap_or(0) as i64 + extra) as f64 / cap as f64
        };
        let active: Vec<u64> = views
            .iter()
            .filter(|v| v.online && v.capacity > 0)
            .map(|v| v.id.0)
            .collect();
        let by_fill = |a: &&u64, b: &&u64| fill(**a, 0).total_cmp(&fill(**b, 0));
        let (Some(&full), Some(&empty)) =
            (active.iter().max_by(by_fill), active.iter().min_by(by_fill))
        else {
            return Ok(0);
        };
        let gap = fill(full, 0) - fill(empty, 0);
        self.with_progress(|p| p.fill_spread_points = gap * 100.0);
        if gap <= REBALANCE_SPREAD {
            return Ok(0);
        }
        for need in needs {
            if !need.make.is_empty() || !need.drop.is_empty() {
                continue;
            }
            let Some(&(i, src)) = need.info.placements.iter().find(|p| p.1 .0 == full) else {
                continue;
            };
            let size = per_object(&need.info);
            let keep: Vec<(u32, StoreId)> =
                need.keep.iter().copied().filter(|p| p.1 != src).collect();
            let targets = self.targets(&need.spec, &need.info, &keep, &[i], size)?;
            let Some(&(_, dst)) = targets.first() else {
                continue;
            };
            let signed = i64::try_from(size).unwrap_or(i64::MAX);
            if fill(dst.0, signed) >= fill(full, -signed) {
                continue;
            }
            info!(chunk = %need.info.id, from = %self.stores.name(src), to = %self.stores.name(dst), bytes = size, "rebalancing a copy to a less full store");
            let need = Need {
                keep,
                drop: vec![(i, src)],
                make: vec![i],
                ..need
            };
            return self.repair_to(need, targets).await;
        }
        Ok(0)
    }

    /// Makes the missing copies or shards of one chunk and commits them.
    async fn repair(&self, need: Need) -> Result<u64, RepairError> {
        let size = per_object(&need.info);
        let targets = self.targets(&need.spec, &need.info, &need.keep, &need.make, size)?;
        self.repair_to(need, targets).await
    }

    /// As [`Repairer::repair`], onto the given `(index, store)` targets.
    async fn repair_to(
        &self,
        need: Need,
        targets: Vec<(u32, StoreId)>,
    ) -> Result<u64, RepairError> {
        let Need {
            info, spec, drop, ..
        } = need;
        let chunk = info.id;
        let fail = |why: String| RepairError::Chunk {
            chunk: chunk.0,
            why,
        };
        if targets.is_empty() {
            return Err(fail(format!(
                "no store can take its missing {} (class {})",
                what(&info),
                spec.describe()
            )));
        }
        // The bytes of each object to make.
        let sources: Vec<(u32, StoreId)> = info
            .placements
            .iter()
            .copied()
            .filter(|&(shard, store)| {
                let missing =
                    self.is_bad(&(store, ObjectKey::of(chunk, info.layout, shard).to_string()));
                !missing && self.stores.health(store, self.cfg.grace.get()).0 != Reach::Offline
            })
            .collect();
        let objects: Vec<(u32, StoreId, Arc<Vec<u8>>)> = match info.layout {
            ChunkLayout::Replicas => {
                let body = self.read_replica(&info, &sources).await.map_err(fail)?;
                let body = Arc::new(body);
                targets.iter().map(|&(i, s)| (i, s, body.clone())).collect()
            }
            ChunkLayout::Ec { k, m, shard_len } => {
                let all = self
                    .rebuild_shards(chunk, k as usize, m as usize, shard_len, &sources)
                    .await
                    .map_err(fail)?;
                targets
                    .iter()
                    .map(|&(i, s)| (i, s, Arc::new(all[i as usize].clone())))
                    .collect()
            }
        };
        let mut written = 0u64;
        let mut tried = Vec::new();
        for (shard, store, bytes) in &objects {
            let key = ObjectKey::of(chunk, info.layout, *shard).to_string();
            tried.push((*store, key.clone()));
            if let Err(e) = self.stores.put(*store, &key, bytes.clone()).await {
                let meta = self.fs.metadata();
                meta.write(true, move |tx| tx.put_in_trash(&tried, Timestamp::now()))
                    .await
                    .map_err(FsError::from)?;
                return Err(fail(format!(
                    "storing on {}: {e}",
                    self.stores.name(*store)
                )));
            }
            written += bytes.len() as u64;
        }
        // Placements to give up: the dropped ones whose index was remade.
        let made: HashSet<u32> = targets.iter().map(|t| t.0).collect();
        let removed: Vec<(u32, StoreId)> = drop
            .iter()
            .copied()
            .filter(|(i, _)| made.contains(i))
            .collect();
        let trash: Vec<(StoreId, String)> = removed
            .iter()
            .map(|&(shard, store)| (store, ObjectKey::of(chunk, info.layout, shard).to_string()))
            .collect();
        let added = targets.clone();
        let layout = info.layout;
        let (r, a) = (removed.clone(), added.clone());
        let checksums: Vec<(u32, StoreId, Vec<u8>)> = objects
            .iter()
            .map(|(i, s, bytes)| (*i, *s, crc32c::crc32c(bytes).to_le_bytes().to_vec()))
            .collect();
        let committed = self
            .fs
            .metadata()
            .write(true, move |tx| {
                let now = Timestamp::now();
                let done = tx.repair_chunk(chunk, layout, &r, &a, &trash, now)?;
                if !done {
                    tx.put_in_trash(&tried, now)?;
                }
                for (shard, store, crc) in checksums.iter().filter(|_| done) {
                    tx.set_checksum(chunk, *shard, *store, crc)?;
                }
                Ok::<_, cairn_metadata::MetaError>(done)
            })
            .await
            .map_err(FsError::from)?;
        if committed {
            let names = |v: &[(u32, StoreId)]| {
                v.iter()
                    .map(|&(i, s)| format!("{i}@{}", self.stores.name(s)))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            info!(chunk = %chunk, made = %names(&added), dropped = %names(&removed), bytes = written, "repaired a chunk");
        } else {
            debug!(chunk = %chunk, "chunk changed during its repair; the new copies are trashed");
        }
        Ok(written)
    }

    /// Stores for the indices in `make`: online, active, labels of that
    /// index's rule, not holding the chunk, and (when possible, always for a
    /// strict class) outside the spread domains the kept copies use.
    fn targets(
        &self,
        spec: &ClassSpec,
        info: &ChunkInfo,
        keep: &[(u32, StoreId)],
        make: &[u32],
        size: u64,
    ) -> Result<Vec<(u32, StoreId)>, RepairError> {
        let views = self.stores.placeable();
        let holders: Vec<StoreId> = info.placements.iter().map(|p| p.1).collect();
        let kept_domains: Vec<String> = keep
            .iter()
            .filter_map(|&(_, s)| views.iter().find(|v| v.id == s))
            .map(|v| format!("{:?}", v.domain(spec.spread)))
            .collect();
        let same_domain: Vec<StoreId> = views
            .iter()
            .filter(|v| kept_domains.contains(&format!("{:?}", v.domain(spec.spread))))
            .map(|v| v.id)
            .collect();
        let sub = ClassSpec {
            name: spec.name.clone(),
            layout: Layout::Replicas {
                n: make.len().min(usize::from(u8::MAX)) as u8,
            },
            labels: make
                .iter()
                .map(|&i| spec.rule(i as usize).clone())
                .collect(),
            spread: spec.spread,
            strict: spec.strict,
            archive: None,
            durability: crate::class::Durability::Local,
        };
        let wide: Vec<StoreId> = holders.iter().chain(&same_domain).copied().collect();
        let mut placement = place(&sub, &views, size, &wide);
        if !spec.strict && placement.targets.iter().any(Option::is_none) {
            let narrow = place(&sub, &views, size, &holders);
            if narrow.targets.iter().flatten().count() > placement.targets.iter().flatten().count()
            {
                placement = narrow;
            }
        }
        Ok(placement
            .targets
            .iter()
            .zip(make)
            .filter_map(|(t, &i)| t.map(|s| (i, s)))
            .collect())
    }

    async fn read_replica(
        &self,
        info: &ChunkInfo,
        sources: &[(u32, StoreId)],
    ) -> Result<Vec<u8>, String> {
        let key = ObjectKey::of(info.id, info.layout, 0).to_string();
        let mut why = String::from("no readable replica");
        for &(_, store) in sources {
            match self.stores.get(store, &key, 0, info.size).await {
                Ok(body) => return Ok(body),
                Err(e) => why = format!("{}: {e}", self.stores.name(store)),
            }
        }
        Err(why)
    }

    /// Reads `k` whole shards and rebuilds all `k + m`.
    async fn rebuild_shards(
        &self,
        chunk: ChunkId,
        k: usize,
        m: usize,
        shard_len: u64,
        sources: &[(u32, StoreId)],
    ) -> Result<Vec<Vec<u8>>, String> {
        let mut range: Vec<Option<Vec<u8>>> = vec![None; k + m];
        let mut have = 0;
        let mut failures = Vec::new();
        for &(shard, store) in sources {
            if have == k || shard as usize >= k + m {
                continue;
            }
            match self
                .stores
                .get(
                    store,
                    &crate::store::ObjectKey::Shard { chunk, shard }.to_string(),
                    0,
                    shard_len,
                )
                .await
            {
                Ok(bytes) => {
                    range[shard as usize] = Some(bytes);
                    have += 1;
                }
                Err(e) => {
                    failures.push(format!("shard {shard} on {}: {e}", self.stores.name(store)))
                }
            }
        }
        ec::rebuild(k, m, range).map_err(|e| format!("{e} ({})", failures.join("; ")))
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
