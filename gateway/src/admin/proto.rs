//! The admin protocol, shared by the gateway and the `cairn` CLI: one
//! [`Request`] per line, one [`Answer`] (a [`Reply`] or an [`AdminError`])
//! per line back, all typed serde. The reply structs are what `--json`
//! prints, so the JSON and the tables read the same fields.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::class::ClassSpec;
// Status types owned by the module that produces them.
pub use crate::fsck::DeepProblem;
pub use crate::smb::{ShareRow, SmbStatus};
pub use crate::work::repair::progress::{Rebalance, RepairProgress};
pub use crate::work::ship::BackupState;

/// One admin command, as the CLI sends it (`{"cmd": "status"}`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    Mount {
        dir: PathBuf,
    },
    Unmount {
        dir: PathBuf,
    },
    SmbShareAdd {
        name: String,
        path: String,
    },
    StoreList,
    StoreDrain {
        name: String,
    },
    StoreUndrain {
        name: String,
    },
    StoreRemove {
        name: String,
    },
    Chunks,
    FsckDeep {
        #[serde(default)]
        repair: bool,
    },
    CacheDrop,
    ClassCreate(ClassCreate),
    ClassList,
    ClassShow {
        name: String,
    },
    ClassDelete {
        name: String,
    },
    ClassSet {
        path: String,
        name: String,
    },
    ClassGet {
        path: String,
    },
}

/// `cairn class create`: the flags as given; the gateway parses them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCreate {
    pub name: String,
    #[serde(default)]
    pub replicas: Option<u8>,
    #[serde(default)]
    pub ec: Option<String>,
    #[serde(default)]
    pub labels: Option<String>,
    #[serde(default)]
    pub spread: Option<String>,
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub loose: bool,
    #[serde(default)]
    pub archive_after: Option<String>,
    #[serde(default)]
    pub archive_ec: Option<String>,
    #[serde(default)]
    pub archive_spread: Option<String>,
    #[serde(default)]
    pub archive_labels: Option<String>,
    #[serde(default)]
    pub durability: Option<String>,
}

/// What comes back on the wire for one request.
pub type Answer = Result<Reply, AdminError>;

macro_rules! replies {
    ($($variant:ident($ty:ident)),* $(,)?) => {
        /// The reply to one request: one variant per reply type. (One reply
        /// per request and connection: its size does not matter.)
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Reply {
            $($variant($ty)),*
        }

        impl Reply {
            /// The variant's name, for an error about a reply of the wrong kind.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Reply::$variant(_) => stringify!($variant)),*
                }
            }
        }

        $(
            impl From<$ty> for Reply {
                fn from(r: $ty) -> Self {
                    Reply::$variant(r)
                }
            }

            impl TryFrom<Reply> for $ty {
                type Error = AdminError;
                fn try_from(r: Reply) -> Result<Self, AdminError> {
                    match r {
                        Reply::$variant(v) => Ok(v),
                        #[allow(unreachable_patterns)]
                        other => Err(AdminError::UnexpectedReply {
                            want: stringify!($variant).to_owned(),
                            got: other.kind().to_owned(),
                        }),
                    }
                }
            }
        )*
    };
}

replies! {
    Status(Status),
    Mounted(Mounted),
    Unmounted(Unmounted),
    ShareAdded(ShareAdded),
    StoreList(StoreList),
    StoreLife(StoreLife),
    Chunks(Chunks),
    FsckDeep(FsckDeep),
    CacheDropped(CacheDropped),
    ClassCreated(ClassCreated),
    ClassList(ClassList),
    ClassShow(ClassShow),
    ClassDeleted(ClassDeleted),
    ClassSet(ClassSet),
    ClassGet(ClassGet),
}

/// `cairn status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The backlog's bytes again, at the top level (README promises it).
    pub backlog_bytes: u64,
    pub backlog: Backlog,
    pub stores: Vec<StoreRow>,
    pub classes: Vec<ClassHealth>,
    pub repair: Option<RepairProgress>,
    pub backup: Option<BackupState>,
    pub cache: CacheUse,
    pub files: Files,
    /// Chunks in the metadata.
    pub chunks: u64,
    pub smb: Option<SmbStatus>,
    pub mounts: Vec<String>,
    /// Each background job's state (busy, idle, throttled, failing), by name.
    #[serde(default)]
    pub jobs: std::collections::BTreeMap<String, crate::work::runner::JobStatus>,
}

/// Bytes written but not yet on the chunk stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backlog {
    pub bytes: u64,
    pub files: u64,
    pub slots: u64,
    pub oldest_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheUse {
    pub used_bytes: u64,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Files {
    pub inodes: u64,
    pub logical_bytes: u64,
}

/// One chunk store as `cairn store list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreRow {
    pub id: u64,
    pub name: String,
    pub online: bool,
    pub state: StoreStanding,
    pub zone: String,
    pub host: String,
    pub labels: Vec<String>,
    pub capacity: u64,
    /// Bytes in use on the store's disk, by anything (a bucket: cairn's).
    pub used: u64,
    pub free: u64,
    pub fill_percent: f64,
    /// Bytes of cairn's own objects on the store.
    #[serde(default)]
    pub stored: u64,
    /// Round trip to it in ms (average of recent probes); none before one
    /// answered.
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    /// Measured upload and download rates in MB/s (10^6 bytes), from
    /// transfers of 1 MiB or more; none before one.
    #[serde(default)]
    pub up_mb_s: Option<f64>,
    #[serde(default)]
    pub down_mb_s: Option<f64>,
    /// Bytes waiting for or on their way to it.
    #[serde(default)]
    pub queued_bytes: u64,
    /// Seconds since bytes last moved to or from it; none before any did.
    #[serde(default)]
    pub idle_seconds: Option<f64>,
    /// Why it is not answering (its last error), while it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// How a store stands: how it answers when in service, else its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreStanding {
    Online,
    /// Silent, within the grace period.
    Suspect,
    /// Silent past the grace period.
    Offline,
    Draining,
    Removed,
}

impl StoreStanding {
    /// The word the JSON and the tables use.
    pub fn name(self) -> &'static str {
        match self {
            StoreStanding::Online => "online",
            StoreStanding::Suspect => "suspect",
            StoreStanding::Offline => "offline",
            StoreStanding::Draining => "draining",
            StoreStanding::Removed => "removed",
        }
    }
}

/// One class's chunks by standing, and its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassHealth {
    pub name: String,
    pub describe: String,
    pub domains_needed: u64,
    pub domains_available: u64,
    /// Why chunks may be at risk or not placed at all.
    pub why: Option<String>,
    pub chunks: ChunkCounts,
    pub logical_bytes: u64,
    pub stored_bytes: u64,
    pub stored_ratio: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkCounts {
    pub healthy: u64,
    pub undergoal: u64,
    pub at_risk: u64,
    pub missing: u64,
    pub endangered: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mounted {
    pub mounted: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmounted {
    pub unmounted: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareAdded {
    pub share: String,
    pub path: String,
}

/// `cairn store list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreList {
    pub stores: Vec<StoreRow>,
}

/// `cairn store drain|undrain|remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreLife {
    pub store: String,
    pub state: StoreLifeState,
    /// Copies or shards the metadata still needs on it.
    pub holds: u64,
}

/// Where a store is in its life (`cairn store drain|undrain|remove`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreLifeState {
    Active,
    Draining,
    Removed,
}

impl std::fmt::Display for StoreLifeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreLifeState::Active => "active",
            StoreLifeState::Draining => "draining",
            StoreLifeState::Removed => "removed",
        })
    }
}

/// `cairn store chunks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunks {
    pub chunks: Vec<ChunkRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRow {
    pub key: String,
    pub class: String,
    /// `replicas` or `ec K+M`.
    pub layout: String,
    pub size: u64,
    pub logical_bytes: u64,
    pub stored_bytes: u64,
    /// The store of each copy or shard, by shard.
    pub stores: Vec<String>,
    pub shards: Vec<ShardRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRow {
    pub shard: u32,
    pub store: String,
    pub key: String,
}

/// `cairn fsck --deep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckDeep {
    pub checked: u64,
    pub problems: Vec<DeepProblem>,
    pub queued_for_repair: u64,
}

/// `cairn cache drop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheDropped {
    pub evicted_bytes: u64,
    pub evicted_slots: u64,
    pub undrained_bytes: u64,
}

/// `cairn class create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCreated {
    pub class: String,
    pub describe: String,
    pub domains_needed: u64,
    pub domains_available: u64,
    /// The archive layout's domains, for a class with an archive transition.
    pub archive: Option<Domains>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domains {
    pub domains_needed: u64,
    pub domains_available: u64,
}

/// `cairn class list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassList {
    pub classes: Vec<ClassRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassRow {
    pub name: String,
    /// The rules in words, or why the stored spec does not parse.
    pub describe: String,
}

/// `cairn class show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassShow {
    pub name: String,
    pub describe: String,
    pub spec: ClassSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassDeleted {
    pub deleted: String,
}

/// `cairn class set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSet {
    pub path: String,
    pub class: String,
    pub outlook: String,
    pub note: String,
}

/// `cairn class get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassGet {
    pub path: String,
    pub class: String,
}

/// Why an admin request failed, on the gateway or on the way there. The
/// message is what the CLI prints after `cairn: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminError {
    #[error("not a JSON request: {why}")]
    NotJson { why: String },
    #[error("the request has no \"cmd\"")]
    NoCommand,
    #[error("unknown command {cmd:?}")]
    UnknownCommand { cmd: String },
    #[error("bad {cmd:?} request: {why}")]
    BadRequest { cmd: String, why: String },
    #[error("{why}")]
    Metadata { why: String },
    #[error("{why}")]
    Mount { dir: PathBuf, why: String },
    #[error("the SMB bridge is off on this gateway; set [smb] listen in its config (or cairn up --smb ADDR:PORT)")]
    SmbOff,
    #[error("{why}")]
    Share { name: String, why: String },
    #[error("this gateway has no chunk stores: nothing to check")]
    NothingToCheck,
    #[error("this gateway has no chunk stores")]
    NoStores,
    #[error("no store named {name:?}; `cairn store list` shows the stores")]
    NoStore { name: String },
    #[error(
        "store {name:?} still holds {held} copies or shards the metadata needs; \
         `cairn store drain {name}` first and wait until `cairn status` shows it empty"
    )]
    StoreHolds { name: String, held: u64 },
    #[error("{why}")]
    BadClass { name: String, why: String },
    #[error("class {name:?} exists; delete it first or pick another name")]
    ClassExists { name: String },
    #[error("no class named {name:?}")]
    NoClass { name: String },
    #[error("no class named {name:?}; see `cairn class list`")]
    NoClassToSet { name: String },
    #[error("the default class cannot be deleted")]
    DefaultClass,
    #[error("class {name:?} is still set on {users} inode(s) or used by chunks; set another class there first")]
    ClassInUse { name: String, users: u64 },
    #[error("{path}: {why}")]
    Path { path: String, why: String },
    #[error("cannot reach the gateway's admin socket {}: {why}; is the gateway running (cairn up / cairn gateway)?", socket.display())]
    Unreachable { socket: PathBuf, why: String },
    #[error("the admin connection failed: {why}")]
    Connection { why: String },
    #[error("the gateway closed the admin connection without answering")]
    NoAnswer,
    #[error("the gateway's answer does not parse: {why}")]
    BadAnswer { why: String },
    #[error("the gateway answered with a {got} reply where a {want} reply was expected")]
    UnexpectedReply { want: String, got: String },
}

/// What a request line that is not a [`Request`] still tells: its command.
#[derive(Deserialize)]
struct Probe {
    cmd: Option<String>,
}

impl Request {
    /// Parses one request line; a bad one becomes the [`AdminError`] that
    /// says what is wrong with it.
    pub fn parse(line: &str) -> Result<Request, AdminError> {
        match serde_json::from_str::<Request>(line) {
            Ok(req) => Ok(req),
            Err(e) => Err(match serde_json::from_str::<Probe>(line) {
                Err(_) => AdminError::NotJson { why: e.to_string() },
                Ok(Probe { cmd: None }) => AdminError::NoCommand,
                Ok(Probe { cmd: Some(cmd) }) if e.to_string().starts_with("unknown variant") => {
                    AdminError::UnknownCommand { cmd }
                }
                Ok(Probe { cmd: Some(cmd) }) => AdminError::BadRequest {
                    cmd,
                    why: e.to_string(),
                },
            }),
        }
    }
}
