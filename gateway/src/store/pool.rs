//! The pool of chunk stores the gateway knows: each an `Arc<dyn ChunkStore>`
//! with its name, identity and fill as last probed ([`StoreView`]), whether
//! it answers ([`Reach`]: a store that fails to answer is suspect, and
//! offline once that lasts past the caller's grace; one that only times out
//! while its transfers make progress stays online), its life-cycle state,
//! its link estimates and upload pacing (`link.rs`). Block reads (the core's [`BlockSource`]) are in
//! `read.rs`. A read never waits on a silent store for long: a store that
//! sends nothing for `[read] stall` is given up on for the next copy or
//! shard, and a block read that has found no copy within `[read] timeout`
//! fails.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_chunkstore::Secret;
use cairn_metadata::{StoreId, StoreState};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::crypto::BlockKey;
use super::link::{Caps, Direction, Link, LinkStats, Pace, Purpose};
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
/// A probe not answered within this is a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

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
    link: Link,
    /// Bytes of cairn's objects on it (its own report, plus puts since).
    stored: u64,
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
    caps: Caps,
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
    /// per second of drain to each (0: unlimited; see [`Stores::with_caps`]).
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
            caps: Caps {
                drain: bandwidth,
                ..Caps::default()
            },
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

    /// Per-store bandwidth caps for each purpose, for stores added after.
    pub fn with_caps(mut self, caps: Caps) -> Self {
        self.caps = caps;
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
                    queued: 0,
                    rate: 0,
                },
                pace: Arc::new(Pace::new(self.concurrency, self.caps)),
                link: Link::default(),
                stored: 0,
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
                let mut view = e.loaded_view();
                view.online &= e.life == StoreState::Active;
                view
            })
            .collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Where a store stands: answering, or slow to answer while its
    /// transfers make progress (online); not answering for less than `grace`
    /// (suspect), or for longer (offline: its chunks need repair); and its
    /// life-cycle state.
    pub fn health(&self, id: StoreId, grace: Duration) -> (Reach, StoreState) {
        match self.lock().get(&id) {
            None => (Reach::Offline, StoreState::Removed),
            Some(e) => {
                let reach = match e.failing_since {
                    None => Reach::Online,
                    Some(_) if e.view.online && e.link.moving(Instant::now()) => Reach::Online,
                    Some(t) if t.elapsed() < grace => Reach::Suspect,
                    Some(_) => Reach::Offline,
                };
                (reach, e.life)
            }
        }
    }

    /// The stores as placement sees them.
    pub fn views(&self) -> Vec<StoreView> {
        let mut v: Vec<StoreView> = self.lock().values().map(Entry::loaded_view).collect();
        v.sort_by_key(|s| s.id);
        v
    }

    pub fn name(&self, id: StoreId) -> String {
        self.lock()
            .get(&id)
            .map_or_else(|| id.to_string(), |e| e.name.clone())
    }

    /// How often the audit may list store `id` ([`ChunkStore::list_every`]).
    pub fn list_every(&self, id: StoreId) -> Duration {
        self.lock()
            .get(&id)
            .map_or(Duration::ZERO, |e| e.store.list_every())
    }

    /// Bytes of cairn's objects on store `id`.
    pub fn stored(&self, id: StoreId) -> u64 {
        self.lock().get(&id).map_or(0, |e| e.stored)
    }

    /// Why store `id` is not answering, while it is not.
    pub fn cause(&self, id: StoreId) -> Option<String> {
        self.lock().get(&id).and_then(|e| e.cause.clone())
    }

    /// The link to store `id` as `cairn status` shows it.
    pub fn link(&self, id: StoreId) -> LinkStats {
        self.lock()
            .get(&id)
            .map(|e| e.link.stats(Instant::now()))
            .unwrap_or_default()
    }

    /// Uploads of `object` bytes to keep in flight to reach every online
    /// store's bandwidth-delay product, summed over the stores that take new
    /// copies (each store's share within `2..=` the upload concurrency).
    pub fn upload_depth(&self, object: u64) -> usize {
        self.lock()
            .values()
            .filter(|e| e.view.online && e.life == StoreState::Active)
            .map(|e| e.link.depth(object, self.concurrency))
            .sum()
    }

    /// Records a store as answering (`failure` none) or not, and logs the
    /// change with its cause.
    fn mark(&self, id: StoreId, failure: Option<&dyn std::fmt::Display>) {
        self.note(id, failure, false);
    }

    /// A request to store `id` went unanswered (a timeout): slow or gone. A
    /// store that moves bytes meanwhile (`Link::moving`) is slow: it stays
    /// online, though the grace clock starts; one that moves none is marked
    /// as not answering. A refused connection is no excuse.
    fn mark_silent(&self, id: StoreId, cause: &dyn std::fmt::Display) {
        self.note(id, Some(cause), true);
    }

    fn note(&self, id: StoreId, failure: Option<&dyn std::fmt::Display>, silence: bool) {
        if let Some(e) = self.lock().get_mut(&id) {
            let now = Instant::now();
            match (failure.is_none(), e.failing_since) {
                (true, _) => e.failing_since = None,
                (false, None) => e.failing_since = Some(now),
                (false, Some(_)) => {}
            }
            let slow = silence && e.link.moving(now);
            if let Some(why) = failure.filter(|_| slow) {
                debug!(store = %e.name, cause = %why, "chunk store slow to answer, but its transfers make progress");
            }
            let online = failure.is_none() || (slow && e.view.online);
            let cause = failure.filter(|_| !online).map(ToString::to_string);
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
    pub(super) fn store(&self, id: StoreId) -> Result<Arc<dyn ChunkStore>, StoreError> {
        self.lock()
            .get(&id)
            .map(|e| e.store.clone())
            .ok_or(StoreError::UnknownStore { id: id.0 })
    }

    /// Runs `op` on store `id`; a store that cannot be reached, or that went
    /// silent (a timeout), is marked as not answering.
    pub(super) async fn with<T, Fut>(
        &self,
        id: StoreId,
        op: impl FnOnce(Arc<dyn ChunkStore>) -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let result = op(self.store(id)?).await;
        self.judge(id, &result);
        result
    }

    /// Marks store `id` by a request's outcome: a timeout is silence (maybe
    /// slowness), an unreachable store is not answering.
    /// A connection cut mid-request (a WAN reset) counts as silence too: the
    /// store is excused while other transfers to it make progress, and a
    /// store that is gone is caught by its probe's refused connection.
    fn judge<T>(&self, id: StoreId, result: &Result<T, StoreError>) {
        match result {
            Err(
                e @ (StoreError::Timeout { .. }
                | StoreError::Transport { .. }
                | StoreError::Stalled { .. }),
            ) => self.mark_silent(id, e),
            Err(e) if unreachable(e) => self.mark(id, Some(e)),
            _ => {}
        }
    }

    /// Puts an object of new data (see [`Stores::put_for`]).
    pub async fn put(&self, id: StoreId, key: &str, data: Arc<Vec<u8>>) -> Result<(), StoreError> {
        self.put_for(id, key, data, Purpose::Drain).await
    }

    /// Puts an object, paced by the store's cap for `purpose`. Its bytes
    /// count as the store's load from now until the put ends, so placement
    /// sees them at once.
    pub async fn put_for(
        &self,
        id: StoreId,
        key: &str,
        data: Arc<Vec<u8>>,
        purpose: Purpose,
    ) -> Result<(), StoreError> {
        let len = data.len() as u64;
        let pace = self.lock().get_mut(&id).map(|e| {
            e.link.enqueue(len);
            e.pace.clone()
        });
        let _queued = Dequeue(self, id, len);
        let admission = match &pace {
            Some(p) => Some(p.admit(purpose).await),
            None => None,
        };
        let (data, pacer) = (&data, admission.as_ref().map(|a| a.pacer));
        let stored = self
            .transfer(id, Direction::Up, len, |s| async move {
                match pacer {
                    Some(pacer) => s.put_paced(key, data, pacer).await.map(|_| ()),
                    None => s.put(key, data).await.map(|_| ()),
                }
            })
            .await;
        if stored.is_ok() {
            // Counted at once, so the next placement sees it before the next
            // probe reports the store's fill.
            if let Some(e) = self.lock().get_mut(&id) {
                e.view.used = e.view.used.saturating_add(len);
                e.stored = e.stored.saturating_add(len);
            }
        }
        stored
    }

    /// Runs a transfer of `len` bytes as [`Stores::with`] does, timing it for
    /// the link's estimates; one that completes proves the store answers.
    async fn transfer<T, Fut>(
        &self,
        id: StoreId,
        dir: Direction,
        len: u64,
        op: impl FnOnce(Arc<dyn ChunkStore>) -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let store = self.store(id)?;
        let mut running = Running {
            stores: self,
            id,
            ticket: self
                .lock()
                .get_mut(&id)
                .map(|e| e.link.start(dir, len, Instant::now())),
            moved: 0,
        };
        let result = op(store).await;
        running.moved = if result.is_ok() { len } else { 0 };
        // Ended before it is judged: a failed transfer excuses nothing.
        drop(running);
        self.judge(id, &result);
        if result.is_ok() && len > 0 && !self.is_online(id) {
            self.mark(id, None);
        }
        result
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
        self.transfer(id, Direction::Down, len, |s| async move {
            s.get(key, offset, len, Some(stall)).await
        })
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

    /// Asks every store at once, each on its own connection and never
    /// paced, for its identity and fill (within [`PROBE_TIMEOUT`]); marks each
    /// online or not and times the answer for the round-trip estimate.
    pub async fn probe(&self) {
        let stores: Vec<(StoreId, Arc<dyn ChunkStore>)> = self
            .lock()
            .iter()
            .map(|(id, e)| (*id, e.store.clone()))
            .collect();
        let mut probes = tokio::task::JoinSet::new();
        for (id, store) in stores {
            probes.spawn(async move {
                let sent = Instant::now();
                let answer = tokio::time::timeout(PROBE_TIMEOUT, store.probe()).await;
                (id, answer, sent.elapsed())
            });
        }
        while let Some(done) = probes.join_next().await {
            let Ok((id, answer, took)) = done else {
                continue;
            };
            match answer {
                Ok(Ok(cap)) => {
                    if let Some(e) = self.lock().get_mut(&id) {
                        e.view.zone = cap.zone.clone();
                        e.view.host = cap.host.clone();
                        e.view.labels = cap.labels.clone();
                        e.view.capacity = cap.total;
                        e.view.used = cap.total.saturating_sub(cap.free);
                        e.stored = cap.stored;
                        e.view.reserve = cap.reserve;
                        e.link.add_rtt(took);
                    }
                    self.mark(id, None);
                }
                Ok(Err(e @ StoreError::Timeout { .. })) => self.mark_silent(id, &e),
                Ok(Err(e)) => self.mark(id, Some(&e)),
                Err(_) => self.mark_silent(id, &"no answer to a capacity probe within 5 s"),
            }
        }
    }

    pub fn is_online(&self, id: StoreId) -> bool {
        self.lock().get(&id).is_some_and(|e| e.view.online)
    }
}

impl Entry {
    /// Its view with the link's load: bytes queued and the upload rate.
    fn loaded_view(&self) -> StoreView {
        let mut view = self.view.clone();
        view.queued = self.link.queued();
        view.rate = self.link.up_rate().map_or(0, |r| r as u64);
        view
    }
}

#[path = "pool_guards.rs"]
mod guards;
use guards::{Dequeue, Running};

#[cfg(test)]
#[path = "link_tests.rs"]
mod link_tests;
