//! [`GatewayConfig`] and its sections: the TOML schema of `docs/config-spec.md`,
//! its defaults, derived paths, and loading from a file. Unknown keys are
//! rejected everywhere; only `data_dir` is required.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::error::ConfigError;
use crate::http::HttpConfig;
use crate::net;
use crate::size::ByteSize;
use crate::smb::SmbConfig;
use crate::stores::StoreRef;

/// `nfs.listen` when the key is absent: loopback, the standard NFS port.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2049));

/// `nfs.max_connections` when the key is absent.
pub const DEFAULT_NFS_MAX_CONNECTIONS: u32 = 1024;
/// The largest `nfs.max_connections` that `validate` accepts.
pub const MAX_NFS_MAX_CONNECTIONS: u32 = 65_536;

/// The smallest `cache.max_size` that `validate` accepts.
pub const MIN_CACHE_SIZE: ByteSize = ByteSize::mib(64);

/// The whole gateway config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Folder holding the gateway's state. Must already exist.
    pub data_dir: PathBuf,
    #[serde(default)]
    pub nfs: NfsConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub metadata: MetadataConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub drain: DrainConfig,
    #[serde(default)]
    pub repair: RepairConfig,
    #[serde(default)]
    pub backup: BackupConfig,
    #[serde(default)]
    pub read: ReadConfig,
    /// The SMB bridge; off unless `listen` is set.
    #[serde(default, skip_serializing_if = "SmbConfig::is_off")]
    pub smb: SmbConfig,
    /// The read-only HTTP endpoint (metrics, status page); off unless
    /// `listen` is set.
    #[serde(default, skip_serializing_if = "HttpConfig::is_off")]
    pub http: HttpConfig,
    /// The chunk stores file data drains to; none keeps data in the cache only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<StoreRef>,
}

/// `[cluster]`: what the gateway shares with its chunk stores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster secret (authenticates every store link; block keys
    /// derive from it). Required when `stores` is not empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
}

/// `[drain]`: moving cached data to the chunk stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainConfig {
    /// A file drains once it has not been written for this long.
    pub quiet: Duration,
    /// Target size of a chunk (blocks of many small files share one).
    pub chunk_size: ByteSize,
    /// Uploads to one store at a time.
    pub store_concurrency: usize,
    /// Bytes per second of new data (and metadata backups) sent to one
    /// store; "0" for no limit.
    pub store_bandwidth: ByteSize,
    /// Bytes of chunks per second the archive transition re-lays (reads,
    /// encodes and writes again) at most; "0" for no limit.
    pub archive_bandwidth: ByteSize,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            quiet: Duration::secs(3),
            chunk_size: ByteSize::mib(32),
            store_concurrency: 4,
            store_bandwidth: ByteSize(0),
            archive_bandwidth: ByteSize::mib(32),
        }
    }
}

/// `[repair]`: keeping every chunk at its class when stores fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepairConfig {
    /// A store that stops answering is suspect at once and offline after
    /// this long; only then are its chunks rebuilt elsewhere (links flap).
    pub grace: Duration,
    /// Bytes per second repair, scrub repairs and decommissioning write at
    /// most; "0" for no limit.
    pub bandwidth: ByteSize,
    /// Bytes per second repairs and decommissioning send to any one store;
    /// "0" for no limit (the drain's own is `[drain] store_bandwidth`).
    pub store_bandwidth: ByteSize,
    /// Bytes per second rebalancing moves send to any one store; "0" for no
    /// limit.
    pub rebalance_store_bandwidth: ByteSize,
    /// How often every store's listing is compared with the metadata (finds
    /// shards a scrub quarantined, and objects nothing references).
    pub audit_every: Duration,
    /// An object no chunk references is deleted once it has been seen
    /// unreferenced for this long (a drain or repair may still be writing it).
    pub orphan_delay: Duration,
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self {
            grace: Duration::secs(600),
            bandwidth: ByteSize::mib(32),
            store_bandwidth: ByteSize(0),
            rebalance_store_bandwidth: ByteSize(0),
            audit_every: Duration::secs(60),
            orphan_delay: Duration::secs(3600),
        }
    }
}

/// `[backup]`: shipping the metadata to the chunk stores, so a new gateway
/// can be rebuilt from them (`cairn restore`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Ship the metadata at all (off: a lost gateway loses its namespace).
    pub enabled: bool,
    /// A full snapshot starts a new generation this often.
    pub snapshot_every: Duration,
    /// The changes since are shipped this often: the most a lost gateway's
    /// metadata can be behind (its recovery point).
    pub ship_every: Duration,
    /// Stores, on distinct hosts where there are enough, holding each object.
    pub copies: usize,
    /// Generations kept on the stores (older ones are deleted).
    pub keep: usize,
    /// `cairn status` warns, and the log too, when the shipped copy is older.
    pub warn_after: Duration,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            snapshot_every: Duration::secs(3600),
            ship_every: Duration::secs(5),
            copies: 3,
            keep: 3,
            warn_after: Duration::secs(60),
        }
    }
}

/// `[read]`: reading drained data back from the chunk stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadConfig {
    /// A store that sends nothing for this long (before its answer, or
    /// between two pieces of it) on any of the gateway's connections to it
    /// is given up on for this read, which moves to the next copy or shard.
    /// A slow link that keeps sending is never cut.
    pub stall: Duration,
    /// A read of one block from the stores that has found no copy by then
    /// fails with an I/O error (NFS3ERR_IO, EIO).
    pub timeout: Duration,
    /// How long a replica may take before the same bytes are asked of
    /// another copy too (the first good answer wins). Unset: three times
    /// that store's median latency, at least 20 ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hedge: Option<Duration>,
    /// How much a sequential reader of drained data gets fetched ahead of
    /// it, in whole 4 MiB blocks (rounded up); 0 turns readahead off.
    pub readahead: ByteSize,
}

/// `read.readahead` when the key is absent: 16 blocks in flight keep a
/// 100 ms, 100 Mbit/s link busy several times over.
pub const DEFAULT_READAHEAD: ByteSize = ByteSize::mib(64);
/// The largest `read.readahead` that `validate` accepts.
pub const MAX_READAHEAD: ByteSize = ByteSize::gib(1);

impl Default for ReadConfig {
    fn default() -> Self {
        Self {
            stall: Duration::secs(2),
            timeout: Duration::secs(30),
            hedge: None,
            readahead: DEFAULT_READAHEAD,
        }
    }
}

/// `[nfs]`: the NFSv3 / MOUNT / portmap listener and who may use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NfsConfig {
    /// NFS, MOUNT and portmap GETPORT all listen on this one address.
    #[serde(deserialize_with = "net::deserialize_listen")]
    pub listen: SocketAddr,
    /// Clients outside every one of these networks are refused.
    #[serde(deserialize_with = "net::deserialize_networks")]
    pub allowed_networks: Vec<IpNet>,
    pub squash: Squash,
    /// Uid that squashed callers are mapped to.
    pub anon_uid: u32,
    /// Gid that squashed callers are mapped to.
    pub anon_gid: u32,
    /// Open client connections at most; a connection past it is accepted
    /// and closed at once.
    pub max_connections: u32,
}

/// Which callers are mapped to `anon_uid`/`anon_gid`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Squash {
    /// Credentials are used as sent.
    #[default]
    None,
    /// uid 0 becomes the anonymous user.
    Root,
    /// Every caller becomes the anonymous user.
    All,
}

/// `[cache]`: the local chunk cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Cache folder; `None` means `<data_dir>/cache`. See [`GatewayConfig::cache_dir`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Upper bound on the cache's size on disk.
    pub max_size: ByteSize,
}

/// `[metadata]`: the SQLite metadata database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataConfig {
    /// Database file; `None` means `<data_dir>/meta.db`. See [`GatewayConfig::metadata_path`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// `[log]`: logging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: LogLevel,
    /// `"text"` (for people) or `"json"` (one JSON object per line, for a
    /// log shipper).
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Least severe level that is logged.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The lowercase name, as written in TOML and understood by `tracing` filters.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for NfsConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            allowed_networks: vec![
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
                IpNet::V6(Ipv6Net::new_assert(std::net::Ipv6Addr::LOCALHOST, 128)),
            ],
            squash: Squash::None,
            anon_uid: 65534,
            anon_gid: 65534,
            max_connections: DEFAULT_NFS_MAX_CONNECTIONS,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_size: ByteSize::gib(64),
        }
    }
}

impl GatewayConfig {
    /// A config with every default, for `cairn up`.
    pub fn with_defaults(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            nfs: NfsConfig {
                listen,
                ..NfsConfig::default()
            },
            cache: CacheConfig::default(),
            metadata: MetadataConfig::default(),
            log: LogConfig::default(),
            cluster: ClusterConfig::default(),
            drain: DrainConfig::default(),
            repair: RepairConfig::default(),
            backup: BackupConfig::default(),
            read: ReadConfig::default(),
            smb: SmbConfig::default(),
            http: HttpConfig::default(),
            stores: Vec::new(),
        }
    }

    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        crate::error::load_file(path, Self::parse, Self::validate)
    }

    /// Parses config text without validating it. `path` is only used in errors.
    /// Every parse error is reported at once (see
    /// [`crate::error::parse_all`]).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        crate::error::parse_all(text, path, fix_hint, Self::validate)
    }

    /// The cache folder: `cache.dir`, or `<data_dir>/cache`.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }

    /// The metadata database file: `metadata.path`, or `<data_dir>/meta.db`.
    pub fn metadata_path(&self) -> PathBuf {
        self.metadata
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("meta.db"))
    }
}

/// A one-line `fix:` for a toml error, chosen from its message.
fn fix_hint(message: &str) -> &'static str {
    if message.contains("unknown field `data_dir`") {
        "fix: move data_dir above the first [section] header; keys below a header belong to that section"
    } else if message.contains("unknown field") {
        "fix: remove the key or correct its spelling or section; config/examples/gateway.toml lists every key"
    } else if message.contains("missing field `data_dir`") {
        "fix: add a line such as data_dir = \"/var/lib/cairn/gateway\" above the first [section] header"
    } else if message.contains("nfs.listen") {
        "fix: write the address in quotes, e.g. listen = \"127.0.0.1:2049\""
    } else if message.contains("nfs.allowed_networks") {
        "fix: write each network in quotes, e.g. allowed_networks = [\"127.0.0.0/8\", \"192.168.1.0/24\"]"
    } else if message.contains("invalid size") {
        "fix: write the size in quotes with a unit, e.g. max_size = \"64 GiB\""
    } else if message.contains("unknown variant") {
        "fix: use one of the quoted lowercase values the message lists"
    } else {
        "fix: correct the value on the line shown; config/examples/gateway.toml lists every key with its default"
    }
}
