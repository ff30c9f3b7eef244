//! The filesystem core: one async API over the metadata and the ingest cache,
//! used by every front end (NFS now, FUSE later). Every call takes the
//! caller's [`Credentials`] and enforces POSIX permission bits for them;
//! every change is one metadata transaction, so a crash leaves either all of
//! it or none of it. Namespace changes are durable when the call returns;
//! data writes are durable when asked for ([`Stability::FileSync`]) or after
//! [`Fs::commit`].
//!
//! The core is sealed: callers outside it (front ends, the admin API, fsck,
//! the workers) use its named operations, not the metadata. One rule for the
//! runtime: large synchronous SQLite reads do not run on runtime threads;
//! they go through `spawn_blocking` (table scans such as [`Fs::chunks`]).
//! Point reads by key stay inline.

mod allocate;
mod attrs;
pub mod cache;
mod control;
pub(crate) mod data;
mod drain_ops;
mod error;
mod evict;
#[cfg(test)]
mod evict_tests;
mod namespace;
mod open;
pub mod perm;
mod readahead;
#[cfg(test)]
mod readahead_tests;
mod relay;
mod repair_ops;
#[cfg(test)]
mod tests;
mod xattr;
#[cfg(test)]
mod xattr_tests;

pub use allocate::Allocate;
pub use xattr::{XattrSet, MAX_XATTR_NAME, MAX_XATTR_VALUE};

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use cairn_metadata::{BlockLocation, FileTime, Inode, InodeId, Metadata};
use tracing::info;

use crate::catalog::Classes;
use cache::IngestCache;
pub use data::FileRef;
pub use drain_ops::{PersistRequest, Persistence};
pub use error::FsError;
pub use evict::Evicted;
pub use relay::Relaid;
pub use repair_ops::Repaired;

/// The largest file cairn stores: the ingest cache keeps a file in one local
/// file, and ext4 (4 KiB blocks) holds files up to 16 TiB less one block;
/// XFS more. SMB's own limit (MS-FSA MAXFILESIZE, 16 TiB - 64 KiB) fits
/// under it, so every write Samba passes on is taken.
pub const MAX_FILE_SIZE: u64 = (16 << 40) - 4096;
/// The most links one inode may have.
pub const MAX_LINKS: u32 = 65_000;
/// The longest name in a directory, in bytes.
pub const MAX_NAME: usize = 255;
/// The longest symlink target, in bytes.
pub const MAX_PATH: usize = 4096;

/// Who is asking: the uid, primary gid and supplementary gids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl Credentials {
    pub fn root() -> Self {
        Credentials {
            uid: 0,
            gid: 0,
            gids: Vec::new(),
        }
    }

    pub fn user(uid: u32, gid: u32) -> Self {
        Credentials {
            uid,
            gid,
            gids: Vec::new(),
        }
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.gids.contains(&gid)
    }
}

/// How to set a time in [`SetAttr`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SetTime {
    #[default]
    Keep,
    ServerNow,
    Client(FileTime),
}

/// Attributes to change; `None` and `Keep` leave a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: SetTime,
    pub mtime: SetTime,
}

/// The three ways NFSv3 creates a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateHow {
    /// Create, or open an existing file (applying the attributes).
    Unchecked(SetAttr),
    /// Create; fail if the name exists.
    Guarded(SetAttr),
    /// Create once: a retry with the same verifier finds the same file.
    Exclusive([u8; 8]),
}

/// How durable a write must be before the call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stability {
    /// In the cache, durable after [`Fs::commit`].
    Unstable,
    /// Data and the metadata needed to read it back are durable.
    DataSync,
    /// Data and all metadata are durable.
    FileSync,
}

/// Capacity, for FSSTAT and statfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStat {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
    pub total_files: u64,
    pub free_files: u64,
}

/// One entry of a directory listing. Cookies 1 and 2 are "." and "..".
#[derive(Clone, Debug)]
pub struct DirItem {
    pub name: Vec<u8>,
    pub id: InodeId,
    pub cookie: u64,
    pub attr: Option<Inode>,
}

/// Where drained blocks are read back from: the chunk stores in the gateway,
/// anything else in tests. Returns the block's plain bytes, verified.
pub trait BlockSource: Send + Sync {
    fn fetch<'a>(
        &'a self,
        loc: &'a BlockLocation,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, FsError>> + Send + 'a>>;

    /// Plain bytes `from..from + len` of a block (clamped to its end).
    /// Sources that can fetch part of a block override this to move only
    /// what covers the range.
    fn fetch_range<'a>(
        &'a self,
        loc: &'a BlockLocation,
        from: u64,
        len: u64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, FsError>> + Send + 'a>> {
        Box::pin(async move {
            let mut bytes = self.fetch(loc).await?;
            let from = from.min(bytes.len() as u64) as usize;
            bytes.truncate(from + (len as usize).min(bytes.len() - from));
            bytes.drain(..from);
            Ok(bytes)
        })
    }

    /// Raw bytes the stores can hold in all and still take (their
    /// reserves left out), as last probed; `None` when unknown.
    fn capacity(&self) -> Option<(u64, u64)> {
        None
    }
}

/// Counts a write as in flight until dropped.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The filesystem core. Share it behind an `Arc`.
pub struct Fs {
    meta: Arc<Metadata>,
    cache: Arc<IngestCache>,
    cache_dir: PathBuf,
    write_verifier: [u8; 8],
    /// Serialises the data-changing steps of writes and truncates per inode
    /// (striped), so a truncate never cuts a write that raced it.
    data_locks: Vec<tokio::sync::Mutex<()>>,
    /// Writes between their first byte reaching the cache and their
    /// metadata commit, striped by inode: the drain and eviction leave an
    /// inode alone while any is counted.
    in_flight: Vec<AtomicUsize>,
    /// Reads drained blocks back; `None` without chunk stores.
    blocks: Option<Arc<dyn BlockSource>>,
    /// Slots recently read or written, for least-recently-used eviction.
    recent: std::sync::Mutex<lru::LruCache<(InodeId, u64), ()>>,
    /// Makes a file's data and metadata remote-durable (classes with
    /// `--durability remote`); unset without chunk stores.
    persist: Option<Persistence>,
    /// Handles the FUSE view holds open, per inode (see `open`).
    open: open::OpenCounts,
    /// The class catalogue over `meta`.
    classes: Arc<Classes>,
    /// Sequential streams and the blocks fetched ahead of them.
    readahead: readahead::Readahead,
    /// Bytes read and where from, slots evicted: for `/metrics`.
    counters: CacheCounters,
}

/// How the ingest cache serves reads, since start.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// File bytes READ answered (cache and stores together).
    pub read_bytes: AtomicU64,
    /// Of those, bytes of evicted slots fetched from the stores (misses).
    pub store_read_bytes: AtomicU64,
    /// Slots evicted, and the cache bytes that freed.
    pub evicted_slots: AtomicU64,
    pub evicted_bytes: AtomicU64,
}

impl Fs {
    /// Reads and evictions since start.
    pub fn cache_counters(&self) -> &CacheCounters {
        &self.counters
    }
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs")
            .field("meta", &self.meta)
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

impl Fs {
    /// Opens the metadata at `meta_path` and the cache in `cache_dir`,
    /// repairing the cache after a crash.
    pub fn open(meta_path: &Path, cache_dir: &Path, cache_max: u64) -> Result<Self, FsError> {
        let meta = Arc::new(Metadata::open(meta_path)?);
        let cache = Arc::new(IngestCache::open(cache_dir, cache_max)?);
        open::free_orphans(&meta)?;
        let mut sizes: HashMap<InodeId, u64> = meta.read(|v| v.file_sizes())?.into_iter().collect();
        for id in meta.read(|v| v.inline_inodes())? {
            sizes.remove(&id);
        }
        let report = cache.recover(&sizes)?;
        info!(
            files = report.files,
            trimmed = report.trimmed,
            removed = report.removed,
            used_bytes = cache.used_bytes(),
            "ingest cache ready"
        );
        let classes = Arc::new(Classes::new(meta.clone()));
        Ok(Fs {
            meta,
            cache,
            cache_dir: cache_dir.to_owned(),
            write_verifier: rand::random::<u64>().to_le_bytes(),
            data_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            in_flight: (0..64).map(|_| AtomicUsize::new(0)).collect(),
            blocks: None,
            recent: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(1 << 16).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            persist: None,
            open: open::OpenCounts::default(),
            classes,
            readahead: readahead::Readahead::new(0),
            counters: CacheCounters::default(),
        })
    }

    /// Slots the metadata calls cached whose bytes are neither in a cache
    /// file nor inline (a wiped or replaced cache folder) read from their
    /// blocks again; dirty ones had no other copy and are reported. Run once
    /// at start, before serving.
    pub async fn reconcile_cache(&self) -> Result<(u64, u64), FsError> {
        let meta = &self.meta;
        let inline: std::collections::HashSet<InodeId> =
            meta.read(|v| v.inline_inodes())?.into_iter().collect();
        let (mut saved, mut lost) = (0, 0);
        for id in meta.read(|v| v.inodes_with_cached_slots())? {
            if inline.contains(&id) || self.cache.exists(id)? {
                continue;
            }
            let (s, l) = meta.write(true, move |tx| tx.cache_lost(id)).await?;
            saved += s;
            lost += l;
            if l > 0 {
                let path = meta.read(|v| v.path_of(id))?.unwrap_or_default();
                tracing::error!(inode = %id, path, slots = l, "undrained data of this file was in the lost cache and is gone; reading those ranges fails with an I/O error until they are overwritten or the file is deleted");
            }
        }
        if saved > 0 || lost > 0 {
            tracing::warn!(
                saved,
                lost,
                "the cache folder lost files: drained slots read from the chunk stores again"
            );
        }
        Ok((saved, lost))
    }

    /// After a stable write or COMMIT: a file whose class asks for remote
    /// durability is stored remotely before the caller hears "stable".
    pub(crate) async fn persist_if_remote(&self, inode: &Inode) -> Result<(), FsError> {
        let Some(class) = inode.class else {
            return Ok(());
        };
        // A class that cannot be read fails the write (see `catalog`).
        let remote = self.classes.spec(class)?.durability == crate::class::Durability::Remote;
        match (remote, &self.persist) {
            (false, _) => Ok(()),
            (true, Some(p)) => p.persist(inode.id).await,
            (true, None) => Err(FsError::Unavailable {
                chunk: None,
                why: "the class asks for remote durability but this gateway has no chunk stores"
                    .into(),
            }),
        }
    }

    /// Reads evicted slots back through `source`.
    pub fn with_blocks(mut self, source: Arc<dyn BlockSource>) -> Self {
        self.blocks = Some(source);
        self
    }

    /// Keeps up to `bytes` fetched ahead of each sequential reader of
    /// evicted data (`[read] readahead`); 0, the default, turns it off.
    pub fn with_readahead(mut self, bytes: u64) -> Self {
        self.readahead = readahead::Readahead::new(bytes);
        self
    }

    fn stripe(&self, id: InodeId) -> usize {
        (id.0 % self.in_flight.len() as u64) as usize
    }

    pub(crate) fn write_started(&self, id: InodeId) -> InFlight<'_> {
        let counter = &self.in_flight[self.stripe(id)];
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }

    /// Whether a write to `id` (or an inode sharing its stripe) is between
    /// its cache write and its metadata commit.
    pub fn writes_in_flight(&self, id: InodeId) -> bool {
        self.in_flight[self.stripe(id)].load(Ordering::SeqCst) > 0
    }

    /// Changes on every start of the gateway, so clients resend the
    /// unstable writes a crash may have lost.
    pub fn write_verifier(&self) -> [u8; 8] {
        self.write_verifier
    }

    /// The metadata itself: for unit tests that set up or inspect state.
    /// Everything else goes through the core's named operations.
    #[cfg(test)]
    pub(crate) fn metadata(&self) -> &Arc<Metadata> {
        &self.meta
    }

    /// The class catalogue (shared by the workers and the admin API).
    pub fn classes(&self) -> &Arc<Classes> {
        &self.classes
    }

    pub fn cache(&self) -> &Arc<IngestCache> {
        &self.cache
    }

    pub(crate) fn data_lock(&self, id: InodeId) -> &tokio::sync::Mutex<()> {
        &self.data_locks[(id.0 % self.data_locks.len() as u64) as usize]
    }

    /// Shrinks the cache file after a committed truncate (the caller holds
    /// the inode's data lock).
    async fn trim_data(&self, id: InodeId, len: u64) -> Result<(), FsError> {
        let cache = self.cache.clone();
        // Fsync'd before the reply: a later grow must never bring the cut
        // bytes back after a power loss.
        tokio::task::spawn_blocking(move || {
            cache.set_len(id, len)?;
            cache.sync_file(id)
        })
        .await?
    }

    /// Drops the cached data of an inode whose deletion committed.
    async fn drop_data(&self, gone: Option<InodeId>) -> Result<(), FsError> {
        if let Some(id) = gone {
            let cache = self.cache.clone();
            tokio::task::spawn_blocking(move || cache.remove(id)).await?;
        }
        Ok(())
    }

    /// The inode's attributes, or `Stale` if it no longer exists.
    pub async fn getattr(&self, id: InodeId) -> Result<Inode, FsError> {
        self.meta.read(|v| v.inode(id))?.ok_or(FsError::Stale(id))
    }

    /// Capacity of the ingest cache: the configured limit, or the disk's free
    /// space where that is smaller.
    pub async fn statfs(&self) -> Result<FsStat, FsError> {
        let st = rustix::fs::statvfs(&self.cache_dir).map_err(|e| FsError::Io {
            path: self.cache_dir.clone(),
            source: e.into(),
        })?;
        let disk_total = st.f_blocks.saturating_mul(st.f_frsize);
        let disk_avail = st.f_bavail.saturating_mul(st.f_frsize);
        let disk_free = st.f_bfree.saturating_mul(st.f_frsize);
        let limit = self.cache.max_bytes();
        let left = limit.saturating_sub(self.cache.used_bytes());
        let (inodes, _) = self.meta.read(|v| v.usage())?;
        let total_files = 1u64 << 40;
        // With chunk stores, the cluster's raw capacity (as MooseFS shows
        // it): the cache only passes data through.
        if let Some((total, free)) = self.blocks.as_ref().and_then(|b| b.capacity()) {
            return Ok(FsStat {
                total_bytes: total,
                free_bytes: free,
                avail_bytes: free,
                total_files,
                free_files: total_files.saturating_sub(inodes),
            });
        }
        Ok(FsStat {
            total_bytes: limit.min(disk_total),
            free_bytes: left.min(disk_free),
            avail_bytes: left.min(disk_avail),
            total_files,
            free_files: total_files.saturating_sub(inodes),
        })
    }
}

/// Refuses names no directory may hold.
pub(crate) fn check_name(name: &[u8]) -> Result<(), FsError> {
    if name.len() > MAX_NAME {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." {
        return Err(FsError::Invalid("the name is empty, \".\" or \"..\""));
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(FsError::Invalid("a name may not hold '/' or NUL"));
    }
    Ok(())
}
