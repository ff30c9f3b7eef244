//! The drainer: moves quiet, dirty slots from the ingest cache to the chunk
//! stores. Slots of one class are sealed into blocks and packed together
//! into chunks (many small files share one remote object); each chunk goes
//! to every store its class's placement picks, and only when every copy is
//! stored does one metadata transaction attach the blocks to their slots.
//! A slot written meanwhile keeps its newer version and stays dirty; its
//! uploaded block is garbage for the collector. A store that is down only
//! delays the drain: nothing is marked clean until it is stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_config::DrainConfig;
use cairn_metadata::{ClassId, DirtySlot, NewBlock, StoreId, Timestamp};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::class::ClassSpec;
use crate::core::{Fs, FsError};
use crate::placement::{place, PlacementHealth};
use crate::remote::{block_aad, chunk_key, Stores};

/// Dirty slots looked at per pass.
const PASS: usize = 4096;
/// How long past the quiet period less than a chunk's worth of a class may
/// wait for more, so small files share chunks.
const PACK_WAIT: Duration = Duration::from_secs(2);
/// Chunks left pending this long (a drain that died) are collected.
const PENDING_GRACE: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("no chunk store can take a chunk of class {class}: {why}")]
    NoTarget { class: String, why: String },
    #[error("storing chunk {chunk} on {store} failed: {cause}")]
    Put {
        chunk: u64,
        store: String,
        cause: String,
    },
}

impl From<cairn_metadata::MetaError> for DrainError {
    fn from(e: cairn_metadata::MetaError) -> Self {
        DrainError::Fs(e.into())
    }
}

/// The background worker: drain, evict by watermark, collect garbage.
pub struct Drainer {
    fs: Arc<Fs>,
    stores: Arc<Stores>,
    cfg: DrainConfig,
}

impl Drainer {
    pub fn new(fs: Arc<Fs>, stores: Arc<Stores>, cfg: DrainConfig) -> Self {
        Drainer { fs, stores, cfg }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(500);
        let mut last_probe = Instant::now() - Duration::from_secs(60);
        let mut last_collect = Instant::now();
        loop {
            if last_probe.elapsed() > Duration::from_secs(2) {
                self.stores.probe().await;
                last_probe = Instant::now();
            }
            let drained = match self.drain_once().await {
                Ok(n) => {
                    backoff = Duration::from_millis(500);
                    n
                }
                Err(e) => {
                    warn!(cause = %e, retry_in = ?backoff, "drain pass failed; the data stays in the cache");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    last_probe = Instant::now() - Duration::from_secs(60);
                    continue;
                }
            };
            if let Err(e) = self.keep_cache_room().await {
                warn!(cause = %e, "cache eviction failed");
            }
            if last_collect.elapsed() > Duration::from_secs(10) {
                if let Err(e) = self.collect().await {
                    warn!(cause = %e, "garbage collection failed");
                }
                if let Err(e) = self.compact().await {
                    warn!(cause = %e, "chunk compaction failed");
                }
                last_collect = Instant::now();
            }
            if drained == 0 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    fn class_spec(&self, class: ClassId) -> Result<(String, ClassSpec), DrainError> {
        let classes = self.fs.metadata().read(|v| v.classes())?;
        let found = classes.into_iter().find(|(id, _, _)| *id == class);
        Ok(
            match found
                .and_then(|(_, name, json)| ClassSpec::from_json(&json).ok().map(|s| (name, s)))
            {
                Some(x) => x,
                None => ("default".to_owned(), ClassSpec::default_class()),
            },
        )
    }

    /// One pass: drains what is quiet now. Returns the slots attached.
    ///
    /// Slots of one class are packed into chunks of `chunk_size`. A class
    /// with less than a chunk's worth waiting is held back until its oldest
    /// slot has waited `PACK_WAIT` more than the quiet period, so a stream
    /// of small files still fills chunks. Chunks upload concurrently, up to
    /// `store_concurrency` at once; a class that cannot be placed does not
    /// hold up the others.
    pub async fn drain_once(&self) -> Result<usize, DrainError> {
        let quiet = i64::try_from(self.cfg.quiet.get().as_nanos()).unwrap_or(i64::MAX);
        let now = Timestamp::now().0;
        let quiet_before = Timestamp(now.saturating_sub(quiet));
        let pack_before = Timestamp(quiet_before.0.saturating_sub(PACK_WAIT.as_nanos() as i64));
        let dirty = self
            .fs
            .metadata()
            .read(|v| v.dirty_slots(quiet_before, PASS))?;
        if dirty.is_empty() {
            return Ok(0);
        }
        let full_pass = dirty.len() >= PASS;
        let default = crate::admin::default_class_id(&self.fs).await?;
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
        let in_flight = self.cfg.store_concurrency.max(1);
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
            let (name, spec) = self.class_spec(class)?;
            let spec = Arc::new(spec);
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
                    if uploads.len() >= in_flight {
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

    /// Evicts clean data when the cache passes 90% of its size, down to 70%.
    async fn keep_cache_room(&self) -> Result<(), FsError> {
        let cache = self.fs.cache();
        let (used, max) = (cache.used_bytes(), cache.max_bytes());
        if used > max / 10 * 9 {
            let want = used - max / 10 * 7;
            let done = self.fs.evict(Some(want)).await?;
            info!(
                freed = done.bytes,
                slots = done.slots,
                "cache above its high watermark; evicted clean data"
            );
        }
        Ok(())
    }

    /// Deletes chunks no slot needs any more from their stores, then forgets
    /// them. The metadata commit that dropped their last block came first.
    pub async fn collect(&self) -> Result<usize, DrainError> {
        let grace = i64::try_from(PENDING_GRACE.as_nanos()).unwrap_or(i64::MAX);
        let before = Timestamp(Timestamp::now().0.saturating_sub(grace));
        let dead = self.fs.metadata().read(|v| v.dead_chunks(before))?;
        let mut n = 0;
        for (chunk, stores) in dead {
            let key = chunk_key(chunk);
            let mut all = true;
            for store in stores {
                if let Err(e) = self.stores.delete(store, &key).await {
                    debug!(chunk = %chunk, cause = %e, "cannot delete a dead chunk yet");
                    all = false;
                }
            }
            if all {
                self.fs
                    .metadata()
                    .write(true, move |tx| tx.forget_chunk(chunk))
                    .await
                    .map_err(FsError::from)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

impl Drainer {
    /// Chunks whose live share fell under half (overwrites, deletes) have
    /// their live blocks drained again into new chunks; the collector then
    /// deletes the old ones. A few chunks per pass, so it never floods.
    pub async fn compact(&self) -> Result<usize, DrainError> {
        let sparse = self.fs.metadata().read(|v| v.sparse_chunks(4))?;
        let mut moved = 0;
        for chunk in sparse {
            for (inode, index, block) in self.fs.metadata().read(|v| v.slots_in_chunk(chunk))? {
                if self
                    .fs
                    .redrain(inode, index, block)
                    .await
                    .or_else(|e| match e {
                        FsError::Stale(_) => Ok(false),
                        other => Err(other),
                    })?
                {
                    moved += 1;
                }
            }
            debug!(chunk = %chunk, "compacting a sparse chunk");
        }
        Ok(moved)
    }
}

/// One chunk on its way to the stores.
struct Upload {
    fs: Arc<Fs>,
    stores: Arc<Stores>,
    class: ClassId,
    name: String,
    spec: Arc<ClassSpec>,
    items: Vec<(DirtySlot, Vec<u8>)>,
}

impl Upload {
    async fn run(self) -> Result<usize, DrainError> {
        let Upload {
            fs,
            stores,
            class,
            name,
            spec,
            items,
        } = self;
        let (name, spec) = (name.as_str(), spec.as_ref());
        let estimate: u64 = items
            .iter()
            .map(|(_, b)| (b.len() + crate::crypto::OVERHEAD) as u64)
            .sum();
        let placement = place(spec, &stores.views(), estimate, &[]);
        let targets: Vec<StoreId> = placement
            .targets
            .iter()
            .flatten()
            .map(|&id| StoreId(id))
            .collect();
        if targets.is_empty() {
            let why = match placement.health {
                PlacementHealth::Undergoal { why, .. } => why,
                other => format!("{other:?}"),
            };
            return Err(DrainError::NoTarget {
                class: name.to_owned(),
                why,
            });
        }
        if let PlacementHealth::Undergoal {
            placed,
            wanted,
            why,
        } = &placement.health
        {
            warn!(class = name, placed, wanted, why = %why, "chunk stored undergoal");
        }
        let chunk = fs
            .metadata()
            .write(true, move |tx| {
                tx.new_chunk(class, estimate, Timestamp::now())
            })
            .await
            .map_err(FsError::from)?;
        let mut body = Vec::with_capacity(estimate as usize);
        let mut blocks = Vec::with_capacity(items.len());
        for (slot, plain) in &items {
            let offset = body.len() as u64;
            let sealed = stores
                .key()
                .seal(plain, &block_aad(chunk, offset))
                .map_err(|e| {
                    FsError::Invalid(if matches!(e, crate::crypto::CryptoError::Random) {
                        "random"
                    } else {
                        "seal"
                    })
                })?;
            blocks.push(NewBlock {
                inode: slot.inode,
                index: slot.index,
                version: slot.version,
                offset,
                stored_len: sealed.len() as u64,
                plain_len: plain.len() as u64,
                checksum: Vec::new(),
            });
            body.extend_from_slice(&sealed);
        }
        let body = Arc::new(body);
        let key = chunk_key(chunk);
        let started = Instant::now();
        let mut puts = JoinSet::new();
        for &store in &targets {
            let (stores, key, body) = (stores.clone(), key.clone(), body.clone());
            puts.spawn(async move { (store, stores.put(store, &key, body).await) });
        }
        while let Some(done) = puts.join_next().await {
            let (store, result) = done.map_err(FsError::from)?;
            if let Err(e) = result {
                return Err(DrainError::Put {
                    chunk: chunk.0,
                    store: stores.name(store),
                    cause: e.to_string(),
                });
            }
        }
        // A write that raced the snapshot keeps its slot dirty: give its
        // block a version that cannot match.
        for b in &mut blocks {
            if fs.writes_in_flight(b.inode) {
                b.version = 0;
            }
        }
        let shards: Vec<(u32, StoreId)> = targets
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32, *s))
            .collect();
        let bytes = body.len();
        let attached = fs
            .metadata()
            .write(true, move |tx| {
                tx.attach_chunk(chunk, &shards, &[], &blocks)
            })
            .await
            .map_err(FsError::from)?;
        debug!(chunk = %chunk, bytes, copies = targets.len(), attached, elapsed = ?started.elapsed(), "chunk stored");
        Ok(attached)
    }
}

fn collect_upload(
    done: Option<Result<Result<usize, DrainError>, tokio::task::JoinError>>,
    attached: &mut usize,
    first_error: &mut Option<DrainError>,
) {
    let error = match done {
        Some(Ok(Ok(n))) => {
            *attached += n;
            return;
        }
        Some(Ok(Err(e))) => e,
        Some(Err(e)) => DrainError::Fs(FsError::from(e)),
        None => return,
    };
    first_error.get_or_insert(error);
}

/// A file deleted between the listing and the read simply drops out.
fn gone(e: FsError) -> Result<Option<Vec<u8>>, FsError> {
    match e {
        FsError::Stale(_) => Ok(None),
        other => Err(other),
    }
}
