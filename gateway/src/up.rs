//! `cairn up`: the embedded default. A gateway in `DIR/gateway/` and N
//! chunk stores, each its own `cairn chunkstore` process in
//! `DIR/stores/NAME/` (hosts a, b, c, …, label hdd), sharing the cluster
//! secret in `DIR/cluster.secret`. Killing a store process is the way to
//! watch cairn cope; stopping `cairn up` stops them all.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use cairn_config::{GatewayConfig, StoreRef};

use crate::cli::{config_error, serve};

/// Set on store processes `cairn up` starts: they stop when that PID is
/// gone, so a `cairn up` killed with -9 leaves no store behind.
pub const PARENT_ENV: &str = "CAIRN_PARENT_PID";

/// In a store started by `cairn up`: a thread that sends this process
/// SIGTERM (a clean shutdown) once the parent is gone.
pub fn exit_with_parent() {
    let Some(parent) = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return;
    };
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        if !Path::new(&format!("/proc/{parent}")).exists() {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::TERM,
            );
            return;
        }
    });
}

/// Stops the store processes when `cairn up` ends, by their PIDs.
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            if let Ok(pid) = i32::try_from(child.id()) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
        }
        for (_, child) in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
) -> ExitCode {
    let gateway_dir = data.join("gateway");
    if let Err(e) = cairn_chunkstore::private::create_dir_all(&gateway_dir) {
        eprintln!("cairn up: cannot create {}: {e}", gateway_dir.display());
        return ExitCode::from(2);
    }
    // Everything below DIR is for this user only (an older layout is fixed
    // here, with a message per change).
    crate::cli::init_logging("info");
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
    let mut children = Children(Vec::new());
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
            match start_store(&exe, data, &name, &secret_path, nfs.ip()) {
                Ok((addr, child)) => {
                    cfg.stores.push(StoreRef {
                        name: name.clone(),
                        address: addr.to_string(),
                    });
                    children.0.push((name, child));
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
    if let Err(e) = cfg.validate() {
        return config_error(&e);
    }
    let config_path = gateway_dir.join("gateway.toml");
    if let Ok(text) = toml::to_string(&cfg) {
        let _ = cairn_chunkstore::private::write_file(&config_path, text.as_bytes());
    }
    let shown = data.display().to_string();
    let pids: Vec<String> = children
        .0
        .iter()
        .map(|(n, c)| format!("{n} (pid {})", c.id()))
        .collect();
    let banner = move |addr: SocketAddr| {
        let (ip, port) = (addr.ip(), addr.port());
        println!("cairn is up: NFSv3 gateway on {addr}, data in {shown}");
        if !pids.is_empty() {
            println!("  stores:     {}", pids.join(", "));
            println!("  status:     cairn status --data {shown}");
        }
        println!("  list it:    nfs-ls 'nfs://{ip}/?nfsport={port}&mountport={port}'");
        println!("  copy in:    nfs-cp ./FILE 'nfs://{ip}//FILE?nfsport={port}&mountport={port}'");
        println!("  Linux:      mount -t nfs -o vers=3,tcp,nolock,port={port},mountport={port} {ip}:/ /mnt/cairn");
        if let Some(smb) = smb {
            println!("  SMB:        share \\\\{}\\cairn on port {} (add a user: cairn smb user add NAME --data {shown})", smb.ip(), smb.port());
        }
        println!("Stop with Ctrl-C.");
    };
    let code = serve(cfg, Some(Box::new(banner)));
    drop(children);
    code
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

/// Writes the store's config, initialises its folder once, and starts it.
fn start_store(
    exe: &Path,
    data: &Path,
    name: &str,
    secret: &Path,
    ip: std::net::IpAddr,
) -> Result<(SocketAddr, Child), String> {
    let dir = data.join("stores").join(name);
    let store_data: PathBuf = dir.join("data");
    cairn_chunkstore::private::create_dir_all(&store_data)
        .map_err(|e| format!("cannot create {}: {e}", store_data.display()))?;
    let port = free_port(ip).map_err(|e| format!("no free port: {e}"))?;
    let addr = SocketAddr::new(ip, port);
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let config = format!(
        "# Written by `cairn up` at every start.\nname = {name:?}\nlisten = \"{addr}\"\ndata_dir = {:?}\nzone = \"local\"\nhost = {name:?}\nlabels = [\"hdd\"]\nreserve = \"256 MiB\"\nsecret_file = {:?}\n",
        abs(&store_data).display().to_string(),
        abs(secret).display().to_string(),
    );
    let config_path = dir.join("store.toml");
    cairn_chunkstore::private::write_file(&config_path, config.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    if !store_data.join("cairn-store.marker").exists() {
        let out = Command::new(exe)
            .args(["chunkstore", "init", "--config"])
            .arg(&config_path)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
    }
    let log = cairn_chunkstore::private::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("store.log"))
        .map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .env(PARENT_ENV, std::process::id().to_string())
        .args(["chunkstore", "--config"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "it exited with {status}; see {}",
                dir.join("store.log").display()
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "it did not listen on {addr} within 15 s; see {}",
                dir.join("store.log").display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((addr, child))
}
