//! The one mapping from the core's errors to NFSv3 status codes.

use nfs3_types::nfs3::nfsstat3;
use tracing::warn;

use crate::core::FsError;

pub fn nfs_status(e: &FsError) -> nfsstat3 {
    match e {
        FsError::NotFound => nfsstat3::NFS3ERR_NOENT,
        FsError::Exists => nfsstat3::NFS3ERR_EXIST,
        FsError::NotDir => nfsstat3::NFS3ERR_NOTDIR,
        FsError::IsDir => nfsstat3::NFS3ERR_ISDIR,
        FsError::NotEmpty => nfsstat3::NFS3ERR_NOTEMPTY,
        FsError::NameTooLong => nfsstat3::NFS3ERR_NAMETOOLONG,
        FsError::Invalid(_) => nfsstat3::NFS3ERR_INVAL,
        FsError::FileTooBig => nfsstat3::NFS3ERR_FBIG,
        FsError::NoSpace | FsError::DiskFull { .. } | FsError::MetadataFull => {
            nfsstat3::NFS3ERR_NOSPC
        }
        FsError::Stale(_) => nfsstat3::NFS3ERR_STALE,
        FsError::GuardMismatch => nfsstat3::NFS3ERR_NOT_SYNC,
        FsError::Access => nfsstat3::NFS3ERR_ACCES,
        FsError::NotOwner => nfsstat3::NFS3ERR_PERM,
        FsError::TooManyLinks => nfsstat3::NFS3ERR_MLINK,
        FsError::NotSupported(_) => nfsstat3::NFS3ERR_NOTSUPP,
        // NFSv3 has no extended attributes; nothing reaches here from it.
        FsError::NoXattr => nfsstat3::NFS3ERR_NOTSUPP,
        FsError::Io { .. }
        | FsError::Poisoned { .. }
        | FsError::NoStores
        | FsError::BlockLost(_)
        | FsError::DataLost { .. }
        | FsError::Unavailable { .. }
        | FsError::Meta(_)
        | FsError::Class(_)
        | FsError::Task(_) => {
            warn!(cause = %e, "NFS call failed with an I/O error");
            nfsstat3::NFS3ERR_IO
        }
    }
}
