//! The on-disk layout of a chunk-store folder, and the one durable-write helper
//! ([`TempFile`]) every file goes through. Nothing here shows file content or
//! names: shards hold ciphertext from the gateway, keys are opaque ids.
//!
//! ```text
//! <data_dir>/
//!   cairn-store.marker     written once by `init`; the daemon refuses a folder without it
//!   store.lock             flock(LOCK_EX|LOCK_NB) held by the running daemon
//!   shards/<hh>/<key>      one file per shard; hh = crc32c(key) & 0xff, two lowercase hex
//!   shards/<hh>/.<key>.<random>.tmp   a put in progress, or an upload kept for a resume
//!                                     (removed on drop, when the kept upload expires, and at start)
//!   quarantine/<key>.<unix-nanos>     shards that failed their checksum
//! ```
//!
//! **Marker** (UTF-8 text, four lines, `\n`-terminated):
//! ```text
//! cairn-store-marker
//! version = 1
//! cluster_id = <32 lowercase hex: HKDF of the cluster secret, see secret.rs>
//! store_uuid = <8-4-4-4-12 lowercase hex, random, version 4>
//! ```
//!
//! **Shard file**: a 4096-byte header block, then the payload. All integers
//! little-endian.
//! ```text
//! offset  size  field
//!      0     8  magic   b"CAIRNSHD"
//!      8     2  version 4
//!     10     2  reserved, 0
//!     12     8  payload length in bytes
//!     20     4  crc32c (Castagnoli) of the whole payload
//!     24     4  check block size B (32, 64 or 128 KiB: see MIN_CHECK_BLOCK)
//!     28   4*n  crc32c of each B-byte block of the payload, n = ceil(length / B)
//!        …4096  zeros (usually a hole)
//!   4096     n  payload
//! ```
//! A ranged read checks the crcs of the blocks it reads, so reading 4 MiB of
//! a 32 MiB shard reads 4 MiB, not 32, and a 4 KiB read reads one or two
//! 64 KiB blocks; a full check (scrub) checks every block and the whole crc. The payload starts on a page boundary, so a check
//! block's read covers whole pages. Puts are written through the page
//! cache and fsynced at commit: a shard just stored stays in the store's
//! memory (reclaimed first when memory runs short) and a read of it soon
//! after, a gateway's whose cache evicted it or a repair's, needs no disk
//! read. A file
//! whose size is not 4096 + length, or whose payload does not match a crc, is
//! corrupt and is moved to quarantine when read.
//!
//! Version 3 is the same with B = 1 MiB: such shards are still read (their
//! ranged reads check whole megabytes). Version 2, written by earlier builds
//! of this release cycle, had no block crcs; it is not read.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::secret::Secret;

/// Marker file name.
pub const MARKER_FILE: &str = "cairn-store.marker";
/// Lock file name.
pub const LOCK_FILE: &str = "store.lock";
/// Folder of shard files.
pub const SHARDS_DIR: &str = "shards";
/// Folder of shards that failed their checksum.
pub const QUARANTINE_DIR: &str = "quarantine";

const MARKER_MAGIC: &str = "cairn-store-marker";
const MARKER_VERSION: u32 = 1;

/// Shard header magic.
pub const SHARD_MAGIC: [u8; 8] = *b"CAIRNSHD";
/// Shard header format version written: 4 checks the payload in
/// [`CHECK_BLOCK`]s. Version 3 (1 MiB check blocks, [`V3_CHECK_BLOCK`]) is
/// still read.
pub const SHARD_VERSION: u16 = 4;
/// The header version whose payload is checked in 1 MiB blocks.
pub const SHARD_VERSION_V3: u16 = 3;
/// Bytes of the fixed header fields (before the block crcs).
pub const SHARD_HEADER_LEN: u64 = 28;
/// Where the payload starts: the header block's size.
pub const SHARD_PAYLOAD_OFFSET: u64 = 4096;
/// A put is received, and a dropped upload kept and resumed, in whole blocks
/// of this size.
pub const SHARD_BLOCK: u64 = 1 << 20;
/// A version-4 shard's payload is checked in blocks of [`check_block_for`]
/// its length: the smallest power of two from this one whose crcs fit in
/// the header (64 KiB for a 32 MiB chunk, at most 128 KiB up to
/// [`MAX_PAYLOAD`](crate::protocol::MAX_PAYLOAD)). A ranged get reads and
/// checks only the check blocks that cover its range, so a 4 KiB read costs
/// tens of KiB of disk and crc, not a megabyte. Every check block size
/// divides [`SHARD_BLOCK`], so a kept upload's whole blocks are whole check
/// blocks.
pub const MIN_CHECK_BLOCK: u64 = 32 << 10;
/// A version-3 shard's check block.
pub const V3_CHECK_BLOCK: u64 = SHARD_BLOCK;
/// Most check blocks (so their crcs) a header holds.
pub const MAX_SHARD_BLOCKS: usize = (SHARD_PAYLOAD_OFFSET - SHARD_HEADER_LEN) as usize / 4;

/// The check block a version-4 shard of `len` payload bytes is written with:
/// see [`MIN_CHECK_BLOCK`].
pub fn check_block_for(len: u64) -> u64 {
    let mut block = MIN_CHECK_BLOCK;
    while block < SHARD_BLOCK && len.div_ceil(block) > MAX_SHARD_BLOCKS as u64 {
        block *= 2;
    }
    block
}

/// A decoded shard header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardHeader {
    pub len: u64,
    /// crc32c of the whole payload.
    pub crc: u32,
    /// The size of the blocks the payload is checked in: a power of two
    /// from [`MIN_CHECK_BLOCK`] to [`SHARD_BLOCK`] (version 4), or
    /// [`V3_CHECK_BLOCK`] for a shard written by a version-3 store.
    pub check_block: u64,
    /// crc32c of each check block of the payload.
    pub block_crcs: Vec<u32>,
}

impl ShardHeader {
    /// The header block's used bytes (the rest of the block stays zero).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SHARD_HEADER_LEN as usize + 4 * self.block_crcs.len());
        let version = if self.check_block == V3_CHECK_BLOCK {
            SHARD_VERSION_V3
        } else {
            SHARD_VERSION
        };
        out.extend_from_slice(&SHARD_MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
        out.extend_from_slice(&(self.check_block as u32).to_le_bytes());
        for c in &self.block_crcs {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// Decodes a header block (version 4, or 3); `None` if the magic,
    /// version, check block size or the number of block crcs is wrong.
    pub fn decode(block: &[u8]) -> Option<ShardHeader> {
        let field = |at: usize, n: usize| block.get(at..at + n);
        if field(0, 8)? != SHARD_MAGIC {
            return None;
        }
        let version = u16::from_le_bytes(field(8, 2)?.try_into().ok()?);
        let len = u64::from_le_bytes(field(12, 8)?.try_into().ok()?);
        let crc = u32::from_le_bytes(field(20, 4)?.try_into().ok()?);
        let check_block = u64::from(u32::from_le_bytes(field(24, 4)?.try_into().ok()?));
        let valid = match version {
            SHARD_VERSION => {
                check_block.is_power_of_two()
                    && (MIN_CHECK_BLOCK..=SHARD_BLOCK).contains(&check_block)
            }
            SHARD_VERSION_V3 => check_block == V3_CHECK_BLOCK,
            _ => false,
        };
        if !valid {
            return None;
        }
        let n = usize::try_from(len.div_ceil(check_block)).ok()?;
        if n > MAX_SHARD_BLOCKS {
            return None;
        }
        let block_crcs = (0..n)
            .map(|i| Some(u32::from_le_bytes(field(28 + 4 * i, 4)?.try_into().ok()?)))
            .collect::<Option<Vec<u32>>>()?;
        Some(ShardHeader {
            len,
            crc,
            check_block,
            block_crcs,
        })
    }
}

/// What the marker says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub cluster_id: String,
    pub store_uuid: String,
}

impl Marker {
    pub fn render(&self) -> String {
        format!(
            "{MARKER_MAGIC}\nversion = {MARKER_VERSION}\ncluster_id = {}\nstore_uuid = {}\n",
            self.cluster_id, self.store_uuid
        )
    }

    /// Reads `<data_dir>/cairn-store.marker`; `Ok(None)` if it does not exist.
    pub fn read(data_dir: &Path) -> Result<Option<Marker>, StoreError> {
        let path = data_dir.join(MARKER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read marker", path, e)),
        };
        let bad = |reason: &str| StoreError::BadMarker {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let mut lines = text.lines();
        if lines.next() != Some(MARKER_MAGIC) {
            return Err(bad("first line is not cairn-store-marker"));
        }
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(" = "))
                .map(str::to_owned)
        };
        match field("version") {
            Some(v) if v == MARKER_VERSION.to_string() => {}
            Some(_) => return Err(bad("unknown format version (written by a newer cairn?)")),
            None => return Err(bad("missing version line")),
        }
        let cluster_id = field("cluster_id").ok_or_else(|| bad("missing cluster_id line"))?;
        let store_uuid = field("store_uuid").ok_or_else(|| bad("missing store_uuid line"))?;
        if cluster_id.len() != 32 || !cluster_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("cluster_id is not 32 hex characters"));
        }
        Ok(Some(Marker {
            cluster_id,
            store_uuid,
        }))
    }

    /// Checks that the marker exists and belongs to `secret`'s cluster.
    pub fn check(data_dir: &Path, secret: &Secret) -> Result<Marker, StoreError> {
        let marker = Marker::read(data_dir)?.ok_or_else(|| StoreError::NotInitialized {
            data_dir: data_dir.to_owned(),
        })?;
        let expected = secret.cluster_id_hex();
        if marker.cluster_id != expected {
            return Err(StoreError::ForeignCluster {
                data_dir: data_dir.to_owned(),
                found: marker.cluster_id,
                expected,
            });
        }
        Ok(marker)
    }
}

/// The exclusive lock on a data folder, held until dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes `<data_dir>/store.lock` without waiting; [`StoreError::Locked`]
    /// if another process (or another open in this one) holds it.
    pub fn acquire(data_dir: &Path) -> Result<StoreLock, StoreError> {
        let path = data_dir.join(LOCK_FILE);
        let file = crate::private::file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("open lock file", &path, e))?;
        match rustix::fs::flock(
            file.as_fd(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            Ok(()) => Ok(StoreLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::Locked {
                data_dir: data_dir.to_owned(),
            }),
            Err(e) => Err(StoreError::io("lock", path, e.into())),
        }
    }
}

/// The shard folder for `key`: `shards/<hh>` with `hh = crc32c(key) & 0xff`.
pub fn shard_dir(data_dir: &Path, key: &str) -> PathBuf {
    let bucket = crc32c::crc32c(key.as_bytes()) & 0xff;
    data_dir.join(SHARDS_DIR).join(format!("{bucket:02x}"))
}

/// The shard file for `key`.
pub fn shard_path(data_dir: &Path, key: &str) -> PathBuf {
    shard_dir(data_dir, key).join(key)
}

/// Whether a file name in a shard folder is a temp file.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// fsyncs a directory, so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    cairn_config::durable::sync_dir(dir).map_err(|e| StoreError::io("fsync directory", dir, e))
}

/// A shard's temp file: cairn's durable-write helper
/// ([`cairn_config::TempFile`]). Write with [`TempFile::write_at`], then
/// [`TempFile::commit`] (fsync, rename, fsync the folder). Dropped
/// uncommitted, the temp file is removed.
#[derive(Debug)]
pub struct TempFile {
    inner: cairn_config::TempFile,
}

/// A durable-write error as a store error.
fn store_error(e: cairn_config::DurableError) -> StoreError {
    StoreError::io(e.step.as_str(), e.path, e.source)
}

impl TempFile {
    /// Creates `<dir>/.<name>.<unique>.tmp` (mode 0600) for `<dir>/<name>`.
    pub fn create(dir: &Path, name: &str) -> Result<TempFile, StoreError> {
        let inner = cairn_config::TempFile::create(&dir.join(name)).map_err(store_error)?;
        Ok(TempFile { inner })
    }

    /// Writes all of `data` at `offset`.
    pub fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file().write_all_at(data, offset)
    }

    /// The open temp file.
    pub fn file(&mut self) -> &mut File {
        self.inner.file()
    }

    /// The temp file's path (for errors).
    pub fn temp_path(&self) -> &Path {
        self.inner.temp_path()
    }

    /// fsync → rename over the final name → fsync the folder. A failed fsync
    /// is reported as [`SyncFailed`]: the caller must poison the store.
    pub fn commit(self) -> Result<(), SyncFailed> {
        self.inner.commit().map_err(|e| SyncFailed(store_error(e)))
    }
}

/// A durable write failed part-way; the store must stop taking writes.
#[derive(Debug)]
pub struct SyncFailed(pub StoreError);

/// Writes `bytes` to `<dir>/<name>` durably (temp, fsync, rename, fsync dir).
pub fn write_durable(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SyncFailed> {
    cairn_config::write_durable(&dir.join(name), bytes).map_err(|e| SyncFailed(store_error(e)))
}

/// Removes leftover temp files in every shard folder; returns how many.
pub fn remove_leftover_temps(data_dir: &Path) -> Result<usize, StoreError> {
    let mut removed = 0;
    for_each_shard_file(data_dir, |dir, name, _| {
        if is_temp_name(name) {
            let path = dir.join(name);
            std::fs::remove_file(&path).map_err(|e| StoreError::io("remove temp", &path, e))?;
            removed += 1;
        }
        Ok(())
    })?;
    Ok(removed)
}

/// Calls `f(folder, file name, file size)` for every file under `shards/`.
pub fn for_each_shard_file(
    data_dir: &Path,
    mut f: impl FnMut(&Path, &str, u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let shards = data_dir.join(SHARDS_DIR);
    let buckets = match std::fs::read_dir(&shards) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("list", shards, e)),
    };
    for bucket in buckets {
        let bucket = bucket.map_err(|e| StoreError::io("list", &shards, e))?;
        let dir = bucket.path();
        if !dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).map_err(|e| StoreError::io("list", &dir, e))? {
            let entry = entry.map_err(|e| StoreError::io("list", &dir, e))?;
            let size = entry
                .metadata()
                .map_err(|e| StoreError::io("stat", entry.path(), e))?
                .len();
            if let Some(name) = entry.file_name().to_str() {
                f(&dir, name, size)?;
            }
        }
    }
    Ok(())
}

/// Fills `out` from the system's secure random source.
pub fn random_bytes(out: &mut [u8]) {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(out)
        .expect("the system random source works");
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A random (version 4) UUID, as text.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A header of three check blocks of `check_block`, the last 6 bytes.
    fn three_blocks(check_block: u64) -> ShardHeader {
        ShardHeader {
            len: 2 * check_block + 6,
            crc: 0xdead_beef,
            check_block,
            block_crcs: vec![1, 2, 3],
        }
    }

    #[test]
    fn header_round_trips_and_rejects_bad_magic() {
        let h = three_blocks(MIN_CHECK_BLOCK);
        let bytes = h.encode();
        assert_eq!(&bytes[0..8], b"CAIRNSHD");
        assert_eq!(bytes[8], 4, "version 4");
        assert_eq!(bytes[12], 0x06, "little-endian length at offset 12");
        assert_eq!(bytes.len(), 28 + 12);
        assert_eq!(ShardHeader::decode(&bytes), Some(h.clone()));
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert_eq!(ShardHeader::decode(&bad), None);
        // Too few block crcs for the length: refused, not read past.
        assert_eq!(ShardHeader::decode(&bytes[..bytes.len() - 4]), None);
        // A check block size that is no power of two, or out of bounds:
        // refused (the crcs would not match the blocks they are read for).
        for bad in [48 << 10, 16 << 10, 2 << 20] {
            let mut odd = bytes.clone();
            odd[24..28].copy_from_slice(&(bad as u32).to_le_bytes());
            assert_eq!(ShardHeader::decode(&odd), None, "{bad}");
        }
    }

    #[test]
    fn check_blocks_are_the_smallest_whose_crcs_fit() {
        assert_eq!(check_block_for(0), 32 << 10);
        assert_eq!(check_block_for(4 << 20), 32 << 10);
        assert_eq!(check_block_for((32 << 20) + 4096), 64 << 10);
        let max = crate::protocol::MAX_PAYLOAD;
        assert_eq!(check_block_for(max), 128 << 10);
        for len in [1, 31 << 20, 32 << 20, 63 << 20, max] {
            let b = check_block_for(len);
            assert!(len.div_ceil(b) <= MAX_SHARD_BLOCKS as u64, "{len}");
            assert_eq!(SHARD_BLOCK % b, 0);
        }
    }

    #[test]
    fn version_3_headers_still_decode_with_megabyte_check_blocks() {
        let h = three_blocks(V3_CHECK_BLOCK);
        let bytes = h.encode();
        assert_eq!(bytes[8], 3, "version 3");
        assert_eq!(ShardHeader::decode(&bytes), Some(h));
    }

    #[test]
    fn dropped_temp_is_removed_and_commit_is_durable() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = TempFile::create(tmp.path(), "x").unwrap();
        t.file().write_all(b"abc").unwrap();
        let temp = t.temp_path().to_owned();
        assert!(temp.exists());
        drop(t);
        assert!(!temp.exists());
        write_durable(tmp.path(), "x", b"abc").unwrap();
        assert_eq!(std::fs::read(tmp.path().join("x")).unwrap(), b"abc");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let first = StoreLock::acquire(tmp.path()).unwrap();
        assert!(matches!(
            StoreLock::acquire(tmp.path()),
            Err(StoreError::Locked { .. })
        ));
        drop(first);
        StoreLock::acquire(tmp.path()).unwrap();
    }
}
