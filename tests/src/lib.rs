//! End-to-end test harness for cairn: starts real `cairn` processes and drives
//! them with real NFS clients (libnfs-utils commands and the `nfs3_client` crate).
//!
//! What it promises: every [`Gateway`] lives in its own temp dir on its own
//! port, is polled for readiness with a deadline (never a fixed sleep), is
//! killed when dropped, and prints its logs when the test that owns it panics.
//! The tests themselves live in `tests/` next to this crate, one file per theme.

pub mod client;
pub mod cluster;
pub mod command;
pub mod disk;
pub mod garage;
pub mod gateway;
pub mod libnfs;
pub mod rawrpc;
mod relay;
pub mod slowdown;
pub mod smb;
pub mod view;
pub mod wan;
pub mod web;

pub use client::{Creds, Nfs, NfsError};
pub use cluster::{
    poll_until, BucketStore, ChunkInfo, Cluster, ClusterOptions, RecordingProxy, Store, StoreSpec,
};
pub use gateway::{Gateway, GatewayOptions, Squash};
pub use wan::{WanCounters, WanProxy, WanSpec};

use std::io::Write;
use std::path::Path;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// Mounts the export of `gw` with `creds`, panicking with the error if it fails.
pub async fn mount(gw: &Gateway, creds: Creds) -> Nfs {
    match Nfs::connect(gw.addr(), creds.clone()).await {
        Ok(nfs) => nfs,
        Err(e) => panic!("mount / on {} as {creds:?}: {e}", gw.addr()),
    }
}

/// Asserts that `res` failed with one of the `want` NFS statuses.
#[track_caller]
pub fn expect_status<T: std::fmt::Debug>(
    res: Result<T, NfsError>,
    want: &[nfs3_types::nfs3::nfsstat3],
    what: &str,
) {
    match res {
        Err(NfsError::Status(s)) if want.contains(&s) => {}
        other => panic!("{what}: expected one of {want:?}, got {other:?}"),
    }
}

/// A seed for a test's random choices: `CAIRN_TEST_SEED` if set, else fresh.
/// Printed so that a failing run can be replayed.
pub fn test_seed(test: &str) -> u64 {
    let seed = match std::env::var("CAIRN_TEST_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("CAIRN_TEST_SEED={s:?} is not a u64")),
        Err(_) => rand::random(),
    };
    eprintln!("{test}: seed {seed} (replay with CAIRN_TEST_SEED={seed})");
    seed
}

/// Deterministic pseudo-random bytes, cheap enough for hundreds of MiB.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out
}

/// Writes `len` pseudo-random bytes to `path` and returns their sha256 (hex).
pub fn write_random_file(path: &Path, seed: u64, len: u64) -> std::io::Result<String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).expect("chunk fits usize");
        rng.fill_bytes(&mut buf[..n]);
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(hex(&hasher.finalize()))
}

/// sha256 (hex) of a local file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// sha256 (hex) of bytes in memory.
pub fn sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
