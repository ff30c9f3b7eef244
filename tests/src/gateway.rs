//! The `cairn gateway` process harness: one temp dir, config file and port per
//! gateway; readiness polled with a deadline; `kill9`, graceful `stop` and
//! `restart` on the same dir and port; killed on drop, with its logs printed
//! when the owning test is panicking.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngExt;
use rustix::process::{kill_process, Pid, Signal};

use crate::command::{self, RunError};

/// How long a gateway may take from spawn to accepting TCP connections.
pub const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long a gateway may take to exit after SIGTERM.
pub const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// How long `cairn fsck` or a rejected-config run may take.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// `[nfs] squash` in the gateway config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Squash {
    None,
    Root,
    All,
}

impl Squash {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Root => "root",
            Self::All => "all",
        }
    }
}

/// The parts of the gateway config (docs/config-spec.md) that tests vary.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// `[nfs] allowed_networks`; `None` leaves the server's default (loopback).
    pub allowed_networks: Option<Vec<String>>,
    pub squash: Squash,
    pub anon_uid: u32,
    pub anon_gid: u32,
    /// `[cache] max_size`, a size with unit.
    pub cache_max_size: String,
    /// `[log] level`.
    pub log_level: String,
    /// `[log] format = "json"`.
    pub log_json: bool,
    /// `[nfs] max_connections`; `None` leaves the default.
    pub nfs_max_connections: Option<u32>,
    /// Run the SMB bridge (`[smb] listen` on 127.0.0.1 and a free port,
    /// one share `cairn` for the whole tree).
    pub smb: bool,
    /// Mount a tmpfs of this many bytes as the data folder (a small disk).
    pub data_disk: Option<u64>,
    /// Serve the HTTP endpoint (`[http] listen`, `cairn up --http`) on
    /// 127.0.0.1 and a free port.
    pub http: bool,
    /// With `http`: a token the endpoint requires (`[http] token_file`,
    /// written 0600 beside the config).
    pub http_token: Option<String>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            allowed_networks: None,
            squash: Squash::None,
            anon_uid: 65534,
            anon_gid: 65534,
            cache_max_size: "2 GiB".into(),
            log_level: "info".into(),
            log_json: false,
            nfs_max_connections: None,
            smb: false,
            data_disk: None,
            http: false,
            http_token: None,
        }
    }
}

/// How the process is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Launch {
    /// `cairn gateway --config <dir>/gateway.toml`
    Config,
    /// `cairn up --data <dir>/up --nfs 127.0.0.1:PORT`
    Up,
}

/// A running (or stopped) `cairn gateway` owned by one test.
pub struct Gateway {
    /// The small disk mounted as the data folder; unmounted before `dir`
    /// is removed.
    disk: Option<crate::disk::SmallDisk>,
    // Dropped after the child is killed (in `drop`).
    dir: tempfile::TempDir,
    launch: Launch,
    options: GatewayOptions,
    port: u16,
    /// smbd's port when `options.smb`.
    smb_port: u16,
    /// The HTTP endpoint's port when `options.http`.
    http_port: u16,
    child: Option<Child>,
    /// How many times the process has been spawned; names the log files.
    generation: u32,
}

impl Gateway {
    /// Starts a gateway with default options and waits until it accepts
    /// connections.
    pub fn start() -> Self {
        Self::start_with(GatewayOptions::default())
    }

    /// Starts a gateway with `options` and waits until it accepts connections.
    pub fn start_with(options: GatewayOptions) -> Self {
        Self::launch(Launch::Config, options)
    }

    /// Starts `cairn up --data DIR --nfs 127.0.0.1:PORT` (DIR not created
    /// beforehand: `up` sets everything up itself) and waits until it accepts
    /// connections. See [`up_dir`](Self::up_dir).
    pub fn start_up() -> Self {
        Self::launch(Launch::Up, GatewayOptions::default())
    }

    /// `cairn up` with `options.smb` as `--smb 127.0.0.1:PORT`; the other
    /// options do not apply to `cairn up`.
    pub fn start_up_with(options: GatewayOptions) -> Self {
        Self::launch(Launch::Up, options)
    }

    /// Started with `cairn up`.
    pub fn is_up(&self) -> bool {
        matches!(self.launch, Launch::Up)
    }

    /// `cairn status --json` of this gateway, naming it as a user would:
    /// `--data DIR` under `cairn up`, else `--config FILE`.
    pub fn status_json(&self) -> serde_json::Value {
        let (flag, path) = match self.is_up() {
            true => ("--data", self.up_dir()),
            false => ("--config", self.config_path()),
        };
        let out = run_cairn(
            &["status", "--json", flag, &path.to_string_lossy()],
            Duration::from_secs(60),
        )
        .expect("cairn status");
        assert!(
            out.status.success(),
            "cairn status: {}",
            command::describe(&out)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// The gateway's own data folder: `DIR/gateway` under `cairn up`, else
    /// the config's `data_dir`.
    pub fn gateway_data_dir(&self) -> PathBuf {
        if self.is_up() {
            self.up_dir().join("gateway")
        } else {
            self.data_dir()
        }
    }

    fn launch(launch: Launch, options: GatewayOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cairn-e2e-")
            .tempdir()
            .expect("create temp dir");
        for sub in ["data", "logs", "scratch"] {
            std::fs::create_dir(dir.path().join(sub)).expect("create temp subdir");
        }
        let disk = options
            .data_disk
            .map(|bytes| crate::disk::SmallDisk::mount(&dir.path().join("data"), bytes));
        let mut gw = Self {
            disk,
            dir,
            launch,
            options,
            port: 0,
            smb_port: 0,
            http_port: 0,
            child: None,
            generation: 0,
        };
        // A port can be taken between our probe and the gateway's bind; only
        // on the very first start is it safe to move to another one.
        for attempt in 1..=5 {
            gw.port = allocate_port();
            if gw.options.smb {
                gw.smb_port = allocate_port();
            }
            if gw.options.http {
                gw.http_port = allocate_port();
            }
            gw.write_config();
            match gw.spawn_and_wait() {
                Ok(()) => return gw,
                Err(StartFailure::AddrInUse) if attempt < 5 => {
                    eprintln!("port {} was taken, trying another", gw.port);
                }
                Err(e) => gw.fail_start(e),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// The HTTP endpoint's port (0 unless started with `http`).
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// smbd's port (0 unless started with `smb`).
    pub fn smb_port(&self) -> u16 {
        self.smb_port
    }

    /// The NFS/MOUNT/portmap port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The gateway's `data_dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The `--data` folder of a gateway started with [`start_up`](Self::start_up).
    pub fn up_dir(&self) -> PathBuf {
        self.dir.path().join("up")
    }

    /// A folder the test may use for local files (nfs-cp sources and targets).
    pub fn scratch(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    /// The config file the gateway was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    pub fn options(&self) -> &GatewayOptions {
        &self.options
    }

    /// Pid of the running process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("gateway is not running").id()
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => c.try_wait().expect("try_wait").is_none(),
        }
    }

    /// Asserts the process is still alive (it did not crash on its own).
    pub fn assert_running(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
        {
            panic!("the gateway exited on its own with {status}");
        }
        assert!(self.child.is_some(), "the gateway is not running");
    }

    /// SIGKILL, then reap. No-op if not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let status = child.wait().expect("wait for killed gateway");
            self.note(&format!("killed with SIGKILL: {status}"));
        }
    }

    /// SIGTERM, then wait for exit (panics if it takes longer than
    /// [`STOP_DEADLINE`]). Returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("stop: gateway is not running");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("stop: the gateway had already exited on its own with {status}");
        }
        kill_process(Pid::from_child(&child), Signal::TERM).expect("send SIGTERM");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.note(&format!("stopped with SIGTERM: {status}"));
                return status;
            }
            if start.elapsed() > STOP_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the gateway did not exit within {STOP_DEADLINE:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the process again on the same data dir, config and port
    /// (stopping it gracefully first if it is running).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.write_config();
        if let Err(e) = self.spawn_and_wait() {
            self.fail_start(e);
        }
    }

    /// The small disk mounted as the data folder (`options.data_disk`).
    pub fn disk(&self) -> &crate::disk::SmallDisk {
        self.disk
            .as_ref()
            .expect("the gateway was started without data_disk")
    }

    /// Starts the (stopped) process again and returns its stderr if it
    /// exits during startup; `Ok` once it accepts connections.
    pub fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "try_start wants the gateway stopped");
        self.write_config();
        match self.spawn_and_wait() {
            Ok(()) => Ok(()),
            Err(StartFailure::Exited(status)) => Err(format!(
                "{status}: {}",
                std::fs::read_to_string(self.log_path(self.generation, "stderr"))
                    .unwrap_or_default()
            )),
            Err(e) => self.fail_start(e),
        }
    }

    /// Changes the options; they apply from the next [`restart`](Self::restart).
    pub fn set_options(&mut self, options: GatewayOptions) {
        self.options = options;
    }

    /// Runs `cairn fsck --config FILE` (the gateway must be stopped).
    pub fn fsck(&self) -> Output {
        assert!(self.child.is_none(), "fsck wants the gateway stopped");
        assert_eq!(self.launch, Launch::Config, "fsck needs a config file");
        let mut cmd = Command::new(cairn_bin());
        cmd.arg("fsck").arg("--config").arg(self.config_path());
        match command::run(cmd, COMMAND_DEADLINE) {
            Ok(out) => out,
            Err(e) => panic!("cairn fsck: {e}"),
        }
    }

    /// One field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`, `VmPeak`, ...).
    pub fn proc_status_kib(&self, field: &str) -> u64 {
        proc_status_kib(self.pid(), field)
    }

    /// Everything the gateway wrote to stderr and stdout, all generations.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for gen in 1..=self.generation {
            for stream in ["stderr", "stdout"] {
                let path = self.log_path(gen, stream);
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if !text.is_empty() {
                    let _ = writeln!(out, "----- gateway run {gen} {stream} -----");
                    out.push_str(&text);
                    if !text.ends_with('\n') {
                        out.push('\n');
                    }
                }
            }
        }
        out
    }

    fn log_path(&self, generation: u32, stream: &str) -> PathBuf {
        self.dir
            .path()
            .join("logs")
            .join(format!("gateway-{generation}.{stream}"))
    }

    /// Appends a harness note to the current run's stderr log, so the printed
    /// logs say where the test killed or stopped the process.
    fn note(&self, what: &str) {
        use std::io::Write;
        if self.generation == 0 {
            return;
        }
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .open(self.log_path(self.generation, "stderr"))
        {
            let _ = writeln!(f, "[cairn-tests harness] {what}");
        }
    }

    fn write_config(&self) {
        if self.launch == Launch::Up {
            return;
        }
        if let Some(token) = &self.options.http_token {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(self.http_token_path())
                .expect("create the HTTP token file");
            std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes())
                .expect("write the HTTP token");
        }
        std::fs::write(self.config_path(), self.config_text()).expect("write gateway config");
    }

    /// The config file text for the current options and port.
    /// Where `[http] token_file` points when `options.http_token` is set.
    fn http_token_path(&self) -> PathBuf {
        self.dir.path().join("http.token")
    }

    pub fn config_text(&self) -> String {
        let o = &self.options;
        let mut text = String::new();
        let _ = writeln!(
            text,
            "data_dir = {}",
            toml_str(&self.data_dir().to_string_lossy())
        );
        let _ = writeln!(text, "\n[nfs]");
        let _ = writeln!(text, "listen = \"127.0.0.1:{}\"", self.port);
        if let Some(nets) = &o.allowed_networks {
            let list: Vec<String> = nets.iter().map(|n| toml_str(n)).collect();
            let _ = writeln!(text, "allowed_networks = [{}]", list.join(", "));
        }
        let _ = writeln!(text, "squash = \"{}\"", o.squash.as_str());
        let _ = writeln!(text, "anon_uid = {}", o.anon_uid);
        let _ = writeln!(text, "anon_gid = {}", o.anon_gid);
        if let Some(max) = o.nfs_max_connections {
            let _ = writeln!(text, "max_connections = {max}");
        }
        let _ = writeln!(text, "\n[cache]");
        let _ = writeln!(text, "max_size = {}", toml_str(&o.cache_max_size));
        let _ = writeln!(text, "\n[log]");
        let _ = writeln!(text, "level = {}", toml_str(&o.log_level));
        if o.log_json {
            let _ = writeln!(text, "format = \"json\"");
        }
        if o.http {
            let _ = writeln!(text, "\n[http]\nlisten = \"127.0.0.1:{}\"", self.http_port);
            if o.http_token.is_some() {
                let path = self.http_token_path();
                let _ = writeln!(text, "token_file = {}", toml_str(&path.to_string_lossy()));
            }
        }
        if o.smb {
            let _ = writeln!(text, "\n[smb]");
            let _ = writeln!(text, "listen = \"127.0.0.1:{}\"", self.smb_port);
            let _ = writeln!(text, "\n[[smb.shares]]\nname = \"cairn\"\npath = \"/\"");
        }
        text
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartFailure> {
        assert!(self.child.is_none(), "gateway already running");
        self.generation += 1;
        let stdout = File::create(self.log_path(self.generation, "stdout")).expect("log file");
        let stderr = File::create(self.log_path(self.generation, "stderr")).expect("log file");
        let mut cmd = Command::new(cairn_bin());
        match self.launch {
            Launch::Config => cmd.arg("gateway").arg("--config").arg(self.config_path()),
            Launch::Up => {
                cmd.arg("up")
                    .arg("--data")
                    .arg(self.up_dir())
                    .arg("--nfs")
                    .arg(self.addr().to_string());
                if self.options.smb {
                    cmd.arg("--smb").arg(format!("127.0.0.1:{}", self.smb_port));
                }
                if self.options.http {
                    cmd.arg("--http")
                        .arg(format!("127.0.0.1:{}", self.http_port));
                }
                &mut cmd
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", cairn_bin().display()));
        self.child = Some(child);
        self.wait_ready()
    }

    /// Polls a TCP connect until it succeeds, the process exits, or the
    /// deadline passes.
    fn wait_ready(&mut self) -> Result<(), StartFailure> {
        let start = Instant::now();
        let addr = self.addr();
        loop {
            let child = self.child.as_mut().expect("child");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                let stderr = std::fs::read_to_string(self.log_path(self.generation, "stderr"))
                    .unwrap_or_default();
                if stderr.contains("in use") || stderr.contains("AddrInUse") {
                    return Err(StartFailure::AddrInUse);
                }
                return Err(StartFailure::Exited(status));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > READY_DEADLINE {
                return Err(StartFailure::NotReady);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn fail_start(&mut self, e: StartFailure) -> ! {
        self.kill9();
        let what = match e {
            StartFailure::AddrInUse => format!("port {} stayed in use", self.port),
            StartFailure::Exited(s) => format!("exited during startup with {s}"),
            StartFailure::NotReady => format!(
                "did not accept connections on {} within {READY_DEADLINE:?}",
                self.addr()
            ),
        };
        let how = match self.launch {
            Launch::Config => format!("config:\n{}", self.config_text()),
            Launch::Up => format!(
                "cairn up --data {} --nfs {}",
                self.up_dir().display(),
                self.addr()
            ),
        };
        panic!("cairn gateway {what}\n{how}\n{}", self.logs());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // With the SMB bridge, a graceful stop ends smbd and unmounts the
        // FUSE view; SIGKILL would leave both behind.
        if self.options.smb {
            if let Some(child) = &self.child {
                let _ = kill_process(Pid::from_child(child), Signal::TERM);
                let start = Instant::now();
                while start.elapsed() < STOP_DEADLINE {
                    match self.child.as_mut().map(Child::try_wait) {
                        Some(Ok(None)) => std::thread::sleep(Duration::from_millis(20)),
                        _ => break,
                    }
                }
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "===== cairn gateway on port {} (dir {}) =====\n{}",
                self.port,
                self.dir.path().display(),
                tail(&self.logs(), 400)
            );
            if std::env::var_os("CAIRN_KEEP_TMP").is_some() {
                let dir = std::mem::replace(
                    &mut self.dir,
                    tempfile::tempdir().expect("placeholder temp dir"),
                );
                eprintln!("kept {}", dir.keep().display());
            }
        }
    }
}

enum StartFailure {
    AddrInUse,
    Exited(ExitStatus),
    NotReady,
}

/// The `cairn` binary: `$CAIRN_BIN`, else `cairn` next to the test
/// executable's `deps/` folder (`target/<profile>/cairn`).
pub fn cairn_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "CAIRN_BIN={} is not a file", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut tried = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("cairn");
        if candidate.is_file() {
            return candidate;
        }
        tried.push(candidate);
    }
    panic!(
        "the cairn binary was not found (looked at {tried:?}): build it with \
         `cargo build -p cairn-gateway` (same profile and target dir as the tests), \
         or point CAIRN_BIN at it"
    );
}

/// Runs `cairn ARGS...` to completion (killed after [`COMMAND_DEADLINE`]).
pub fn run_cairn(args: &[&str], deadline: Duration) -> Result<Output, RunError> {
    let mut cmd = Command::new(cairn_bin());
    cmd.args(args);
    command::run(cmd, deadline)
}

/// A port that is free now and lies below the kernel's ephemeral range, so
/// that no client socket of a concurrent test can take it while a gateway is
/// down between a kill and a restart. Never hands out the same port twice in
/// one test process.
pub fn allocate_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let mut rng = rand::rng();
    for _ in 0..1000 {
        let port = if ephemeral_low > 12_000 {
            rng.random_range(10_000..ephemeral_low)
        } else {
            // No room below the ephemeral range: let the kernel choose.
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("bind 127.0.0.1:0")
        };
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free TCP port found on 127.0.0.1");
}

/// One field of `/proc/PID/status` in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 {
        let _ = writeln!(out, "... ({skip} earlier lines omitted)");
    }
    for l in &all[skip..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}
