//! The inode record and how it maps to a row of the `inodes` table.

use crate::{ClassId, InodeId};

/// Nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    /// Whole seconds and the nanoseconds past them (negative times round down).
    pub fn split(self) -> (i64, u32) {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000) as u32;
        (secs, nanos)
    }

    pub fn from_parts(secs: i64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(i64::from(nanos)),
        )
    }
}

/// A file's time (atime, mtime, ctime): whole seconds since the Unix epoch
/// and the nanoseconds past them. Unlike [`Timestamp`] (i64 nanoseconds,
/// which end in 2262) it holds any date a client can set, as a 64-bit
/// `time_t` does. Stored as two columns (`*_s`, `*_nsec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileTime {
    pub secs: i64,
    /// Always below 1_000_000_000.
    pub nanos: u32,
}

impl FileTime {
    pub fn now() -> Self {
        Timestamp::now().into()
    }

    /// `secs` and `nanos`, with nanoseconds past a second carried into it.
    pub fn new(secs: i64, nanos: u32) -> Self {
        FileTime {
            secs: secs.saturating_add(i64::from(nanos / 1_000_000_000)),
            nanos: nanos % 1_000_000_000,
        }
    }
}

impl From<Timestamp> for FileTime {
    fn from(t: Timestamp) -> Self {
        let (secs, nanos) = t.split();
        FileTime { secs, nanos }
    }
}

/// What an inode is. The numbers are stored on disk: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    File = 1,
    Dir = 2,
    Symlink = 3,
    BlockDev = 4,
    CharDev = 5,
    Socket = 6,
    Fifo = 7,
}

impl FileKind {
    pub(crate) fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            1 => Self::File,
            2 => Self::Dir,
            3 => Self::Symlink,
            4 => Self::BlockDev,
            5 => Self::CharDev,
            6 => Self::Socket,
            7 => Self::Fifo,
            _ => return None,
        })
    }
}

/// One inode as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    pub id: InodeId,
    pub kind: FileKind,
    /// Permission bits only (`0o7777`); the kind is separate.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u32,
    pub atime: FileTime,
    pub mtime: FileTime,
    pub ctime: FileTime,
    /// Random at creation; part of the file handle.
    pub generation: u64,
    /// Device number for block and character devices.
    pub rdev: u64,
    pub symlink_target: Option<Vec<u8>>,
    pub class: Option<ClassId>,
    /// For directories, the directory holding it (the root is its own parent).
    pub parent: Option<InodeId>,
    /// The verifier of an exclusive create, kept until the first SETATTR.
    pub create_verifier: Option<[u8; 8]>,
}

/// What the caller decides about a new inode; the rest is filled in on insert.
#[derive(Clone, Debug)]
pub struct NewInode {
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub symlink_target: Option<Vec<u8>>,
    pub class: Option<ClassId>,
    pub parent: Option<InodeId>,
    pub create_verifier: Option<[u8; 8]>,
    pub now: Timestamp,
    pub generation: u64,
}

/// One name in a directory. The cookie is stable for as long as the entry
/// exists and grows with every insertion, so a listing resumed after a cookie
/// neither skips nor repeats entries that were there all along.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub child: InodeId,
    pub cookie: u64,
}

pub(crate) const INODE_COLUMNS: &str = "id, kind, mode, uid, gid, size, nlink, atime_s, atime_nsec, mtime_s, mtime_nsec, ctime_s, ctime_nsec, generation, rdev, symlink_target, class_id, parent, create_verf";

fn file_time(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<FileTime> {
    Ok(FileTime::new(row.get(at)?, row.get(at + 1)?))
}

pub(crate) fn inode_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Inode> {
    let id = InodeId(row.get::<_, i64>(0)? as u64);
    let kind_raw: i64 = row.get(1)?;
    let kind = FileKind::from_i64(kind_raw)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(1, kind_raw))?;
    let verf: Option<Vec<u8>> = row.get(18)?;
    Ok(Inode {
        id,
        kind,
        mode: row.get(2)?,
        uid: row.get(3)?,
        gid: row.get(4)?,
        size: row.get::<_, i64>(5)? as u64,
        nlink: row.get(6)?,
        atime: file_time(row, 7)?,
        mtime: file_time(row, 9)?,
        ctime: file_time(row, 11)?,
        generation: row.get::<_, i64>(13)? as u64,
        rdev: row.get::<_, i64>(14)? as u64,
        symlink_target: row.get(15)?,
        class: row.get::<_, Option<i64>>(16)?.map(|c| ClassId(c as u64)),
        parent: row.get::<_, Option<i64>>(17)?.map(|p| InodeId(p as u64)),
        create_verifier: verf.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()),
    })
}
