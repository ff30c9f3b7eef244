//! Conversions between the core's types and NFSv3's wire types.

use cairn_metadata::{FileKind, FileTime, Inode};
use nfs3_types::nfs3::{
    fattr3, ftype3, nfstime3, post_op_attr, sattr3, set_atime, set_mtime, specdata3, wcc_data,
    Nfs3Option,
};

use crate::core::{SetAttr, SetTime};

/// The filesystem id every attribute carries.
pub const FSID: u64 = 0x6361_6972_6e00_0001;

/// NFSv3 times are unsigned 32-bit seconds (RFC 1813 nfstime3): dates
/// before 1970 show as 1970 and dates after 2106-02-07 as that day; the
/// stored time keeps its real value (the FUSE view and SMB show it).
pub fn time(t: FileTime) -> nfstime3 {
    nfstime3 {
        seconds: t.secs.clamp(0, i64::from(u32::MAX)) as u32,
        nseconds: t.nanos,
    }
}

fn from_time(t: nfstime3) -> FileTime {
    FileTime::new(i64::from(t.seconds), t.nseconds.min(999_999_999))
}

pub fn ftype(kind: FileKind) -> ftype3 {
    match kind {
        FileKind::File => ftype3::NF3REG,
        FileKind::Dir => ftype3::NF3DIR,
        FileKind::Symlink => ftype3::NF3LNK,
        FileKind::BlockDev => ftype3::NF3BLK,
        FileKind::CharDev => ftype3::NF3CHR,
        FileKind::Socket => ftype3::NF3SOCK,
        FileKind::Fifo => ftype3::NF3FIFO,
    }
}

pub fn fattr(i: &Inode) -> fattr3 {
    fattr3 {
        type_: ftype(i.kind),
        mode: i.mode,
        nlink: i.nlink,
        uid: i.uid,
        gid: i.gid,
        size: i.size,
        used: i.size.div_ceil(4096) * 4096,
        rdev: specdata3 {
            specdata1: (i.rdev >> 32) as u32,
            specdata2: i.rdev as u32,
        },
        fsid: FSID,
        fileid: i.id.0,
        atime: time(i.atime),
        mtime: time(i.mtime),
        ctime: time(i.ctime),
    }
}

pub fn post_op(i: &Inode) -> post_op_attr {
    Nfs3Option::Some(fattr(i))
}

pub fn wcc(after: Option<&Inode>) -> wcc_data {
    wcc_data {
        before: Nfs3Option::None,
        after: after.map_or(Nfs3Option::None, post_op),
    }
}

pub fn set_attr(s: &sattr3) -> SetAttr {
    let opt = |o: &Nfs3Option<u32>| match o {
        Nfs3Option::Some(v) => Some(*v),
        Nfs3Option::None => None,
    };
    SetAttr {
        mode: opt(&s.mode),
        uid: opt(&s.uid),
        gid: opt(&s.gid),
        size: match s.size {
            Nfs3Option::Some(v) => Some(v),
            Nfs3Option::None => None,
        },
        atime: match &s.atime {
            set_atime::DONT_CHANGE => SetTime::Keep,
            set_atime::SET_TO_SERVER_TIME => SetTime::ServerNow,
            set_atime::SET_TO_CLIENT_TIME(t) => SetTime::Client(from_time(*t)),
        },
        mtime: match &s.mtime {
            set_mtime::DONT_CHANGE => SetTime::Keep,
            set_mtime::SET_TO_SERVER_TIME => SetTime::ServerNow,
            set_mtime::SET_TO_CLIENT_TIME(t) => SetTime::Client(from_time(*t)),
        },
    }
}

pub fn guard_time(t: nfstime3) -> FileTime {
    from_time(t)
}
