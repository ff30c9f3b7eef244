//! The gateway's view of its chunk stores: a small pool of authenticated
//! connections per store, their identity and fill as last reported, and
//! reading drained blocks back (any live replica, verified and decrypted).
//! A read never waits on a silent store for long: a store that sends nothing
//! for `[read] stall` is given up on for the next copy or shard, and a block
//! read that has found no copy within `[read] timeout` fails.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_chunkstore::{Secret, StoreClient, StoreError};
use cairn_metadata::{BlockLocation, ChunkId, ChunkLayout, StoreId, StoreState};
use tracing::{debug, info, warn};

use crate::core::{BlockSource, FsError};
use crate::crypto::BlockKey;
use crate::ec;
use crate::placement::StoreView;

/// Whether a store answers: see [`Stores::health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Online,
    Suspect,
    Offline,
}

impl Reach {
    pub fn name(self) -> &'static str {
        match self {
            Reach::Online => "online",
            Reach::Suspect => "suspect",
            Reach::Offline => "offline",
        }
    }
}

/// Connections kept open per store.
const POOL: usize = 8;
/// Decrypted blocks kept in memory for repeated reads (at most 4 MiB each).
const HOT_BLOCKS: usize = 64;
/// `[read] stall` and `[read] timeout` unless [`Stores::with_read_limits`]
/// says otherwise.
const READ_STALL: Duration = Duration::from_secs(2);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Paces uploads to one store: at most `concurrency` at once and, when a
/// bandwidth is set, no faster than it on average.
struct Pace {
    slots: Arc<tokio::sync::Semaphore>,
    bytes_per_sec: u64,
    next_free: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Pace {
    fn new(concurrency: usize, bytes_per_sec: u64) -> Self {
        Pace {
            slots: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
            bytes_per_sec,
            next_free: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits until `bytes` may be sent; returns the concurrency permit.
    async fn admit(&self, bytes: u64) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = self.slots.clone().acquire_owned().await.ok();
        if self.bytes_per_sec > 0 {
            let start = {
                let mut next = self.next_free.lock().await;
                let now = tokio::time::Instant::now();
                let start = (*next).max(now);
                *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
                start
            };
            tokio::time::sleep_until(start).await;
        }
        permit
    }
}

struct Entry {
    name: String,
    address: String,
    view: StoreView,
    /// When the store stopped answering (None while it answers).
    failing_since: Option<Instant>,
    /// Why it last failed, as logged (each new reason is logged once).
    cause: Option<String>,
    /// In service, being emptied, or retired.
    life: StoreState,
    pool: Vec<StoreClient>,
    pace: Arc<Pace>,
}

/// Every store the gateway knows.
pub struct Stores {
    secret: Secret,
    key: BlockKey,
    entries: Mutex<HashMap<StoreId, Entry>>,
    hot: Mutex<lru::LruCache<cairn_metadata::BlockId, Arc<Vec<u8>>>>,
    concurrency: usize,
    bandwidth: u64,
    /// A read gives a store up after this long without a byte.
    read_stall: Duration,
    /// A block read fails after this long.
    read_timeout: Duration,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores(..)")
    }
}

/// The name of the object holding a chunk's bytes on a store. Only the
/// chunk number: nothing about files crosses the wire.
pub fn chunk_key(chunk: ChunkId) -> String {
    format!("c{:016x}", chunk.0)
}

/// The name of the object holding shard `shard` of an erasure-coded chunk.
pub fn shard_key(chunk: ChunkId, shard: u32) -> String {
    format!("c{:016x}.s{shard:02}", chunk.0)
}

/// The object holding placement `shard` of a chunk in `layout`.
pub fn object_key(chunk: ChunkId, layout: ChunkLayout, shard: u32) -> String {
    match layout {
        ChunkLayout::Replicas => chunk_key(chunk),
        ChunkLayout::Ec { .. } => shard_key(chunk, shard),
    }
}

/// Authenticated data bound to a sealed block: its chunk and offset, so a
/// block cannot be swapped for another.
pub fn block_aad(chunk: ChunkId, offset: u64) -> [u8; 16] {
    let mut aad = [0u8; 16];
    aad[..8].copy_from_slice(&chunk.0.to_le_bytes());
    aad[8..].copy_from_slice(&offset.to_le_bytes());
    aad
}

impl Stores {
    /// `concurrency` uploads at once per store, at most `bandwidth` bytes
    /// per second to each (0: unlimited).
    pub fn new(secret: Secret, concurrency: usize, bandwidth: u64) -> Self {
        let mut key = [0u8; 32];
        secret.derive(b"cairn block encryption v1", &mut key);
        Stores {
            key: BlockKey::from_key(&key),
            secret,
            entries: Mutex::new(HashMap::new()),
            hot: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(HOT_BLOCKS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            concurrency,
            bandwidth,
            read_stall: READ_STALL,
            read_timeout: READ_TIMEOUT,
        }
    }

    /// Reads give a store up after `stall` without a byte (connecting
    /// included) and fail after `timeout` in all (`[read]`).
    pub fn with_read_limits(mut self, stall: Duration, timeout: Duration) -> Self {
        self.read_stall = stall;
        self.read_timeout = timeout;
        self
    }

    pub fn key(&self) -> &BlockKey {
        &self.key
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StoreId, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a store (offline until the first probe answers).
    pub fn add(&self, id: StoreId, name: &str, address: &str) {
        self.lock().insert(
            id,
            Entry {
                name: name.to_owned(),
                address: address.to_owned(),
                view: StoreView {
                    id: id.0,
                    name: name.to_owned(),
                    zone: String::new(),
                    host: String::new(),
                    labels: Vec::new(),
                    online: false,
                    capacity: 0,
                    used: 0,
                    reserve: 0,
                },
                pool: Vec::new(),
                pace: Arc::new(Pace::new(self.concurrency, self.bandwidth)),
                failing_since: Some(Instant::now()),
                cause: None,
                life: StoreState::Active,
            },
        );
    }

    /// Records a store's life-cycle state (from the metadata, or a
    /// `cairn store drain|remove`).
    pub fn set_life(&self, id: StoreId, life: StoreState) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.life = life;
        }
    }

    /// The stores new copies may go to: as [`Stores::views`], with stores
    /// being emptied or retired counted offline.
    pub fn placeable(&self) -> Vec<StoreView> {
        let mut v: Vec<StoreView> = self
            .lock()
            .values()
            .map(|e| {
                let mut view = e.view.clone();
                view.online &= e.life == StoreState::Active;
                view
            })
            .collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Where a store stands: answering (online), not answering for less than
    /// `grace` (suspect), or for longer (offline: its chunks need repair);
    /// and its life-cycle state.
    pub fn health(&self, id: StoreId, grace: Duration) -> (Reach, StoreState) {
        match self.lock().get(&id) {
            None => (Reach::Offline, StoreState::Removed),
            Some(e) => {
                let reach = match e.failing_since {
                    None => Reach::Online,
                    Some(t) if t.elapsed() < grace => Reach::Suspect,
                    Some(_) => Reach::Offline,
                };
                (reach, e.life)
            }
        }
    }

    /// The stores as placement sees them.
    pub fn views(&self) -> Vec<StoreView> {
        let mut v: Vec<StoreView> = self.lock().values().map(|e| e.view.clone()).collect();
        v.sort_by_key(|s| s.id);
        v
    }

    pub fn name(&self, id: StoreId) -> String {
        self.lock()
            .get(&id)
            .map_or_else(|| id.to_string(), |e| e.name.clone())
    }

    fn give_back(&self, id: StoreId, client: StoreClient) {
        if let Some(e) = self.lock().get_mut(&id) {
            if e.pool.len() < POOL {
                e.pool.push(client);
            }
        }
    }

    /// Records a store as answering (`failure` none) or not, and logs the
    /// change with its cause.
    fn mark(&self, id: StoreId, failure: Option<&dyn std::fmt::Display>) {
        let online = failure.is_none();
        if let Some(e) = self.lock().get_mut(&id) {
            match (online, e.failing_since) {
                (true, _) => e.failing_since = None,
                (false, None) => e.failing_since = Some(Instant::now()),
                (false, Some(_)) => {}
            }
            let cause = failure.map(ToString::to_string);
            if e.view.online != online {
                if online {
                    info!(store = %e.name, "chunk store online");
                } else if let Some(cause) = &cause {
                    warn!(store = %e.name, %cause, "chunk store offline");
                }
            } else if let Some(why) = cause.as_ref().filter(|c| e.cause.as_ref() != Some(c)) {
                // Not answering since the start, or for another reason now.
                warn!(store = %e.name, cause = %why, "chunk store not answering");
            }
            e.cause = cause;
            e.view.online = online;
            if !online {
                e.pool.clear();
            }
        }
    }

    /// Runs `op` on a pooled connection to `id`. A pooled connection that
    /// fails at the connection level may just be stale (the store restarted
    /// since): the pool is emptied and `op` runs once more on a fresh
    /// connection (every store operation is idempotent). A store that cannot
    /// be reached then, or that went silent (a timeout), is marked offline.
    async fn with<T, F, Fut>(&self, id: StoreId, op: F) -> Result<T, StoreError>
    where
        F: Fn(StoreClient) -> Fut,
        Fut: Future<Output = (StoreClient, Result<T, StoreError>)>,
    {
        self.with_within(id, None, op).await
    }

    /// [`with`](Self::with), connecting within `connect` when given.
    async fn with_within<T, F, Fut>(
        &self,
        id: StoreId,
        connect: Option<Duration>,
        op: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(StoreClient) -> Fut,
        Fut: Future<Output = (StoreClient, Result<T, StoreError>)>,
    {
        let (pooled, address) = {
            let mut entries = self.lock();
            let Some(e) = entries.get_mut(&id) else {
                return Err(StoreError::UnknownStore { id: id.0 });
            };
            (e.pool.pop(), e.address.clone())
        };
        if let Some(client) = pooled {
            let (client, result) = op(client).await;
            match &result {
                // Silence is no stale connection: a fresh one would wait as long.
                Err(e @ StoreError::Timeout { .. }) => {
                    self.mark(id, Some(e));
                    return result;
                }
                Err(e) if e.retryable() => {
                    if let Some(e) = self.lock().get_mut(&id) {
                        e.pool.clear();
                    }
                }
                _ => {
                    self.give_back(id, client);
                    return result;
                }
            }
        }
        let connecting = StoreClient::connect(&address, &self.secret);
        let connected = match connect {
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Timeout {
                        addr: address.clone(),
                        op: "connect",
                        after: limit,
                    })
                }),
            None => connecting.await,
        };
        let client = match connected {
            Ok(c) => c,
            Err(e) => {
                self.mark(id, Some(&e));
                return Err(e);
            }
        };
        let (client, result) = op(client).await;
        match &result {
            Err(e) if e.retryable() => self.mark(id, Some(e)),
            _ => self.give_back(id, client),
        }
        result
    }

    pub async fn put(&self, id: StoreId, key: &str, data: Arc<Vec<u8>>) -> Result<(), StoreError> {
        let pace = self.lock().get(&id).map(|e| e.pace.clone());
        let _permit = match &pace {
            Some(p) => p.admit(data.len() as u64).await,
            None => None,
        };
        let data = &data;
        let stored = self
            .with(id, |mut c| async move {
                let r = c.put(key, data).await.map(|_| ());
                (c, r)
            })
            .await;
        if stored.is_ok() {
            // Counted at once, so the next placement sees it before the next
            // probe reports the store's fill.
            if let Some(e) = self.lock().get_mut(&id) {
                e.view.used = e.view.used.saturating_add(data.len() as u64);
            }
        }
        stored
    }

    /// `len` bytes at `offset` of object `key` on store `id`; gives up with
    /// [`StoreError::Timeout`] once the store sends nothing for `[read] stall`.
    pub async fn get(
        &self,
        id: StoreId,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let stall = self.read_stall;
        self.with_within(id, Some(stall), |mut c| async move {
            let r = c.get_within(key, offset, len, stall).await;
            (c, r)
        })
        .await
    }

    /// An object's length and crc32c, from its store's header.
    pub async fn stat(
        &self,
        id: StoreId,
        key: &str,
    ) -> Result<cairn_chunkstore::ShardStat, StoreError> {
        self.with(id, |mut c| async move {
            let r = c.stat(key).await;
            (c, r)
        })
        .await
    }

    pub async fn delete(&self, id: StoreId, key: &str) -> Result<(), StoreError> {
        self.with(id, |mut c| async move {
            let r = c.delete(key).await.map(|_| ());
            (c, r)
        })
        .await
    }

    /// Up to `limit` object keys after `after`, in order.
    pub async fn list(
        &self,
        id: StoreId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<cairn_chunkstore::ListEntry>, StoreError> {
        self.with(id, |mut c| async move {
            let r = c.list(after, limit).await;
            (c, r)
        })
        .await
    }

    /// Every object key on a store, in order, page by page; with `prefix`,
    /// only the keys starting with it (listing starts there and stops after).
    pub async fn list_keys(
        &self,
        id: StoreId,
        prefix: Option<char>,
    ) -> Result<Vec<String>, StoreError> {
        const PAGE: u32 = 1000;
        let mut out = Vec::new();
        let mut after = prefix.map(String::from);
        loop {
            let page = self.list(id, after.as_deref(), PAGE).await?;
            let full = page.len() == PAGE as usize;
            for e in page {
                if prefix.is_some_and(|p| !e.key.starts_with(p)) {
                    return Ok(out);
                }
                after = Some(e.key.clone());
                out.push(e.key);
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Asks every store for its identity and fill; marks each online or not.
    pub async fn probe(&self) {
        let ids: Vec<StoreId> = self.lock().keys().copied().collect();
        for id in ids {
            let result = tokio::time::timeout(Duration::from_secs(5), async {
                self.with(id, |mut c| async move {
                    let r = c.capacity().await;
                    (c, r)
                })
                .await
            })
            .await;
            match result {
                Ok(Ok(cap)) => {
                    if let Some(e) = self.lock().get_mut(&id) {
                        e.view.zone = cap.zone.clone();
                        e.view.host = cap.host.clone();
                        e.view.labels = cap.labels.clone();
                        e.view.capacity = cap.total;
                        e.view.used = cap.total.saturating_sub(cap.free);
                        e.view.reserve = cap.reserve;
                    }
                    self.mark(id, None);
                }
                Ok(Err(e)) => self.mark(id, Some(&e)),
                Err(_) => self.mark(id, Some(&"no answer to a capacity probe within 5 s")),
            }
        }
    }
}

impl BlockSource for Stores {
    fn capacity(&self) -> Option<(u64, u64)> {
        let views: Vec<StoreView> = self
            .placeable()
            .into_iter()
            .filter(|v| v.capacity > 0)
            .collect();
        if views.is_empty() {
            return None;
        }
        let total = views
            .iter()
            .map(|v| v.capacity.saturating_sub(v.reserve))
            .sum();
        let free = views
            .iter()
            .map(|v| v.capacity.saturating_sub(v.used).saturating_sub(v.reserve))
            .sum();
        Some((total, free))
    }

    fn fetch<'a>(
        &'a self,
        loc: &'a BlockLocation,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, FsError>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(hit) = self.hot().get(&loc.block) {
                return Ok(hit.as_ref().clone());
            }
            let plain = tokio::time::timeout(self.read_timeout, self.fetch_remote(loc))
                .await
                .unwrap_or_else(|_| {
                    warn!(chunk = %loc.chunk, timeout = ?self.read_timeout, "no copy of a block could be read within [read] timeout");
                    Err(FsError::Unavailable {
                        chunk: loc.chunk,
                        why: format!("no copy answered within [read] timeout ({:?})", self.read_timeout),
                    })
                })?;
            let plain = Arc::new(plain);
            self.hot().put(loc.block, plain.clone());
            Ok(plain.as_ref().clone())
        })
    }
}

impl Stores {
    /// A block's plain bytes from the stores: a replica, or the data shards
    /// (rebuilt from parity where one cannot be read).
    async fn fetch_remote(&self, loc: &BlockLocation) -> Result<Vec<u8>, FsError> {
        match loc.layout {
            ChunkLayout::Replicas => self.read_replica(loc).await,
            ChunkLayout::Ec { k, m, shard_len } => {
                let (sealed, from) = self
                    .read_shards(loc, k as usize, m as usize, shard_len)
                    .await?;
                self.key
                    .open(&sealed, &block_aad(loc.chunk, loc.offset))
                    .map_err(|e| {
                        warn!(chunk = %loc.chunk, from = %from, cause = %e, "a block failed verification");
                        FsError::Unavailable {
                            chunk: loc.chunk,
                            why: format!("{from}: {e}"),
                        }
                    })
            }
        }
    }

    fn hot(
        &self,
    ) -> std::sync::MutexGuard<'_, lru::LruCache<cairn_metadata::BlockId, Arc<Vec<u8>>>> {
        self.hot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the blocks kept in memory (`cairn cache drop`).
    pub fn drop_hot(&self) {
        self.hot().clear();
    }

    /// `placements` with the stores that are online first.
    fn online_first(&self, placements: &[(u32, StoreId)]) -> Vec<(u32, StoreId)> {
        let views = self.views();
        let online = |id: StoreId| views.iter().any(|v| v.id == id.0 && v.online);
        let mut order: Vec<(u32, StoreId)> =
            placements.iter().copied().filter(|p| online(p.1)).collect();
        order.extend(placements.iter().copied().filter(|p| !online(p.1)));
        order
    }

    /// A block's bytes from the first replica whose copy verifies.
    async fn read_replica(&self, loc: &BlockLocation) -> Result<Vec<u8>, FsError> {
        let key = chunk_key(loc.chunk);
        let aad = block_aad(loc.chunk, loc.offset);
        let mut why = String::from("no replica is recorded");
        for (_, store) in self.online_first(&loc.placements) {
            match self.get(store, &key, loc.offset, loc.stored_len).await {
                // A replica whose block does not verify is skipped for the next.
                Ok(sealed) => match self.key.open(&sealed, &aad) {
                    Ok(plain) => return Ok(plain),
                    Err(e) => {
                        warn!(store = %self.name(store), chunk = %loc.chunk, cause = %e, "a replica failed verification");
                        why = format!("{}: {e}", self.name(store));
                    }
                },
                Err(e) => {
                    warn!(store = %self.name(store), chunk = %loc.chunk, cause = %e, "a replica could not be read; trying the next");
                    why = format!("{}: {e}", self.name(store));
                }
            }
        }
        Err(FsError::Unavailable {
            chunk: loc.chunk,
            why,
        })
    }

    /// A block's sealed bytes from the data shards that hold them; a piece
    /// whose shard cannot be read is rebuilt from the same range of `k`
    /// other shards.
    async fn read_shards(
        &self,
        loc: &BlockLocation,
        k: usize,
        m: usize,
        shard_len: u64,
    ) -> Result<(Vec<u8>, String), FsError> {
        let mut sealed = Vec::with_capacity(loc.stored_len as usize);
        let mut rebuilt = 0;
        for piece in ec::pieces(loc.offset, loc.stored_len, shard_len) {
            let holder = loc
                .placements
                .iter()
                .find(|(s, _)| *s as usize == piece.shard)
                .map(|&(_, store)| store);
            let direct = match holder {
                Some(store) if self.is_online(store) => self
                    .get(
                        store,
                        &shard_key(loc.chunk, piece.shard as u32),
                        piece.start,
                        piece.end - piece.start,
                    )
                    .await
                    .map_err(|e| format!("{}: {e}", self.name(store))),
                Some(store) => Err(format!("{} is offline", self.name(store))),
                None => Err("no store holds it".to_owned()),
            };
            match direct {
                Ok(bytes) => sealed.extend_from_slice(&bytes),
                Err(why) => {
                    let bytes = self.rebuild_piece(loc, k, m, piece).await.map_err(|e| {
                        FsError::Unavailable {
                            chunk: loc.chunk,
                            why: format!("shard {} ({why}) cannot be rebuilt: {e}", piece.shard),
                        }
                    })?;
                    debug!(chunk = %loc.chunk, shard = piece.shard, why = %why, "read around a missing shard");
                    sealed.extend_from_slice(&bytes);
                    rebuilt += 1;
                }
            }
        }
        let from = if rebuilt > 0 {
            format!("ec {k}+{m}, {rebuilt} piece(s) rebuilt")
        } else {
            format!("ec {k}+{m}")
        };
        Ok((sealed, from))
    }

    /// Bytes `piece.start..piece.end` of shard `piece.shard`, rebuilt from
    /// that range of `k` other shards (online stores first).
    async fn rebuild_piece(
        &self,
        loc: &BlockLocation,
        k: usize,
        m: usize,
        piece: ec::Piece,
    ) -> Result<Vec<u8>, String> {
        let mut range: Vec<Option<Vec<u8>>> = vec![None; k + m];
        let mut have = 0;
        let mut failures = Vec::new();
        for (shard, store) in self.online_first(&loc.placements) {
            let shard = shard as usize;
            if shard == piece.shard || shard >= k + m || have == k {
                continue;
            }
            match self
                .get(
                    store,
                    &shard_key(loc.chunk, shard as u32),
                    piece.start,
                    piece.end - piece.start,
                )
                .await
            {
                Ok(bytes) => {
                    range[shard] = Some(bytes);
                    have += 1;
                }
                Err(e) => failures.push(format!("shard {shard} on {}: {e}", self.name(store))),
            }
        }
        match ec::rebuild(k, m, range) {
            Ok(mut all) => Ok(all.swap_remove(piece.shard)),
            Err(e) if failures.is_empty() => Err(e.to_string()),
            Err(e) => Err(format!("{e} ({})", failures.join("; "))),
        }
    }

    pub fn is_online(&self, id: StoreId) -> bool {
        self.lock().get(&id).is_some_and(|e| e.view.online)
    }
}
