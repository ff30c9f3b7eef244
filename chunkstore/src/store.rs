//! [`Store`]: the shards of one data folder and the blocking disk work behind
//! every operation. It holds the folder's lock, keeps an in-memory index of
//! keys and lengths (rebuilt from disk at start), verifies the crc of every
//! check block a get reads (and the whole payload's crc on a full check),
//! quarantines a shard that fails, and refuses all writes
//! after a failed fsync (poisoned) until restarted. Resumable uploads keep
//! what they received when their connection drops ([`Partials`]); what they
//! keep stays counted against the free space until resumed or dropped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use cairn_config::StoreConfig;

use crate::error::StoreError;
use crate::layout::{
    self, Marker, ShardHeader, StoreLock, SyncFailed, QUARANTINE_DIR, SHARDS_DIR,
    SHARD_PAYLOAD_OFFSET,
};
use crate::partial::{Partials, MAX_PARTIALS, MAX_PARTIAL_BYTES};
use crate::protocol::{check_key, Capacity, ListEntry, ShardStat, PARTIAL_TTL};

use crate::secret::Secret;

mod open;
mod put;
pub use put::PutWriter;

/// One open data folder.
#[derive(Debug)]
pub struct Store {
    data_dir: PathBuf,
    reserve: u64,
    /// `capacity` from the config: the most the shards may take.
    quota: Option<u64>,
    zone: String,
    host: String,
    name: String,
    labels: Vec<String>,
    store_uuid: String,
    /// key → payload length, for list and capacity.
    index: Mutex<BTreeMap<String, u64>>,
    /// Bytes promised to puts in progress (and to kept uploads).
    pending: AtomicU64,
    poisoned: AtomicBool,
    /// Uploads being received, and those kept for a Resume.
    partials: Partials,
    /// Shards read lately, kept open.
    open: open::OpenShards,
    _lock: StoreLock,
}

/// The check blocks covering `offset..end` of a payload: they start at
/// payload byte `from`, check block `first`, and end at `to`.
struct Cover {
    first: u64,
    from: u64,
    to: u64,
    offset: u64,
    end: u64,
}

impl Cover {
    fn of(header: &ShardHeader, offset: u64, end: u64) -> Cover {
        let size = header.check_block;
        let first = offset / size;
        Cover {
            first,
            from: first * size,
            to: (end.div_ceil(size) * size).min(header.len),
            offset,
            end,
        }
    }

    fn buffer(&self) -> Vec<u8> {
        vec![0u8; (self.to - self.from) as usize]
    }

    /// Whether every check block in `buf` (read from `from`) matches its crc.
    fn matches(&self, header: &ShardHeader, buf: &[u8]) -> bool {
        buf.chunks(header.check_block as usize)
            .enumerate()
            .all(|(i, bytes)| crc32c::crc32c(bytes) == header.block_crcs[self.first as usize + i])
    }

    /// `buf` cut to the range asked for.
    fn cut(&self, mut buf: Vec<u8>) -> Vec<u8> {
        buf.truncate((self.end - self.from) as usize);
        buf.drain(..(self.offset - self.from) as usize);
        buf
    }
}

/// A shard being read: kept open from an earlier read, or opened for this one.
struct Opened {
    shard: std::sync::Arc<open::OpenShard>,
    kept: bool,
}

/// Creates `shards/00`..`shards/ff` and `quarantine/` where missing, durably.
pub fn create_dirs(data_dir: &Path) -> Result<(), StoreError> {
    let shards = data_dir.join(SHARDS_DIR);
    let mut created = false;
    for dir in [shards.clone(), data_dir.join(QUARANTINE_DIR)] {
        if !dir.is_dir() {
            crate::private::create_dir_all(&dir)
                .map_err(|e| StoreError::io("create folder", &dir, e))?;
            created = true;
        }
    }
    if created {
        layout::sync_dir(data_dir)?;
    }
    let mut created = false;
    for bucket in 0..=255u32 {
        let dir = shards.join(format!("{bucket:02x}"));
        if !dir.is_dir() {
            crate::private::create_dir_all(&dir)
                .map_err(|e| StoreError::io("create folder", &dir, e))?;
            created = true;
        }
    }
    if created {
        layout::sync_dir(&shards)?;
    }
    Ok(())
}

impl Store {
    /// Opens a data folder for serving: checks the marker against the secret,
    /// takes the lock, removes leftover temps, and indexes the shards.
    pub fn open(cfg: &StoreConfig, secret: &Secret) -> Result<Store, StoreError> {
        let data_dir = cfg.data_dir.clone();
        let marker = Marker::check(&data_dir, secret)?;
        let lock = StoreLock::acquire(&data_dir)?;
        crate::private::secure_and_log(&[&data_dir], &Default::default())
            .map_err(|e| StoreError::io("make private", &data_dir, e))?;
        create_dirs(&data_dir)?;
        let removed = layout::remove_leftover_temps(&data_dir)?;
        if removed > 0 {
            tracing::info!(data_dir = %data_dir.display(), removed, "removed leftover temp files");
        }
        let mut index = BTreeMap::new();
        layout::for_each_shard_file(&data_dir, |_, name, size| {
            if check_key(name).is_ok() {
                index.insert(name.to_owned(), size.saturating_sub(SHARD_PAYLOAD_OFFSET));
            }
            Ok(())
        })?;
        Ok(Store {
            data_dir,
            reserve: cfg.reserve.bytes(),
            quota: cfg.capacity.map(|c| c.bytes()),
            zone: cfg.zone.clone(),
            host: cfg.host.clone(),
            name: cfg.store_name().to_owned(),
            labels: cfg.labels.clone(),
            store_uuid: marker.store_uuid,
            index: Mutex::new(index),
            pending: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            partials: Partials::new(MAX_PARTIALS, MAX_PARTIAL_BYTES, PARTIAL_TTL),
            open: open::OpenShards::default(),
            _lock: lock,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn store_uuid(&self) -> &str {
        &self.store_uuid
    }

    fn index(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        if self.poisoned.load(Ordering::SeqCst) {
            Err(StoreError::Poisoned {
                data_dir: self.data_dir.clone(),
            })
        } else {
            Ok(())
        }
    }

    fn poison(&self, failed: SyncFailed) -> StoreError {
        self.poisoned.store(true, Ordering::SeqCst);
        tracing::error!(data_dir = %self.data_dir.display(), cause = %failed.0,
            "durable write failed; refusing writes until restart");
        failed.0
    }

    /// Filesystem (total, free to unprivileged users, used) in bytes.
    fn fs_space(&self) -> Result<(u64, u64, u64), StoreError> {
        let st = rustix::fs::statvfs(&self.data_dir)
            .map_err(|e| StoreError::io("statvfs", &self.data_dir, e.into()))?;
        let unit = st.f_frsize.max(1);
        let total = st.f_blocks.saturating_mul(unit);
        let free = st.f_bavail.saturating_mul(unit);
        let used = total.saturating_sub(st.f_bfree.saturating_mul(unit));
        Ok(match self.quota {
            None => (total, free, used),
            // A quota: what the shards take counts, against the quota.
            Some(quota) => {
                let total = quota.min(total);
                let used = {
                    let index = self.index();
                    index.values().sum::<u64>() + index.len() as u64 * SHARD_PAYLOAD_OFFSET
                };
                (total, free.min(total.saturating_sub(used)), used)
            }
        })
    }

    /// Reads `len` bytes at `offset` of a shard, checking the crc of every
    /// block it reads; `len` 0 checks the whole shard (every block and the
    /// whole-payload crc) and returns nothing. A shard that fails is
    /// quarantined ([`StoreError::Corrupt`]).
    pub fn get(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        check_key(key)?;
        let path = layout::shard_path(&self.data_dir, key);
        let shard = self.opened(key, &path)?;
        match self.read_range(key, &path, &shard, offset, len) {
            // A file cut short under a handle kept open (not by the store):
            // opened afresh, its size no longer matches its header.
            Err(StoreError::Io { .. }) if shard.kept => {
                self.open.forget(key);
                let shard = self.opened(key, &path)?;
                self.read_range(key, &path, &shard, offset, len)
            }
            other => other,
        }
    }

    /// A small ranged get served on the calling thread without blocking:
    /// only from a shard kept open whose covering check blocks are all in
    /// the page cache (`RWF_NOWAIT`). `None` when any of that is not so, or
    /// when the bytes do not check: the blocking [`Store::get`] then reads
    /// them again (and quarantines the shard).
    pub fn get_nowait(&self, key: &str, offset: u64, len: u64) -> Option<Vec<u8>> {
        let shard = self.open.get(key)?;
        let header = &shard.header;
        let end = offset
            .checked_add(len)
            .filter(|&end| len > 0 && end <= header.len)?;
        let cover = Cover::of(header, offset, end);
        let mut buf = cover.buffer();
        let read = rustix::io::preadv2(
            &shard.file,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            SHARD_PAYLOAD_OFFSET + cover.from,
            rustix::io::ReadWriteFlags::NOWAIT,
        );
        match read {
            Ok(n) if n == buf.len() && cover.matches(header, &buf) => Some(cover.cut(buf)),
            _ => None,
        }
    }

    /// The open shard `key`, kept from an earlier read or opened now (and
    /// kept); a shard whose header or size is wrong is quarantined.
    fn opened(&self, key: &str, path: &Path) -> Result<Opened, StoreError> {
        if let Some(shard) = self.open.get(key) {
            return Ok(Opened { shard, kept: true });
        }
        let epoch = self.open.epoch();
        match self.open_shard(key, path)? {
            Ok((file, header)) => {
                let shard = std::sync::Arc::new(open::OpenShard { file, header });
                self.open.keep(key, shard.clone(), epoch);
                Ok(Opened { shard, kept: false })
            }
            Err(reason) => Err(self.quarantine(key, path, reason)),
        }
    }

    fn read_range(
        &self,
        key: &str,
        path: &Path,
        opened: &Opened,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let (file, header) = (&opened.shard.file, &opened.shard.header);
        let end = offset.checked_add(len).filter(|&end| end <= header.len);
        let Some(end) = end else {
            return Err(StoreError::InvalidRange {
                key: key.to_owned(),
                offset,
                len,
                shard_len: header.len,
            });
        };
        if len > 0 {
            // One positioned read of the covering check blocks (a single
            // disk request, however many blocks), each checked in memory.
            let cover = Cover::of(header, offset, end);
            let mut buf = cover.buffer();
            file.read_exact_at(&mut buf, SHARD_PAYLOAD_OFFSET + cover.from)
                .map_err(|e| StoreError::io("read shard", path, e))?;
            if !cover.matches(header, &buf) {
                return Err(self.quarantine(key, path, "a block's crc32c does not match"));
            }
            return Ok(cover.cut(buf));
        }
        self.check_blocks(key, path, opened, &mut |_| {})?;
        Ok(Vec::new())
    }

    /// Checks a whole shard as a get of length 0 does (every check block
    /// and the whole-payload crc), calling `paced` with the bytes of each
    /// block after reading it: the scrubber sleeps there to keep its rate,
    /// so a pass reads in small pieces and never holds the disk and a core
    /// for a whole shard at once. A shard that fails is quarantined.
    pub fn check(&self, key: &str, paced: &mut dyn FnMut(u64)) -> Result<(), StoreError> {
        check_key(key)?;
        let path = layout::shard_path(&self.data_dir, key);
        let shard = self.opened(key, &path)?;
        self.check_blocks(key, &path, &shard, paced)
    }

    fn check_blocks(
        &self,
        key: &str,
        path: &Path,
        opened: &Opened,
        paced: &mut dyn FnMut(u64),
    ) -> Result<(), StoreError> {
        let (file, header) = (&opened.shard.file, &opened.shard.header);
        // Every check block, one at a time, and the whole crc.
        let size = header.check_block;
        let mut buf = vec![0u8; size.min(header.len.max(1)) as usize];
        let mut crc = 0u32;
        for block in 0..header.block_crcs.len() as u64 {
            let pos = block * size;
            let want = size.min(header.len - pos) as usize;
            file.read_exact_at(&mut buf[..want], SHARD_PAYLOAD_OFFSET + pos)
                .map_err(|e| StoreError::io("read shard", path, e))?;
            let bytes = &buf[..want];
            if crc32c::crc32c(bytes) != header.block_crcs[block as usize] {
                return Err(self.quarantine(key, path, "a block's crc32c does not match"));
            }
            crc = crc32c::crc32c_append(crc, bytes);
            paced(want as u64);
        }
        if crc != header.crc {
            return Err(self.quarantine(key, path, "payload crc32c mismatch"));
        }
        Ok(())
    }

    /// A shard's length and crc from its header.
    pub fn stat(&self, key: &str) -> Result<ShardStat, StoreError> {
        check_key(key)?;
        let path = layout::shard_path(&self.data_dir, key);
        match self.open_shard(key, &path)? {
            Ok((_, header)) => Ok(ShardStat {
                len: header.len,
                crc: header.crc,
            }),
            Err(reason) => Err(self.quarantine(key, &path, reason)),
        }
    }

    /// Opens a shard and checks its header against the file size. The inner
    /// error is why the shard is corrupt.
    #[allow(clippy::type_complexity)]
    fn open_shard(
        &self,
        key: &str,
        path: &Path,
    ) -> Result<Result<(File, ShardHeader), &'static str>, StoreError> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    key: key.to_owned(),
                })
            }
            Err(e) => return Err(StoreError::io("open shard", path, e)),
        };
        // Gets read what they ask for (their check blocks); the kernel's
        // readahead would only add to each small random read. Advice only.
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Random);
        let size = file
            .metadata()
            .map_err(|e| StoreError::io("stat shard", path, e))?
            .len();
        let mut raw = vec![0u8; SHARD_PAYLOAD_OFFSET as usize];
        if size < SHARD_PAYLOAD_OFFSET {
            return Ok(Err("shorter than its header"));
        }
        file.read_exact(&mut raw)
            .map_err(|e| StoreError::io("read shard", path, e))?;
        let Some(header) = ShardHeader::decode(&raw) else {
            return Ok(Err("bad header magic, version or block table"));
        };
        if header.len.checked_add(SHARD_PAYLOAD_OFFSET) != Some(size) {
            return Ok(Err("file size does not match the header's length"));
        }
        Ok(Ok((file, header)))
    }

    /// Moves a corrupt shard to `quarantine/<key>.<unix-nanos>`.
    fn quarantine(&self, key: &str, path: &Path, reason: &'static str) -> StoreError {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let qdir = self.data_dir.join(QUARANTINE_DIR);
        let dest = qdir.join(format!("{key}.{nanos}"));
        tracing::error!(key, reason, path = %path.display(), quarantine = %dest.display(),
            "shard failed verification; quarantined");
        self.open.forget(key);
        let moved = std::fs::rename(path, &dest)
            .map_err(|e| StoreError::io("quarantine", path, e))
            .and_then(|()| layout::sync_dir(&qdir))
            .and_then(|()| layout::sync_dir(path.parent().unwrap_or(&self.data_dir)));
        if let Err(err) = moved {
            tracing::error!(key, cause = %err, "could not quarantine shard");
        }
        self.index().remove(key);
        StoreError::Corrupt {
            key: key.to_owned(),
            quarantined: dest,
        }
    }

    /// Removes a shard; `Ok(false)` if there was none.
    pub fn delete(&self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        self.check_writable()?;
        let path = layout::shard_path(&self.data_dir, key);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io("delete shard", path, e)),
        }
        self.open.forget(key);
        self.index().remove(key);
        let dir = layout::shard_dir(&self.data_dir, key);
        layout::sync_dir(&dir).map_err(|e| self.poison(SyncFailed(e)))?;
        Ok(true)
    }

    /// Up to `limit` keys after `after`, sorted, with their lengths.
    pub fn list(&self, after: Option<&str>, limit: u32) -> Vec<ListEntry> {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.index()
            .range::<str, _>((lower, Bound::Unbounded))
            .take(limit as usize)
            .map(|(key, &len)| ListEntry {
                key: key.clone(),
                len,
            })
            .collect()
    }

    /// Space and identity.
    pub fn capacity(&self) -> Result<Capacity, StoreError> {
        let (total, free, used) = self.fs_space()?;
        let (stored, shards) = {
            let index = self.index();
            (index.values().sum(), index.len() as u64)
        };
        Ok(Capacity {
            total,
            free,
            used,
            stored,
            shards,
            reserve: self.reserve,
            zone: self.zone.clone(),
            host: self.host.clone(),
            name: self.name.clone(),
            store_uuid: self.store_uuid.clone(),
            labels: self.labels.clone(),
        })
    }
}
