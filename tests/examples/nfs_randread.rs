//! Random-read benchmark over ONE NFSv3 connection (`nfs3_client`), for
//! `bench/randread.sh` and `bench/wan.sh`: mounts an export, looks up one
//! file, then does `--reads` READs of `--size` bytes at random offsets
//! aligned to `--size` (a seeded generator, so two servers see the same
//! offsets), one call in flight, each checked to return all its bytes.
//! Prints one JSON line:
//! `{"reads":N,"median_us":..,"p99_us":..,"per_sec":..}`.
//!
//! ```text
//! cargo run --release -p cairn-tests --example nfs_randread -- \
//!     --server 127.0.0.1:PORT --path /FILE --reads 2000 --size 4096 --seed 1
//! ```
//!
//! Other flags: `--mount-port P` (MOUNT's port when not the NFS port, as
//! for ganesha), `--export /` (the export to mount), `--uid N --gid N`
//! (AUTH_SYS, default 0/0), `--timeout-secs N` (per call, default 60).

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nfs3_client::tokio::TokioIo;
use nfs3_client::{MountClient, Nfs3Client, RpcError};
use nfs3_types::mount::dirpath;
use nfs3_types::nfs3::{
    diropargs3, filename3, nfs_fh3, GETATTR3args, LOOKUP3args, Nfs3Result, READ3args,
};
use nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_types::xdr_codec::Opaque;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::net::TcpStream;

const USAGE: &str = "usage: nfs_randread --server IP:PORT --path /FILE [--reads 1000] \
[--size 4096] [--seed 1] [--mount-port P] [--export /] [--uid 0] [--gid 0] [--timeout-secs 60]";

#[derive(Debug)]
struct Args {
    server: SocketAddr,
    mount_port: Option<u16>,
    export: String,
    path: String,
    reads: u32,
    size: u32,
    seed: u64,
    uid: u32,
    gid: u32,
    timeout: Duration,
}

fn parse_args() -> Result<Args> {
    let mut server = None;
    let mut mount_port = None;
    let mut export = "/".to_string();
    let mut path = None;
    let mut reads = 1000;
    let mut size = 4096;
    let mut seed = 1;
    let mut uid = 0;
    let mut gid = 0;
    let mut timeout = 60;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let val = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| anyhow::anyhow!("{flag} {val:?}: {e}\n{USAGE}");
        match flag.as_str() {
            "--server" => server = Some(val.parse().map_err(|e| bad(&e))?),
            "--mount-port" => mount_port = Some(val.parse().map_err(|e| bad(&e))?),
            "--export" => export = val,
            "--path" => path = Some(val),
            "--reads" => reads = val.parse().map_err(|e| bad(&e))?,
            "--size" => size = val.parse().map_err(|e| bad(&e))?,
            "--seed" => seed = val.parse().map_err(|e| bad(&e))?,
            "--uid" => uid = val.parse().map_err(|e| bad(&e))?,
            "--gid" => gid = val.parse().map_err(|e| bad(&e))?,
            "--timeout-secs" => timeout = val.parse().map_err(|e| bad(&e))?,
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    if size == 0 {
        bail!("--size 0: a read must ask for at least one byte\n{USAGE}");
    }
    Ok(Args {
        server: server.with_context(|| format!("--server is required\n{USAGE}"))?,
        mount_port,
        export,
        path: path.with_context(|| format!("--path is required\n{USAGE}"))?,
        reads,
        size,
        seed,
        uid,
        gid,
        timeout: Duration::from_secs(timeout),
    })
}

/// One call with a deadline, so a hung server fails the run instead of
/// hanging the bench.
async fn call<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = std::result::Result<T, RpcError>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => bail!("{what}: no reply within {timeout:?}"),
        Ok(Err(e)) => bail!("{what}: RPC failed: {e}"),
        Ok(Ok(v)) => Ok(v),
    }
}

fn ok<T, E>(what: &str, res: Nfs3Result<T, E>) -> Result<T> {
    match res {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((status, _)) => bail!("{what}: server answered {status}"),
    }
}

async fn connect(addr: SocketAddr) -> Result<TokioIo<TcpStream>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(TokioIo::new(stream))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let t = args.timeout;
    let auth = opaque_auth::auth_unix(&auth_unix {
        stamp: 0,
        machinename: Opaque::borrowed(b"cairn-bench"),
        uid: args.uid,
        gid: args.gid,
        gids: vec![args.gid],
    });

    let mount_addr = SocketAddr::new(
        args.server.ip(),
        args.mount_port.unwrap_or(args.server.port()),
    );
    let mut mount = MountClient::new_with_auth(
        connect(mount_addr).await?,
        auth.clone(),
        opaque_auth::default(),
    );
    let mnt = tokio::time::timeout(
        t,
        mount.mnt(dirpath(Opaque::borrowed(args.export.as_bytes()))),
    )
    .await
    .context("MNT: no reply")?
    .with_context(|| format!("MNT {}", args.export))?;
    drop(mount);
    let mut fh = nfs_fh3 {
        data: mnt.fhandle.0.clone(),
    };
    let mut nfs =
        Nfs3Client::new_with_auth(connect(args.server).await?, auth, opaque_auth::default());
    for name in args.path.split('/').filter(|n| !n.is_empty()) {
        let lookup = LOOKUP3args {
            what: diropargs3 {
                dir: fh.clone(),
                name: filename3(Opaque::borrowed(name.as_bytes())),
            },
        };
        fh = ok("LOOKUP", call(t, "LOOKUP", nfs.lookup(&lookup)).await?)
            .with_context(|| format!("lookup {name} of {}", args.path))?
            .object;
    }
    let size = ok(
        "GETATTR",
        call(
            t,
            "GETATTR",
            nfs.getattr(&GETATTR3args { object: fh.clone() }),
        )
        .await?,
    )?
    .obj_attributes
    .size;
    let slots = size / u64::from(args.size);
    if slots == 0 {
        bail!(
            "{} is {size} bytes: too short for one read of {}",
            args.path,
            args.size
        );
    }

    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut lat = Vec::with_capacity(args.reads as usize);
    let start = Instant::now();
    for _ in 0..args.reads {
        let offset = rng.random_range(0..slots) * u64::from(args.size);
        let read = READ3args {
            file: fh.clone(),
            offset,
            count: args.size,
        };
        let t0 = Instant::now();
        let got = ok("READ", call(t, "READ", nfs.read(&read)).await?)
            .with_context(|| format!("read {} at {offset}", args.path))?;
        lat.push(t0.elapsed().as_micros() as u64);
        if got.count != args.size || got.data.len() != args.size as usize {
            bail!(
                "READ at {offset}: {} bytes ({} of data) of {}",
                got.count,
                got.data.len(),
                args.size
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let at = |q: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let per_sec = if secs > 0.0 {
        f64::from(args.reads) / secs
    } else {
        0.0
    };
    println!(
        "{{\"reads\":{},\"median_us\":{},\"p99_us\":{},\"per_sec\":{per_sec:.1}}}",
        args.reads,
        at(0.5),
        at(0.99)
    );
    Ok(())
}
