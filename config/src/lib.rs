//! cairn's gateway configuration: the typed, strict TOML contract of `docs/config-spec.md`.
//!
//! [`GatewayConfig::load`] reads a file, parses it with unknown keys rejected and
//! then runs [`GatewayConfig::validate`], which reports every problem at once.
//! Each error names the file, the field, the value and the fix.

mod error;
mod gateway;
mod net;
mod size;
mod validate;

#[cfg(test)]
mod tests;

pub use error::{ConfigError, ParseByteSizeError, Problem};
pub use gateway::{
    CacheConfig, GatewayConfig, LogConfig, LogLevel, MetadataConfig, NfsConfig, Squash,
    DEFAULT_LISTEN, MIN_CACHE_SIZE,
};
pub use size::ByteSize;
