//! The `cairn` command line: the commands behind the arguments of
//! [`args`]. `main.rs` only calls [`main`].

mod admin;
mod args;
mod show;

pub(crate) use admin::admin_call;
pub use args::Cli;
use args::{CacheCmd, Command, StoreAction};
pub(crate) use args::{ShareCmd, SmbCmd, Target, UserCmd};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use cairn_config::{ConfigError, GatewayConfig};
use clap::Parser;

use crate::cache::IngestCache;
use crate::run::{self, StartError};

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
        Command::Mount { dir, target } => admin::mount(dir, &target),
        Command::Umount { dir, target } => admin::umount(dir, &target),
        Command::Smb { action } => crate::smb_cli::smb(action),
        Command::Chunkstore { action, config } => chunkstore(action, config),
        Command::Status { target, json } => admin::status(&target, json),
        Command::Store { action } => admin::store(action),
        Command::Class { action } => admin::class(action),
        Command::Cache {
            action: CacheCmd::Drop { target },
        } => admin::cache_drop(&target),
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
        } => admin::fsck_deep(&Target { data, config }, json, repair),
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
        let lost: Vec<serde_json::Value> = report
            .lost
            .iter()
            .map(|(id, path)| serde_json::json!({"inode": id.0, "path": path}))
            .collect();
        println!(
            "{{\"consistent\":{},\"inodes\":{},\"problems\":[{}],\"cache_tails\":{},\"cache_orphans\":{},\"lost\":{}}}",
            report.consistent(),
            report.inodes,
            problems.join(","),
            report.cache_tails.len(),
            report.cache_orphans.len(),
            serde_json::Value::Array(lost)
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
        for (id, path) in &report.lost {
            let name = path
                .clone()
                .unwrap_or_else(|| format!("(inode {id}, no name)"));
            println!("lost: {name}: data that never reached a chunk store was in a cache that is gone; reading it fails until it is overwritten or deleted");
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
