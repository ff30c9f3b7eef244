//! The chunk stores as the gateway sees them. [`ChunkStore`] is the one
//! backend trait (put, ranged get with a stall limit, stat, delete, paged
//! list, capacity and identity), shaped like `object_store`'s `ObjectStore`
//! and object-safe (`Arc<dyn ChunkStore>`); every backend fails with
//! [`StoreError`], whose `retryable()` the pool relies on, and passes the
//! [`conformance`] suite. Implementations: [`noise::NoiseStore`] (a
//! `cairn chunkstore` daemon over Noise/TCP), [`s3::S3Store`] (a prefix of
//! an S3-compatible bucket), [`memory::MemoryStore`] and
//! [`faulty::Faulty`] (fault injection) for tests. [`pool::Stores`] pools
//! them with health, pacing ([`link`]: per-store link estimates) and placement views and reads blocks back;
//! [`keys`] names every object, [`placement`], [`ec`] and [`crypto`] decide
//! where bytes go and what they look like.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use cairn_chunkstore::{Capacity, ListEntry, Pacer, ShardStat, Status, StoreError};

pub mod conformance;
pub mod crypto;
pub mod ec;
pub mod faulty;
pub mod frames;
mod hedge;
pub mod keys;
pub mod link;
mod load;
pub mod memory;
pub mod noise;
pub mod placement;
pub mod pool;
mod read;
#[cfg(test)]
mod read_tests;
pub mod s3;
#[cfg(test)]
mod tests;
mod verify;

pub use keys::ObjectKey;
pub use link::{Caps, Purpose};
pub use pool::{Reach, Stores};

/// What every [`ChunkStore`] operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One chunk store. Keys are 1..=128 bytes of `[A-Za-z0-9._-]`, not starting
/// with `.`; objects are at most 64 MiB. Every operation is idempotent, so a
/// caller may repeat one that failed retryably.
pub trait ChunkStore: Send + Sync + std::fmt::Debug {
    /// Where the store is, for logs.
    fn address(&self) -> &str;

    /// Stores `data` under `key`, replacing any object there; the length and
    /// crc32c the store made durable. A store that would keep less than its
    /// reserve free refuses ([`Status::NoSpace`]).
    fn put<'a>(&'a self, key: &'a str, data: &'a [u8]) -> StoreFuture<'a, ShardStat>;

    /// [`put`](Self::put), sending no faster than `pacer` allows. A backend
    /// that cannot pace within a transfer waits for the whole payload's
    /// allowance first.
    fn put_paced<'a>(
        &'a self,
        key: &'a str,
        data: &'a [u8],
        pacer: &'a dyn Pacer,
    ) -> StoreFuture<'a, ShardStat> {
        Box::pin(async move {
            pacer.wait(data.len() as u64).await;
            self.put(key, data).await
        })
    }

    /// `len` bytes at `offset` of `key` (`len` 0: none, after checking the
    /// whole object). A range past the end is [`Status::InvalidRange`], a
    /// missing key [`Status::NotFound`]. With `stall`, the read (connecting
    /// included) gives up with [`StoreError::Timeout`] once the store sends
    /// nothing for that long; without, the backend's own limit applies.
    fn get<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
        stall: Option<Duration>,
    ) -> StoreFuture<'a, Vec<u8>>;

    /// Reads `key` whole, no faster than `pacer` allows, and checks it
    /// against the crc32c stored with it: a mismatch is
    /// [`Status::Corrupt`]. A `cairn chunkstore` checks its own shards (its
    /// scrub); the default is a len-0 get, which such a store answers
    /// after checking the whole object.
    fn verify<'a>(&'a self, key: &'a str, pacer: &'a dyn Pacer) -> StoreFuture<'a, ()> {
        let _ = pacer;
        Box::pin(async move { self.get(key, 0, 0, None).await.map(drop) })
    }

    /// Whether the gateway scrubs this store ([`ChunkStore::verify`] of
    /// every object, at the given bytes per second, a pass every given
    /// period), as one that cannot check its own bytes (a bucket) needs.
    fn gateway_scrub(&self) -> Option<(Duration, u64)> {
        None
    }

    /// An object's length and crc32c.
    fn stat<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ShardStat>;

    /// Removes an object; `false` if there was none.
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;

    /// Up to `limit` (clamped to 1..=10,000) objects with keys after `after`,
    /// in key order; a page shorter than `limit` is the last.
    fn list<'a>(&'a self, after: Option<&'a str>, limit: u32) -> StoreFuture<'a, Vec<ListEntry>>;

    /// The store's space, identity and labels.
    fn capacity(&self) -> StoreFuture<'_, Capacity>;

    /// A liveness probe: the capacity, asked so that it waits behind no bulk
    /// transfer (a backend with shared connections uses one of its own).
    fn probe(&self) -> StoreFuture<'_, Capacity> {
        self.capacity()
    }

    /// The audit lists this store at most this often (zero: at every
    /// audit); a backend that bills listings asks for less.
    fn list_every(&self) -> Duration {
        Duration::ZERO
    }

    /// Forgets any idle connections: the pool found the store not answering.
    fn reset(&self) {}

    /// When the store last sent anything, on any connection, if the backend
    /// knows: a read does not hedge a large get to a store that keeps
    /// sending (its link is busy, not stalled).
    fn heard(&self) -> Option<tokio::time::Instant> {
        None
    }
}

/// Whether an error says the store could not be reached or went silent (its
/// pool then counts it as not answering), rather than refusing one request.
pub fn unreachable(e: &StoreError) -> bool {
    e.retryable() || matches!(e, StoreError::Handshake { .. } | StoreError::Refused { .. })
}
