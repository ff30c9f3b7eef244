//! Supervision of `smbd`: run in the foreground, where it calls setsid()
//! itself and so leads its own session and process group (on SIGTERM smbd
//! signals its whole group, which must not be ours; spawning it as a group
//! leader already would make that setsid() fail and smbd exit),
//! restarted with a backoff (1 s doubling to 30 s, back to 1 s after a
//! minute of running) when it dies, reloaded with SIGHUP, and stopped with
//! SIGTERM, its leftover `samba-dcerpcd` too (by the PID in its pid file).
//! Processes left by an earlier gateway that died are stopped by their pid
//! files before the first start; smbd is started with a parent-death
//! signal, so a gateway killed with SIGKILL takes it along.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use tracing::{info, warn};

use crate::{Layout, SmbError};

/// What `cairn status` shows of smbd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmbdStatus {
    /// The running smbd's PID, if one runs.
    pub pid: Option<u32>,
    /// How often smbd was started again after dying.
    pub restarts: u64,
}

struct Shared {
    stop: AtomicBool,
    pid: AtomicU32,
    restarts: AtomicU64,
}

/// Runs smbd for as long as it lives; [`Supervisor::stop`] ends it.
pub struct Supervisor {
    layout: Layout,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("layout", &self.layout)
            .finish()
    }
}

fn pid(raw: u32) -> Option<Pid> {
    i32::try_from(raw).ok().and_then(Pid::from_raw)
}

/// The PID in `path` if that process still runs `program`.
fn pid_from_file(path: &Path, program: &str) -> Option<Pid> {
    let raw: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{raw}/comm")).ok()?;
    (comm.trim() == program || program.starts_with(comm.trim())).then_some(())?;
    pid(raw)
}

/// Stops a leftover `program` whose PID is in `<pid dir>/<program>.pid`,
/// waiting up to 10 s for it to go.
fn stop_leftover(layout: &Layout, program: &str) {
    let path = layout.pid_dir().join(format!("{program}.pid"));
    let Some(p) = pid_from_file(&path, program) else {
        return;
    };
    info!(
        program,
        pid = p.as_raw_nonzero().get(),
        "stopping a leftover Samba process"
    );
    let _ = kill_process(p, Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && pid_from_file(&path, program).is_some() {
        std::thread::sleep(Duration::from_millis(50));
    }
    if pid_from_file(&path, program).is_some() {
        let _ = kill_process(p, Signal::KILL);
    }
}

/// smbd's path, from `PATH` (or the sbin folders a root shell has).
fn find_smbd() -> Result<PathBuf, SmbError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("smbd"))
        .find(|p| p.is_file())
        .ok_or_else(|| SmbError::Spawn {
            program: "smbd",
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found in PATH"),
        })
}

/// Starts `smbd` under `setpriv --pdeathsig TERM` (util-linux, on every
/// Debian): smbd gets SIGTERM when the supervisor thread's process dies,
/// even by SIGKILL, and ends its whole group, so no smbd outlives a killed
/// gateway holding the port and the view.
fn spawn_smbd(layout: &Layout, smbd: &Path) -> Result<Child, SmbError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(layout.smbd_log())
        .map_err(|source| SmbError::Write {
            path: layout.smbd_log(),
            source,
        })?;
    let err = log.try_clone().map_err(|source| SmbError::Write {
        path: layout.smbd_log(),
        source,
    })?;
    Command::new("setpriv")
        .args(["--pdeathsig", "TERM", "--"])
        .arg(smbd)
        .args(["--foreground", "--debug-stdout", "-s"])
        .arg(layout.conf())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|source| SmbError::Spawn {
            program: "setpriv",
            source,
        })
}

impl Supervisor {
    /// Starts smbd on the config already written to `layout.conf()`.
    /// Fails if smbd cannot be started at all; later deaths are restarts.
    pub fn start(layout: Layout) -> Result<Supervisor, SmbError> {
        layout.create_dirs()?;
        stop_leftover(&layout, "smbd");
        stop_leftover(&layout, "samba-dcerpcd");
        let smbd = find_smbd()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            pid: AtomicU32::new(0),
            restarts: AtomicU64::new(0),
        });
        // smbd dies with the thread that started it (its parent-death
        // signal), so every start, the first too, is that long-lived thread's.
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let (l, s) = (layout.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("smbd-supervisor".into())
            .spawn(move || match spawn_smbd(&l, &smbd) {
                Ok(first) => {
                    s.pid.store(first.id(), Ordering::SeqCst);
                    info!(pid = first.id(), conf = %l.conf().display(), "smbd started");
                    let _ = started_tx.send(Ok(()));
                    supervise(&l, &s, first, &smbd);
                }
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                }
            })
            .map_err(|source| SmbError::Spawn {
                program: "smbd",
                source,
            })?;
        let started = started_rx.recv().unwrap_or_else(|_| {
            Err(SmbError::Spawn {
                program: "smbd",
                source: std::io::Error::other("the supervisor thread ended"),
            })
        });
        if let Err(e) = started {
            let _ = thread.join();
            return Err(e);
        }
        Ok(Supervisor {
            layout,
            shared,
            thread: Some(thread),
        })
    }

    pub fn status(&self) -> SmbdStatus {
        let raw = self.shared.pid.load(Ordering::SeqCst);
        SmbdStatus {
            pid: (raw != 0).then_some(raw),
            restarts: self.shared.restarts.load(Ordering::SeqCst),
        }
    }

    /// Asks smbd to read its config again (new shares, no restart).
    pub fn reload(&self) {
        if let Some(p) = pid(self.shared.pid.load(Ordering::SeqCst)) {
            let _ = kill_process(p, Signal::HUP);
        }
    }

    /// Stops smbd (SIGTERM; SIGKILL after 10 s) and its samba-dcerpcd, and
    /// waits for the supervisor to end.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        stop_leftover(&self.layout, "samba-dcerpcd");
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn supervise(layout: &Layout, shared: &Shared, first: Child, smbd: &Path) {
    let mut child = Some(first);
    let mut backoff = Duration::from_secs(1);
    loop {
        let Some(mut running) = child.take() else {
            // Waiting out the backoff before a restart.
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
            match spawn_smbd(layout, smbd) {
                Ok(c) => {
                    shared.restarts.fetch_add(1, Ordering::SeqCst);
                    shared.pid.store(c.id(), Ordering::SeqCst);
                    info!(pid = c.id(), "smbd restarted");
                    child = Some(c);
                }
                Err(e) => warn!(cause = %e, retry_in = ?backoff, "smbd could not be started"),
            }
            continue;
        };
        let started = Instant::now();
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                terminate(&mut running);
                shared.pid.store(0, Ordering::SeqCst);
                return;
            }
            match running.try_wait() {
                Ok(Some(status)) => {
                    shared.pid.store(0, Ordering::SeqCst);
                    warn!(%status, log = %layout.smbd_log().display(), "smbd exited; starting it again");
                    // Its children may live on, holding the listening socket.
                    if let Some(p) = pid(running.id()) {
                        end_group(p);
                    }
                    if started.elapsed() > Duration::from_secs(60) {
                        backoff = Duration::from_secs(1);
                    }
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => {
                    warn!(cause = %e, "cannot wait for smbd");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// SIGTERM (smbd passes it to its group), then waits until the whole group
/// is gone: a child serving a session holds the listening socket, and one
/// left behind would keep the port from the next smbd. SIGKILL to the group
/// after 10 s.
fn terminate(child: &mut Child) {
    let Some(p) = pid(child.id()) else {
        return;
    };
    let _ = kill_process(p, Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reaped = false;
    while Instant::now() < deadline {
        if !reaped {
            reaped = matches!(child.try_wait(), Ok(Some(_)));
        }
        if reaped {
            // smbd leads its own group (it called setsid); its children stay in it.
            if !group_alive(p) {
                info!("smbd stopped");
                return;
            }
            let _ = rustix::process::kill_process_group(p, Signal::TERM);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    warn!("smbd did not stop within 10 s; killing its process group");
    let _ = rustix::process::kill_process_group(p, Signal::KILL);
    let _ = child.wait();
}

/// Ends what is left of group `pgid` (SIGTERM, SIGKILL after 10 s).
fn end_group(pgid: Pid) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while group_alive(pgid) {
        if Instant::now() > deadline {
            let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
            return;
        }
        let _ = rustix::process::kill_process_group(pgid, Signal::TERM);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether any process of group `pgid` still runs. Zombies do not count:
/// where PID 1 does not reap, smbd's exited children linger as zombies.
fn group_alive(pgid: Pid) -> bool {
    let want = pgid.as_raw_nonzero().get().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return rustix::process::test_kill_process_group(pgid).is_ok();
    };
    dir.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...; comm may hold spaces, so split after ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).unwrap_or("");
        pgrp == want && state != "Z" && state != "X"
    })
}
