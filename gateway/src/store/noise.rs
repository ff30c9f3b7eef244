//! [`NoiseStore`]: a `cairn chunkstore` daemon reached over Noise/TCP with
//! the cluster secret. It keeps a few authenticated connections open; a
//! pooled connection that fails at the connection level may just be stale
//! (the daemon restarted since), so the request runs once more on a fresh
//! one (every store operation is idempotent). Silence is no stale
//! connection: a timeout is returned at once.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use cairn_chunkstore::{Secret, StoreClient};

use super::{Capacity, ChunkStore, ListEntry, ShardStat, StoreError, StoreFuture};

/// Connections kept open per store.
const POOL: usize = 8;

/// A chunk-store daemon at an address.
pub struct NoiseStore {
    address: String,
    secret: Secret,
    pool: Mutex<Vec<StoreClient>>,
    /// The probe's own connection, never queued behind a transfer.
    probe: tokio::sync::Mutex<Option<StoreClient>>,
}

impl std::fmt::Debug for NoiseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoiseStore({})", self.address)
    }
}

impl NoiseStore {
    pub fn new(address: &str, secret: Secret) -> Self {
        NoiseStore {
            address: address.to_owned(),
            secret,
            pool: Mutex::new(Vec::new()),
            probe: tokio::sync::Mutex::new(None),
        }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<StoreClient>> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn give_back(&self, client: StoreClient) {
        let mut pool = self.pool();
        if pool.len() < POOL {
            pool.push(client);
        }
    }

    /// Runs `op` on a pooled connection, or a fresh one made within
    /// `connect` when given; see the module doc for the retry.
    async fn with<T, F, Fut>(&self, connect: Option<Duration>, op: F) -> Result<T, StoreError>
    where
        F: Fn(StoreClient) -> Fut,
        Fut: Future<Output = (StoreClient, Result<T, StoreError>)>,
    {
        let pooled = self.pool().pop();
        if let Some(client) = pooled {
            let (client, result) = op(client).await;
            match &result {
                // Silence is no stale connection: a fresh one would wait as long.
                Err(StoreError::Timeout { .. }) => {
                    self.reset();
                    return result;
                }
                Err(e) if e.retryable() => self.reset(),
                _ => {
                    self.give_back(client);
                    return result;
                }
            }
        }
        let connecting = StoreClient::connect(&self.address, &self.secret);
        let client = match connect {
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Timeout {
                        addr: self.address.clone(),
                        op: "connect",
                        after: limit,
                    })
                })?,
            None => connecting.await?,
        };
        let (client, result) = op(client).await;
        match &result {
            Err(e) if e.retryable() => self.reset(),
            _ => self.give_back(client),
        }
        result
    }
}

impl ChunkStore for NoiseStore {
    fn address(&self) -> &str {
        &self.address
    }

    fn put<'a>(&'a self, key: &'a str, data: &'a [u8]) -> StoreFuture<'a, ShardStat> {
        Box::pin(self.with(None, move |mut c| async move {
            let r = c.put(key, data).await;
            (c, r)
        }))
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
        stall: Option<Duration>,
    ) -> StoreFuture<'a, Vec<u8>> {
        Box::pin(self.with(stall, move |mut c| async move {
            let r = match stall {
                Some(stall) => c.get_within(key, offset, len, stall).await,
                None => c.get(key, offset, len).await,
            };
            (c, r)
        }))
    }

    fn stat<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ShardStat> {
        Box::pin(self.with(None, move |mut c| async move {
            let r = c.stat(key).await;
            (c, r)
        }))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.with(None, move |mut c| async move {
            let r = c.delete(key).await;
            (c, r)
        }))
    }

    fn list<'a>(&'a self, after: Option<&'a str>, limit: u32) -> StoreFuture<'a, Vec<ListEntry>> {
        Box::pin(self.with(None, move |mut c| async move {
            let r = c.list(after, limit).await;
            (c, r)
        }))
    }

    fn capacity(&self) -> StoreFuture<'_, Capacity> {
        Box::pin(self.with(None, |mut c| async move {
            let r = c.capacity().await;
            (c, r)
        }))
    }

    fn probe(&self) -> StoreFuture<'_, Capacity> {
        Box::pin(async move {
            let mut conn = self.probe.lock().await;
            let mut client = match conn.take() {
                Some(c) if c.is_connected() => c,
                _ => StoreClient::connect(&self.address, &self.secret).await?,
            };
            let r = client.capacity().await;
            *conn = Some(client).filter(StoreClient::is_connected);
            r
        })
    }

    fn reset(&self) {
        self.pool().clear();
    }
}
