//! The `cairn` command line's arguments (clap derive): every subcommand,
//! its flags and the `--help` text that teaches them.

use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_config::{ConfigError, GatewayConfig};
use clap::{Parser, Subcommand};

/// cairn pools cheap, scattered storage into one resilient file system,
/// served over NFSv3 by a gateway that keeps the namespace in SQLite and
/// lands every write in a durable local ingest cache.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, propagate_version = true)]
#[command(
    after_help = "Start here:  cairn up            (a gateway on 127.0.0.1:2049, data in ./cairn-data)\n\
Then:        nfs-ls 'nfs://127.0.0.1/?nfsport=2049&mountport=2049'\n\
Production:  cairn gateway --config /etc/cairn/gateway.toml   (see config/examples/gateway.toml)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run cairn on its embedded defaults: a gateway with its data under
    /// DIR/gateway, serving NFSv3 on ADDR:PORT. Prints how to mount it.
    Up {
        /// Folder for all of cairn's state (created if missing).
        #[arg(long, value_name = "DIR", default_value = "./cairn-data")]
        data: PathBuf,
        /// Address and port for NFSv3, MOUNT and portmap (one port for all).
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:2049")]
        nfs: SocketAddr,
        /// How many local chunk stores to run (hosts a, b, c, …; label hdd),
        /// each its own process under DIR/stores/NAME. 0 keeps data in the
        /// gateway's cache only.
        #[arg(long, value_name = "N", default_value_t = 3)]
        stores: usize,
        /// How long a silent store stays suspect before its chunks are
        /// rebuilt on the others (the gateway's `[repair] grace`; e.g. 5s to
        /// watch a repair after killing a store).
        #[arg(long, value_name = "AGE", default_value = "10m")]
        grace: cairn_config::Duration,
        /// Also serve SMB on ADDR:PORT: smbd over the gateway's FUSE view,
        /// with one share, `cairn`, for the whole tree. Add users with
        /// `cairn smb user add NAME --data DIR`.
        #[arg(long, value_name = "ADDR:PORT")]
        smb: Option<SocketAddr>,
        /// Also serve the read-only HTTP endpoint on ADDR:PORT (loopback):
        /// the status page at /, Prometheus metrics at /metrics.
        #[arg(long, value_name = "ADDR:PORT")]
        http: Option<SocketAddr>,
    },
    /// Mount the gateway's FUSE view of the whole tree on DIR (an empty
    /// folder) for local tools; the running gateway serves it until
    /// `cairn umount DIR` or it stops.
    Mount {
        dir: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Unmount a view mounted with `cairn mount`.
    Umount {
        dir: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// The SMB bridge: shares and users.
    Smb {
        #[command(subcommand)]
        action: SmbCmd,
    },
    /// Run a chunk store (one per drive) from its config, or `init` its
    /// data folder first.
    Chunkstore {
        #[command(subcommand)]
        action: Option<StoreAction>,
        /// The store's TOML config (see config/examples/store.toml).
        #[arg(long, env = "CAIRN_STORE_CONFIG", value_name = "FILE", global = true)]
        config: Option<PathBuf>,
    },
    /// Where everything stands: stores, drain backlog, chunk health per
    /// class, cache use.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print JSON (the backlog is the top-level `backlog_bytes`).
        #[arg(long)]
        json: bool,
    },
    /// Chunk stores as the gateway sees them.
    Store {
        #[command(subcommand)]
        action: StoreCmd,
    },
    /// Storage classes: how a directory's data is protected (MooseFS's
    /// mfsscadmin and mfssetsclass).
    Class {
        #[command(subcommand)]
        action: ClassCmd,
    },
    /// The gateway's ingest cache.
    Cache {
        #[command(subcommand)]
        action: CacheCmd,
    },
    /// Run a gateway from a config file. A bad config exits with status 2
    /// and names every field that is wrong. SIGINT and SIGTERM stop it
    /// cleanly; SIGHUP is logged and ignored (the config is read at start).
    Gateway {
        /// The gateway's TOML config (see config/examples/gateway.toml).
        #[arg(long, env = "CAIRN_CONFIG", value_name = "FILE")]
        config: PathBuf,
        /// Check the config and exit (0: good, 2: every problem listed)
        /// without starting anything.
        #[arg(long)]
        check: bool,
    },
    /// Print a shell completion script: `cairn completions bash >
    /// /etc/bash_completion.d/cairn` (zsh: into a folder on $fpath as
    /// `_cairn`; fish: ~/.config/fish/completions/cairn.fish).
    Completions { shell: clap_complete::Shell },
    /// Write the manual pages (cairn.1, cairn-up.1, …) into DIR, from the
    /// same definitions as --help: `cairn manpages /usr/local/share/man/man1`.
    Manpages { dir: PathBuf },
    /// The cluster secret the gateway and every store share.
    Secret {
        #[command(subcommand)]
        action: SecretCmd,
    },
    /// Rebuild a lost gateway's metadata from the backups on the chunk stores.
    ///
    /// `cairn restore --stores ADDR,ADDR,… --secret-file F --data DIR`
    /// (writes DIR/meta.db and DIR/gateway.toml); with bucket stores,
    /// `cairn restore --from gateway.toml --data DIR` (the stores, buckets
    /// included, and the secret from a copy of the lost gateway's config);
    /// or for a `cairn up` folder just `cairn restore --data DIR` (stores
    /// under DIR/stores, secret DIR/cluster.secret, metadata into
    /// DIR/gateway). `--list` shows the generations on the stores and
    /// changes nothing.
    Restore {
        /// Store addresses (HOST:PORT), comma-separated.
        #[arg(long, value_name = "ADDR,…", value_delimiter = ',')]
        stores: Vec<String>,
        /// A gateway config whose [[stores]] tables (buckets too) and
        /// cluster.secret_file say where to restore from; --stores adds
        /// more.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// The cluster secret (the same file the stores use).
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// The new gateway's data folder (must not hold a meta.db), or the
        /// `cairn up` folder when --stores is not given.
        #[arg(long, value_name = "DIR", default_value = "./cairn-data")]
        data: PathBuf,
        /// Only list the generations the stores hold.
        #[arg(long)]
        list: bool,
    },
    /// Check the gateway's metadata; changes nothing.
    ///
    /// Every entry points at a live inode, link counts and parents agree,
    /// the cache lines up. Exit status 0 when consistent, 1 when not, 2 on
    /// a usage error, 3 when it could not check (no metadata there, or
    /// unreadable). Without --config or --data: the `cairn up` folder
    /// ./cairn-data.
    Fsck {
        /// The gateway's config file (or set CAIRN_CONFIG).
        #[arg(long, value_name = "FILE", conflicts_with = "data")]
        config: Option<PathBuf>,
        /// Or the folder given to `cairn up --data`.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Check the metadata against the stores through the running
        /// gateway: every copy or shard is read whole by its store and its
        /// crc compared with the one recorded. Reads everything: slow.
        #[arg(long)]
        deep: bool,
        /// With --deep: hand every bad copy or shard to the repair, which
        /// rebuilds it from the others (`cairn status` shows progress).
        #[arg(long, requires = "deep")]
        repair: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum StoreAction {
    /// Write the drive's marker so the daemon accepts the folder (once per
    /// drive; refuses a folder that holds something else).
    Init,
}

#[derive(Subcommand, Debug)]
pub(crate) enum StoreCmd {
    /// List the stores: online, zone/host/labels, used, free, fill.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// List every stored chunk: its object key, class and the stores
    /// holding a copy.
    Chunks {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Empty a store before retiring it: every copy or shard on it is made
    /// elsewhere first (it keeps serving reads meanwhile), then dropped.
    /// `cairn status` shows what it still holds.
    Drain {
        /// The store's name (`cairn store list`).
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Put a store being drained back in service.
    Undrain {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Start a store of a `cairn up` folder again (after it was killed or
    /// crashed): it runs under the `cairn up` that is running there, on the
    /// port in its DIR/stores/NAME/store.toml.
    Start {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Retire a store; refused while it holds anything the metadata needs
    /// (drain it first). Then take it out of the gateway config.
    Remove {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ClassCmd {
    /// Define a class: `cairn class create archive --replicas 3 --labels hdd,hdd,* --spread host --strict`.
    Create {
        name: String,
        /// Whole copies of every chunk (1-8; default 2).
        #[arg(long)]
        replicas: Option<u8>,
        /// Erasure-code every chunk: K data + M parity shards, each on its own
        /// spread domain; survives the loss of any M (K >= 2, M >= 1, K+M <= 32).
        /// Stores (K+M)/K times the data, e.g. 1.25x for 4+1.
        #[arg(long, value_name = "K+M", conflicts_with = "replicas")]
        ec: Option<String>,
        /// One label rule per copy (`hdd,hdd`, `ssd,*`), or one for all.
        #[arg(long, value_name = "EXPR")]
        labels: Option<String>,
        /// The failure domain copies must not share: store, host or zone.
        #[arg(long)]
        spread: Option<String>,
        /// Leave a chunk undergoal rather than share a domain.
        #[arg(long, conflicts_with = "loose")]
        strict: bool,
        /// Place as wide as possible and report the chunk at risk (default).
        #[arg(long)]
        loose: bool,
        /// Archive transition: re-lay chunks stored longer ago than AGE (e.g.
        /// 30d, 12h, 10s) as erasure-coded shards (needs --archive-ec).
        #[arg(long, value_name = "AGE", requires = "archive_ec")]
        archive_after: Option<String>,
        /// The archive layout: K data + M parity shards (needs --archive-after).
        #[arg(long, value_name = "K+M", requires = "archive_after")]
        archive_ec: Option<String>,
        /// Spread domain of the archived shards (default: the class's --spread).
        #[arg(long, value_name = "DOMAIN", requires = "archive_ec")]
        archive_spread: Option<String>,
        /// Label rules of the archived shards: one for all, or one per shard
        /// (default: the class's single rule, else `*`).
        #[arg(long, value_name = "EXPR", requires = "archive_ec")]
        archive_labels: Option<String>,
        /// When a stable write (FILE_SYNC, COMMIT) is acknowledged: `local`
        /// (fsync'd in the gateway's cache; the default) or `remote` (stored
        /// on a chunk store and the metadata shipped: a lost gateway loses
        /// nothing acknowledged, at the cost of a round trip per sync).
        #[arg(long, value_name = "local|remote")]
        durability: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List the classes.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Show one class.
    Show {
        name: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Delete a class nothing uses.
    Delete {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Set the class of a directory (path inside the export); new files
    /// below inherit it.
    Set {
        path: String,
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Show the class of a path.
    Get {
        path: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum SmbCmd {
    /// Shares: a name clients open and a folder of the tree.
    Share {
        #[command(subcommand)]
        action: ShareCmd,
    },
    /// Users: a Unix account (created if missing) with an SMB password.
    User {
        #[command(subcommand)]
        action: UserCmd,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ShareCmd {
    /// Share the existing folder PATH (from the tree's root, e.g. /media)
    /// as NAME; smbd picks it up without a restart.
    Add {
        name: String,
        path: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum UserCmd {
    /// Add user NAME (or set a new password); the password is the first
    /// line of standard input.
    Add {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum SecretCmd {
    /// Write a new random secret (64 hex characters) to FILE, mode 0600;
    /// an existing FILE is never overwritten. Copy it to every store host
    /// and name it in `[cluster] secret_file` and each store's `secret_file`.
    New { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub(crate) enum CacheCmd {
    /// Evict every drained byte from the ingest cache (undrained data stays).
    Drop {
        #[command(flatten)]
        target: Target,
    },
}

/// Which gateway an admin command talks to: `--config FILE`, `--data DIR`,
/// else the file in `CAIRN_CONFIG`, else `./cairn-data`.
#[derive(clap::Args, Debug)]
pub(crate) struct Target {
    /// The folder given to `cairn up --data` (default ./cairn-data).
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    pub(crate) data: Option<PathBuf>,
    /// The gateway's config file (or set CAIRN_CONFIG).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

impl Target {
    /// The config file named: `--config`, or `CAIRN_CONFIG` when neither
    /// flag is given (a flag on the command line wins over the variable).
    fn config_file(&self) -> Option<PathBuf> {
        match (&self.config, &self.data) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(_)) => None,
            (None, None) => std::env::var_os("CAIRN_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    /// The gateway's config: the file named, or the `gateway.toml` that
    /// `cairn up` wrote into `DIR/gateway/`.
    pub(crate) fn config(&self) -> Result<GatewayConfig, ConfigError> {
        match self.config_file() {
            Some(c) => GatewayConfig::load(&c),
            None => {
                let dir = self
                    .data
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("./cairn-data"));
                GatewayConfig::load(&dir.join("gateway").join("gateway.toml"))
            }
        }
    }

    pub(crate) fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        match (self.config_file(), &self.data) {
            (Some(c), _) => Ok(GatewayConfig::load(&c)?.data_dir),
            (None, Some(d)) => Ok(d.join("gateway")),
            (None, None) => Ok(PathBuf::from("./cairn-data/gateway")),
        }
    }
}
