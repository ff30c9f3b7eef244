//! Test harness: a chunk store served in-process on 127.0.0.1:0 over a temp
//! folder, stopped (and its lock released) on drop or by `stop`; and a
//! proxy that cuts connections short. The gateway's tests use it too.

#![allow(dead_code)]

pub mod cut_proxy;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_chunkstore::{init, serve_until, Secret, StoreClient, StoreError};
use cairn_config::{ByteSize, StoreConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestStore {
    pub addr: SocketAddr,
    pub secret: Secret,
    pub cfg: StoreConfig,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), StoreError>>>,
    pub tmp: tempfile::TempDir,
}

/// Writes a mode-0600 secret file of 64 hex characters built from `seed`.
pub fn write_secret(path: &Path, seed: u8) -> Secret {
    let text = format!("{}\n", format!("{seed:02x}").repeat(32));
    std::fs::write(path, &text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    Secret::load(path).unwrap()
}

/// A config for `<tmp>/data` with the secret at `<tmp>/cluster.secret`.
pub fn config(tmp: &Path, reserve: ByteSize) -> StoreConfig {
    let data = tmp.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut cfg = StoreConfig::with_defaults(
        "127.0.0.1:0".parse().unwrap(),
        data,
        "zone-a",
        "host-a",
        tmp.join("cluster.secret"),
    );
    cfg.labels = vec!["hdd".into()];
    cfg.name = Some("store-a".into());
    cfg.reserve = reserve;
    cfg
}

/// Starts `serve_until` for `cfg`; resolves once the store is listening, or
/// with the error serve returned instead.
pub async fn spawn(
    cfg: StoreConfig,
) -> Result<
    (
        SocketAddr,
        oneshot::Sender<()>,
        JoinHandle<Result<(), StoreError>>,
    ),
    StoreError,
> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut task = tokio::spawn(serve_until(
        cfg,
        move |addr| {
            let _ = ready_tx.send(addr);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    tokio::select! {
        addr = ready_rx => match addr {
            Ok(addr) => Ok((addr, stop_tx, task)),
            Err(_) => Err(task.await.unwrap().expect_err("serve ended without being ready")),
        },
        ended = &mut task => Err(ended.unwrap().expect_err("serve ended without being ready")),
    }
}

impl TestStore {
    /// A fresh, initialised store with no reserve.
    pub async fn start() -> TestStore {
        TestStore::start_with(ByteSize(0)).await
    }

    pub async fn start_with(reserve: ByteSize) -> TestStore {
        let tmp = tempfile::tempdir().unwrap();
        let secret = write_secret(&tmp.path().join("cluster.secret"), 0x5a);
        let cfg = config(tmp.path(), reserve);
        init(&cfg).unwrap();
        let (addr, stop, task) = spawn(cfg.clone()).await.unwrap();
        TestStore {
            addr,
            secret,
            cfg,
            stop: Some(stop),
            task: Some(task),
            tmp,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.cfg.data_dir.clone()
    }

    pub async fn client(&self) -> StoreClient {
        StoreClient::connect(self.addr, &self.secret).await.unwrap()
    }

    /// Stops the server and waits until it has released the folder.
    pub async fn stop(&mut self) -> Result<(), StoreError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap(),
            None => Ok(()),
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Polls `cond` every few milliseconds until it holds, failing after 10 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Deterministic pseudo-random bytes (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Every file under `dir`, recursively, with its path.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Temp files left in the shard folders.
pub fn temp_files(data_dir: &Path) -> Vec<PathBuf> {
    files_under(&data_dir.join("shards"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect()
}
