//! The metadata crate's one error type.

use std::path::PathBuf;

use crate::InodeId;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("cannot open metadata database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("metadata database {path} has schema version {found}, newer than this cairn understands ({supported}); upgrade cairn")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("metadata database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("inode {0} has a corrupt row: {1}")]
    CorruptRow(InodeId, &'static str),
    #[error("metadata commit failed ({0:?}); nothing of this change was stored")]
    Commit(rusqlite::ErrorCode),
    #[error("the metadata writer has stopped (an earlier commit failed); restart the gateway")]
    WriterGone,
    #[error("metadata changes cannot be recorded (SQLite session unavailable); shipping is off")]
    ShippingOff,
}

impl MetaError {
    /// The database's disk is full: the change was not stored, and the
    /// caller should answer "no space" rather than a generic I/O error.
    pub fn is_disk_full(&self) -> bool {
        match self {
            MetaError::Commit(code) => *code == rusqlite::ErrorCode::DiskFull,
            MetaError::Sqlite(e) | MetaError::Open { source: e, .. } => {
                e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            _ => false,
        }
    }
}
