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
use cairn_metadata::{ChunkId, ChunkLayout, ClassId, DirtySlot, NewBlock, StoreId, Timestamp};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::catalog::{CatalogError, Classes};
use crate::class::{ClassSpec, Layout};
use crate::core::{Fs, FsError};
use crate::ship::ShipState;
use crate::store::crypto::block_aad;
use crate::store::placement::{place, PlacementHealth};
use crate::store::{ObjectKey, Stores};

/// Dirty slots looked at per pass.
const PASS: usize = 4096;
/// How long past the quiet period less than a chunk's worth of a class may
/// wait for more, so small files share chunks.
const PACK_WAIT: Duration = Duration::from_secs(2);
/// Chunks left pending this long (a drain that died) are collected.
const PENDING_GRACE: Duration = Duration::from_secs(600);
/// Objects wait this long in the trash before they are deleted from their
/// store, so a read that looked up the old layout just before a re-layout
/// still finds its bytes.
const TRASH_DELAY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Class(#[from] CatalogError),
    #[error("no chunk store can take a chunk of class {class}: {why}")]
    NoTarget { class: String, why: String },
    #[error("erasure coding chunk {chunk}: {cause}")]
    Encode { chunk: u64, cause: String },
    #[error("chunk {chunk} cannot be read from any replica for its archive re-layout: {why}")]
    Unreadable { chunk: u64, why: String },
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
    /// The metadata shipper's progress, when shipping is on.
    shipped: Option<Arc<std::sync::Mutex<ShipState>>>,
}

impl Drainer {
    pub fn new(fs: Arc<Fs>, stores: Arc<Stores>, cfg: DrainConfig) -> Self {
        Drainer {
            fs,
            stores,
            cfg,
            shipped: None,
        }
    }

    /// Deletes from the stores only what the shipped metadata no longer
    /// needs (see [`Drainer::empty_trash`]).
    pub fn with_shipping(mut self, state: Arc<std::sync::Mutex<ShipState>>) -> Self {
        self.shipped = Some(state);
        self
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(500);
        let mut last_probe = Instant::now() - Duration::from_secs(60);
        let mut last_collect = Instant::now();
        let mut next_archive = Instant::now();
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
            if let Err(e) = self.empty_trash().await {
                warn!(cause = %e, "emptying the trash failed");
            }
            if Instant::now() >= next_archive {
                match self.archive_one().await {
                    Ok(bytes) => next_archive = Instant::now() + self.archive_pause(bytes),
                    Err(e) => {
                        warn!(cause = %e, "archive re-layout failed; the chunk keeps its replicas");
                        next_archive = Instant::now() + Duration::from_secs(5);
                    }
                }
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

    /// Evicts clean data when the cache passes 90% of its size (down to
    /// 70%), or its disk's free space falls under twice the reserve.
    async fn keep_cache_room(&self) -> Result<(), FsError> {
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

    /// Forgets chunks no slot needs any more and puts their objects in the
    /// trash, in one transaction after the commit that dropped their last
    /// block. [`Drainer::empty_trash`] deletes them once that is shipped.
    pub async fn collect(&self) -> Result<usize, DrainError> {
        let grace = i64::try_from(PENDING_GRACE.as_nanos()).unwrap_or(i64::MAX);
        let before = Timestamp(Timestamp::now().0.saturating_sub(grace));
        let dead = self.fs.metadata().read(|v| v.dead_chunks(before))?;
        let n = dead.len();
        for (chunk, layout, placements) in dead {
            let objects: Vec<(StoreId, String)> = placements
                .into_iter()
                .map(|(shard, store)| (store, ObjectKey::of(chunk, layout, shard).to_string()))
                .collect();
            self.fs
                .metadata()
                .write(true, move |tx| {
                    tx.put_in_trash(&objects, Timestamp::now())?;
                    tx.forget_chunk(chunk)
                })
                .await
                .map_err(FsError::from)?;
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

impl Drainer {
    /// Deletes objects that have been in the trash for [`TRASH_DELAY`] from
    /// their stores; one a store cannot delete now stays for the next pass.
    /// With metadata shipping on, an object also waits until the change
    /// that trashed it is shipped: until then a gateway rebuilt from the
    /// stores may still point at it.
    pub async fn empty_trash(&self) -> Result<usize, DrainError> {
        let delay = i64::try_from(TRASH_DELAY.as_nanos()).unwrap_or(i64::MAX);
        let mut due = Timestamp(Timestamp::now().0.saturating_sub(delay));
        if let Some(shipped) = &self.shipped {
            let until = shipped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .shipped_until
                .unwrap_or(Timestamp(0));
            due = due.min(until);
        }
        let items = self.fs.metadata().read(|v| v.trash(due, 256))?;
        let mut n = 0;
        for (store, key) in items {
            match self.stores.delete(store, &key).await {
                Ok(()) => {
                    self.fs
                        .metadata()
                        .write(false, move |tx| tx.forget_trash(store, &key))
                        .await
                        .map_err(FsError::from)?;
                    n += 1;
                }
                Err(e) => {
                    debug!(store = %self.stores.name(store), key, cause = %e, "cannot delete a trashed object yet")
                }
            }
        }
        Ok(n)
    }

    /// How long to wait after re-laying `bytes`, to keep the archive
    /// transition under `archive_bandwidth`.
    fn archive_pause(&self, bytes: u64) -> Duration {
        let rate = self.cfg.archive_bandwidth.bytes();
        match (bytes, rate) {
            (0, _) => Duration::from_secs(1),
            (_, 0) => Duration::ZERO,
            (b, r) => Duration::from_secs_f64(b as f64 / r as f64),
        }
    }

    /// The archive transition, one chunk per call: the oldest replica chunk
    /// of a class with an archive rule whose age passed it is re-laid as
    /// erasure-coded shards. Returns the bytes read (0: nothing to do).
    pub async fn archive_one(&self) -> Result<u64, DrainError> {
        let catalog = self.fs.classes().snapshot()?;
        for class in catalog.list() {
            // A class that cannot be read is left as it is (see `catalog`).
            let (Ok(spec), Some(archived)) = (&class.spec, class.archived()) else {
                continue;
            };
            let Some(rule) = &spec.archive else {
                continue;
            };
            let age = i64::try_from(rule.after.get().as_nanos()).unwrap_or(i64::MAX);
            let before = Timestamp(Timestamp::now().0.saturating_sub(age));
            let due = self
                .fs
                .metadata()
                .read(|v| v.replica_chunks_before(class.id, before, 1))?;
            if let Some(&chunk) = due.first() {
                return self.relayout(chunk, &class.name, archived.clone()).await;
            }
        }
        Ok(0)
    }

    /// Re-lays one replica chunk as `spec` says: reads its body from a
    /// replica, encodes and stores the shards, then one metadata commit
    /// switches the chunk to them and puts the old replicas in the trash.
    /// Until that commit the replicas are the chunk; if it never comes, the
    /// new shards are trashed instead.
    async fn relayout(
        &self,
        chunk: ChunkId,
        name: &str,
        spec: Arc<ClassSpec>,
    ) -> Result<u64, DrainError> {
        let Some(info) = self.fs.metadata().read(|v| v.chunk(chunk))? else {
            return Ok(0);
        };
        if info.layout != ChunkLayout::Replicas {
            return Ok(0);
        }
        let key = ObjectKey::Chunk(chunk).to_string();
        let mut body = None;
        let mut why = String::from("no replica is recorded");
        for (_, store) in &info.placements {
            match self.stores.get(*store, &key, 0, info.size).await {
                Ok(bytes) => {
                    body = Some(bytes);
                    break;
                }
                Err(e) => why = format!("{}: {e}", self.stores.name(*store)),
            }
        }
        let body = body.ok_or(DrainError::Unreadable {
            chunk: chunk.0,
            why,
        })?;
        let started = Instant::now();
        let laid = lay_out(&spec, name, &self.stores, chunk, body).await?;
        let meta = self.fs.metadata();
        if let Err((e, tried)) = put_objects(&self.stores, chunk, &laid).await {
            meta.write(true, move |tx| tx.put_in_trash(&tried, Timestamp::now()))
                .await
                .map_err(FsError::from)?;
            return Err(e);
        }
        let placements = laid.placements();
        let new: Vec<(StoreId, String)> = placements
            .iter()
            .map(|&(shard, store)| (store, ObjectKey::of(chunk, laid.layout, shard).to_string()))
            .collect();
        let old: Vec<(StoreId, String)> = info
            .placements
            .iter()
            .map(|&(_, store)| (store, key.clone()))
            .collect();
        let layout = laid.layout;
        let checksums = laid.checksums();
        let switched = meta
            .write(true, move |tx| {
                let now = Timestamp::now();
                let switched = tx.relayout_chunk(chunk, layout, &placements, &old, now)?;
                if !switched {
                    tx.put_in_trash(&new, now)?;
                }
                for (shard, store, crc) in &checksums {
                    tx.set_checksum(chunk, *shard, *store, crc)?;
                }
                Ok::<_, cairn_metadata::MetaError>(switched)
            })
            .await
            .map_err(FsError::from)?;
        if switched {
            info!(chunk = %chunk, class = name, bytes = info.size, ?layout, elapsed = ?started.elapsed(), "archived a chunk as erasure-coded shards");
        }
        Ok(info.size)
    }
}

/// Makes a file of a `--durability remote` class durable off the gateway:
/// its dirty slots are stored as a chunk now (no quiet period, no packing),
/// then the metadata that points at them is shipped.
pub struct Persister {
    fs: std::sync::Weak<Fs>,
    stores: Arc<Stores>,
    shipper: Arc<crate::ship::Shipper>,
}

impl Persister {
    pub fn new(fs: &Arc<Fs>, stores: Arc<Stores>, shipper: Arc<crate::ship::Shipper>) -> Self {
        Persister {
            fs: Arc::downgrade(fs),
            stores,
            shipper,
        }
    }

    async fn run(&self, id: cairn_metadata::InodeId) -> Result<(), FsError> {
        let fs = self
            .fs
            .upgrade()
            .ok_or(FsError::Invalid("the gateway is stopping"))?;
        let unavailable = |why: String| FsError::Unavailable {
            chunk: ChunkId(0),
            why,
        };
        // A concurrent write may leave a slot dirty again: a few rounds.
        for _ in 0..4 {
            let dirty = fs.metadata().read(|v| v.dirty_slots_of(id))?;
            if dirty.is_empty() {
                break;
            }
            let default = fs.classes().default_id().await?;
            let class = dirty[0].class.unwrap_or(default);
            let (name, spec) = class_of(fs.classes(), class)?;
            let mut items = Vec::new();
            for slot in dirty {
                if let Some(bytes) = fs
                    .slot_content(slot.inode, slot.index)
                    .await
                    .or_else(gone)?
                {
                    items.push((slot, bytes));
                }
            }
            if items.is_empty() {
                break;
            }
            let job = Upload {
                fs: fs.clone(),
                stores: self.stores.clone(),
                class,
                name,
                spec,
                items,
            };
            job.run().await.map_err(|e| unavailable(e.to_string()))?;
        }
        if !fs.metadata().read(|v| v.dirty_slots_of(id))?.is_empty() {
            return Err(unavailable(
                "the file kept changing while it was stored remotely".into(),
            ));
        }
        self.shipper
            .ship_now()
            .await
            .map_err(|e| unavailable(e.to_string()))
    }
}

impl crate::core::Persist for Persister {
    fn persist<'a>(
        &'a self,
        id: cairn_metadata::InodeId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), FsError>> + Send + 'a>> {
        Box::pin(self.run(id))
    }
}

/// A class's name and spec; an error for one that cannot be read.
fn class_of(classes: &Classes, class: ClassId) -> Result<(String, Arc<ClassSpec>), CatalogError> {
    let catalog = classes.snapshot()?;
    let found = catalog.get(class)?;
    Ok((found.name.clone(), found.spec()?))
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
        let estimate: u64 = items
            .iter()
            .map(|(_, b)| (b.len() + crate::store::crypto::OVERHEAD) as u64)
            .sum();
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
                    FsError::Invalid(if matches!(e, crate::store::crypto::CryptoError::Random) {
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
        drop(items);
        let bytes = body.len();
        let started = Instant::now();
        let stored = match lay_out(&spec, &name, &stores, chunk, body).await {
            Ok(laid) => put_objects(&stores, chunk, &laid).await.map(|()| laid),
            Err(e) => Err((e, Vec::new())),
        };
        let laid = match stored {
            Ok(laid) => laid,
            Err((e, tried)) => {
                // Nothing points at the chunk: forget it, and trash whatever
                // reached a store.
                fs.metadata()
                    .write(true, move |tx| {
                        tx.put_in_trash(&tried, Timestamp::now())?;
                        tx.forget_chunk(chunk)
                    })
                    .await
                    .map_err(FsError::from)?;
                return Err(e);
            }
        };
        // A write that raced the snapshot keeps its slot dirty: give its
        // block a version that cannot match.
        for b in &mut blocks {
            if fs.writes_in_flight(b.inode) {
                b.version = 0;
            }
        }
        let placements = laid.placements();
        let checksums = laid.checksums();
        let (layout, copies) = (laid.layout, placements.len());
        let attached = fs
            .metadata()
            .write(true, move |tx| {
                let n = tx.attach_chunk(chunk, layout, &placements, &[], &blocks)?;
                for (shard, store, crc) in &checksums {
                    tx.set_checksum(chunk, *shard, *store, crc)?;
                }
                Ok::<_, cairn_metadata::MetaError>(n)
            })
            .await
            .map_err(FsError::from)?;
        debug!(chunk = %chunk, bytes, ?layout, copies, attached, elapsed = ?started.elapsed(), "chunk stored");
        Ok(attached)
    }
}

/// A chunk body cut for its class: the objects to put and where.
struct Laid {
    layout: ChunkLayout,
    /// `(shard, store, bytes)`: for replicas every entry shares the body.
    objects: Vec<(u32, StoreId, Arc<Vec<u8>>)>,
}

impl Laid {
    fn placements(&self) -> Vec<(u32, StoreId)> {
        self.objects.iter().map(|(i, s, _)| (*i, *s)).collect()
    }

    /// `(shard, store, crc32c LE)` of every object, for the metadata.
    fn checksums(&self) -> Vec<(u32, StoreId, Vec<u8>)> {
        self.objects
            .iter()
            .map(|(i, s, bytes)| (*i, *s, crc32c::crc32c(bytes).to_le_bytes().to_vec()))
            .collect()
    }
}

/// Cuts a chunk body as `spec` says (whole replicas, or `k + m` erasure
/// shards) and places the pieces. Fails when too few can be placed for the
/// data to be readable: no store for a replica, fewer than `k` for shards.
async fn lay_out(
    spec: &Arc<ClassSpec>,
    name: &str,
    stores: &Stores,
    chunk: ChunkId,
    body: Vec<u8>,
) -> Result<Laid, DrainError> {
    let (layout, parts, need) = match spec.layout {
        Layout::Replicas { .. } => (ChunkLayout::Replicas, vec![Arc::new(body)], 1),
        Layout::ErasureCoded { k, m } => {
            let (k, m) = (usize::from(k), usize::from(m));
            let shards = tokio::task::spawn_blocking(move || crate::store::ec::encode(&body, k, m))
                .await
                .map_err(FsError::from)?
                .map_err(|e| DrainError::Encode {
                    chunk: chunk.0,
                    cause: e.to_string(),
                })?;
            let layout = ChunkLayout::Ec {
                k: k as u32,
                m: m as u32,
                shard_len: shards[0].len() as u64,
            };
            (layout, shards.into_iter().map(Arc::new).collect(), k)
        }
    };
    let mut placement = place(spec, &stores.placeable(), parts[0].len() as u64, &[]);
    if matches!(layout, ChunkLayout::Ec { .. }) && spec.labels.len() == 1 {
        // One rule for all shards: rotate which store gets which shard from
        // chunk to chunk, so parity (never read while all is well) and the
        // data shards (read every time) spread over all the stores.
        let n = placement.targets.len();
        placement.targets.rotate_left((chunk.0 % n as u64) as usize);
    }
    let placed = placement.targets.iter().flatten().count();
    if let Some(why) = crate::outlook::refusal(spec, &placement.health) {
        return Err(DrainError::NoTarget {
            class: name.to_owned(),
            why: format!("{why}; {}", crate::outlook::PINNED),
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
    debug_assert!(placed >= need);
    let objects = placement
        .targets
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let part = parts.get(i).unwrap_or(&parts[0]).clone();
            t.map(|store| (i as u32, store, part))
        })
        .collect();
    Ok(Laid { layout, objects })
}

/// Puts every object of a laid-out chunk, all at once. On failure, returns
/// the error and every `(store, key)` tried, for the trash.
async fn put_objects(
    stores: &Arc<Stores>,
    chunk: ChunkId,
    laid: &Laid,
) -> Result<(), (DrainError, Vec<(StoreId, String)>)> {
    let tried: Vec<(StoreId, String)> = laid
        .objects
        .iter()
        .map(|(shard, store, _)| {
            (
                *store,
                ObjectKey::of(chunk, laid.layout, *shard).to_string(),
            )
        })
        .collect();
    let mut puts = JoinSet::new();
    for ((_, store, bytes), (_, key)) in laid.objects.iter().zip(&tried) {
        let (stores, store, key, bytes) = (stores.clone(), *store, key.clone(), bytes.clone());
        puts.spawn(async move { (store, stores.put(store, &key, bytes).await) });
    }
    while let Some(done) = puts.join_next().await {
        let failure = match done {
            Ok((_, Ok(()))) => continue,
            Ok((store, Err(e))) => DrainError::Put {
                chunk: chunk.0,
                store: stores.name(store),
                cause: e.to_string(),
            },
            Err(e) => DrainError::Fs(FsError::from(e)),
        };
        return Err((failure, tried));
    }
    Ok(())
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
