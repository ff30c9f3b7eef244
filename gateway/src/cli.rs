//! The `cairn` command line: argument definitions (clap derive) and the
//! commands behind them. `main.rs` only calls [`main`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use cairn_config::{ConfigError, GatewayConfig};
use clap::{Parser, Subcommand};

use serde_json::{json, Value};

use crate::cache::IngestCache;
use crate::run::{self, StartError};

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
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    /// and names every field that is wrong.
    Gateway {
        /// The gateway's TOML config (see config/examples/gateway.toml).
        #[arg(long, env = "CAIRN_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
    /// Check the gateway's metadata: every entry points at a live inode,
    /// link counts and parents agree, the cache lines up. Changes nothing.
    /// Exit status 0 when consistent, 1 when not, 2 on a usage error.
    /// Rebuild a lost gateway's metadata from the backups on the chunk
    /// stores: `cairn restore --stores ADDR,ADDR,… --secret-file F --data DIR`
    /// (writes DIR/meta.db and DIR/gateway.toml), or for a `cairn up` folder
    /// just `cairn restore --data DIR` (stores under DIR/stores, secret
    /// DIR/cluster.secret, metadata into DIR/gateway). `--list` shows the
    /// generations on the stores and changes nothing.
    Restore {
        /// Store addresses (HOST:PORT), comma-separated.
        #[arg(long, value_name = "ADDR,…", value_delimiter = ',')]
        stores: Vec<String>,
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
    Fsck {
        /// The gateway's config file.
        #[arg(
            long,
            env = "CAIRN_CONFIG",
            value_name = "FILE",
            conflicts_with = "data"
        )]
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
enum StoreAction {
    /// Write the drive's marker so the daemon accepts the folder (once per
    /// drive; refuses a folder that holds something else).
    Init,
}

#[derive(Subcommand, Debug)]
enum StoreCmd {
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
    /// Retire a store; refused while it holds anything the metadata needs
    /// (drain it first). Then take it out of the gateway config.
    Remove {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand, Debug)]
enum ClassCmd {
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
enum CacheCmd {
    /// Evict every drained byte from the ingest cache (undrained data stays).
    Drop {
        #[command(flatten)]
        target: Target,
    },
}

/// Which gateway an admin command talks to.
#[derive(clap::Args, Debug)]
pub(crate) struct Target {
    /// The folder given to `cairn up --data` (default ./cairn-data).
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    data: Option<PathBuf>,
    /// The gateway's config file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl Target {
    pub(crate) fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        match (&self.config, &self.data) {
            (Some(c), _) => Ok(GatewayConfig::load(c)?.data_dir),
            (None, Some(d)) => Ok(d.join("gateway")),
            (None, None) => Ok(PathBuf::from("./cairn-data/gateway")),
        }
    }
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            data,
            nfs,
            stores,
            grace,
            smb,
        } => crate::up::up(&data, nfs, stores, grace, smb),
        Command::Mount { dir, target } => {
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            admin_call(&target, json!({"cmd": "mount", "dir": dir}), false, |v| {
                println!(
                    "cairn view mounted on {}",
                    v["mounted"].as_str().unwrap_or("")
                )
            })
        }
        Command::Umount { dir, target } => {
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            admin_call(&target, json!({"cmd": "unmount", "dir": dir}), false, |v| {
                println!("unmounted {}", v["unmounted"].as_str().unwrap_or(""))
            })
        }
        Command::Smb { action } => crate::smb_cli::smb(action),
        Command::Chunkstore { action, config } => chunkstore(action, config),
        Command::Status { target, json } => {
            admin_call(&target, json!({"cmd": "status"}), json, print_status)
        }
        Command::Store {
            action: StoreCmd::List { target, json },
        } => admin_call(&target, json!({"cmd": "store_list"}), json, print_stores),
        Command::Store {
            action: StoreCmd::Drain { name, target },
        } => store_life(&target, "store_drain", &name),
        Command::Store {
            action: StoreCmd::Undrain { name, target },
        } => store_life(&target, "store_undrain", &name),
        Command::Store {
            action: StoreCmd::Remove { name, target },
        } => store_life(&target, "store_remove", &name),
        Command::Store {
            action: StoreCmd::Chunks { target, json },
        } => admin_call(&target, json!({"cmd": "chunks"}), json, |v| {
            for c in v["chunks"].as_array().into_iter().flatten() {
                let stores: Vec<&str> = c["stores"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{} {:<12} {:<9} {}",
                    c["key"].as_str().unwrap_or(""),
                    c["class"].as_str().unwrap_or(""),
                    c["layout"].as_str().unwrap_or(""),
                    stores.join(",")
                );
            }
        }),
        Command::Class { action } => class(action),
        Command::Cache {
            action: CacheCmd::Drop { target },
        } => admin_call(&target, json!({"cmd": "cache_drop"}), false, |v| {
            println!(
                "evicted {} from the cache ({} slots); {} not yet drained stays",
                human(v["evicted_bytes"].as_u64().unwrap_or(0)),
                v["evicted_slots"],
                human(v["undrained_bytes"].as_u64().unwrap_or(0))
            );
        }),
        Command::Gateway { config } => match GatewayConfig::load(&config) {
            Ok(cfg) => serve(cfg, None),
            Err(e) => config_error(&e),
        },
        Command::Restore {
            stores,
            secret_file,
            data,
            list,
        } => restore(stores, secret_file, data, list),
        Command::Fsck {
            config,
            data,
            json,
            deep: true,
            repair,
        } => {
            let target = Target { data, config };
            let mut bad = false;
            let code = admin_call(
                &target,
                json!({"cmd": "fsck_deep", "repair": repair}),
                json,
                |v| {
                    let problems = v["problems"].as_array().cloned().unwrap_or_default();
                    bad = !problems.is_empty();
                    println!("checked {} copies or shards on the stores", v["checked"]);
                    for p in &problems {
                        println!(
                            "  chunk {} shard {} on {} ({}): {}",
                            p["chunk"],
                            p["shard"],
                            p["store"].as_str().unwrap_or(""),
                            p["key"].as_str().unwrap_or(""),
                            p["problem"].as_str().unwrap_or("")
                        );
                    }
                    if repair {
                        println!(
                            "{} handed to the repair; `cairn status` shows its progress",
                            v["queued_for_repair"]
                        );
                    } else if bad {
                        println!(
                            "rerun with --repair to rebuild them from the other copies or shards"
                        );
                    } else {
                        println!("every copy and shard is present and matches its checksum");
                    }
                },
            );
            // Found and not handed to the repair: a failure.
            if code == ExitCode::SUCCESS && bad && !repair {
                ExitCode::from(1)
            } else {
                code
            }
        }
        Command::Fsck {
            config, data, json, ..
        } => {
            let cfg = match (config, data) {
                (Some(path), _) => GatewayConfig::load(&path),
                (None, Some(dir)) => Ok(GatewayConfig::with_defaults(
                    dir.join("gateway"),
                    cairn_config::DEFAULT_LISTEN,
                )),
                (None, None) => {
                    eprintln!("cairn fsck: say which gateway: --config FILE or --data DIR");
                    return ExitCode::from(2);
                }
            };
            match cfg {
                Ok(cfg) => fsck(&cfg, json),
                Err(e) => config_error(&e),
            }
        }
    }
}

pub(crate) fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("cairn: bad config: {e}");
    ExitCode::from(2)
}

pub(crate) fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},cairn_gateway={level}"))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// `cairn restore`.
fn restore(
    stores: Vec<String>,
    secret_file: Option<PathBuf>,
    data: PathBuf,
    list: bool,
) -> ExitCode {
    // A `cairn up` folder: its stores (started here for the restore if they
    // are not running), its secret, its gateway folder.
    let mut started = Vec::new();
    let embedded = stores.is_empty();
    let (stores, secret_file, data_dir, write_config) = if embedded {
        let dir = data.join("stores");
        let mut configs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path().join("store.toml"))
                    .collect()
            })
            .unwrap_or_default();
        configs.sort();
        let mut found = Vec::new();
        for path in configs {
            let Ok(cfg) = cairn_config::StoreConfig::load(&path) else {
                continue;
            };
            if std::net::TcpStream::connect(cfg.listen).is_err() {
                match start_store_for_restore(&path, cfg.listen) {
                    Ok(child) => started.push(child),
                    Err(e) => eprintln!("cairn restore: {e}"),
                }
            }
            found.push(cfg.listen.to_string());
        }
        if found.is_empty() {
            eprintln!(
                "cairn restore: no store configs under {}: pass --stores ADDR,… and --secret-file FILE",
                dir.display()
            );
            return ExitCode::from(2);
        }
        (
            found,
            secret_file.unwrap_or_else(|| data.join("cluster.secret")),
            data.join("gateway"),
            None,
        )
    } else {
        let Some(secret) = secret_file else {
            eprintln!("cairn restore: --stores needs --secret-file FILE (the cluster secret)");
            return ExitCode::from(2);
        };
        let config = data.join("gateway.toml");
        (stores, secret, data.clone(), Some(config))
    };
    let rt = runtime();
    let result = if list {
        rt.block_on(crate::restore::list(&stores, &secret_file))
    } else {
        rt.block_on(crate::restore::restore(&crate::restore::RestorePlan {
            stores,
            secret_file,
            data_dir,
            write_config,
        }))
    };
    for mut child in started {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        );
        let _ = child.wait();
    }
    match result {
        Ok(report) => {
            print!("{report}");
            if embedded && !list {
                println!("start it with: cairn up --data {}", data.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cairn restore: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs `cairn chunkstore --config PATH` until it listens on `addr`.
fn start_store_for_restore(
    path: &std::path::Path,
    addr: std::net::SocketAddr,
) -> Result<std::process::Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(exe)
        .arg("chunkstore")
        .arg("--config")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the store of {}: {e}", path.display()))?;
    for _ in 0..300 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the store of {} exited: {status}", path.display()));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "the store of {} did not listen on {addr}",
        path.display()
    ))
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}

pub(crate) type Banner = Box<dyn FnOnce(SocketAddr) + Send>;

pub(crate) fn serve(cfg: GatewayConfig, banner: Option<Banner>) -> ExitCode {
    init_logging(cfg.log.level.as_str());
    let result = runtime().block_on(run::run(cfg, |addr| {
        if let Some(b) = banner {
            b(addr);
        }
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ StartError::Locked { .. }) => {
            eprintln!("cairn: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("cairn: {e}");
            ExitCode::from(1)
        }
    }
}

fn fsck(cfg: &GatewayConfig, json: bool) -> ExitCode {
    let meta = match cairn_metadata::Metadata::open(&cfg.metadata_path()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cairn fsck: {e}");
            return ExitCode::from(1);
        }
    };
    let cache = match IngestCache::open(&cfg.cache_dir(), cfg.cache.max_size.bytes()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cairn fsck: {e}");
            return ExitCode::from(1);
        }
    };
    let report = match crate::fsck::check(&meta, &cache) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn fsck: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
        let problems: Vec<String> = report
            .problems
            .iter()
            .map(|p| format!("{:?}", p.to_string()))
            .collect();
        println!(
            "{{\"consistent\":{},\"inodes\":{},\"problems\":[{}],\"cache_tails\":{},\"cache_orphans\":{}}}",
            report.consistent(),
            report.inodes,
            problems.join(","),
            report.cache_tails.len(),
            report.cache_orphans.len()
        );
    } else {
        for p in &report.problems {
            println!("problem: {p}");
        }
        if !report.cache_tails.is_empty() || !report.cache_orphans.is_empty() {
            println!(
                "note: {} cache file(s) hold bytes of unacknowledged writes and {} belong to deleted files; the next gateway start trims and removes them",
                report.cache_tails.len(),
                report.cache_orphans.len()
            );
        }
        if report.consistent() {
            println!("consistent: {} inodes checked", report.inodes);
        } else {
            println!(
                "inconsistent: {} problem(s) in {} inodes",
                report.problems.len(),
                report.inodes
            );
        }
    }
    if report.consistent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn chunkstore(action: Option<StoreAction>, config: Option<PathBuf>) -> ExitCode {
    let Some(path) = config else {
        eprintln!(
            "cairn chunkstore: say which store: --config FILE (see config/examples/store.toml)"
        );
        return ExitCode::from(2);
    };
    let cfg = match cairn_config::StoreConfig::load(&path) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    match action {
        Some(StoreAction::Init) => match cairn_chunkstore::init(&cfg) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cairn chunkstore init: {e}");
                ExitCode::from(1)
            }
        },
        None => {
            init_logging(cfg.log.level.as_str());
            crate::up::exit_with_parent();
            match runtime().block_on(cairn_chunkstore::serve(cfg, |addr| {
                println!("cairn chunkstore listening on {addr}");
            })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cairn chunkstore: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Sends one admin request; prints the reply with `show`, or as JSON.
pub(crate) fn admin_call(
    target: &Target,
    req: Value,
    json: bool,
    show: impl FnOnce(&Value),
) -> ExitCode {
    let dir = match target.data_dir() {
        Ok(d) => d,
        Err(e) => return config_error(&e),
    };
    match runtime().block_on(crate::admin::request(&dir, &req)) {
        Ok(mut reply) => {
            if json {
                if let Some(o) = reply.as_object_mut() {
                    o.remove("ok");
                }
                println!("{reply:#}");
            } else {
                show(&reply);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cairn: {e}");
            ExitCode::from(1)
        }
    }
}

fn class(action: ClassCmd) -> ExitCode {
    match action {
        ClassCmd::Create {
            name,
            replicas,
            ec,
            labels,
            spread,
            strict,
            loose,
            archive_after,
            archive_ec,
            archive_spread,
            archive_labels,
            durability,
            target,
        } => admin_call(
            &target,
            json!({"cmd": "class_create", "name": name, "replicas": replicas, "ec": ec, "labels": labels,
                   "spread": spread, "strict": strict, "loose": loose, "archive_after": archive_after,
                   "archive_ec": archive_ec, "archive_spread": archive_spread, "archive_labels": archive_labels,
                   "durability": durability}),
            false,
            |v| {
                println!(
                    "class {} created: {}\n{}",
                    v["class"].as_str().unwrap_or(""),
                    v["describe"].as_str().unwrap_or(""),
                    v["note"].as_str().unwrap_or("")
                )
            },
        ),
        ClassCmd::List { target, json } => {
            admin_call(&target, json!({"cmd": "class_list"}), json, |v| {
                for c in v["classes"].as_array().into_iter().flatten() {
                    println!(
                        "{:<16} {}",
                        c["name"].as_str().unwrap_or(""),
                        c["describe"].as_str().unwrap_or("")
                    );
                }
            })
        }
        ClassCmd::Show { name, target, json } => admin_call(
            &target,
            json!({"cmd": "class_show", "name": name}),
            json,
            |v| {
                println!(
                    "{}: {}",
                    v["name"].as_str().unwrap_or(""),
                    v["describe"].as_str().unwrap_or("")
                );
            },
        ),
        ClassCmd::Delete { name, target } => admin_call(
            &target,
            json!({"cmd": "class_delete", "name": name}),
            false,
            |v| {
                println!("class {} deleted", v["deleted"].as_str().unwrap_or(""));
            },
        ),
        ClassCmd::Set { path, name, target } => admin_call(
            &target,
            json!({"cmd": "class_set", "path": path, "name": name}),
            false,
            |v| {
                println!(
                    "{} now has class {} ({})",
                    v["path"].as_str().unwrap_or(""),
                    v["class"].as_str().unwrap_or(""),
                    v["note"].as_str().unwrap_or("")
                );
            },
        ),
        ClassCmd::Get { path, target, json } => admin_call(
            &target,
            json!({"cmd": "class_get", "path": path}),
            json,
            |v| {
                println!(
                    "{}: {}",
                    v["path"].as_str().unwrap_or(""),
                    v["class"].as_str().unwrap_or("")
                );
            },
        ),
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `cairn store drain|undrain|remove NAME`.
fn store_life(target: &Target, cmd: &str, name: &str) -> ExitCode {
    admin_call(target, json!({"cmd": cmd, "name": name}), false, |v| {
        println!(
            "store {} is {}; it holds {} copies or shards the metadata needs",
            v["store"].as_str().unwrap_or(""),
            v["state"].as_str().unwrap_or(""),
            v["holds"]
        )
    })
}

fn print_stores(v: &Value) {
    println!(
        "{:<10} {:<8} {:<8} {:<8} {:<12} {:>10} {:>10} {:>6}",
        "STORE", "STATE", "ZONE", "HOST", "LABELS", "USED", "FREE", "FILL"
    );
    for s in v["stores"].as_array().into_iter().flatten() {
        let labels: Vec<&str> = s["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "{:<10} {:<8} {:<8} {:<8} {:<12} {:>10} {:>10} {:>5}%",
            s["name"].as_str().unwrap_or(""),
            match s["state"].as_str() {
                Some("online") => "online".to_owned(),
                Some(other) => other.to_uppercase(),
                None => "?".to_owned(),
            },
            s["zone"].as_str().unwrap_or(""),
            s["host"].as_str().unwrap_or(""),
            labels.join(","),
            human(s["used"].as_u64().unwrap_or(0)),
            human(s["free"].as_u64().unwrap_or(0)),
            s["fill_percent"].as_f64().unwrap_or(0.0)
        );
    }
}

fn print_status(v: &Value) {
    print_stores(v);
    let smb = &v["smb"];
    if !smb.is_null() {
        let shares: Vec<String> = smb["shares"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                format!(
                    "{} ({})",
                    s["name"].as_str().unwrap_or(""),
                    s["path"].as_str().unwrap_or("")
                )
            })
            .collect();
        println!(
            "\nsmb: {} on {}, view {}, {} client(s), {} restart(s); shares: {}",
            match smb["pid"].as_u64() {
                Some(pid) => format!("smbd running (pid {pid})"),
                None => "smbd NOT running".to_owned(),
            },
            smb["listen"].as_str().unwrap_or(""),
            if smb["view_mounted"].as_bool() == Some(true) {
                "mounted"
            } else {
                "NOT mounted"
            },
            smb["clients"]
                .as_u64()
                .map_or("?".to_owned(), |n| n.to_string()),
            smb["restarts"].as_u64().unwrap_or(0),
            if shares.is_empty() {
                "none".to_owned()
            } else {
                shares.join(", ")
            }
        );
    }
    let b = &v["backlog"];
    println!(
        "\ndrain backlog: {} in {} file(s), oldest waiting {}",
        human(b["bytes"].as_u64().unwrap_or(0)),
        b["files"],
        b["oldest_seconds"]
            .as_f64()
            .map_or("-".to_owned(), |s| format!("{s:.1} s"))
    );
    println!(
        "cache: {} used of {}",
        human(v["cache"]["used_bytes"].as_u64().unwrap_or(0)),
        human(v["cache"]["max_bytes"].as_u64().unwrap_or(0))
    );
    println!(
        "\n{:<16} {:>8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>10} {:>6}  LAYOUT",
        "CLASS",
        "HEALTHY",
        "UNDERGOAL",
        "AT RISK",
        "ENDANGERED",
        "MISSING",
        "LOGICAL",
        "STORED",
        "RATIO"
    );
    for c in v["classes"].as_array().into_iter().flatten() {
        let k = &c["chunks"];
        println!(
            "{:<16} {:>8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>10} {:>6}  {}",
            c["name"].as_str().unwrap_or(""),
            k["healthy"].as_u64().unwrap_or(0),
            k["undergoal"].as_u64().unwrap_or(0),
            k["at_risk"].as_u64().unwrap_or(0),
            k["endangered"].as_u64().unwrap_or(0),
            k["missing"].as_u64().unwrap_or(0),
            human(c["logical_bytes"].as_u64().unwrap_or(0)),
            human(c["stored_bytes"].as_u64().unwrap_or(0)),
            format!("{:.2}x", c["stored_ratio"].as_f64().unwrap_or(0.0)),
            c["describe"].as_str().unwrap_or("")
        );
    }
    for c in v["classes"].as_array().into_iter().flatten() {
        if let Some(why) = c["why"].as_str() {
            println!("  {}: {why}", c["name"].as_str().unwrap_or(""));
        }
    }
    let k = &v["backup"];
    if k.is_object() {
        println!(
            "\nmetadata backup: generation {}, {} changeset(s) since its snapshot, on {}; recovery point {}",
            k["generation"].as_str().unwrap_or("-"),
            k["changesets"],
            k["stores"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
            k["recovery_point_seconds"]
                .as_f64()
                .map_or("never shipped".to_owned(), |s| format!("{s:.1} s ago")),
        );
        if let Some(w) = k["warning"].as_str() {
            println!("  WARNING: {w}");
        }
    }
    let r = &v["repair"];
    if r.is_object() {
        let eta = r["eta_seconds"]
            .as_f64()
            .map_or("-".to_owned(), |s| format!("{s:.0} s"));
        println!(
            "\nrepair: {} chunk(s) waiting ({}), {} cannot be repaired now; {} repaired ({}) so far; {}/s; ETA {eta}",
            r["waiting_chunks"],
            human(r["waiting_bytes"].as_u64().unwrap_or(0)),
            r["stuck_chunks"],
            r["repaired_chunks"],
            human(r["repaired_bytes"].as_u64().unwrap_or(0)),
            human(r["bytes_per_second"].as_f64().unwrap_or(0.0) as u64),
        );
        let b = &r["rebalance"];
        println!(
            "rebalance: fills {} points apart (moves while over {}); {} copies moved ({})",
            b["fill_spread_points"],
            b["target_points"],
            b["moved_chunks"],
            human(b["moved_bytes"].as_u64().unwrap_or(0)),
        );
    }
}
