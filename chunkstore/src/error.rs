//! [`StoreError`], the crate's one error type, and [`Status`], the wire status a
//! store answers with. Every variant names the store address, key or path it is
//! about; [`StoreError::retryable`] says whether the same request may succeed
//! later, and [`StoreError::status`] is the one exhaustive error→wire mapping.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cairn_config::ConfigError;

/// A request's outcome as carried on the wire (a `u16`, see `protocol.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// No shard under that key.
    NotFound,
    /// The shard failed its checksum; it was moved to quarantine.
    Corrupt,
    /// The put would leave less free space than the store's reserve.
    NoSpace,
    /// The request was malformed (bad key, bad length, unknown op).
    BadRequest,
    /// A get asked for bytes past the end of the shard.
    InvalidRange,
    /// The store cannot serve: a disk error, or it is poisoned after a failed fsync.
    Unavailable,
}

impl Status {
    /// The wire code.
    pub const fn code(self) -> u16 {
        match self {
            Status::NotFound => 1,
            Status::Corrupt => 2,
            Status::NoSpace => 3,
            Status::BadRequest => 4,
            Status::InvalidRange => 5,
            Status::Unavailable => 6,
        }
    }

    /// The status for a wire code; unknown codes read as `Unavailable`.
    pub const fn from_code(code: u16) -> Status {
        match code {
            1 => Status::NotFound,
            2 => Status::Corrupt,
            3 => Status::NoSpace,
            4 => Status::BadRequest,
            5 => Status::InvalidRange,
            _ => Status::Unavailable,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::NotFound => "not found",
            Status::Corrupt => "corrupt (quarantined)",
            Status::NoSpace => "no space above the reserve",
            Status::BadRequest => "bad request",
            Status::InvalidRange => "range past the end of the shard",
            Status::Unavailable => "store unavailable",
        })
    }
}

/// Everything that can go wrong in a store, its setup, or a client's request.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The config failed validation.
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("cannot read cluster secret {}: {source}; fix: check secret_file in the config", .path.display())]
    SecretRead { path: PathBuf, source: io::Error },
    #[error(
        "cluster secret {} has mode {mode:o} and is readable by group or others; fix: chmod 600 {}",
        .path.display(), .path.display()
    )]
    SecretPermissions { path: PathBuf, mode: u32 },
    #[error(
        "cluster secret {} holds {len} bytes, at least 32 are needed; fix: use the gateway's cluster.secret (64 hex characters)",
        .path.display()
    )]
    SecretTooShort { path: PathBuf, len: usize },

    #[error(
        "{} is not an initialised chunk-store folder (no cairn-store.marker); fix: check the drive is mounted, then run `cairn chunkstore init --config …` first",
        .data_dir.display()
    )]
    NotInitialized { data_dir: PathBuf },
    #[error(
        "{}: this drive belongs to another cluster (marker cluster_id {found}, this secret's {expected}); fix: point data_dir at this cluster's drive or use that cluster's secret",
        .data_dir.display()
    )]
    ForeignCluster {
        data_dir: PathBuf,
        found: String,
        expected: String,
    },
    #[error("marker {} is damaged: {reason}; fix: restore it, or re-initialise an empty folder", .path.display())]
    BadMarker { path: PathBuf, reason: String },
    #[error(
        "{} is not empty and has no cairn-store.marker; fix: init only an empty folder (or one holding just lost+found)",
        .data_dir.display()
    )]
    NotEmpty { data_dir: PathBuf },
    #[error(
        "{} is in use by another chunk-store daemon (store.lock is held); fix: stop the other daemon, or give this one its own data_dir",
        .data_dir.display()
    )]
    Locked { data_dir: PathBuf },
    #[error("{op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "store {} refuses writes after a failed fsync; fix: check the drive (dmesg), then restart the daemon",
        .data_dir.display()
    )]
    Poisoned { data_dir: PathBuf },

    #[error("shard key {key:?} is invalid: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("shard {key:?} not found")]
    NotFound { key: String },
    #[error("shard {key:?} failed its checksum and was moved to {}", .quarantined.display())]
    Corrupt { key: String, quarantined: PathBuf },
    #[error("put {key:?} of {len} bytes refused: {free} bytes free, reserve {reserve}")]
    NoSpace {
        key: String,
        len: u64,
        free: u64,
        reserve: u64,
    },
    #[error("shard {key:?} of {len} bytes exceeds the limit of {max}")]
    TooLarge { key: String, len: u64, max: u64 },
    #[error("get {key:?} bytes {offset}..+{len} is past the shard's {shard_len} bytes")]
    InvalidRange {
        key: String,
        offset: u64,
        len: u64,
        shard_len: u64,
    },
    #[error("shard {key:?}: sent {got} bytes, announced {expected}")]
    LengthMismatch {
        key: String,
        expected: u64,
        got: u64,
    },
    #[error("upload {key:?}: the bytes received have crc32c {got:08x}, the upload announced {announced:08x}; nothing stored")]
    CrcMismatch {
        key: String,
        announced: u32,
        got: u32,
    },
    #[error(
        "upload {key:?} is still being received on another connection; retry once that one stops"
    )]
    UploadInProgress { key: String },

    #[error("cannot listen on {addr}: {source}; fix: choose a free port or address in listen")]
    Bind { addr: SocketAddr, source: io::Error },
    /// The gateway was asked for a store id it does not know.
    #[error("no chunk store with id {id} is configured")]
    UnknownStore { id: u64 },
    #[error("store {addr}: cannot connect: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("store {addr}: {op} timed out after {after:?}")]
    Timeout {
        addr: String,
        op: &'static str,
        after: Duration,
    },
    #[error("store {addr}: handshake failed ({reason}); the peer does not hold this cluster's secret or speaks another protocol version")]
    Handshake { addr: String, reason: String },
    /// A bucket store refused the request's credentials or their rights.
    #[error("store {addr}: refused the credentials: {reason}")]
    Refused { addr: String, reason: String },
    #[error("store {addr}: refused the connection: it has no free connection slot (too many connections or handshakes in progress); retrying later")]
    Busy { addr: String },
    #[error("store {addr}: {op}: connection lost: {source}")]
    Transport {
        addr: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("store {addr}: {op}: protocol violation: {what}")]
    Protocol {
        addr: String,
        op: &'static str,
        what: String,
    },
    #[error("store {addr}: upload {key:?} made no progress since the last resume (the store holds {held} bytes of it, as before); giving up for now")]
    Stalled {
        addr: String,
        key: String,
        held: u64,
    },
    #[error("store {addr}: {op} {key:?}: {status}: {detail}")]
    Remote {
        addr: String,
        op: &'static str,
        key: String,
        status: Status,
        detail: String,
    },
}

impl StoreError {
    /// Whether the same request may succeed if tried again later (on a new
    /// connection): network trouble, a busy and an unavailable store are; a refused
    /// secret, a bad request, a missing or corrupt shard and a full store are not.
    pub fn retryable(&self) -> bool {
        match self {
            StoreError::Connect { .. }
            | StoreError::Timeout { .. }
            | StoreError::Busy { .. }
            | StoreError::Transport { .. }
            | StoreError::Locked { .. }
            | StoreError::Io { .. }
            | StoreError::UploadInProgress { .. }
            | StoreError::Stalled { .. } => true,
            StoreError::Remote { status, .. } => *status == Status::Unavailable,
            StoreError::Config(_)
            | StoreError::SecretRead { .. }
            | StoreError::SecretPermissions { .. }
            | StoreError::SecretTooShort { .. }
            | StoreError::NotInitialized { .. }
            | StoreError::ForeignCluster { .. }
            | StoreError::BadMarker { .. }
            | StoreError::NotEmpty { .. }
            | StoreError::Poisoned { .. }
            | StoreError::InvalidKey { .. }
            | StoreError::NotFound { .. }
            | StoreError::Corrupt { .. }
            | StoreError::NoSpace { .. }
            | StoreError::TooLarge { .. }
            | StoreError::InvalidRange { .. }
            | StoreError::LengthMismatch { .. }
            | StoreError::CrcMismatch { .. }
            | StoreError::Bind { .. }
            | StoreError::UnknownStore { .. }
            | StoreError::Handshake { .. }
            | StoreError::Refused { .. }
            | StoreError::Protocol { .. } => false,
        }
    }

    /// The wire status this error is answered with (server side), or carries
    /// (client side, [`StoreError::Remote`]).
    pub fn status(&self) -> Status {
        match self {
            StoreError::NotFound { .. } => Status::NotFound,
            StoreError::Corrupt { .. } => Status::Corrupt,
            StoreError::NoSpace { .. } => Status::NoSpace,
            StoreError::InvalidKey { .. }
            | StoreError::TooLarge { .. }
            | StoreError::LengthMismatch { .. }
            | StoreError::CrcMismatch { .. }
            | StoreError::Protocol { .. } => Status::BadRequest,
            StoreError::InvalidRange { .. } => Status::InvalidRange,
            StoreError::Remote { status, .. } => *status,
            StoreError::Config(_)
            | StoreError::SecretRead { .. }
            | StoreError::SecretPermissions { .. }
            | StoreError::SecretTooShort { .. }
            | StoreError::NotInitialized { .. }
            | StoreError::ForeignCluster { .. }
            | StoreError::BadMarker { .. }
            | StoreError::NotEmpty { .. }
            | StoreError::Locked { .. }
            | StoreError::Io { .. }
            | StoreError::Poisoned { .. }
            | StoreError::Bind { .. }
            | StoreError::UnknownStore { .. }
            | StoreError::Connect { .. }
            | StoreError::Timeout { .. }
            | StoreError::Handshake { .. }
            | StoreError::Refused { .. }
            | StoreError::Busy { .. }
            | StoreError::UploadInProgress { .. }
            | StoreError::Stalled { .. }
            | StoreError::Transport { .. } => Status::Unavailable,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
