//! Small-file benchmark over ONE NFSv3 connection (`nfs3_client`), for
//! `bench/nfs.sh`: mounts an export, makes a fresh subdirectory, then times
//!
//! - create: for each file, CREATE (UNCHECKED, mode 0644), one UNSTABLE WRITE
//!   of `--size` bytes, then COMMIT of the whole file, as a client does when it
//!   closes a file it wrote (close-to-open); the COMMIT verifier must match
//!   the WRITE's;
//! - stat: for each file, LOOKUP then GETATTR, and checks the size;
//!
//! all calls sequential on the one connection (one call in flight). Prints
//! `key=value` lines (`create_files_per_sec=…`, `stat_files_per_sec=…`,
//! seconds, per-file latency percentiles in µs, and the same per procedure
//! of the create phase: `create_CREATE_p50_us`, `create_WRITE_…`, `create_COMMIT_…`)
//! on stdout.
//!
//! ```text
//! cargo run --release -p cairn-tests --example nfs_smallfiles -- \
//!     --host 127.0.0.1 --nfs-port P --mount-port P --export / --count 10000 --size 4096
//! ```
//!
//! Other flags: `--dir NAME` (subdirectory name; default `smallfiles-PID-NANOS`,
//! an existing name is an error), `--uid N --gid N` (AUTH_SYS, default 0/0),
//! `--timeout-secs N` (per call, default 60).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use nfs3_client::tokio::TokioIo;
use nfs3_client::{MountClient, Nfs3Client, RpcError};
use nfs3_types::mount::dirpath;
use nfs3_types::nfs3::{
    createhow3, diropargs3, filename3, ftype3, nfs_fh3, sattr3, set_mode3, stable_how, COMMIT3args,
    CREATE3args, GETATTR3args, LOOKUP3args, MKDIR3args, Nfs3Option, Nfs3Result, WRITE3args,
};
use nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_types::xdr_codec::Opaque;
use tokio::net::TcpStream;

const USAGE: &str = "usage: nfs_smallfiles --host IP --nfs-port P --mount-port P \
[--export /] [--count 10000] [--size 4096] [--dir NAME] [--uid 0] [--gid 0] [--timeout-secs 60]";

#[derive(Debug)]
struct Args {
    host: IpAddr,
    nfs_port: u16,
    mount_port: u16,
    export: String,
    count: u32,
    size: u32,
    dir: Option<String>,
    uid: u32,
    gid: u32,
    timeout: Duration,
}

fn parse_args() -> Result<Args> {
    let mut host = None;
    let mut nfs_port = None;
    let mut mount_port = None;
    let mut export = "/".to_string();
    let mut count = 10_000;
    let mut size = 4096;
    let mut dir = None;
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
            "--host" => host = Some(val.parse().map_err(|e| bad(&e))?),
            "--nfs-port" => nfs_port = Some(val.parse().map_err(|e| bad(&e))?),
            "--mount-port" => mount_port = Some(val.parse().map_err(|e| bad(&e))?),
            "--export" => export = val,
            "--count" => count = val.parse().map_err(|e| bad(&e))?,
            "--size" => size = val.parse().map_err(|e| bad(&e))?,
            "--dir" => dir = Some(val),
            "--uid" => uid = val.parse().map_err(|e| bad(&e))?,
            "--gid" => gid = val.parse().map_err(|e| bad(&e))?,
            "--timeout-secs" => timeout = val.parse().map_err(|e| bad(&e))?,
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    Ok(Args {
        host: host.with_context(|| format!("--host is required\n{USAGE}"))?,
        nfs_port: nfs_port.with_context(|| format!("--nfs-port is required\n{USAGE}"))?,
        mount_port: mount_port.with_context(|| format!("--mount-port is required\n{USAGE}"))?,
        export,
        count,
        size,
        dir,
        uid,
        gid,
        timeout: Duration::from_secs(timeout),
    })
}

type Io = TokioIo<TcpStream>;

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

async fn connect(addr: SocketAddr) -> Result<Io> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    // RPCs are small request/reply pairs: do not let Nagle hold them back.
    stream.set_nodelay(true)?;
    Ok(TokioIo::new(stream))
}

fn dirop<'a>(dir: &nfs_fh3, name: &'a [u8]) -> diropargs3<'a> {
    diropargs3 {
        dir: dir.clone(),
        name: filename3(Opaque::borrowed(name)),
    }
}

fn mode_attr(mode: u32) -> sattr3 {
    sattr3 {
        mode: set_mode3::Some(mode),
        ..Default::default()
    }
}

/// Per-file latencies in µs → "p50 p99 max" fields.
fn percentiles(prefix: &str, lat: &mut [u64]) -> String {
    if lat.is_empty() {
        return String::new();
    }
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    format!(
        "{prefix}_p50_us={}\n{prefix}_p99_us={}\n{prefix}_max_us={}",
        at(0.50),
        at(0.99),
        lat[lat.len() - 1]
    )
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

    // MOUNT on its own connection, then one NFS connection for everything.
    let mount_io = connect(SocketAddr::new(args.host, args.mount_port)).await?;
    let mut mount = MountClient::new_with_auth(mount_io, auth.clone(), opaque_auth::default());
    let mnt = tokio::time::timeout(
        t,
        mount.mnt(dirpath(Opaque::borrowed(args.export.as_bytes()))),
    )
    .await
    .context("MNT: no reply")?
    .with_context(|| format!("MNT {}", args.export))?;
    drop(mount);
    let root = nfs_fh3 {
        data: mnt.fhandle.0.clone(),
    };
    let nfs_io = connect(SocketAddr::new(args.host, args.nfs_port)).await?;
    let mut nfs = Nfs3Client::new_with_auth(nfs_io, auth, opaque_auth::default());

    let dir_name = args.dir.clone().unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("smallfiles-{}-{nanos}", std::process::id())
    });
    let mkdir = MKDIR3args {
        where_: dirop(&root, dir_name.as_bytes()),
        attributes: mode_attr(0o755),
    };
    let made = ok("MKDIR", call(t, "MKDIR", nfs.mkdir(&mkdir)).await?)
        .with_context(|| format!("mkdir {dir_name}"))?;
    let dir = match made.obj {
        Nfs3Option::Some(fh) => fh,
        Nfs3Option::None => {
            let args = LOOKUP3args {
                what: dirop(&root, dir_name.as_bytes()),
            };
            ok("LOOKUP", call(t, "LOOKUP", nfs.lookup(&args)).await?)?.object
        }
    };

    let mut data = vec![0u8; args.size as usize];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
    }
    let names: Vec<String> = (0..args.count).map(|i| format!("f{i:06}")).collect();

    // (a) CREATE + UNSTABLE WRITE + COMMIT of each file.
    let mut create_lat = Vec::with_capacity(args.count as usize);
    // per procedure, to see where a slow create goes
    let mut proc_lat: [Vec<u64>; 3] = Default::default();
    let mut unstable_replies = 0u64;
    let start = Instant::now();
    for name in &names {
        let t0 = Instant::now();
        let create = CREATE3args {
            where_: dirop(&dir, name.as_bytes()),
            how: createhow3::UNCHECKED(mode_attr(0o644)),
        };
        let res = ok("CREATE", call(t, "CREATE", nfs.create(&create)).await?)
            .with_context(|| format!("create {dir_name}/{name}"))?;
        proc_lat[0].push(t0.elapsed().as_micros() as u64);
        let fh = match res.obj {
            Nfs3Option::Some(fh) => fh,
            Nfs3Option::None => {
                let args = LOOKUP3args {
                    what: dirop(&dir, name.as_bytes()),
                };
                ok("LOOKUP", call(t, "LOOKUP", nfs.lookup(&args)).await?)?.object
            }
        };
        if args.size > 0 {
            let write = WRITE3args {
                file: fh.clone(),
                offset: 0,
                count: args.size,
                stable: stable_how::UNSTABLE,
                data: Opaque::borrowed(&data),
            };
            let t1 = Instant::now();
            let w = ok("WRITE", call(t, "WRITE", nfs.write(&write)).await?)
                .with_context(|| format!("write {dir_name}/{name}"))?;
            proc_lat[1].push(t1.elapsed().as_micros() as u64);
            if w.count != args.size {
                bail!("WRITE {name}: wrote {} of {} bytes", w.count, args.size);
            }
            if matches!(w.committed, stable_how::UNSTABLE) {
                unstable_replies += 1;
            }
            let commit = COMMIT3args {
                file: fh,
                offset: 0,
                count: 0,
            };
            let t2 = Instant::now();
            let c = ok("COMMIT", call(t, "COMMIT", nfs.commit(&commit)).await?)
                .with_context(|| format!("commit {dir_name}/{name}"))?;
            proc_lat[2].push(t2.elapsed().as_micros() as u64);
            if c.verf != w.verf {
                bail!(
                    "COMMIT {name}: verifier {:?} differs from the WRITE's {:?} (server restarted?)",
                    c.verf.0,
                    w.verf.0
                );
            }
        }
        create_lat.push(t0.elapsed().as_micros() as u64);
    }
    let create_secs = start.elapsed().as_secs_f64();

    // (b) LOOKUP + GETATTR of each file.
    let mut stat_lat = Vec::with_capacity(args.count as usize);
    let start = Instant::now();
    for name in &names {
        let t0 = Instant::now();
        let lookup = LOOKUP3args {
            what: dirop(&dir, name.as_bytes()),
        };
        let fh = ok("LOOKUP", call(t, "LOOKUP", nfs.lookup(&lookup)).await?)
            .with_context(|| format!("lookup {dir_name}/{name}"))?
            .object;
        let attrs = ok(
            "GETATTR",
            call(t, "GETATTR", nfs.getattr(&GETATTR3args { object: fh })).await?,
        )
        .with_context(|| format!("getattr {dir_name}/{name}"))?
        .obj_attributes;
        if !matches!(attrs.type_, ftype3::NF3REG) || attrs.size != u64::from(args.size) {
            bail!(
                "{dir_name}/{name}: GETATTR says type {:?} size {}, expected a regular file of {}",
                attrs.type_,
                attrs.size,
                args.size
            );
        }
        stat_lat.push(t0.elapsed().as_micros() as u64);
    }
    let stat_secs = start.elapsed().as_secs_f64();

    let n = f64::from(args.count);
    println!("dir={dir_name}");
    println!("count={}", args.count);
    println!("size={}", args.size);
    println!("create_seconds={create_secs:.3}");
    println!("create_files_per_sec={:.1}", n / create_secs);
    println!("create_unstable_replies={unstable_replies}");
    println!("{}", percentiles("create", &mut create_lat));
    for (label, lat) in ["create_CREATE", "create_WRITE", "create_COMMIT"]
        .iter()
        .zip(proc_lat.iter_mut())
    {
        if !lat.is_empty() {
            let mean = lat.iter().sum::<u64>() as f64 / lat.len() as f64;
            println!("{label}_mean_us={mean:.0}");
            println!("{}", percentiles(label, lat));
        }
    }
    println!("stat_seconds={stat_secs:.3}");
    println!("stat_files_per_sec={:.1}", n / stat_secs);
    println!("{}", percentiles("stat", &mut stat_lat));
    Ok(())
}
