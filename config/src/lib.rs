//! cairn's gateway configuration: the typed, strict TOML contract of `docs/config-spec.md`.
//!
//! [`GatewayConfig::load`] reads a file, parses it with unknown keys rejected and
//! then runs [`GatewayConfig::validate`], which reports every problem at once.
//! Each error names the file, the field, the value and the fix.
//!
//! [`durable`] is cairn's one durable-write helper (temp, fsync, rename,
//! fsync the folder), here because every crate depends on this one.

pub mod durable;
mod duration;
mod error;
mod gateway;
mod http;
mod net;
mod size;
mod smb;
mod store;
mod stores;
mod validate;

#[cfg(test)]
mod tests;

pub use durable::{write_durable, DurableError, TempFile};
pub use duration::{Duration, ParseDurationError};
pub use error::{ConfigError, ParseByteSizeError, Problem};
pub use gateway::{
    BackupConfig, CacheConfig, ClusterConfig, DrainConfig, GatewayConfig, LogConfig, LogFormat,
    LogLevel, MetadataConfig, NfsConfig, RepairConfig, Squash, DEFAULT_LISTEN,
    DEFAULT_NFS_MAX_CONNECTIONS, DEFAULT_READAHEAD, MAX_NFS_MAX_CONNECTIONS, MAX_READAHEAD,
    MIN_CACHE_SIZE,
};
pub use http::{read_token, HttpConfig, TokenError};
pub use size::ByteSize;
pub use smb::{share_name_problem, share_path_problem, user_name_problem, SmbConfig, SmbShare};
pub use store::{ScrubConfig, StoreConfig, DEFAULT_STORE_RESERVE};
pub use stores::{
    read_credentials, StoreKind, StoreRef, ACCESS_KEY_ENV, DEFAULT_BUCKET_SCRUB_BANDWIDTH,
    DEFAULT_BUCKET_SCRUB_EVERY, DEFAULT_PREFIX, DEFAULT_REGION, SECRET_KEY_ENV,
};
