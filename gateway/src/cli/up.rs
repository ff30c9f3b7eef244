//! `cairn up`: the embedded default. A gateway in `DIR/gateway/` and N
//! chunk stores, each its own `cairn chunkstore` process in
//! `DIR/stores/NAME/` (hosts a, b, c, …, label hdd), sharing the cluster
//! secret in `DIR/cluster.secret`. Killing a store process is the way to
//! watch cairn cope; stopping `cairn up` stops them all.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use cairn_config::{GatewayConfig, StoreConfig, StoreRef};

use super::spawn::{self, Process, SpawnError};
use super::{config_error, serve};

/// Why a store of `cairn up` did not start.
#[derive(Debug, thiserror::Error)]
enum StoreStartError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no free port: {0}")]
    NoPort(#[source] std::io::Error),
    #[error("cannot write its config: {0}")]
    Serialize(#[from] toml::ser::Error),
    #[error(transparent)]
    WriteConfig(#[from] cairn_config::DurableError),
    #[error("cannot run `cairn chunkstore init`: {0}")]
    Init(#[source] std::io::Error),
    #[error("{stderr}")]
    InitFailed { stderr: String },
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("its folder is still in use ({} is held) after {} s; another process runs this store", lock.display(), LET_GO_WITHIN.as_secs())]
    Held { lock: PathBuf },
}

fn store_name(i: usize) -> String {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    if i < letters.len() {
        (letters[i] as char).to_string()
    } else {
        format!("s{i}")
    }
}

fn free_port(ip: std::net::IpAddr) -> std::io::Result<u16> {
    Ok(TcpListener::bind(SocketAddr::new(ip, 0))?
        .local_addr()?
        .port())
}

fn fail(what: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("cairn up: {what}: {e}");
    ExitCode::from(1)
}

pub fn up(
    data: &Path,
    nfs: SocketAddr,
    n_stores: usize,
    grace: cairn_config::Duration,
    smb: Option<SocketAddr>,
    http: Option<SocketAddr>,
) -> ExitCode {
    let gateway_dir = data.join("gateway");
    if let Err(e) = cairn_chunkstore::private::create_dir_all(&gateway_dir) {
        eprintln!("cairn up: cannot create {}: {e}", gateway_dir.display());
        return ExitCode::from(2);
    }
    // A folder another `cairn up` (or gateway) serves is refused before
    // anything in it is touched: its stores keep their ports and configs.
    if lock_held(&gateway_dir.join("gateway.lock")) {
        eprintln!(
            "cairn up: a gateway already runs on {} (its gateway.lock is held); \
             see `cairn status --data {}`, or stop it (Ctrl-C, or SIGTERM to its pid) first",
            data.display(),
            data.display()
        );
        return ExitCode::from(1);
    }
    // `cairn store start` finds this process here, to hand it a store.
    let pid_file = data.join(UP_PID);
    if let Err(e) =
        cairn_config::write_durable(&pid_file, format!("{}\n", std::process::id()).as_bytes())
    {
        eprintln!(
            "cairn up: warning: cannot write {}: {e}",
            pid_file.display()
        );
    }
    // Everything below DIR is for this user only (an older layout is fixed
    // here, with a message per change).
    crate::cli::init_logging("info", cairn_config::LogFormat::Text);
    if let Err(e) =
        cairn_chunkstore::private::secure_and_log(&[data], &up_exceptions(data, smb.is_some()))
    {
        return fail("cannot make the data folder private", e);
    }
    if smb.is_some() {
        // Search only: SMB users pass through to the view, list nothing.
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o711)) {
            return fail("cannot let SMB users reach the data folder", e);
        }
    }
    let mut cfg = GatewayConfig::with_defaults(gateway_dir.clone(), nfs);
    cfg.repair.grace = grace;
    let mut children: Vec<(String, Process)> = Vec::new();
    if n_stores > 0 {
        let secret_path = data.join("cluster.secret");
        if !secret_path.exists() {
            if let Err(e) = cairn_chunkstore::Secret::generate_file(&secret_path) {
                return fail("cannot create the cluster secret", e);
            }
        }
        let exe = match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => return fail("cannot find the cairn binary", e),
        };
        for i in 0..n_stores {
            let name = store_name(i);
            if data.join("stores").join(&name).join(REMOVED_MARK).exists() {
                println!("store {name} was removed (cairn store remove); not starting it");
                continue;
            }
            match start_store(&exe, data, &name, &secret_path, nfs.ip()) {
                Ok((addr, child)) => {
                    cfg.stores.push(StoreRef::cairn(&name, &addr.to_string()));
                    children.push((name, child));
                }
                Err(e) => return fail(&format!("store {name} did not start"), e),
            }
        }
        cfg.cluster.secret_file = Some(secret_path);
    }
    if let Some(addr) = smb {
        cfg.smb.listen = Some(addr);
        cfg.smb.shares = vec![cairn_config::SmbShare {
            name: "cairn".into(),
            path: "/".into(),
        }];
    }
    cfg.http.listen = http;
    if let Err(e) = cfg.validate() {
        return config_error(&e);
    }
    let config_path = gateway_dir.join("gateway.toml");
    // A copy for the reader; the gateway runs from `cfg`, so a failure
    // here is only said.
    let written = toml::to_string(&cfg)
        .map_err(|e| e.to_string())
        .and_then(|text| {
            cairn_config::write_durable(&config_path, text.as_bytes()).map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        eprintln!(
            "cairn up: warning: cannot write {}: {e}",
            config_path.display()
        );
    }
    let shown = data.display().to_string();
    let pids: Vec<String> = children
        .iter()
        .map(|(n, c)| format!("{n} (pid {})", c.id()))
        .collect();
    let me = super::me();
    let banner = move |addr: SocketAddr| {
        let (ip, port) = (addr.ip(), addr.port());
        println!("cairn is up: NFSv3 gateway on {addr}, data in {shown}");
        if !pids.is_empty() {
            println!("  stores:     {}", pids.join(", "));
            println!("  status:     {me} status --data {shown}");
        }
        println!("  list it:    nfs-ls 'nfs://{ip}/?nfsport={port}&mountport={port}'");
        println!("  copy in:    nfs-cp ./FILE 'nfs://{ip}//FILE?nfsport={port}&mountport={port}'");
        println!("  Linux:      mount -t nfs -o vers=3,tcp,nolock,port={port},mountport={port} {ip}:/ /mnt/cairn");
        if let Some(http) = http {
            println!(
                "  web:        http://{http}/ (status page), http://{http}/metrics (Prometheus)"
            );
        }
        if let Some(smb) = smb {
            println!("  SMB:        share \\\\{}\\cairn on port {} (add a user: {me} smb user add NAME --data {shown})", smb.ip(), smb.port());
        }
        println!("Stop with Ctrl-C.");
    };
    let code = serve(cfg, Some(Box::new(banner)));
    let mut processes: Vec<Process> = children.into_iter().map(|(_, p)| p).collect();
    spawn::stop_all(&mut processes);
    let _ = std::fs::remove_file(&pid_file);
    code
}

/// `DIR/up.pid`: the running `cairn up`'s process id.
const UP_PID: &str = "up.pid";

/// `cairn store start NAME --data DIR`: starts store NAME of a `cairn up`
/// folder again under the `cairn up` running there (it follows that
/// process, as the stores it started do), on its configured port.
pub(super) fn start_again(name: &str, target: &super::Target) -> ExitCode {
    let data = target
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from("./cairn-data"));
    let dir = data.join("stores").join(name);
    let config = dir.join("store.toml");
    if !config.is_file() {
        eprintln!(
            "cairn store start: no store {name} in {} (it starts the stores of a `cairn up` folder; a store of your own runs with `cairn chunkstore --config FILE`)",
            data.join("stores").display()
        );
        return ExitCode::from(2);
    }
    if dir.join(REMOVED_MARK).exists() {
        eprintln!(
            "cairn store start: store {name} was removed (cairn store remove); it stays stopped"
        );
        return ExitCode::from(1);
    }
    if lock_held(&dir.join("data").join(cairn_chunkstore::layout::LOCK_FILE)) {
        eprintln!("cairn store start: store {name} already runs");
        return ExitCode::from(1);
    }
    let up = std::fs::read_to_string(data.join(UP_PID))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists());
    let Some(up) = up else {
        eprintln!(
            "cairn store start: no `cairn up` runs on {}; start it with `cairn up --data {}` (it starts every store)",
            data.display(),
            data.display()
        );
        return ExitCode::from(1);
    };
    let addr = match StoreConfig::load(&config) {
        Ok(c) => c.listen,
        Err(e) => return config_error(&e),
    };
    match spawn::start_store_following(&config, addr, Some(&dir.join("store.log")), up) {
        Ok(process) => {
            println!(
                "store {name} runs again (pid {}) on {addr}, under cairn up (pid {up}); the gateway sees it at its next probe",
                process.id()
            );
            process.detach();
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("store {name} did not start"), e),
    }
}

/// What `cairn up` leaves to others: the gateway's SMB folder (Samba sets
/// its own modes), and with SMB on, search access through DIR and
/// DIR/gateway so SMB users reach the FUSE view mounted below.
fn up_exceptions(data: &Path, smb: bool) -> cairn_chunkstore::private::Exceptions {
    let gateway = data.join("gateway");
    cairn_chunkstore::private::Exceptions {
        traverse: if smb {
            vec![data.to_owned(), gateway.clone()]
        } else {
            Vec::new()
        },
        skip: vec![gateway.join("smb")],
    }
}

/// Left in `DIR/stores/NAME/` by `cairn store remove NAME --data DIR`:
/// `cairn up` starts that store no more.
pub(crate) const REMOVED_MARK: &str = "removed";

/// How long a store of an earlier run may take to let go of its folder
/// (stores follow a killed `cairn up` within about a second).
const LET_GO_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Whether another process holds the flock on `path` (a missing file is
/// no lock).
fn lock_held(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    use rustix::fs::{flock, FlockOperation};
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            let _ = flock(&file, FlockOperation::Unlock);
            false
        }
        Err(_) => true,
    }
}

/// Waits (up to [`LET_GO_WITHIN`]) until no process holds the store lock
/// at `lock`, saying so once if it has to wait.
fn wait_let_go(name: &str, lock: &Path) -> Result<(), StoreStartError> {
    let deadline = std::time::Instant::now() + LET_GO_WITHIN;
    let mut said = false;
    while lock_held(lock) {
        if std::time::Instant::now() > deadline {
            return Err(StoreStartError::Held {
                lock: lock.to_owned(),
            });
        }
        if !said {
            println!("waiting for store {name} of an earlier run to stop…");
            said = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// The port of the store's previous run when it is free, so that a store
/// restarted by hand from its `store.toml` and the gateway agree; else a
/// new free one.
fn store_port(config_path: &Path, ip: std::net::IpAddr) -> std::io::Result<u16> {
    let before = std::fs::read_to_string(config_path)
        .ok()
        .and_then(|text| StoreConfig::parse(&text, config_path).ok())
        .map(|cfg| cfg.listen)
        .filter(|addr| addr.ip() == ip && TcpListener::bind(addr).is_ok());
    match before {
        Some(addr) => Ok(addr.port()),
        None => free_port(ip),
    }
}

/// The `store.toml` of store `name` (zone local, host `name`, label hdd).
fn store_config_text(
    name: &str,
    addr: SocketAddr,
    data_dir: PathBuf,
    secret: PathBuf,
) -> Result<String, toml::ser::Error> {
    let mut cfg = StoreConfig::with_defaults(addr, data_dir, "local", name, secret);
    cfg.name = Some(name.to_owned());
    cfg.labels = vec!["hdd".to_owned()];
    cfg.reserve = cairn_config::ByteSize::mib(256);
    Ok(format!(
        "# Written by `cairn up` at every start.\n{}",
        toml::to_string(&cfg)?
    ))
}

/// Writes the store's config, initialises its folder once, and starts it.
fn start_store(
    exe: &Path,
    data: &Path,
    name: &str,
    secret: &Path,
    ip: std::net::IpAddr,
) -> Result<(SocketAddr, Process), StoreStartError> {
    let dir = data.join("stores").join(name);
    let store_data: PathBuf = dir.join("data");
    cairn_chunkstore::private::create_dir_all(&store_data).map_err(|source| {
        StoreStartError::CreateDir {
            path: store_data.clone(),
            source,
        }
    })?;
    wait_let_go(name, &store_data.join(cairn_chunkstore::layout::LOCK_FILE))?;
    let config_path = dir.join("store.toml");
    let port = store_port(&config_path, ip).map_err(StoreStartError::NoPort)?;
    let addr = SocketAddr::new(ip, port);
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let config = store_config_text(name, addr, abs(&store_data), abs(secret))?;
    cairn_config::write_durable(&config_path, config.as_bytes())?;
    if !store_data.join("cairn-store.marker").exists() {
        let out = Command::new(exe)
            .args(["chunkstore", "init", "--config"])
            .arg(&config_path)
            .output()
            .map_err(StoreStartError::Init)?;
        if !out.status.success() {
            return Err(StoreStartError::InitFailed {
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
    }
    let child = spawn::start_store(&config_path, addr, Some(&dir.join("store.log")))?;
    Ok((addr, child))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_config_reads_back_as_written_whatever_its_paths() {
        let addr: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        let data = PathBuf::from("/srv/a \"quoted\" \\ folder/data");
        let secret = PathBuf::from("/srv/cluster.secret");
        let text = store_config_text("b", addr, data.clone(), secret.clone()).unwrap();
        assert!(text.starts_with("# Written by `cairn up`"), "{text}");
        // The end-to-end tests find the port on this line.
        assert!(text.contains("\nlisten = \"127.0.0.1:4567\"\n"), "{text}");
        let cfg = StoreConfig::parse(&text, Path::new("store.toml")).unwrap();
        assert_eq!(cfg.listen, addr);
        assert_eq!(cfg.data_dir, data);
        assert_eq!(cfg.secret_file, secret);
        assert_eq!(cfg.store_name(), "b");
        assert_eq!(cfg.host, "b");
        assert_eq!(cfg.zone, "local");
        assert_eq!(cfg.labels, vec!["hdd".to_owned()]);
        assert_eq!(cfg.reserve, cairn_config::ByteSize::mib(256));
    }
}
