//! The gateway's one error type for its workers (drain, repair, metadata
//! shipping, restore) and its control plane. Each variant names what failed
//! (the chunk, the store, the object) and keeps its cause as a `#[source]`;
//! [`Error::retryable`] says whether trying again later may succeed, carried
//! through from the store's own [`StoreError::retryable`]. The file-system
//! core keeps its narrower [`FsError`] (it maps one to one onto NFS and
//! errno statuses); the admin protocol turns an `Error` into its reply text.

use cairn_metadata::{ChunkId, MetaError};

use crate::catalog::CatalogError;
use crate::core::FsError;
use crate::store::ec::EcError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Class(#[from] CatalogError),
    /// A store refused or could not be reached for one operation.
    #[error("{op} {key} on store {store}: {source}")]
    Store {
        store: String,
        op: &'static str,
        key: String,
        /// Boxed: a store error is large, and this type is every worker's `Err`.
        #[source]
        source: Box<StoreError>,
    },
    /// Placement found no stores that can take a chunk of this class.
    #[error("no chunk store can take a chunk of class {class}: {why}")]
    NoTarget { class: String, why: String },
    #[error("erasure coding chunk {chunk}: {source}")]
    Encode {
        chunk: ChunkId,
        #[source]
        source: EcError,
    },
    /// No copy or set of shards of a chunk could be read.
    #[error("chunk {chunk} cannot be read from any copy: {why}")]
    Unreadable { chunk: ChunkId, why: String },
    /// A metadata backup object failed its check (wrong key, damaged).
    #[error("metadata backup object {object}: {why}")]
    Backup { object: String, why: String },
    /// Too few stores took a metadata backup object.
    #[error("storing {object}: {stored} of the {need} stores needed took it ({why})")]
    Shipping {
        object: String,
        stored: usize,
        need: usize,
        why: String,
    },
    /// A local scratch file (the metadata snapshot being shipped).
    #[error("scratch file {}: {source}", path.display())]
    Scratch {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `cairn restore` into a folder that already holds a database.
    #[error("{} exists: restore into an empty data folder (move the old one away first)", db.display())]
    NotEmpty { db: std::path::PathBuf },
    /// A file or folder the gateway needs could not be made or written.
    #[error("cannot {what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Durable(#[from] cairn_config::DurableError),
    /// The cluster secret file could not be read or is malformed.
    #[error(transparent)]
    Secret(Box<StoreError>),
    #[error("cannot write the config: {0}")]
    ConfigText(#[from] toml::ser::Error),
    /// `cairn restore` found nothing it could restore; `report` says what
    /// it saw, store by store and generation by generation.
    #[error("{report}{why}")]
    NothingRestored { report: String, why: String },
}

impl From<MetaError> for Error {
    fn from(e: MetaError) -> Self {
        Error::Fs(e.into())
    }
}

impl Error {
    /// Whether the same call may succeed later without anyone changing
    /// anything: a store that was unreachable, busy or full of work.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Store { source, .. } => source.retryable(),
            Error::Fs(FsError::Unavailable { .. }) => true,
            Error::NoTarget { .. } | Error::Unreadable { .. } | Error::Shipping { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_keeps_its_source_and_retryability() {
        let timeout = StoreError::Timeout {
            addr: "127.0.0.1:1".into(),
            op: "get",
            after: std::time::Duration::from_secs(2),
        };
        let e = Error::Store {
            store: "a".into(),
            op: "get",
            key: "c0000000000000001".into(),
            source: Box::new(timeout),
        };
        assert!(e.retryable());
        assert!(std::error::Error::source(&e).is_some());
        assert!(e.to_string().contains("store a"), "{e}");
        assert!(!Error::NotEmpty {
            db: "/srv/meta.db".into()
        }
        .retryable());
    }
}
