//! The `cairn` command line: the commands behind the arguments of
//! [`args`]. `main.rs` only calls [`main`].

mod admin;
mod args;
mod chunkstore;
mod fsck;
mod restore;
mod show;
mod smb;
mod spawn;
mod up;

pub(crate) use admin::admin_call;
pub use args::Cli;
use args::{CacheCmd, Command, SecretCmd};
pub(crate) use args::{ShareCmd, SmbCmd, Target, UserCmd};

use std::net::SocketAddr;
use std::process::ExitCode;

use cairn_config::{ConfigError, GatewayConfig};
use clap::Parser;

use crate::run::{self, StartError};

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.prints_and_exits() {
        output_may_close();
    }
    match cli.command {
        Command::Up {
            data,
            nfs,
            stores,
            grace,
            smb,
            http,
        } => up::up(&data, nfs, stores, grace, smb, http),
        Command::Mount { dir, target } => admin::mount(dir, &target),
        Command::Umount { dir, target } => admin::umount(dir, &target),
        Command::Smb { action } => smb::smb(action),
        Command::Chunkstore { action, config } => chunkstore::chunkstore(action, config),
        Command::Status { target, json } => admin::status(&target, json),
        Command::Store { action } => admin::store(action),
        Command::Class { action } => admin::class(action),
        Command::Cache {
            action: CacheCmd::Drop { target },
        } => admin::cache_drop(&target),
        Command::Gateway {
            config,
            check: false,
        } => match GatewayConfig::load(&config) {
            Ok(cfg) => serve(cfg, None),
            Err(e) => config_error(&e),
        },
        Command::Gateway {
            config,
            check: true,
        } => match GatewayConfig::load(&config) {
            Ok(cfg) => {
                println!(
                    "{}: good; NFSv3 on {}, data in {}, {} stores{}",
                    config.display(),
                    cfg.nfs.listen,
                    cfg.data_dir.display(),
                    cfg.stores.len(),
                    cfg.smb
                        .listen
                        .map(|a| format!(", SMB on {a}"))
                        .unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "cairn", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Manpages { dir } => match manpages(&dir) {
            Ok(n) => {
                println!("wrote {n} manual pages to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cairn manpages: cannot write into {}: {e}", dir.display());
                ExitCode::from(1)
            }
        },
        Command::Secret {
            action: SecretCmd::New { file },
        } => match cairn_chunkstore::Secret::generate_file(&file) {
            Ok(_) => {
                println!(
                    "wrote a new cluster secret to {} (mode 0600); copy it to every store host",
                    file.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) if file.exists() => {
                eprintln!(
                    "cairn secret new: {} exists; a secret is never overwritten (the stores' data depends on it): {e}",
                    file.display()
                );
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("cairn secret new: {e}");
                ExitCode::from(1)
            }
        },
        Command::Restore {
            stores,
            from,
            secret_file,
            data,
            list,
        } => restore::restore(stores, from, secret_file, data, list),
        Command::Fsck {
            config,
            data,
            json,
            deep: true,
            repair,
        } => admin::fsck_deep(&Target { data, config }, json, repair),
        Command::Fsck {
            config, data, json, ..
        } => fsck::local(config, data, json),
    }
}

/// How a user types this program: `cairn` when that name on `PATH` is this
/// binary, else its own path (after `cargo run`, `./target/release/cairn`),
/// so a printed next command works as printed.
pub(crate) fn me() -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "cairn".to_owned();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p)
            .filter_map(|d| std::fs::canonicalize(d.join("cairn")).ok())
            .any(|found| found == exe)
    });
    if on_path {
        return "cairn".to_owned();
    }
    match std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(|p| p.to_owned()))
    {
        Some(rel) => format!("./{}", rel.display()),
        None => exe.display().to_string(),
    }
}

/// Writes `cairn.1` and one page per subcommand (`cairn-up.1`,
/// `cairn-store-drain.1`, …) into `dir`; how many it wrote.
fn manpages(dir: &std::path::Path) -> std::io::Result<usize> {
    fn write(dir: &std::path::Path, cmd: clap::Command, name: &str) -> std::io::Result<usize> {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone().name(name.to_owned())).render(&mut page)?;
        cairn_config::write_durable(&dir.join(format!("{name}.1")), &page)
            .map_err(std::io::Error::other)?;
        let mut n = 1;
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            n += write(dir, sub.clone(), &format!("{name}-{}", sub.get_name()))?;
        }
        Ok(n)
    }
    std::fs::create_dir_all(dir)?;
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    write(dir, cmd, "cairn")
}

pub(crate) fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("cairn: bad config: {e}");
    ExitCode::from(2)
}

pub(crate) fn init_logging(level: &str, format: cairn_config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},cairn_gateway={level}"))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let json = format == cairn_config::LogFormat::Json;
    let text = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
    });
    let json = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        // Warnings and errors for the status page's "recent events".
        .with(crate::http::events::Recent)
        .try_init();
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
    init_logging(cfg.log.level.as_str(), cfg.log.format);
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

impl Command {
    /// A command that prints a reply and exits (not a daemon, not one that
    /// starts daemons or mounts).
    fn prints_and_exits(&self) -> bool {
        matches!(
            self,
            Command::Status { .. }
                | Command::Store { .. }
                | Command::Class { .. }
                | Command::Cache { .. }
                | Command::Fsck { .. }
                | Command::Completions { .. }
                | Command::Secret { .. }
                | Command::Manpages { .. }
        )
    }
}

/// `cairn status | head`: a reader that closes the pipe early ends the
/// command quietly, as with other Unix tools (SIGPIPE's default action),
/// instead of a panic in `println!` (Rust ignores SIGPIPE). Only for
/// commands that print and exit: a daemon must see EPIPE as an error.
fn output_may_close() {
    sigpipe::reset();
}
