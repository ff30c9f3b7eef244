//! The one mapping from the core's errors to FUSE errno values.

use fuser::Errno;
use tracing::warn;

use crate::core::FsError;

pub fn errno(e: &FsError) -> Errno {
    match e {
        FsError::NotFound => Errno::ENOENT,
        FsError::Exists => Errno::EEXIST,
        FsError::NotDir => Errno::ENOTDIR,
        FsError::IsDir => Errno::EISDIR,
        FsError::NotEmpty => Errno::ENOTEMPTY,
        FsError::NameTooLong => Errno::ENAMETOOLONG,
        FsError::Invalid(_) => Errno::EINVAL,
        FsError::FileTooBig => Errno::EFBIG,
        FsError::NoSpace | FsError::DiskFull { .. } | FsError::MetadataFull => Errno::ENOSPC,
        // The inode went away under a cached handle: tell the kernel to look again.
        FsError::Stale(_) => Errno::ESTALE,
        FsError::GuardMismatch => Errno::EAGAIN,
        FsError::Access => Errno::EACCES,
        FsError::NotOwner => Errno::EPERM,
        FsError::TooManyLinks => Errno::EMLINK,
        FsError::NotSupported(_) => Errno::ENOTSUP,
        FsError::NoXattr => Errno::ENODATA,
        FsError::Io { .. }
        | FsError::Poisoned { .. }
        | FsError::NoStores
        | FsError::BlockLost(_)
        | FsError::DataLost { .. }
        | FsError::Unavailable { .. }
        | FsError::Meta(_)
        | FsError::Class(_)
        | FsError::Task(_) => {
            warn!(cause = %e, "FUSE call failed with an I/O error");
            Errno::EIO
        }
    }
}
