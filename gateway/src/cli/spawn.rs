//! Chunk-store processes the CLI starts for a while (`cairn up`, `cairn
//! restore`): spawned as `cairn chunkstore --config FILE`, waited on until
//! they listen (with a deadline), and stopped by PID when dropped (SIGTERM,
//! then SIGKILL after 10 s). They also follow their parent: a `cairn`
//! killed with -9 leaves no store behind ([`exit_with_parent`]).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Set on the processes started here: they stop when that PID is gone.
pub const PARENT_ENV: &str = "CAIRN_PARENT_PID";

/// How long a store may take to listen.
const READY_WITHIN: Duration = Duration::from_secs(15);
/// How long a stopped store may take to exit before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// Why a store process did not come up.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot find the cairn binary: {0}")]
    Exe(#[source] std::io::Error),
    #[error("cannot open its log {}: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start it: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("it exited with {status}{}", see(log))]
    Exited {
        status: ExitStatus,
        log: Option<PathBuf>,
    },
    #[error("it did not listen on {addr} within {} s{}", READY_WITHIN.as_secs(), see(log))]
    NotListening {
        addr: SocketAddr,
        log: Option<PathBuf>,
    },
}

fn see(log: &Option<PathBuf>) -> String {
    log.as_ref()
        .map(|l| format!("; see {}", l.display()))
        .unwrap_or_default()
}

/// A started process, stopped when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    reaped: bool,
}

impl Process {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Lets it run on after this handle goes (it follows its parent, see
    /// [`exit_with_parent`]).
    pub fn detach(mut self) {
        self.reaped = true;
    }

    /// Sends SIGTERM (a clean shutdown), unless it is reaped already.
    fn terminate(&self) {
        if self.reaped {
            return;
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }

    /// Waits for it to exit (killing it past [`STOP_WITHIN`]) and reaps it.
    fn reap(&mut self) {
        if self.reaped {
            return;
        }
        let deadline = Instant::now() + STOP_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.terminate();
        self.reap();
    }
}

/// Stops every process at once (all get SIGTERM before any is waited on).
pub fn stop_all(processes: &mut [Process]) {
    for p in processes.iter() {
        p.terminate();
    }
    for p in processes.iter_mut() {
        p.reap();
    }
}

/// Runs `cairn chunkstore --config CONFIG` with its output in `log` (or
/// nowhere) until it accepts connections on `addr`.
pub fn start_store(
    config: &Path,
    addr: SocketAddr,
    log: Option<&Path>,
) -> Result<Process, SpawnError> {
    start_store_following(config, addr, log, std::process::id())
}

/// [`start_store`], but the store follows process `parent` instead of this
/// one (`cairn store start` hands a store back to a running `cairn up`).
pub fn start_store_following(
    config: &Path,
    addr: SocketAddr,
    log: Option<&Path>,
    parent: u32,
) -> Result<Process, SpawnError> {
    let exe = std::env::current_exe().map_err(SpawnError::Exe)?;
    let mut command = Command::new(exe);
    command
        .env(PARENT_ENV, parent.to_string())
        .args(["chunkstore", "--config"])
        .arg(config)
        .stdin(Stdio::null());
    match log {
        Some(path) => {
            let log_err = |source| SpawnError::Log {
                path: path.to_owned(),
                source,
            };
            let out = cairn_chunkstore::private::file_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .map_err(log_err)?;
            let err = out.try_clone().map_err(log_err)?;
            command.stdout(out).stderr(err);
        }
        None => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    let process = Process {
        child: command.spawn().map_err(SpawnError::Spawn)?,
        reaped: false,
    };
    wait_listening(process, addr, READY_WITHIN, log)
}

/// Polls `addr` until it accepts a connection; fails (and stops the
/// process) if the process exits or `within` passes first.
fn wait_listening(
    mut process: Process,
    addr: SocketAddr,
    within: Duration,
    log: Option<&Path>,
) -> Result<Process, SpawnError> {
    let deadline = Instant::now() + within;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = process.child.try_wait() {
            process.reaped = true;
            return Err(SpawnError::Exited {
                status,
                log: log.map(Path::to_owned),
            });
        }
        if Instant::now() > deadline {
            let _ = process.child.kill();
            return Err(SpawnError::NotListening {
                addr,
                log: log.map(Path::to_owned),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(process)
}

/// In a store started by `cairn up` or `cairn restore`: a thread that sends
/// this process SIGTERM (a clean shutdown) once the parent is gone.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(secs: &str) -> Process {
        Process {
            child: Command::new("sleep").arg(secs).spawn().unwrap(),
            reaped: false,
        }
    }

    fn alive(pid: u32) -> bool {
        // A zombie is gone for our purpose: read its state.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    }

    #[test]
    fn a_dropped_process_is_stopped() {
        let p = sleeper("30");
        let pid = p.id();
        assert!(alive(pid));
        drop(p);
        assert!(!alive(pid));
    }

    #[test]
    fn a_process_that_exits_before_listening_is_reported() {
        let p = Process {
            child: Command::new("true").spawn().unwrap(),
            reaped: false,
        };
        // Port 1 on loopback: nothing listens there.
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        match wait_listening(p, addr, Duration::from_secs(10), None) {
            Err(SpawnError::Exited { status, .. }) => assert!(status.success()),
            other => panic!("expected Exited, got {other:?}"),
        }
    }

    #[test]
    fn a_process_that_never_listens_is_stopped_at_the_deadline() {
        let p = sleeper("30");
        let pid = p.id();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let log = PathBuf::from("/x/store.log");
        match wait_listening(p, addr, Duration::from_millis(50), Some(&log)) {
            Err(e @ SpawnError::NotListening { .. }) => {
                assert!(e.to_string().contains("see /x/store.log"), "{e}")
            }
            other => panic!("expected NotListening, got {other:?}"),
        }
        assert!(!alive(pid));
    }

    #[test]
    fn a_listening_process_is_ready() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let p = wait_listening(sleeper("30"), addr, Duration::from_secs(10), None).unwrap();
        let mut all = vec![p];
        stop_all(&mut all);
        assert!(all[0].reaped);
    }
}
