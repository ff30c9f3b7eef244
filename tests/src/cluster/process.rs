//! One `cairn` child process with numbered log files, and chunk stores
//! built on it: spawn, readiness, kill -9, SIGTERM, restart, logs.

use super::*;

/// A `cairn` child process: spawned with fixed arguments, stdout and stderr
/// going to `<log_dir>/<stem>-<generation>.{stdout,stderr}`.
pub(super) struct Proc {
    args: Vec<OsString>,
    log_dir: PathBuf,
    stem: String,
    pub(super) child: Option<Child>,
    generation: u32,
}

impl Proc {
    pub(super) fn new(args: Vec<OsString>, log_dir: PathBuf, stem: &str) -> Self {
        Self {
            args,
            log_dir,
            stem: stem.to_owned(),
            child: None,
            generation: 0,
        }
    }

    pub(super) fn log_path(&self, generation: u32, stream: &str) -> PathBuf {
        self.log_dir
            .join(format!("{}-{generation}.{stream}", self.stem))
    }

    pub(super) fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.stem);
        self.generation += 1;
        let stdout = File::create(self.log_path(self.generation, "stdout")).expect("log file");
        let stderr = File::create(self.log_path(self.generation, "stderr")).expect("log file");
        let child = Command::new(cairn_bin())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", cairn_bin().display()));
        self.child = Some(child);
    }

    /// `Some(status)` if the process has exited (it is then reaped and
    /// forgotten).
    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(status)
    }

    pub(super) fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(super) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let status = child.wait().expect("wait for a killed child");
            self.note(&format!("killed with SIGKILL: {status}"));
        }
    }

    pub(super) fn stop(&mut self) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("stop: {} is not running", self.stem));
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "stop: {} had already exited on its own with {status}",
                self.stem
            );
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
                panic!(
                    "{} did not exit within {STOP_DEADLINE:?} of SIGTERM",
                    self.stem
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Appends a harness note to the current run's stderr log.
    pub(super) fn note(&self, what: &str) {
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

    pub(super) fn current_log(&self, stream: &str) -> String {
        std::fs::read_to_string(self.log_path(self.generation, stream)).unwrap_or_default()
    }

    /// Every run's stdout and stderr, labelled.
    pub(super) fn logs(&self) -> String {
        let mut out = String::new();
        for gen in 1..=self.generation {
            for stream in ["stderr", "stdout"] {
                let text = std::fs::read_to_string(self.log_path(gen, stream)).unwrap_or_default();
                if !text.is_empty() {
                    let _ = writeln!(out, "----- {} run {gen} {stream} -----", self.stem);
                    out.push_str(&text);
                    if !text.ends_with('\n') {
                        out.push('\n');
                    }
                }
            }
        }
        out
    }

    /// Every log file this process wrote, raw bytes.
    pub(super) fn raw_logs(&self) -> Vec<(PathBuf, Vec<u8>)> {
        (1..=self.generation)
            .flat_map(|gen| ["stderr", "stdout"].map(|s| self.log_path(gen, s)))
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap_or_default();
                (p, bytes)
            })
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Chunk stores.

/// Identity of one chunk store: the keys of its `store.toml` that tests vary.
#[derive(Clone, Debug)]
pub struct StoreSpec {
    pub name: String,
    pub zone: String,
    pub host: String,
    pub labels: Vec<String>,
    /// `[scrub] every` (none: the default, a week).
    pub scrub_every: Option<String>,
    /// `capacity` (none: the whole file system).
    pub capacity: Option<String>,
}

impl StoreSpec {
    /// A store in zone `z1`.
    pub fn new(name: &str, host: &str, labels: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            zone: "z1".to_owned(),
            host: host.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            scrub_every: None,
            capacity: None,
        }
    }
}

/// A running (or killed) `cairn chunkstore` process and its folder.
pub struct Store {
    pub spec: StoreSpec,
    pub(super) port: u16,
    dir: PathBuf,
    secret: PathBuf,
    pub(super) proc: Proc,
}

impl Store {
    /// A store on its own, no gateway: in `root`, with the secret at
    /// `secret`, for tests that speak to it directly. Killed on drop.
    pub fn standalone(root: &Path, spec: StoreSpec, secret: &Path) -> Store {
        Store::create(root, spec, secret)
    }

    /// Writes the config, runs `cairn chunkstore init`, starts the daemon and
    /// waits until it listens. A port taken meanwhile is replaced (first start
    /// only).
    pub(super) fn create(root: &Path, spec: StoreSpec, secret: &Path) -> Store {
        let dir = root.join("stores").join(&spec.name);
        for sub in ["data", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create store folder");
        }
        let config = dir.join("store.toml");
        let proc = Proc::new(
            vec!["chunkstore".into(), "--config".into(), config.into()],
            dir.join("logs"),
            &format!("store-{}", spec.name),
        );
        let mut store = Store {
            spec,
            port: 0,
            dir,
            secret: secret.to_owned(),
            proc,
        };
        for attempt in 1..=5 {
            store.port = allocate_port();
            store.write_config();
            if attempt == 1 {
                store.init();
            }
            match store.spawn_and_wait() {
                Ok(()) => return store,
                Err(e) if e.contains("Address already in use") && attempt < 5 => {
                    eprintln!(
                        "store {}: port {} was taken, trying another",
                        store.spec.name, store.port
                    );
                }
                Err(e) => panic!(
                    "chunk store {} did not start: {e}\n{}",
                    store.spec.name,
                    store.logs()
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    pub(super) fn write_config(&self) {
        let labels: Vec<String> = self.spec.labels.iter().map(|l| toml_str(l)).collect();
        let mut text = format!(
            "name = {}\nlisten = \"127.0.0.1:{}\"\ndata_dir = {}\nzone = {}\nhost = {}\nlabels = [{}]\nreserve = \"256 MiB\"\nsecret_file = {}\n\n[log]\nlevel = \"debug\"\n",
            toml_str(&self.spec.name),
            self.port,
            toml_str(&self.data_dir().to_string_lossy()),
            toml_str(&self.spec.zone),
            toml_str(&self.spec.host),
            labels.join(", "),
            toml_str(&self.secret.to_string_lossy()),
        );
        if let Some(capacity) = &self.spec.capacity {
            text = text.replacen(
                "\n\n[log]",
                &format!("\ncapacity = {}\n\n[log]", toml_str(capacity)),
                1,
            );
        }
        if let Some(every) = &self.spec.scrub_every {
            text.push_str(&format!("\n[scrub]\nevery = {}\n", toml_str(every)));
        }
        std::fs::write(self.config_path(), text).expect("write store config");
    }

    pub(super) fn init(&self) {
        let mut cmd = Command::new(cairn_bin());
        cmd.arg("chunkstore")
            .arg("init")
            .arg("--config")
            .arg(self.config_path());
        match command::run(cmd, ADMIN_DEADLINE) {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "cairn chunkstore init for {}: {}",
                self.spec.name,
                command::describe(&out)
            ),
            Err(e) => panic!("cairn chunkstore init for {}: {e}", self.spec.name),
        }
    }

    /// Spawns the daemon and waits for its "listening on" line.
    pub(super) fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.proc.spawn();
        let start = Instant::now();
        loop {
            if self.proc.current_log("stdout").contains("listening on") {
                return Ok(());
            }
            if let Some(status) = self.proc.exited() {
                return Err(format!(
                    "exited with {status}: {}",
                    self.proc.current_log("stderr").trim_end()
                ));
            }
            if start.elapsed() > READY_DEADLINE {
                self.proc.kill9();
                return Err(format!("not listening within {READY_DEADLINE:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The store's `data_dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("store.toml")
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.proc.stop()
    }

    /// Starts the daemon again on the same folder, config and port.
    pub fn restart(&mut self) {
        if self.proc.is_running() {
            self.proc.stop();
        }
        if let Err(e) = self.spawn_and_wait() {
            panic!(
                "chunk store {} did not restart: {e}\n{}",
                self.spec.name,
                self.logs()
            );
        }
    }

    /// The chunk objects in the store's own folder (`shards/<hh>/c…`),
    /// leaving out puts in progress (`.<key>.<random>.tmp`) and the
    /// gateway's metadata backups ([`Store::backup_keys`]).
    pub fn shard_keys(&self) -> BTreeSet<String> {
        self.object_keys()
            .into_iter()
            .filter(|n| n.starts_with('c'))
            .collect()
    }

    /// The metadata backup objects (`m…`) in the store's own folder.
    pub fn backup_keys(&self) -> BTreeSet<String> {
        self.object_keys()
            .into_iter()
            .filter(|n| n.starts_with('m'))
            .collect()
    }

    fn object_keys(&self) -> BTreeSet<String> {
        files_below(&self.data_dir().join("shards"))
            .into_iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .filter(|n| !n.starts_with('.'))
            .collect()
    }

    /// Every file in the store's data folder (shards, marker, lock, quarantine).
    pub fn all_files(&self) -> Vec<PathBuf> {
        files_below(&self.data_dir())
    }

    pub fn logs(&self) -> String {
        self.proc.logs()
    }

    pub(super) fn raw_logs(&self) -> Vec<(PathBuf, Vec<u8>)> {
        self.proc.raw_logs()
    }
}
