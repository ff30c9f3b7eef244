//! Between FUSE's types and the core's: the caller's credentials, times,
//! file types and attributes, and replies built from a core result.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_metadata::{FileKind, FileTime, Inode, InodeId};
use fuser::{FileAttr, FileType, Generation, INodeNo, ReplyEmpty, ReplyEntry, Request, TimeOrNow};

use super::errno::errno;
use super::ops::{MAX_WRITE, TTL};
use crate::core::{Credentials, Fs, FsError, SetAttr, SetTime};

/// Block size reported for statfs and st_blksize (tools size their buffers by it).
pub(super) const BLOCK: u64 = 4096;
/// fallocate(2)'s mode bits (linux/falloc.h).
pub(super) const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
pub(super) const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
/// lseek(2)'s whence values the kernel passes on (the others it answers).
pub(super) const SEEK_DATA: i32 = 3;
pub(super) const SEEK_HOLE: i32 = 4;

/// The caller's uid, gid and supplementary groups. FUSE passes only uid and
/// gid; the groups come from the calling thread's `/proc` entry, so group
/// permissions work as the kernel's own checks (`default_permissions`) see
/// them.
pub(super) fn credentials(req: &Request) -> Credentials {
    let mut cred = Credentials::user(req.uid(), req.gid());
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", req.pid())) {
        if let Some(line) = status.lines().find(|l| l.starts_with("Groups:")) {
            cred.gids = line["Groups:".len()..]
                .split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect();
        }
    }
    cred
}

pub(super) fn system_time(t: FileTime) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos));
    let secs = Duration::from_secs(t.secs.unsigned_abs());
    let at = if t.secs >= 0 {
        UNIX_EPOCH.checked_add(secs)
    } else {
        UNIX_EPOCH.checked_sub(secs)
    };
    at.and_then(|a| a.checked_add(nanos)).unwrap_or(UNIX_EPOCH)
}

/// The time the kernel sent. fuser hands a time before 1970 over as
/// `UNIX_EPOCH - (|secs|, nsec)` (the nanoseconds on the wrong side of the
/// second), so that is undone here to store the caller's exact `timespec`.
pub(super) fn file_time(t: SystemTime) -> FileTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => FileTime::new(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            FileTime::new(
                -i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            )
        }
    }
}

pub(super) fn set_time(t: Option<TimeOrNow>) -> SetTime {
    match t {
        None => SetTime::Keep,
        Some(TimeOrNow::Now) => SetTime::ServerNow,
        Some(TimeOrNow::SpecificTime(t)) => SetTime::Client(file_time(t)),
    }
}

pub(super) fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::BlockDev => FileType::BlockDevice,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::Socket => FileType::Socket,
        FileKind::Fifo => FileType::NamedPipe,
    }
}

/// The attributes of `i`; st_blocks counts what the file has allocated (a
/// sparse file counts only its data; fallocate adds to it).
pub(super) fn attr(fs: &Fs, i: &Inode) -> FileAttr {
    let allocated = fs.allocated(i).unwrap_or(i.size);
    FileAttr {
        ino: INodeNo(i.id.0),
        size: i.size,
        blocks: allocated.div_ceil(512),
        atime: system_time(i.atime),
        mtime: system_time(i.mtime),
        ctime: system_time(i.ctime),
        crtime: system_time(i.ctime),
        kind: file_type(i.kind),
        perm: (i.mode & 0o7777) as u16,
        nlink: i.nlink,
        uid: i.uid,
        gid: i.gid,
        rdev: i.rdev as u32,
        blksize: MAX_WRITE,
        flags: 0,
    }
}

pub(super) fn id(ino: INodeNo) -> InodeId {
    InodeId(ino.0)
}

pub(super) fn reply_entry(fs: &Fs, reply: ReplyEntry, r: Result<Inode, FsError>) {
    match r {
        Ok(i) => reply.entry(&TTL, &attr(fs, &i), Generation(i.generation)),
        Err(e) => reply.error(errno(&e)),
    }
}

pub(super) fn reply_empty(reply: ReplyEmpty, r: Result<(), FsError>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

/// `mode & !umask`, as the permission bits of a new node.
pub(super) fn masked(mode: u32, umask: u32) -> SetAttr {
    SetAttr {
        mode: Some(mode & !umask & 0o7777),
        ..SetAttr::default()
    }
}
