//! A whole cairn cluster of real processes: chunk stores (`cairn chunkstore`,
//! each initialised in its own folder), one `cairn gateway` whose config lists
//! them, the cluster secret file, the admin CLI (`cairn status`, `class`,
//! `store`, `cache drop`) with its JSON parsed, the stores' own shard folders,
//! a [`RecordingProxy`] to put between the gateway and one store, and an
//! emulated WAN link ([`crate::wan`]) in front of every store on request.
//!
//! Same promises as [`crate::gateway`]: one temp dir per cluster, ports below
//! the ephemeral range, readiness polled with deadlines (never a fixed sleep),
//! every process killed on drop, and every process's logs printed when the
//! owning test panics (`CAIRN_KEEP_TMP=1` keeps the folder).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;

use crate::client::{Creds, Nfs};
use crate::command;
use crate::gateway::{allocate_port, cairn_bin, toml_str, READY_DEADLINE, STOP_DEADLINE};
use crate::wan::{WanProxy, WanSpec};

/// How long one admin CLI call may take.
pub const ADMIN_DEADLINE: Duration = Duration::from_secs(30);
/// How often conditions are polled.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// Polls `check` every [`POLL_EVERY`] until it returns `Ok`, and panics with
/// its last `Err` once `deadline` has passed.
pub fn poll_until<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) => {
                if start.elapsed() > deadline {
                    panic!("{what}: not reached within {deadline:?}; last: {last}");
                }
            }
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack.len() >= needle.len()
        && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file below `dir`, recursively, sorted.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                todo.push(e.path());
            } else if kind.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

mod process;
mod proxy;

use process::Proc;
pub use process::{Store, StoreSpec};
pub use proxy::{RecordingProxy, Relayed};

// ---------------------------------------------------------------------------
// The cluster.

/// What a test chooses about its cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub stores: Vec<StoreSpec>,
    /// `[drain] quiet`.
    pub quiet: String,
    /// `[drain] chunk_size`.
    pub chunk_size: String,
    /// `[log] level` of the gateway.
    pub log_level: String,
    /// A store the gateway reaches through a [`RecordingProxy`].
    pub proxied_store: Option<String>,
    /// More stores reached through a proxy each (see [`Cluster::proxy_of`]).
    pub also_proxied: Vec<String>,
    /// Lines of the gateway's `[repair]` section (empty: the defaults).
    pub repair: String,
    /// Lines of the gateway's `[backup]` section (empty: the defaults).
    pub backup: String,
    /// Mount a tmpfs of this many bytes as the gateway's data folder.
    pub gateway_disk: Option<u64>,
    /// Lines of the gateway's `[read]` section (empty: the defaults).
    pub read: String,
    /// More lines of the gateway's `[drain]` section (e.g. `store_bandwidth`).
    pub drain: String,
    /// Every store reached through its own emulated WAN link (the seed
    /// advanced per store; see [`Cluster::wan_of`]).
    pub wan: Option<WanSpec>,
    /// Bucket stores (`kind = "s3"`), after the `cairn chunkstore` ones.
    pub buckets: Vec<BucketStore>,
}

/// A `kind = "s3"` store: its name and the rest of its `[[stores]]` table
/// (see [`crate::garage::Garage::store_table`]).
#[derive(Clone, Debug)]
pub struct BucketStore {
    pub name: String,
    pub table: String,
    /// Whether [`Cluster::start`] waits for it to be online (false for a
    /// test of wrong settings).
    pub online: bool,
}

impl ClusterOptions {
    /// The given stores, a 1 s quiet, 32 MiB chunks, info logs, no proxy.
    pub fn new(stores: Vec<StoreSpec>) -> Self {
        Self {
            stores,
            quiet: "1s".into(),
            chunk_size: "32 MiB".into(),
            log_level: "info".into(),
            proxied_store: None,
            also_proxied: Vec::new(),
            repair: String::new(),
            backup: String::new(),
            gateway_disk: None,
            read: String::new(),
            drain: String::new(),
            wan: None,
            buckets: Vec::new(),
        }
    }

    /// Every store behind its own emulated link of `spec`.
    pub fn wan(mut self, spec: WanSpec) -> Self {
        self.wan = Some(spec);
        self
    }
}

/// One chunk as `cairn store chunks --json` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    pub key: String,
    pub class: String,
    /// `replicas` or `ec K+M`.
    pub layout: String,
    /// Store names, one per copy or shard.
    pub stores: Vec<String>,
    /// `(store, object key)` per copy or shard: an erasure-coded chunk's
    /// shards each have their own key.
    pub objects: Vec<(String, String)>,
}

/// Chunk stores and one gateway, all real processes, in one temp dir.
pub struct Cluster {
    /// Unmounted (after `drop` killed the processes) before `root` goes.
    _disk: Option<crate::disk::SmallDisk>,
    root: tempfile::TempDir,
    options: ClusterOptions,
    secret_path: PathBuf,
    stores: Vec<Store>,
    proxy: Option<RecordingProxy>,
    /// The proxies of [`ClusterOptions::also_proxied`], by store name.
    more_proxies: BTreeMap<String, RecordingProxy>,
    /// The emulated links of [`ClusterOptions::wan`], by store name.
    wans: BTreeMap<String, WanProxy>,
    gateway: Proc,
    gateway_port: u16,
}

impl Cluster {
    /// Writes the secret, starts every store, then the gateway, and waits
    /// until the gateway accepts NFS connections and sees every store online.
    pub fn start(options: ClusterOptions) -> Self {
        let root = tempfile::Builder::new()
            .prefix("cairn-cluster-")
            .tempdir()
            .expect("create temp dir");
        let secret_path = root.path().join("cluster.secret");
        write_secret(&secret_path, &random_hex(32));
        for sub in ["gateway/data", "gateway/logs", "scratch"] {
            std::fs::create_dir_all(root.path().join(sub)).expect("create cluster folder");
        }
        let disk = options
            .gateway_disk
            .map(|bytes| crate::disk::SmallDisk::mount(&root.path().join("gateway/data"), bytes));
        let config = root.path().join("gateway/gateway.toml");
        let gateway = Proc::new(
            vec!["gateway".into(), "--config".into(), config.into()],
            root.path().join("gateway/logs"),
            "gateway",
        );
        let mut cluster = Cluster {
            _disk: disk,
            root,
            options: options.clone(),
            secret_path,
            stores: Vec::new(),
            proxy: None,
            more_proxies: BTreeMap::new(),
            wans: BTreeMap::new(),
            gateway,
            gateway_port: 0,
        };
        for spec in options.stores {
            let store = Store::create(cluster.root.path(), spec, &cluster.secret_path);
            cluster.stores.push(store);
        }
        if let Some(name) = &options.proxied_store {
            let target = cluster.store(name).addr();
            cluster.proxy = Some(RecordingProxy::start(target));
        }
        for name in &options.also_proxied {
            let target = cluster.store(name).addr();
            cluster
                .more_proxies
                .insert(name.clone(), RecordingProxy::start(target));
        }
        if let Some(spec) = &options.wan {
            for (i, s) in cluster.stores.iter().enumerate() {
                let link = spec.reseeded(spec.seed.wrapping_add(i as u64));
                let wan = WanProxy::start(s.addr(), link);
                cluster.wans.insert(s.spec.name.clone(), wan);
            }
        }
        for attempt in 1..=5 {
            cluster.gateway_port = allocate_port();
            cluster.write_gateway_config();
            match cluster.spawn_gateway() {
                Ok(()) => break,
                Err(e) if e.contains("in use") && attempt < 5 => {
                    eprintln!("port {} was taken, trying another", cluster.gateway_port);
                }
                Err(e) => panic!("cairn gateway did not start: {e}"),
            }
        }
        let names: Vec<String> = cluster.stores.iter().map(|s| s.spec.name.clone()).collect();
        let buckets = cluster
            .options
            .buckets
            .iter()
            .filter(|b| b.online)
            .map(|b| b.name.clone());
        for name in names.into_iter().chain(buckets) {
            cluster.wait_store_online(&name, true, READY_DEADLINE);
        }
        cluster
    }

    /// The gateway config text: the fixed parts, then `[[stores]]` last.
    pub fn gateway_config_text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "data_dir = {}",
            toml_str(&self.gateway_data_dir().to_string_lossy())
        );
        let _ = writeln!(t, "\n[nfs]\nlisten = \"127.0.0.1:{}\"", self.gateway_port);
        let _ = writeln!(t, "\n[cache]\nmax_size = \"2 GiB\"");
        let _ = writeln!(t, "\n[log]\nlevel = {}", toml_str(&self.options.log_level));
        let _ = writeln!(
            t,
            "\n[cluster]\nsecret_file = {}",
            toml_str(&self.secret_path.to_string_lossy())
        );
        let _ = writeln!(
            t,
            "\n[drain]\nquiet = {}\nchunk_size = {}",
            toml_str(&self.options.quiet),
            toml_str(&self.options.chunk_size)
        );
        if !self.options.drain.is_empty() {
            let _ = writeln!(t, "{}", self.options.drain);
        }
        if !self.options.repair.is_empty() {
            let _ = writeln!(t, "\n[repair]\n{}", self.options.repair);
        }
        if !self.options.backup.is_empty() {
            let _ = writeln!(t, "\n[backup]\n{}", self.options.backup);
        }
        if !self.options.read.is_empty() {
            let _ = writeln!(t, "\n[read]\n{}", self.options.read);
        }
        for s in &self.stores {
            let address = match (&self.proxy, &self.options.proxied_store) {
                (Some(p), Some(n)) if *n == s.spec.name => p.addr(),
                _ => match self.wans.get(&s.spec.name) {
                    Some(wan) => wan.addr(),
                    None => self
                        .more_proxies
                        .get(&s.spec.name)
                        .map_or_else(|| s.addr(), RecordingProxy::addr),
                },
            };
            let _ = writeln!(
                t,
                "\n[[stores]]\nname = {}\naddress = \"{address}\"",
                toml_str(&s.spec.name)
            );
        }
        for b in &self.options.buckets {
            let _ = writeln!(t, "\n[[stores]]\nname = {}\n{}", toml_str(&b.name), b.table);
        }
        t
    }

    fn write_gateway_config(&self) {
        std::fs::write(self.config_path(), self.gateway_config_text())
            .expect("write gateway config");
    }

    fn spawn_gateway(&mut self) -> Result<(), String> {
        self.gateway.spawn();
        let addr = self.gateway_addr();
        let start = Instant::now();
        loop {
            if let Some(status) = self.gateway.exited() {
                return Err(format!(
                    "exited during startup with {status}: {}",
                    self.gateway.current_log("stderr").trim_end()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > READY_DEADLINE {
                self.gateway.kill9();
                return Err(format!(
                    "did not accept connections on {addr} within {READY_DEADLINE:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A folder for the test's own files.
    pub fn scratch(&self) -> PathBuf {
        self.root.path().join("scratch")
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.path().join("gateway/gateway.toml")
    }

    pub fn gateway_data_dir(&self) -> PathBuf {
        self.root.path().join("gateway/data")
    }

    /// The ingest cache folder (the config's default, `<data_dir>/cache`).
    pub fn cache_dir(&self) -> PathBuf {
        self.gateway_data_dir().join("cache")
    }

    pub fn gateway_port(&self) -> u16 {
        self.gateway_port
    }

    pub fn gateway_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.gateway_port))
    }

    pub fn secret_path(&self) -> &Path {
        &self.secret_path
    }

    /// The secret file's text without surrounding whitespace (64 hex digits).
    pub fn secret_text(&self) -> String {
        std::fs::read_to_string(&self.secret_path)
            .expect("read the secret")
            .trim()
            .to_owned()
    }

    pub fn stores(&self) -> &[Store] {
        &self.stores
    }

    pub fn store(&self, name: &str) -> &Store {
        self.stores
            .iter()
            .find(|s| s.spec.name == name)
            .unwrap_or_else(|| panic!("no store named {name}"))
    }

    pub fn store_mut(&mut self, name: &str) -> &mut Store {
        self.stores
            .iter_mut()
            .find(|s| s.spec.name == name)
            .unwrap_or_else(|| panic!("no store named {name}"))
    }

    pub fn proxy(&self) -> &RecordingProxy {
        self.proxy.as_ref().expect("the cluster has no proxy")
    }

    /// The proxy in front of store `name` ([`ClusterOptions::proxied_store`]
    /// or one of [`ClusterOptions::also_proxied`]).
    pub fn proxy_of(&self, name: &str) -> &RecordingProxy {
        match (&self.proxy, &self.options.proxied_store) {
            (Some(p), Some(n)) if n == name => p,
            _ => self
                .more_proxies
                .get(name)
                .unwrap_or_else(|| panic!("store {name} is not behind a proxy")),
        }
    }

    /// The emulated link in front of store `name` ([`ClusterOptions::wan`]).
    pub fn wan_of(&self, name: &str) -> &WanProxy {
        self.wans
            .get(name)
            .unwrap_or_else(|| panic!("store {name} is not behind an emulated link"))
    }

    /// Mounts the export as root.
    pub async fn mount(&self) -> Nfs {
        match Nfs::connect(self.gateway_addr(), Creds::root()).await {
            Ok(nfs) => nfs,
            Err(e) => panic!("mount / on {}: {e}", self.gateway_addr()),
        }
    }

    pub fn gateway_pid(&self) -> Option<u32> {
        self.gateway.pid()
    }

    /// Asserts the gateway has not exited on its own.
    pub fn assert_gateway_running(&mut self) {
        if let Some(status) = self.gateway.exited() {
            panic!("the gateway exited on its own with {status}");
        }
        assert!(self.gateway.child.is_some(), "the gateway is not running");
    }

    pub fn kill9_gateway(&mut self) {
        self.gateway.kill9();
    }

    /// SIGTERM to the gateway, then wait for its exit.
    pub fn stop_gateway(&mut self) -> ExitStatus {
        self.gateway.stop()
    }

    /// Adds a store to the running cluster: starts it, lists it in the
    /// gateway's config and restarts the gateway, then waits until the
    /// gateway sees every store online.
    pub fn add_store(&mut self, spec: StoreSpec) {
        let name = spec.name.clone();
        let store = Store::create(self.root.path(), spec, &self.secret_path);
        self.stores.push(store);
        self.stop_gateway();
        self.write_gateway_config();
        self.start_gateway();
        // Every store, not only the new one: a restarted gateway sees each
        // store online only once it has probed it.
        let names: Vec<String> = self.stores.iter().map(|s| s.spec.name.clone()).collect();
        for n in names.iter().chain(std::iter::once(&name)) {
            self.wait_store_online(n, true, READY_DEADLINE);
        }
    }

    /// Starts the (stopped) gateway again on the same folder, config and port.
    pub fn start_gateway(&mut self) {
        if let Err(e) = self.spawn_gateway() {
            panic!("cairn gateway did not restart: {e}");
        }
    }

    /// Runs `cairn ARGS... --config FILE`; the output, whatever the status.
    pub fn cairn_raw(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(cairn_bin());
        cmd.args(args).arg("--config").arg(self.config_path());
        match command::run(cmd, ADMIN_DEADLINE) {
            Ok(out) => out,
            Err(e) => panic!("cairn {args:?}: {e}"),
        }
    }

    /// Runs `cairn ARGS... --config FILE` and returns its stdout; panics
    /// unless it succeeds.
    pub fn cairn(&self, args: &[&str]) -> String {
        self.try_cairn(args)
            .unwrap_or_else(|e| panic!("cairn {args:?}: {e}"))
    }

    /// Like [`cairn`](Self::cairn), returning a failure as `Err`.
    pub fn try_cairn(&self, args: &[&str]) -> Result<String, String> {
        let out = self.cairn_raw(args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(command::describe(&out))
        }
    }

    /// Runs `cairn ARGS... --json --config FILE` and parses its stdout.
    pub fn try_cairn_json(&self, args: &[&str]) -> Result<Value, String> {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.try_cairn(&all)?;
        serde_json::from_str(&text)
            .map_err(|e| format!("cairn {all:?} printed no JSON ({e}): {text}"))
    }

    pub fn cairn_json(&self, args: &[&str]) -> Value {
        self.try_cairn_json(args)
            .unwrap_or_else(|e| panic!("cairn {args:?} --json: {e}"))
    }

    /// `cairn status --json`.
    pub fn status(&self) -> Value {
        self.cairn_json(&["status"])
    }

    /// `cairn class create NAME FLAGS...`.
    pub fn class_create(&self, name: &str, flags: &[&str]) {
        let mut args = vec!["class", "create", name];
        args.extend_from_slice(flags);
        self.cairn(&args);
    }

    /// `cairn class set PATH NAME`, then checks `cairn class get PATH` agrees.
    pub fn class_set(&self, path: &str, name: &str) {
        self.cairn(&["class", "set", path, name]);
        let got = self.cairn_json(&["class", "get", path]);
        assert_eq!(
            got["class"], name,
            "cairn class get {path} after class set: {got}"
        );
    }

    /// `cairn cache drop`; returns what it printed.
    pub fn cache_drop(&self) -> String {
        self.cairn(&["cache", "drop"])
    }

    /// `cairn store chunks --json`.
    pub fn chunks(&self) -> Vec<ChunkInfo> {
        let v = self.cairn_json(&["store", "chunks"]);
        let list = v["chunks"]
            .as_array()
            .unwrap_or_else(|| panic!("store chunks --json has no chunks array: {v}"));
        list.iter()
            .map(|c| ChunkInfo {
                key: c["key"].as_str().unwrap_or_default().to_owned(),
                class: c["class"].as_str().unwrap_or_default().to_owned(),
                layout: c["layout"].as_str().unwrap_or_default().to_owned(),
                objects: c["shards"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| {
                        let text = |k: &str| o[k].as_str().unwrap_or_default().to_owned();
                        (text("store"), text("key"))
                    })
                    .collect(),
                stores: c["stores"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            })
            .collect()
    }

    /// `backlog_bytes` of `cairn status --json`.
    pub fn backlog_bytes(&self) -> Result<u64, String> {
        let v = self.try_cairn_json(&["status"])?;
        v["backlog_bytes"]
            .as_u64()
            .ok_or_else(|| format!("status has no numeric backlog_bytes: {v}"))
    }

    /// Polls `cairn status --json` until `backlog_bytes` is 0; returns that
    /// status.
    pub fn wait_drained(&self, deadline: Duration) -> Value {
        poll_until("drain backlog reaches 0", deadline, || {
            let v = self.try_cairn_json(&["status"])?;
            match v["backlog_bytes"].as_u64() {
                Some(0) => Ok(v),
                _ => Err(format!("backlog {} ({})", v["backlog_bytes"], v["backlog"])),
            }
        })
    }

    /// Polls `cairn store list --json` until store `name` is (or is not) online.
    pub fn wait_store_online(&self, name: &str, online: bool, deadline: Duration) {
        poll_until(
            &format!("store {name} online={online} in `cairn store list`"),
            deadline,
            || {
                let v = self.try_cairn_json(&["store", "list"])?;
                let found = v["stores"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|s| s["name"] == name)
                    .cloned()
                    .ok_or_else(|| format!("{name} not listed: {v}"))?;
                if found["online"].as_bool() == Some(online) {
                    Ok(())
                } else {
                    Err(found.to_string())
                }
            },
        );
    }

    /// Each store's shard keys, from its own folder.
    pub fn shard_keys_by_store(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.stores
            .iter()
            .map(|s| (s.spec.name.clone(), s.shard_keys()))
            .collect()
    }

    /// Every log file of every process, raw (for searching).
    pub fn raw_logs(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut all = self.gateway.raw_logs();
        for s in &self.stores {
            all.extend(s.raw_logs());
        }
        all
    }

    /// Every process's logs as text.
    pub fn logs(&self) -> String {
        let mut out = self.gateway.logs();
        for s in &self.stores {
            out.push_str(&s.logs());
        }
        out
    }

    /// The gateway's logs (every run).
    pub fn gateway_logs(&self) -> String {
        self.gateway.logs()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.gateway.kill9();
        for s in &mut self.stores {
            s.proc.kill9();
        }
        self.proxy = None;
        self.more_proxies.clear();
        self.wans.clear();
        if std::thread::panicking() {
            eprintln!(
                "===== cairn cluster (dir {}, gateway port {}) =====\nconfig:\n{}\n{}",
                self.root.path().display(),
                self.gateway_port,
                self.gateway_config_text(),
                tail_lines(&self.gateway.logs(), 300)
            );
            for s in &self.stores {
                eprintln!(
                    "===== store {} (port {}) =====\n{}",
                    s.spec.name,
                    s.port,
                    tail_lines(&s.logs(), 60)
                );
            }
            if std::env::var_os("CAIRN_KEEP_TMP").is_some() {
                let dir = std::mem::replace(
                    &mut self.root,
                    tempfile::tempdir().expect("placeholder temp dir"),
                );
                eprintln!("kept {}", dir.keep().display());
            }
        }
    }
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    (0..n).fold(String::new(), |mut s, _| {
        let _ = write!(s, "{:02x}", rand::random::<u8>());
        s
    })
}

/// Writes a secret file (`text` and a newline) with mode 0600.
pub fn write_secret(path: &Path, text: &str) {
    std::fs::write(path, format!("{text}\n")).expect("write the secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod 600 the secret");
}

fn tail_lines(text: &str, lines: usize) -> String {
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
