//! The ingest cache: file data on the gateway's local disk, one sparse file
//! per inode under `<cache>/<xx>/<inode>`.
//!
//! The promise: bytes written here and then [`IngestCache::sync`]ed are on
//! stable storage, including the directory entry of a newly created file.
//! The cache never holds more than its size limit in allocated blocks (the
//! configured size, capped at its disk's size less a reserve), and never
//! writes into the last [`crate::disk::reserve_for`] bytes of its disk, so
//! the metadata always has room; a write that would pass either is refused
//! with [`FsError::NoSpace`] or [`FsError::DiskFull`] before a byte is
//! written (the core evicts drained data first, see `core::evict`). Folders
//! are created 0700 and files 0600. After a crash, [`IngestCache::recover`] trims each file
//! back to the size the metadata recorded, so bytes of a write that was never
//! acknowledged cannot reappear later inside the file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_metadata::InodeId;
use tracing::{info, warn};

use super::FsError;
use crate::disk;

/// Folders the cache files are spread over (`<cache>/<xx>/`).
const SHARDS: u64 = 256;

/// Open files kept around between calls.
const OPEN_FILES: usize = 512;

pub struct IngestCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Free space on the disk the cache never writes into.
    reserve: u64,
    used: AtomicU64,
    open: Mutex<HashMap<InodeId, Arc<File>>>,
    /// Files created since their folder was last fsync'd.
    unsynced_dirs: Mutex<Vec<InodeId>>,
    /// Held while folders are fsync'd, so a caller whose file was taken off
    /// `unsynced_dirs` by another waits for that fsync to finish.
    dir_sync: Mutex<()>,
    /// Set by a failed fsync: the kernel may have dropped the dirty pages,
    /// so nothing written since can be promised durable. Never cleared.
    poisoned: AtomicBool,
}

fn io_err(path: &Path, source: std::io::Error) -> FsError {
    if source.raw_os_error() == Some(libc_enospc()) || source.kind() == ErrorKind::StorageFull {
        let dir = path.parent().unwrap_or(path);
        return FsError::DiskFull {
            path: dir.to_owned(),
            free: disk::space(dir).map_or(0, |s| s.avail),
        };
    }
    FsError::Io {
        path: path.to_owned(),
        source,
    }
}

const fn libc_enospc() -> i32 {
    28
}

impl IngestCache {
    /// Opens the cache in `dir` (created if missing) with a size limit of
    /// `configured` bytes (`cache.max_size`), capped at the disk's size less
    /// the reserve.
    pub fn open(dir: &Path, configured: u64) -> Result<Self, FsError> {
        cairn_chunkstore::private::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        for shard in 0..SHARDS {
            let sub = dir.join(format!("{shard:02x}"));
            if !sub.is_dir() {
                cairn_chunkstore::private::create_dir_all(&sub).map_err(|e| io_err(&sub, e))?;
            }
        }
        let space = disk::space(dir).map_err(|e| io_err(dir, e))?;
        let reserve = disk::reserve_for(space.total);
        let max_bytes = disk::cap_limit(configured, space.total, reserve);
        if max_bytes < configured {
            warn!(
                key = "cache.max_size",
                configured,
                used = max_bytes,
                disk = space.total,
                reserve,
                dir = %dir.display(),
                "cache.max_size ({}) is more than the disk holding the cache can take ({} in all); \
                 using {} (the disk's size less {} kept free for the metadata); \
                 set cache.max_size to at most that to silence this warning",
                disk::human(configured),
                disk::human(space.total),
                disk::human(max_bytes),
                disk::human(reserve),
            );
        } else {
            info!(max_bytes, reserve, dir = %dir.display(), "ingest cache size limit");
        }
        Ok(IngestCache {
            dir: dir.to_owned(),
            max_bytes,
            reserve,
            used: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            unsynced_dirs: Mutex::new(Vec::new()),
            dir_sync: Mutex::new(()),
            poisoned: AtomicBool::new(false),
        })
    }

    fn path(&self, id: InodeId) -> PathBuf {
        self.dir
            .join(format!("{:02x}", id.0 % SHARDS))
            .join(id.0.to_string())
    }

    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The free space the cache leaves on its disk.
    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    /// Bytes that must be freed before `need` more can be written: over the
    /// size limit, or into the disk's reserve (0: there is room).
    pub fn room_short(&self, need: u64) -> u64 {
        let over_limit = self
            .used_bytes()
            .saturating_add(need)
            .saturating_sub(self.max_bytes);
        let avail = disk::space(&self.dir).map_or(u64::MAX, |s| s.avail);
        let into_reserve = self.reserve.saturating_add(need).saturating_sub(avail);
        over_limit.max(into_reserve)
    }

    /// Bytes of clean data worth evicting now: down to 70% of the limit once
    /// past 90% of it, and back to twice the reserve once the disk's free
    /// space falls under that.
    pub fn pressure(&self) -> u64 {
        let (used, max) = (self.used_bytes(), self.max_bytes);
        let by_limit = if used > max / 10 * 9 {
            used - max / 10 * 7
        } else {
            0
        };
        let avail = disk::space(&self.dir).map_or(u64::MAX, |s| s.avail);
        let by_disk = self.reserve.saturating_mul(2).saturating_sub(avail);
        by_limit.max(by_disk)
    }

    /// Trims every cache file to the size its inode records and deletes the
    /// files of inodes that no longer exist (or keep their bytes inline:
    /// such a file is what a crash left of an unfinished spill); then counts
    /// the space in use. `sizes` lists every file inode with a cache file's
    /// right to exist, and its size.
    pub fn recover(&self, sizes: &HashMap<InodeId, u64>) -> Result<RecoveryReport, FsError> {
        let mut report = RecoveryReport::default();
        let mut used = 0u64;
        for shard in 0..SHARDS {
            let sub = self.dir.join(format!("{shard:02x}"));
            let entries = std::fs::read_dir(&sub).map_err(|e| io_err(&sub, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io_err(&sub, e))?;
                let path = entry.path();
                let id = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u64>().ok())
                    .map(InodeId);
                match id.and_then(|id| sizes.get(&id)) {
                    None => {
                        std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                        report.removed += 1;
                    }
                    Some(&size) => {
                        let file = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(|e| io_err(&path, e))?;
                        let meta = file.metadata().map_err(|e| io_err(&path, e))?;
                        if meta.len() > size {
                            file.set_len(size).map_err(|e| io_err(&path, e))?;
                            file.sync_all().map_err(|e| io_err(&path, e))?;
                            report.trimmed += 1;
                        }
                        let meta = file.metadata().map_err(|e| io_err(&path, e))?;
                        used += meta.blocks() * 512;
                        report.files += 1;
                    }
                }
            }
        }
        self.used.store(used, Ordering::Relaxed);
        Ok(report)
    }

    /// Lengths of every cache file, for fsck.
    pub fn lengths(&self) -> Result<HashMap<InodeId, u64>, FsError> {
        let mut out = HashMap::new();
        for shard in 0..SHARDS {
            let sub = self.dir.join(format!("{shard:02x}"));
            for entry in std::fs::read_dir(&sub).map_err(|e| io_err(&sub, e))? {
                let entry = entry.map_err(|e| io_err(&sub, e))?;
                let Some(id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                let len = entry
                    .metadata()
                    .map_err(|e| io_err(&entry.path(), e))?
                    .len();
                out.insert(InodeId(id), len);
            }
        }
        Ok(out)
    }

    fn file(&self, id: InodeId, create: bool) -> Result<Option<Arc<File>>, FsError> {
        if let Some(f) = self.open.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(Some(f.clone()));
        }
        let path = self.path(id);
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .mode(cairn_chunkstore::private::FILE_MODE)
            .open(&path);
        let file = match opened {
            Ok(f) => Arc::new(f),
            Err(e) if e.kind() == ErrorKind::NotFound && !create => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        if create {
            self.unsynced_dirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(id);
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= OPEN_FILES {
            open.clear();
        }
        Ok(Some(open.entry(id).or_insert(file).clone()))
    }

    /// Whether the inode has a cache file.
    pub fn exists(&self, id: InodeId) -> Result<bool, FsError> {
        if self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
        {
            return Ok(true);
        }
        let path = self.path(id);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Reads up to `buf.len()` bytes at `offset`; bytes the cache does not
    /// hold (a hole, or past the cache file's end) read as zeros.
    pub fn read(&self, id: InodeId, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        let Some(file) = self.file(id, false)? else {
            buf.fill(0);
            return Ok(());
        };
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => {
                    buf[done..].fill(0);
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(&self.path(id), e)),
            }
        }
        Ok(())
    }

    /// Appends `n` bytes at `offset` to `out` without zeroing the buffer
    /// first (the kernel writes straight into its spare capacity); bytes the
    /// cache does not hold read as zeros.
    pub fn read_append(
        &self,
        id: InodeId,
        offset: u64,
        n: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), FsError> {
        let start = out.len();
        let Some(file) = self.file(id, false)? else {
            out.resize(start + n, 0);
            return Ok(());
        };
        out.reserve_exact(n);
        while out.len() < start + n {
            let at = offset + (out.len() - start) as u64;
            match rustix::io::pread(&*file, rustix::buffer::spare_capacity(out), at) {
                Ok(0) => break,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io_err(&self.path(id), e.into())),
            }
        }
        out.truncate(start + n);
        out.resize(start + n, 0);
        Ok(())
    }

    /// Writes `data` at `offset`. Refuses, writing nothing, with `NoSpace`
    /// when the cache would pass its size limit and with `DiskFull` when
    /// the write would reach into the disk's reserve.
    pub fn write(&self, id: InodeId, offset: u64, data: &[u8]) -> Result<(), FsError> {
        self.check_poison()?;
        let len = data.len() as u64;
        if self.used.load(Ordering::Relaxed).saturating_add(len) > self.max_bytes {
            return Err(FsError::NoSpace);
        }
        let space = disk::space(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        if space.avail < self.reserve.saturating_add(len) {
            return Err(FsError::DiskFull {
                path: self.dir.clone(),
                free: space.avail,
            });
        }
        let file = self.file(id, true)?.ok_or(FsError::NoSpace)?;
        let path = self.path(id);
        let before = file.metadata().map_err(|e| io_err(&path, e))?.blocks();
        let written = file
            .write_all_at(data, offset)
            .map_err(|e| io_err(&path, e));
        let after = file.metadata().map_err(|e| io_err(&path, e))?.blocks();
        self.account(before, after);
        written
    }

    /// Sets the length of the cache file, if there is one (a missing file
    /// reads as zeros up to the size anyway).
    pub fn set_len(&self, id: InodeId, len: u64) -> Result<(), FsError> {
        let Some(file) = self.file(id, false)? else {
            return Ok(());
        };
        let path = self.path(id);
        let before = file.metadata().map_err(|e| io_err(&path, e))?.blocks();
        let result = file.set_len(len).map_err(|e| io_err(&path, e));
        let after = file.metadata().map_err(|e| io_err(&path, e))?.blocks();
        self.account(before, after);
        result
    }

    /// Frees `len` bytes at `offset` of the inode's cache file (they read as
    /// zeros after). Returns the bytes freed.
    pub fn punch(&self, id: InodeId, offset: u64, len: u64) -> Result<u64, FsError> {
        let Some(file) = self.file(id, false)? else {
            return Ok(0);
        };
        let path = self.path(id);
        let before = file.metadata().map_err(|e| io_err(&path, e))?.blocks();
        let mode = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        let result =
            rustix::fs::fallocate(&*file, mode, offset, len).map_err(|e| io_err(&path, e.into()));
        let after = file.metadata().map_err(|e| io_err(&path, e))?.blocks();
        self.account(before, after);
        result.map(|()| before.saturating_sub(after) * 512)
    }

    fn account(&self, before_blocks: u64, after_blocks: u64) {
        if after_blocks >= before_blocks {
            self.used
                .fetch_add((after_blocks - before_blocks) * 512, Ordering::Relaxed);
        } else {
            let freed = (before_blocks - after_blocks) * 512;
            let _ = self
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                    Some(u.saturating_sub(freed))
                });
        }
    }

    fn check_poison(&self) -> Result<(), FsError> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(FsError::Poisoned {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn fsync_failed(&self, path: &Path, e: std::io::Error) -> FsError {
        self.poisoned.store(true, Ordering::SeqCst);
        tracing::error!(path = %path.display(), cause = %e, "fsync failed; the ingest cache refuses further writes until the gateway restarts");
        io_err(path, e)
    }

    /// Makes the inode's cached bytes, and the existence of its cache file,
    /// durable.
    pub fn sync(&self, id: InodeId) -> Result<(), FsError> {
        self.sync_file(id)?;
        self.sync_dirs()
    }

    /// Makes the inode's cached bytes durable (not a new file's name).
    pub fn sync_file(&self, id: InodeId) -> Result<(), FsError> {
        self.check_poison()?;
        if let Some(file) = self.file(id, false)? {
            file.sync_data()
                .map_err(|e| self.fsync_failed(&self.path(id), e))?;
        }
        Ok(())
    }

    /// Whether new cache files wait for their folder's fsync.
    pub fn dirs_pending(&self) -> bool {
        !self
            .unsynced_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Makes the names of newly created cache files durable: one fsync per
    /// folder touched, shared by every caller waiting at the same time.
    pub fn sync_dirs(&self) -> Result<(), FsError> {
        self.check_poison()?;
        let _held = self.dir_sync.lock().unwrap_or_else(|p| p.into_inner());
        let pending =
            std::mem::take(&mut *self.unsynced_dirs.lock().unwrap_or_else(|p| p.into_inner()));
        let mut shards: Vec<u64> = pending.iter().map(|id| id.0 % SHARDS).collect();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            let sub = self.dir.join(format!("{shard:02x}"));
            let dir = File::open(&sub).map_err(|e| io_err(&sub, e))?;
            dir.sync_all().map_err(|e| self.fsync_failed(&sub, e))?;
        }
        Ok(())
    }

    /// Drops the inode's cache file (after its inode was deleted).
    pub fn remove(&self, id: InodeId) {
        let file = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let path = self.path(id);
        let blocks = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .or_else(|| std::fs::metadata(&path).ok())
            .map_or(0, |m| m.blocks());
        match std::fs::remove_file(&path) {
            Ok(()) => self.account(blocks, 0),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                warn!(inode = %id, cause = %e, "cannot remove cache file; it is collected at the next start")
            }
        }
    }
}

/// What [`IngestCache::recover`] found.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecoveryReport {
    pub files: u64,
    pub trimmed: u64,
    pub removed: u64,
}
