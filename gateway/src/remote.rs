//! The gateway's view of its chunk stores: a small pool of authenticated
//! connections per store, their identity and fill as last reported, and
//! reading drained blocks back (any live replica, verified and decrypted).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_chunkstore::{Secret, StoreClient, StoreError};
use cairn_metadata::{BlockLocation, ChunkId, StoreId};
use tracing::{info, warn};

use crate::core::{BlockSource, FsError};
use crate::crypto::BlockKey;
use crate::placement::StoreView;

/// Connections kept open per store.
const POOL: usize = 8;
/// Decrypted blocks kept in memory for repeated reads (at most 4 MiB each).
const HOT_BLOCKS: usize = 64;

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
        }
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
            },
        );
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

    async fn client(&self, id: StoreId) -> Result<StoreClient, StoreError> {
        let (pooled, address) = {
            let mut entries = self.lock();
            let Some(e) = entries.get_mut(&id) else {
                return Err(StoreError::UnknownStore { id: id.0 });
            };
            (e.pool.pop(), e.address.clone())
        };
        match pooled {
            Some(c) => Ok(c),
            None => StoreClient::connect(&address, &self.secret).await,
        }
    }

    fn give_back(&self, id: StoreId, client: StoreClient) {
        if let Some(e) = self.lock().get_mut(&id) {
            if e.pool.len() < POOL {
                e.pool.push(client);
            }
        }
    }

    fn mark(&self, id: StoreId, online: bool) {
        if let Some(e) = self.lock().get_mut(&id) {
            if e.view.online != online {
                if online {
                    info!(store = %e.name, "chunk store online");
                } else {
                    warn!(store = %e.name, "chunk store offline");
                }
            }
            e.view.online = online;
            if !online {
                e.pool.clear();
            }
        }
    }

    /// Runs `op` on a pooled connection to `id`; a failed connection is
    /// dropped and the store marked offline if it cannot be reached.
    async fn with<T, F, Fut>(&self, id: StoreId, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(StoreClient) -> Fut,
        Fut: Future<Output = (StoreClient, Result<T, StoreError>)>,
    {
        let client = match self.client(id).await {
            Ok(c) => c,
            Err(e) => {
                self.mark(id, false);
                return Err(e);
            }
        };
        let (client, result) = op(client).await;
        match &result {
            Ok(_) => self.give_back(id, client),
            Err(e) if e.retryable() => self.mark(id, false),
            Err(_) => self.give_back(id, client),
        }
        result
    }

    pub async fn put(&self, id: StoreId, key: &str, data: Arc<Vec<u8>>) -> Result<(), StoreError> {
        let pace = self.lock().get(&id).map(|e| e.pace.clone());
        let _permit = match &pace {
            Some(p) => p.admit(data.len() as u64).await,
            None => None,
        };
        let key = key.to_owned();
        self.with(id, |mut c| async move {
            let r = c.put(&key, &data).await.map(|_| ());
            (c, r)
        })
        .await
    }

    pub async fn get(
        &self,
        id: StoreId,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let key = key.to_owned();
        self.with(id, |mut c| async move {
            let r = c.get(&key, offset, len).await;
            (c, r)
        })
        .await
    }

    pub async fn delete(&self, id: StoreId, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.with(id, |mut c| async move {
            let r = c.delete(&key).await.map(|_| ());
            (c, r)
        })
        .await
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
                    self.mark(id, true);
                }
                _ => self.mark(id, false),
            }
        }
    }
}

impl BlockSource for Stores {
    fn fetch<'a>(
        &'a self,
        loc: &'a BlockLocation,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, FsError>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(hit) = self
                .hot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&loc.block)
            {
                return Ok(hit.as_ref().clone());
            }
            let key = chunk_key(loc.chunk);
            let aad = block_aad(loc.chunk, loc.offset);
            let mut why = String::from("no replica is recorded");
            // Online stores first; an offline one is still worth a try last.
            let views = self.views();
            let online = |id: &StoreId| views.iter().any(|v| v.id == id.0 && v.online);
            let mut order: Vec<StoreId> = loc.stores.iter().copied().filter(online).collect();
            order.extend(loc.stores.iter().copied().filter(|s| !online(s)));
            for store in order {
                match self.get(store, &key, loc.offset, loc.stored_len).await {
                    Ok(sealed) => match self.key.open(&sealed, &aad) {
                        Ok(plain) => {
                            let plain = Arc::new(plain);
                            self.hot
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .put(loc.block, plain.clone());
                            return Ok(plain.as_ref().clone());
                        }
                        Err(e) => {
                            warn!(store = %self.name(store), chunk = %loc.chunk, cause = %e, "a replica failed verification");
                            why = format!("{}: {e}", self.name(store));
                        }
                    },
                    Err(e) => why = format!("{}: {e}", self.name(store)),
                }
            }
            Err(FsError::Unavailable {
                chunk: loc.chunk,
                why,
            })
        })
    }
}
