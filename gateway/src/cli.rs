//! The `cairn` command line: argument definitions (clap derive) and the
//! commands behind them. `main.rs` only calls [`main`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cairn_config::{ConfigError, GatewayConfig};
use clap::{Parser, Subcommand};

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
    },
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Up { data, nfs } => up(&data, nfs),
        Command::Gateway { config } => match GatewayConfig::load(&config) {
            Ok(cfg) => serve(cfg, None),
            Err(e) => config_error(&e),
        },
        Command::Fsck { config, data, json } => {
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

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("cairn: bad config: {e}");
    ExitCode::from(2)
}

fn init_logging(level: &str) {
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

fn runtime() -> tokio::runtime::Runtime {
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

fn up(data: &Path, nfs: SocketAddr) -> ExitCode {
    let gateway_dir = data.join("gateway");
    if let Err(e) = std::fs::create_dir_all(&gateway_dir) {
        eprintln!("cairn up: cannot create {}: {e}", gateway_dir.display());
        return ExitCode::from(2);
    }
    let cfg = GatewayConfig::with_defaults(gateway_dir.clone(), nfs);
    if let Err(e) = cfg.validate() {
        return config_error(&e);
    }
    let config_path = gateway_dir.join("gateway.toml");
    if let Ok(text) = toml::to_string(&cfg) {
        let _ = std::fs::write(&config_path, text);
    }
    let data = data.display().to_string();
    let banner = move |addr: SocketAddr| {
        let (ip, port) = (addr.ip(), addr.port());
        println!("cairn is up: NFSv3 gateway on {addr}, data in {data}");
        println!("  list it:    nfs-ls 'nfs://{ip}/?nfsport={port}&mountport={port}'");
        println!("  copy in:    nfs-cp ./FILE 'nfs://{ip}//FILE?nfsport={port}&mountport={port}'");
        println!("  Linux:      mount -t nfs -o vers=3,tcp,nolock,port={port},mountport={port} {ip}:/ /mnt/cairn");
        println!(
            "  same setup: cairn gateway --config {}",
            config_path.display()
        );
        println!("Stop with Ctrl-C.");
    };
    serve(cfg, Some(Box::new(banner)))
}

type Banner = Box<dyn FnOnce(SocketAddr) + Send>;

fn serve(cfg: GatewayConfig, banner: Option<Banner>) -> ExitCode {
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
