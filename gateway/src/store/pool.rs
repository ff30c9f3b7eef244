//! The pool of chunk stores the gateway knows: each an `Arc<dyn ChunkStore>`
//! with its name, identity and fill as last probed ([`StoreView`]), whether
//! it answers ([`Reach`]: a store that fails to answer is suspect, and
//! offline once that lasts past the caller's grace), its life-cycle state,
//! and upload pacing. Block reads (the core's [`BlockSource`]) are in
//! `read.rs`. A read never waits on a silent store for long: a store that
//! sends nothing for `[read] stall` is given up on for the next copy or
//! shard, and a block read that has found no copy within `[read] timeout`
//! fails.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_chunkstore::Secret;
use cairn_metadata::{StoreId, StoreState};
use tracing::{info, warn};

use super::crypto::BlockKey;
use super::load::Loads;
use super::noise::NoiseStore;
use super::placement::StoreView;
use super::{unreachable, ChunkStore, ListEntry, ShardStat, StoreError};

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

/// Decrypted blocks kept in memory for repeated reads (at most 4 MiB each).
const HOT_BLOCKS: usize = 64;
/// Frames (16 KiB each) of ranged reads kept in memory.
const RECENT_FRAMES: usize = 256;
/// Plain frames by block and frame index.
pub(super) type KeptFrames = lru::LruCache<(cairn_metadata::BlockId, u64), Arc<Vec<u8>>>;
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
    store: Arc<dyn ChunkStore>,
    view: StoreView,
    /// When the store stopped answering (None while it answers).
    failing_since: Option<Instant>,
    /// Why it last failed, as logged (each new reason is logged once).
    cause: Option<String>,
    /// In service, being emptied, or retired.
    life: StoreState,
    pace: Arc<Pace>,
}

/// Every store the gateway knows.
pub struct Stores {
    secret: Secret,
    pub(super) key: BlockKey,
    entries: Mutex<HashMap<StoreId, Entry>>,
    pub(super) hot: Mutex<lru::LruCache<cairn_metadata::BlockId, Arc<Vec<u8>>>>,
    /// Frames recently opened by ranged reads, by block and frame index.
    pub(super) frames: Mutex<KeptFrames>,
    concurrency: usize,
    bandwidth: u64,
    /// A read gives a store up after this long without a byte.
    read_stall: Duration,
    /// A block read fails after this long.
    pub(super) read_timeout: Duration,
    /// Gets in flight and latency per store, for replica choice and hedging.
    pub(super) loads: Loads,
    /// A fixed hedge delay (`None`: derived from each store's latency).
    pub(super) hedge: Option<Duration>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores(..)")
    }
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
            frames: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(RECENT_FRAMES).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            concurrency,
            bandwidth,
            read_stall: READ_STALL,
            read_timeout: READ_TIMEOUT,
            loads: Loads::default(),
            hedge: None,
        }
    }

    /// Reads give a store up after `stall` without a byte (connecting
    /// included) and fail after `timeout` in all (`[read]`).
    pub fn with_read_limits(mut self, stall: Duration, timeout: Duration) -> Self {
        self.read_stall = stall;
        self.read_timeout = timeout;
        self
    }

    /// A replica read asks another copy too after `hedge` (`[read] hedge`;
    /// `None`: after three times that store's median latency, at least
    /// 20 ms).
    pub fn with_hedge(mut self, hedge: Option<Duration>) -> Self {
        self.hedge = hedge;
        self
    }

    pub fn key(&self) -> &BlockKey {
        &self.key
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StoreId, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the `cairn chunkstore` daemon at `address`, reached with the
    /// cluster secret (see [`Stores::add`]).
    pub fn add_address(&self, id: StoreId, name: &str, address: &str) {
        let store = NoiseStore::new(address, self.secret.clone());
        self.add(id, name, Arc::new(store));
    }

    /// Adds a store (offline until the first probe answers).
    pub fn add(&self, id: StoreId, name: &str, store: Arc<dyn ChunkStore>) {
        self.lock().insert(
            id,
            Entry {
                name: name.to_owned(),
                store,
                view: StoreView {
                    id,
                    name: name.to_owned(),
                    zone: String::new(),
                    host: String::new(),
                    labels: Vec::new(),
                    online: false,
                    capacity: 0,
                    used: 0,
                    reserve: 0,
                },
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
                e.store.reset();
            }
        }
    }

    /// The store `id`, or why there is none.
    fn store(&self, id: StoreId) -> Result<Arc<dyn ChunkStore>, StoreError> {
        self.lock()
            .get(&id)
            .map(|e| e.store.clone())
            .ok_or(StoreError::UnknownStore { id: id.0 })
    }

    /// Runs `op` on store `id`; a store that cannot be reached, or that went
    /// silent (a timeout), is marked as not answering.
    async fn with<T, Fut>(
        &self,
        id: StoreId,
        op: impl FnOnce(Arc<dyn ChunkStore>) -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let result = op(self.store(id)?).await;
        if let Err(e) = &result {
            if unreachable(e) {
                self.mark(id, Some(e));
            }
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
            .with(id, |s| async move { s.put(key, data).await.map(|_| ()) })
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
        self.with(
            id,
            |s| async move { s.get(key, offset, len, Some(stall)).await },
        )
        .await
    }

    /// An object's length and crc32c, from its store's header.
    pub async fn stat(&self, id: StoreId, key: &str) -> Result<ShardStat, StoreError> {
        self.with(id, |s| async move { s.stat(key).await }).await
    }

    pub async fn delete(&self, id: StoreId, key: &str) -> Result<(), StoreError> {
        self.with(id, |s| async move { s.delete(key).await.map(|_| ()) })
            .await
    }

    /// Up to `limit` object keys after `after`, in order.
    pub async fn list(
        &self,
        id: StoreId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ListEntry>, StoreError> {
        self.with(id, |s| async move { s.list(after, limit).await })
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
                self.with(id, |s| async move { s.capacity().await }).await
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

    pub fn is_online(&self, id: StoreId) -> bool {
        self.lock().get(&id).is_some_and(|e| e.view.online)
    }
}
