//! The filesystem core's one error type. Front ends map it to their wire
//! status in one place each (`nfs::status` for NFSv3).

use std::path::PathBuf;

use cairn_metadata::{InodeId, MetaError};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("name longer than 255 bytes")]
    NameTooLong,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("file would pass the largest size cairn stores")]
    FileTooBig,
    #[error(
        "the ingest cache is at its size limit (cache.max_size) and holds no drained data to evict"
    )]
    NoSpace,
    /// The disk holding `path` has no room (or only the reserve the cache
    /// leaves for the metadata).
    #[error("the disk holding {} is full: {free} bytes free", path.display())]
    DiskFull { path: PathBuf, free: u64 },
    #[error("the disk holding the metadata database is full")]
    MetadataFull,
    #[error("inode {0} no longer exists")]
    Stale(InodeId),
    #[error("the file changed since the caller last looked (guard mismatch)")]
    GuardMismatch,
    #[error("permission denied")]
    Access,
    #[error("operation not permitted: only the owner or root may do this")]
    NotOwner,
    #[error("no such extended attribute")]
    NoXattr,
    #[error("too many links")]
    TooManyLinks,
    #[error("not supported: {0}")]
    NotSupported(&'static str),
    #[error("this data was drained to chunk stores, but the gateway has none configured")]
    NoStores,
    #[error("block {0} is referenced but its location is unknown")]
    BlockLost(cairn_metadata::BlockId),
    #[error("slot {slot} (4 MiB from byte {start}) of inode {inode} was lost with the gateway's cache before it reached a chunk store; overwrite or delete it", start = slot * cairn_metadata::SLOT_SIZE)]
    DataLost { inode: InodeId, slot: u64 },
    /// No store could serve a chunk (`chunk`), or take a file's data now
    /// (`None`: remote durability).
    #[error("{}: {why}", match chunk {
        Some(chunk) => format!("no chunk store holding chunk {chunk} could serve it"),
        None => "no chunk store could take the data".to_owned(),
    })]
    Unavailable {
        chunk: Option<cairn_metadata::ChunkId>,
        why: String,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("an fsync in {path} failed earlier; restart the gateway after checking the disk")]
    Poisoned { path: PathBuf },
    #[error(transparent)]
    Meta(MetaError),
    /// A class the operation needs cannot be read (see `catalog`).
    #[error(transparent)]
    Class(crate::catalog::CatalogError),
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<MetaError> for FsError {
    fn from(e: MetaError) -> Self {
        if e.is_disk_full() {
            FsError::MetadataFull
        } else {
            FsError::Meta(e)
        }
    }
}

impl From<crate::catalog::CatalogError> for FsError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        match e {
            crate::catalog::CatalogError::Meta(e) => e.into(),
            other => FsError::Class(other),
        }
    }
}
