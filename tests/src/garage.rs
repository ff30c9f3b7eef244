//! A three-node Garage cluster on 127.0.0.1: a real, distributed
//! S3-compatible object store, set up as its operator would (a config file
//! per node, `garage node connect`, `garage layout assign/apply`, a key and
//! buckets made with its CLI). The `garage` binary comes from `CAIRN_GARAGE`
//! or the `PATH` (`./test.sh` installs it into a cache folder).
//!
//! Same promises as the rest of the harness: one temp dir, ports below the
//! ephemeral range, readiness polled with deadlines, every node killed on
//! drop, and the nodes' logs printed when the owning test panics.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::cluster::poll_until;
use crate::command;
use crate::gateway::allocate_port;

/// How long a node may take to answer its CLI, and the cluster to settle.
const READY: Duration = Duration::from_secs(60);
/// How long one CLI call may take.
const CLI_DEADLINE: Duration = Duration::from_secs(30);
/// The S3 region Garage is configured with.
pub const REGION: &str = "garage";

/// The `garage` binary to run.
pub fn garage_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CAIRN_GARAGE") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("garage"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no `garage` binary on PATH (nor CAIRN_GARAGE); run ./test.sh, which installs it, \
             or `cargo install garage --locked --version 2.5.0` and put it on PATH"
        )
    })
}

/// One Garage node.
struct Node {
    config: PathBuf,
    dir: PathBuf,
    rpc_port: u16,
    child: Option<Child>,
}

/// A running three-node cluster with one access key.
pub struct Garage {
    tmp: tempfile::TempDir,
    nodes: Vec<Node>,
    s3_ports: Vec<u16>,
    admin_ports: Vec<u16>,
    /// The access key made for the tests, and its secret.
    pub key_id: String,
    pub secret_key: String,
}

impl Garage {
    /// Starts three nodes (one zone each, replication 3), applies the
    /// layout, makes a key and `buckets` the key may read and write.
    pub fn start(buckets: &[&str]) -> Garage {
        let tmp = tempfile::Builder::new()
            .prefix("cairn-garage-")
            .tempdir()
            .expect("temp dir");
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let mut nodes = Vec::new();
        let mut s3_ports = Vec::new();
        let mut admin_ports = Vec::new();
        for i in 1..=3 {
            let dir = tmp.path().join(format!("n{i}"));
            std::fs::create_dir_all(&dir).expect("node dir");
            let (rpc, s3, admin) = (allocate_port(), allocate_port(), allocate_port());
            let config = dir.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = 3
# Stored as sent, so a test can look for plaintext in the data folders.
compression_level = "none"
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "cairn-test"
metrics_token = "cairn-test"
"#,
                    d = dir.display()
                ),
            )
            .expect("write node config");
            s3_ports.push(s3);
            admin_ports.push(admin);
            nodes.push(Node {
                config,
                dir,
                rpc_port: rpc,
                child: None,
            });
        }
        let mut garage = Garage {
            tmp,
            nodes,
            s3_ports,
            admin_ports,
            key_id: String::new(),
            secret_key: String::new(),
        };
        for i in 0..3 {
            garage.spawn(i);
        }
        // Each node serves its RPC port once it has its identity.
        for (i, node) in garage.nodes.iter().enumerate() {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], node.rpc_port));
            poll_until(&format!("garage node {} listens", i + 1), READY, || {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                    .map(drop)
                    .map_err(|e| e.to_string())
            });
        }
        let ids: Vec<String> = (0..3)
            .map(|i| {
                poll_until(&format!("garage node {} answers", i + 1), READY, || {
                    let out = garage.cli_on(i, &["node", "id", "-q"])?;
                    let id = out.trim().to_owned();
                    if id.contains('@') {
                        Ok(id)
                    } else {
                        Err(format!("node id printed {id:?}"))
                    }
                })
            })
            .collect();
        for (i, id) in ids.iter().enumerate().skip(1) {
            let hex = id.split('@').next().unwrap_or_default();
            let target = format!("{hex}@127.0.0.1:{}", garage.nodes[i].rpc_port);
            garage.cli(&["node", "connect", &target]);
        }
        for (i, id) in ids.iter().enumerate() {
            let hex = id.split('@').next().unwrap_or_default();
            let zone = format!("z{}", i + 1);
            garage.cli(&["layout", "assign", "-z", &zone, "-c", "1G", &hex[..16]]);
        }
        garage.cli(&["layout", "apply", "--version", "1"]);
        let made = garage.cli(&["key", "create", "cairn-test"]);
        let field = |name: &str| {
            made.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_owned())
                })
                .unwrap_or_else(|| panic!("`garage key create` printed no {name:?}: {made}"))
        };
        garage.key_id = field("Key ID");
        garage.secret_key = field("Secret key");
        for b in buckets {
            garage.make_bucket(b);
        }
        garage
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "garage node {} already runs", i + 1);
        let log = |s: &str| File::create(node.dir.join(format!("garage.{s}"))).expect("log file");
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(&node.config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log("stdout"))
            .stderr(log("stderr"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", garage_bin().display()));
        node.child = Some(child);
    }

    /// Makes bucket `name`, readable and writable with the test key.
    pub fn make_bucket(&self, name: &str) {
        self.cli(&["bucket", "create", name]);
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            name,
            "--key",
            "cairn-test",
        ]);
    }

    /// The S3 endpoint of node `i` (0-based), `http://127.0.0.1:PORT`.
    pub fn endpoint_of(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.s3_ports[i])
    }

    /// S3 requests node `i` (0-based) has served so far, per operation
    /// (`PutObject`, `GetObject`, `ListObjectsV2`…), from its Prometheus
    /// metrics (`api_s3_request_counter`).
    pub fn s3_requests(&self, i: usize) -> std::collections::BTreeMap<String, u64> {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.admin_ports[i]))
            .expect("connect to garage's admin port");
        conn.set_read_timeout(Some(CLI_DEADLINE)).expect("timeout");
        write!(
            conn,
            "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer cairn-test\r\n\r\n"
        )
        .expect("ask for metrics");
        let mut text = String::new();
        conn.read_to_string(&mut text).expect("read metrics");
        assert!(
            text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
            "garage metrics: {}",
            &text[..text.len().min(300)]
        );
        let mut counts = std::collections::BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with("api_s3_request_counter{"))
        {
            let endpoint = line
                .split("api_endpoint=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_default();
            let value = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            *counts.entry(endpoint.to_owned()).or_insert(0) += value as u64;
        }
        counts
    }

    /// The S3 address of node `i` (0-based), for a proxy in front of it.
    pub fn s3_addr(&self, i: usize) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.s3_ports[i]))
    }

    /// The first node's S3 endpoint.
    pub fn endpoint(&self) -> String {
        self.endpoint_of(0)
    }

    /// Every node's data folder (where object bytes land).
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        self.nodes.iter().map(|n| n.dir.join("data")).collect()
    }

    /// Kills node `i` (0-based) with SIGKILL.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `garage ARGS` against the first node; its stdout, or a panic
    /// with what it said.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_on(0, args)
            .unwrap_or_else(|e| panic!("garage {}: {e}", args.join(" ")))
    }

    fn cli_on(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(garage_bin());
        cmd.arg("-c").arg(&self.nodes[i].config).args(args);
        let out: Output = command::run(cmd, CLI_DEADLINE).map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Writes the test key as a credentials file (mode 0600) at `path`, as
    /// a user would for a `[[stores]]` table.
    pub fn write_credentials(&self, path: &Path) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .expect("create credentials file");
        writeln!(
            f,
            "access_key_id = \"{}\"\nsecret_access_key = \"{}\"",
            self.key_id, self.secret_key
        )
        .expect("write credentials file");
    }

    /// The lines of a `[[stores]]` table (after `name`) for `prefix` of
    /// `bucket` through node `node`'s endpoint, with the keys in
    /// `credentials`.
    pub fn store_table(
        &self,
        node: usize,
        bucket: &str,
        prefix: &str,
        credentials: &Path,
        labels: &[&str],
    ) -> String {
        let labels: Vec<String> = labels.iter().map(|l| format!("{l:?}")).collect();
        format!(
            "kind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\n\
             region = \"{REGION}\"\npath_style = true\ncredentials_file = {:?}\n\
             capacity = \"20 GiB\"\nlabels = [{}]",
            self.endpoint_of(node),
            credentials.display().to_string(),
            labels.join(", ")
        )
    }

    /// The folder all nodes live in.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
        if std::thread::panicking() {
            for (i, node) in self.nodes.iter().enumerate() {
                let log =
                    std::fs::read_to_string(node.dir.join("garage.stderr")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- garage node {} (last lines of its log) ---", i + 1);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}
