//! [`MemoryStore`]: a chunk store in memory, for tests. It behaves as a
//! `cairn chunkstore` daemon does (the [`conformance`](super::conformance)
//! suite is the contract): the same key rules and size limit, objects in key
//! order, replace on put, `false` for a delete of nothing, and honest space:
//! free is the configured total less the bytes held, and a put that would
//! leave less than the reserve free is refused.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;
use std::time::Duration;

use cairn_chunkstore::protocol::{check_key, check_len, MAX_LIST};

use super::{Capacity, ChunkStore, ListEntry, ShardStat, StoreError, StoreFuture};

/// Who a memory store says it is and how big it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub zone: String,
    pub host: String,
    pub labels: Vec<String>,
    /// Bytes it can hold in all.
    pub total: u64,
    /// Free bytes puts never eat into.
    pub reserve: u64,
}

impl Identity {
    /// A store `name` on host `name` in zone `z1`, holding `total` bytes.
    pub fn named(name: &str, total: u64) -> Self {
        Identity {
            name: name.to_owned(),
            zone: "z1".to_owned(),
            host: name.to_owned(),
            labels: Vec::new(),
            total,
            reserve: 0,
        }
    }
}

/// A chunk store in memory.
#[derive(Debug)]
pub struct MemoryStore {
    address: String,
    identity: Mutex<Identity>,
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStore {
    pub fn new(identity: Identity) -> Self {
        MemoryStore {
            address: format!("memory:{}", identity.name),
            identity: Mutex::new(identity),
            objects: Mutex::new(BTreeMap::new()),
        }
    }

    /// Changes who the store says it is, or its size, from now on.
    pub fn set_identity(&self, identity: Identity) {
        *self.identity.lock().unwrap_or_else(|p| p.into_inner()) = identity;
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn identity(&self) -> Identity {
        self.identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The bytes held under `key`, as stored (for tests that inspect them).
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.objects().get(key).cloned()
    }

    fn not_found(key: &str) -> StoreError {
        StoreError::NotFound {
            key: key.to_owned(),
        }
    }

    fn put_now(&self, key: &str, data: &[u8]) -> Result<ShardStat, StoreError> {
        check_key(key)?;
        let len = data.len() as u64;
        check_len(key, len)?;
        let id = self.identity();
        let mut objects = self.objects();
        let held: u64 = objects.values().map(|o| o.len() as u64).sum();
        let free = id.total.saturating_sub(held);
        if free < len.saturating_add(id.reserve) {
            return Err(StoreError::NoSpace {
                key: key.to_owned(),
                len,
                free,
                reserve: id.reserve,
            });
        }
        objects.insert(key.to_owned(), data.to_vec());
        Ok(ShardStat {
            len,
            crc: crc32c::crc32c(data),
        })
    }

    fn get_now(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        check_key(key)?;
        let objects = self.objects();
        let object = objects.get(key).ok_or_else(|| Self::not_found(key))?;
        let shard_len = object.len() as u64;
        match offset.checked_add(len).filter(|&end| end <= shard_len) {
            Some(end) => Ok(object[offset as usize..end as usize].to_vec()),
            None => Err(StoreError::InvalidRange {
                key: key.to_owned(),
                offset,
                len,
                shard_len,
            }),
        }
    }

    fn capacity_now(&self) -> Capacity {
        let id = self.identity();
        let objects = self.objects();
        let stored: u64 = objects.values().map(|o| o.len() as u64).sum();
        Capacity {
            total: id.total,
            free: id.total.saturating_sub(stored),
            used: stored,
            stored,
            shards: objects.len() as u64,
            reserve: id.reserve,
            zone: id.zone,
            host: id.host,
            name: id.name.clone(),
            store_uuid: format!("memory-{}", id.name),
            labels: id.labels,
        }
    }
}

impl ChunkStore for MemoryStore {
    fn address(&self) -> &str {
        &self.address
    }

    fn put<'a>(&'a self, key: &'a str, data: &'a [u8]) -> StoreFuture<'a, ShardStat> {
        Box::pin(async move { self.put_now(key, data) })
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
        _stall: Option<Duration>,
    ) -> StoreFuture<'a, Vec<u8>> {
        Box::pin(async move { self.get_now(key, offset, len) })
    }

    fn stat<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ShardStat> {
        Box::pin(async move {
            check_key(key)?;
            let objects = self.objects();
            let object = objects.get(key).ok_or_else(|| Self::not_found(key))?;
            Ok(ShardStat {
                len: object.len() as u64,
                crc: crc32c::crc32c(object),
            })
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            check_key(key)?;
            Ok(self.objects().remove(key).is_some())
        })
    }

    fn list<'a>(&'a self, after: Option<&'a str>, limit: u32) -> StoreFuture<'a, Vec<ListEntry>> {
        Box::pin(async move {
            if let Some(key) = after {
                check_key(key)?;
            }
            let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
            Ok(self
                .objects()
                .range::<str, _>((lower, Bound::Unbounded))
                .take(limit.clamp(1, MAX_LIST) as usize)
                .map(|(key, object)| ListEntry {
                    key: key.clone(),
                    len: object.len() as u64,
                })
                .collect())
        })
    }

    fn capacity(&self) -> StoreFuture<'_, Capacity> {
        Box::pin(async move { Ok(self.capacity_now()) })
    }
}
