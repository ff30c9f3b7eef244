//! [`NoiseStore`]: a `cairn chunkstore` daemon reached over Noise/TCP with
//! the cluster secret. It keeps a few authenticated connections open; a
//! pooled connection that fails at the connection level may just be stale
//! (the daemon restarted since), so the request runs once more on a fresh
//! one (every store operation is idempotent). Silence is no stale
//! connection: a timeout is returned at once. A put whose connection drops
//! mid-way resumes on a new one from what the store kept (see
//! [`Upload`]), up to [`MAX_RESUMES`] times while each resume finds the
//! store holding more; a put that still broke off is remembered, so the
//! next put of that key resumes too.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_chunkstore::transport::Heard;
use cairn_chunkstore::{Secret, StoreClient, Upload};
use tokio::time::Instant;

use super::{Capacity, ChunkStore, ListEntry, Pacer, ShardStat, StoreError, StoreFuture};

/// Connections kept open per store.
const POOL: usize = 8;
/// Resumes of one put after its connection dropped.
pub const MAX_RESUMES: u32 = 5;
/// Keys whose put broke off, remembered so their next put resumes.
const MAX_INTERRUPTED: usize = 1024;

/// A chunk-store daemon at an address.
pub struct NoiseStore {
    address: String,
    secret: Secret,
    pool: Mutex<Vec<StoreClient>>,
    /// Keys whose last put broke off mid-way, oldest first.
    interrupted: Mutex<VecDeque<String>>,
    /// The probe's own connection, never queued behind a transfer.
    probe: tokio::sync::Mutex<Option<StoreClient>>,
    /// When the store last sent anything on any of these connections: a
    /// get waiting behind others on a busy link is not stalled.
    heard: Arc<Heard>,
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
            interrupted: Mutex::new(VecDeque::new()),
            probe: tokio::sync::Mutex::new(None),
            heard: Arc::default(),
        }
    }

    /// A new connection, sharing [`NoiseStore::heard`].
    async fn connect(&self) -> Result<StoreClient, StoreError> {
        let mut client = StoreClient::connect(&self.address, &self.secret).await?;
        client.share_heard(self.heard.clone());
        Ok(client)
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

    /// Whether the last put of `key` broke off (and forgets it).
    fn was_interrupted(&self, key: &str) -> bool {
        let mut keys = self.interrupted.lock().unwrap_or_else(|p| p.into_inner());
        let at = keys.iter().position(|k| k == key);
        at.and_then(|at| keys.remove(at)).is_some()
    }

    fn remember_interrupted(&self, key: &str) {
        let mut keys = self.interrupted.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_INTERRUPTED {
            keys.pop_front();
        }
        keys.push_back(key.to_owned());
    }

    /// Puts `data`, resuming after dropped connections; see the module doc.
    async fn put_resuming(
        &self,
        key: &str,
        data: &[u8],
        pacer: Option<&dyn Pacer>,
    ) -> Result<ShardStat, StoreError> {
        let mut up = if self.was_interrupted(key) {
            Upload::resuming(key, data)
        } else {
            Upload::new(key, data)
        };
        if let Some(pacer) = pacer {
            up = up.paced(pacer);
        }
        let mut resumes = 0;
        loop {
            let pooled = if up.started() {
                None
            } else {
                self.pool().pop()
            };
            let mut client = match pooled {
                Some(client) => client,
                None => match self.connect().await {
                    Ok(client) => client,
                    Err(err) => return Err(self.broke_off(key, &up, err)),
                },
            };
            let err = match client.upload(&mut up).await {
                Ok(stat) => {
                    self.give_back(client);
                    return Ok(stat);
                }
                Err(err) if !err.retryable() => {
                    self.give_back(client);
                    return Err(err);
                }
                Err(err) => err,
            };
            self.reset();
            // Only a lost connection is resumed: silence (a timeout) is no
            // dropped connection, a stalled upload gets no further now, and a
            // store's own refusal would be the same on a new connection.
            let again = matches!(err, StoreError::Transport { .. });
            if !again || resumes >= MAX_RESUMES {
                return Err(self.broke_off(key, &up, err));
            }
            resumes += 1;
            tracing::info!(store = %self.address, key, held = ?up.held(), resumes, cause = %err,
                "put interrupted; resuming on a new connection");
        }
    }

    /// A put gave up: if it had started, its next put resumes.
    fn broke_off(&self, key: &str, up: &Upload<'_>, err: StoreError) -> StoreError {
        if up.started() && err.retryable() {
            self.remember_interrupted(key);
        }
        err
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
        let connecting = self.connect();
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
        Box::pin(self.put_resuming(key, data, None))
    }

    fn put_paced<'a>(
        &'a self,
        key: &'a str,
        data: &'a [u8],
        pacer: &'a dyn Pacer,
    ) -> StoreFuture<'a, ShardStat> {
        Box::pin(self.put_resuming(key, data, Some(pacer)))
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
                _ => self.connect().await?,
            };
            let r = client.capacity().await;
            *conn = Some(client).filter(StoreClient::is_connected);
            r
        })
    }

    fn reset(&self) {
        self.pool().clear();
    }

    fn heard(&self) -> Option<Instant> {
        self.heard.last()
    }
}
