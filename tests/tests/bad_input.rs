//! Bad input: configs the gateway must refuse (exit status 2, naming the
//! field, touching nothing), and 10,000 random, truncated or lying RPC records
//! on the NFS port while another client keeps being served and the gateway's
//! memory stays bounded.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_tests::client::tcp_connect_from;
use cairn_tests::command::RunError;
use cairn_tests::gateway::{allocate_port, proc_status_kib, run_cairn, toml_str};
use cairn_tests::rawrpc::{call_header, marker, record, Xdr};
use cairn_tests::{command, mount, test_seed, Creds, Gateway, Nfs};
use nfs3_types::nfs3::{nfs_fh3, stable_how};
use nfs3_types::rpc::opaque_auth;
use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------- configs

/// A valid config for a fresh temp dir, with `[nfs]` last so cases can
/// append keys to it.
fn valid_config(data_dir: &str, port: u16) -> String {
    format!(
        "data_dir = {}\n\n[cache]\nmax_size = \"1 GiB\"\n\n[nfs]\nlisten = \"127.0.0.1:{port}\"\n",
        toml_str(data_dir)
    )
}

/// Runs `cairn gateway --config` on `text` and asserts it exits with status 2
/// and names `field` on stderr.
fn assert_rejected(dir: &std::path::Path, text: &str, field: &str) -> String {
    let path = dir.join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = match run_cairn(
        &["gateway", "--config", &path.to_string_lossy()],
        Duration::from_secs(20),
    ) {
        Ok(out) => out,
        Err(RunError::Timeout(..)) => {
            panic!("cairn gateway accepted a bad config and kept running:\n{text}")
        }
        Err(e) => panic!("cairn gateway: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad config ({field}) should exit with status 2: {}\nconfig:\n{text}",
        command::describe(&out)
    );
    assert!(
        stderr.contains(field),
        "the error should name `{field}`; stderr was:\n{stderr}\nconfig:\n{text}"
    );
    stderr
}

#[test]
fn config_with_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let base = valid_config(&data.to_string_lossy(), allocate_port());
    assert_rejected(dir.path(), &format!("{base}colour = \"blue\"\n"), "colour");
    assert_rejected(dir.path(), &format!("frobnicate = 1\n{base}"), "frobnicate");
    let entries = std::fs::read_dir(&data).unwrap().count();
    assert_eq!(entries, 0, "a refused config must leave data_dir untouched");
}

#[test]
fn config_with_a_bad_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let text = valid_config(&data.to_string_lossy(), 0).replace("127.0.0.1:0", "127.0.0.1:99999");
    assert_rejected(dir.path(), &text, "listen");
    let entries = std::fs::read_dir(&data).unwrap().count();
    assert_eq!(entries, 0, "a refused config must leave data_dir untouched");
}

#[test]
fn config_with_a_missing_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-mounted");
    let text = valid_config(&missing.to_string_lossy(), allocate_port());
    assert_rejected(dir.path(), &text, "data_dir");
    assert!(
        !missing.exists(),
        "cairn must not create a missing data_dir"
    );
    // No data_dir at all.
    let text = format!("[nfs]\nlisten = \"127.0.0.1:{}\"\n", allocate_port());
    assert_rejected(dir.path(), &text, "data_dir");
}

// ---------------------------------------------------------------- garbage RPC

const RECORDS: u64 = 10_000;
const MAX_CONNECTIONS: u64 = 6_000;
const SPRAYERS: usize = 4;
const ATTACK_CAP: Duration = Duration::from_secs(150);
const RSS_BOUND_KIB: u64 = 200 * 1024;
/// Virtual peak growth allowed: thread stacks and malloc arenas reserve
/// address space legitimately, a buffer sized from a 2 or 4 GiB length
/// field does not.
const VM_BOUND_KIB: u64 = 3 * 1024 * 1024;

const NFS: u32 = 100_003;
const MOUNT: u32 = 100_005;
const PORTMAP: u32 = 100_000;

fn auth_sys(uid: u32) -> opaque_auth<'static> {
    Creds::user(uid, uid).opaque_auth()
}

/// Handles the sprayers build well-formed-but-lying calls around.
#[derive(Clone)]
struct Targets {
    root: nfs_fh3,
    file: nfs_fh3,
}

/// One record that leaves the connection usable if the server is tolerant:
/// well framed, but with garbage or lying contents.
fn soft_record(rng: &mut SmallRng, t: &Targets) -> Vec<u8> {
    let xid = rng.random();
    let cred = auth_sys(rng.random_range(0..2000));
    let mut junk = vec![0u8; rng.random_range(0..=256)];
    rng.fill_bytes(&mut junk);
    let payload = match rng.random_range(0..14) {
        // Pure noise.
        0 | 1 => junk,
        // A valid header with random arguments for a random NFS procedure.
        2 | 3 => {
            let mut p = call_header(xid, NFS, 3, rng.random_range(0..=22), &cred);
            p.extend_from_slice(&junk[..junk.len() & !3]);
            p
        }
        // A header cut short.
        4 => {
            let p = call_header(xid, NFS, 3, 1, &cred);
            p[..rng.random_range(0..p.len())].to_vec()
        }
        // Unknown program, version or RPC version.
        5 => {
            let mut p = call_header(xid, rng.random(), rng.random(), rng.random(), &cred);
            if rng.random_bool(0.5) {
                p[8..12].copy_from_slice(&rng.random::<u32>().to_be_bytes());
            }
            p
        }
        // WRITE whose data claims 4 GiB.
        6 => {
            let mut p = call_header(xid, NFS, 3, 7, &cred);
            let args = Xdr::new()
                .opaque(&t.file.data)
                .u64(0)
                .u32(u32::MAX)
                .u32(0)
                .opaque_claiming(u32::MAX, &junk[..junk.len().min(16)]);
            p.extend(args.into_bytes());
            p
        }
        // LOOKUP whose name claims ~4 GiB.
        7 => {
            let mut p = call_header(xid, NFS, 3, 3, &cred);
            p.extend(
                Xdr::new()
                    .opaque(&t.root.data)
                    .opaque_claiming(0xFFFF_FFF0, b"name")
                    .into_bytes(),
            );
            p
        }
        // A file handle that claims 4 GiB.
        8 => {
            let mut p = call_header(xid, NFS, 3, 1, &cred);
            p.extend(
                Xdr::new()
                    .opaque_claiming(u32::MAX, &junk[..junk.len().min(64)])
                    .into_bytes(),
            );
            p
        }
        // AUTH_SYS credentials that lie: body length, machine name, gid count.
        9 => {
            let body = match rng.random_range(0..3) {
                0 => Xdr::new()
                    .u32(0)
                    .opaque_claiming(u32::MAX, b"host")
                    .u32(0)
                    .u32(0)
                    .u32(0),
                1 => Xdr::new()
                    .u32(0)
                    .opaque(b"host")
                    .u32(0)
                    .u32(0)
                    .u32(u32::MAX)
                    .u32(1)
                    .u32(2),
                _ => Xdr::new().u32(0).opaque(b"host").u32(0).u32(0).u32(100_000),
            };
            let body = body.into_bytes();
            let claimed = if rng.random_bool(0.3) {
                u32::MAX
            } else {
                body.len() as u32
            };
            let mut p = Xdr::new().u32(xid).u32(0).u32(2).u32(NFS).u32(3).u32(0);
            p = p.u32(1).opaque_claiming(claimed, &body).u32(0).u32(0);
            p.into_bytes()
        }
        // MOUNT MNT with a path that claims 4 GiB; portmap garbage.
        10 => {
            let mut p = call_header(xid, MOUNT, 3, 1, &cred);
            p.extend(Xdr::new().opaque_claiming(u32::MAX, b"/").into_bytes());
            p
        }
        11 => {
            let mut p = call_header(xid, PORTMAP, 2, rng.random_range(0..6), &cred);
            p.extend_from_slice(&junk[..junk.len() & !3]);
            p
        }
        // Honest calls with absurd counts: the reply must be capped.
        12 => {
            let mut p = call_header(xid, NFS, 3, 6, &cred);
            p.extend(
                Xdr::new()
                    .opaque(&t.file.data)
                    .u64(0)
                    .u32(u32::MAX)
                    .into_bytes(),
            );
            p
        }
        _ => {
            let mut p = call_header(xid, NFS, 3, 17, &cred);
            p.extend(
                Xdr::new()
                    .opaque(&t.root.data)
                    .u64(0)
                    .raw(&[0; 8])
                    .u32(u32::MAX)
                    .u32(u32::MAX)
                    .into_bytes(),
            );
            p
        }
    };
    record(&payload)
}

/// A final insult after which the connection is dropped: lying record
/// markers and fragment games.
fn last_straw(rng: &mut SmallRng) -> Vec<u8> {
    let mut noise = vec![0u8; rng.random_range(0..65_536)];
    rng.fill_bytes(&mut noise);
    let mut out = Vec::new();
    match rng.random_range(0..5) {
        // A record that claims ~2 GiB.
        0 => {
            out.extend_from_slice(&marker(0x7FFF_FFF0, true));
            out.extend_from_slice(&noise);
        }
        // A record that ends early.
        1 => {
            let claimed = rng.random_range(8..=4096u32);
            out.extend_from_slice(&marker(claimed, true));
            out.extend_from_slice(&noise[..noise.len().min(claimed as usize / 2)]);
        }
        // Many small non-final fragments.
        2 => {
            for _ in 0..200 {
                let n = rng.random_range(0..64);
                out.extend_from_slice(&marker(n, false));
                out.extend(std::iter::repeat_n(0xAB, n as usize));
            }
        }
        // Empty non-final fragments, forever (as far as the server knows).
        3 => {
            for _ in 0..2000 {
                out.extend_from_slice(&marker(0, false));
            }
        }
        // A non-final fragment that claims 2 GiB.
        _ => {
            out.extend_from_slice(&marker(0x7FFF_FFFF, false));
            out.extend_from_slice(&noise);
        }
    }
    out
}

#[derive(Default)]
struct Counters {
    records: AtomicU64,
    connections: AtomicU64,
}

/// Sends records over many short connections until the shared budget is met.
async fn spray(
    addr: std::net::SocketAddr,
    seed: u64,
    t: Targets,
    c: Arc<Counters>,
    start: Instant,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    while c.records.load(Ordering::Relaxed) < RECORDS
        && c.connections.load(Ordering::Relaxed) < MAX_CONNECTIONS
        && start.elapsed() < ATTACK_CAP
    {
        c.connections.fetch_add(1, Ordering::Relaxed);
        let Ok(mut s) = tcp_connect_from(addr, None, 0).await else {
            continue;
        };
        let mut open = true;
        for _ in 0..rng.random_range(1..=60) {
            let rec = soft_record(&mut rng, &t);
            if !write_some(&mut s, &rec).await {
                open = false;
                break;
            }
            c.records.fetch_add(1, Ordering::Relaxed);
        }
        if open && rng.random_bool(0.5) {
            if write_some(&mut s, &last_straw(&mut rng)).await {
                c.records.fetch_add(1, Ordering::Relaxed);
            }
        } else if open && rng.random_bool(0.5) {
            // Half-close and drain whatever the server answers.
            let _ = s.shutdown().await;
            let mut sink = vec![0u8; 65_536];
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        }
        // Otherwise just drop it (a reset if replies are unread).
    }
}

async fn write_some(s: &mut TcpStream, bytes: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Claims a 2 GiB record and keeps sending up to 160 MiB: a server that
/// buffers what a record marker promises shows it in its memory. Returns the
/// connection so that it stays open until the end of the attack.
async fn flood(addr: std::net::SocketAddr) -> (Option<TcpStream>, u64) {
    let Ok(mut s) = tcp_connect_from(addr, None, 0).await else {
        return (None, 0);
    };
    let mut sent = 0u64;
    if !write_some(&mut s, &marker(0x7FFF_FFF0, true)).await {
        return (None, 0);
    }
    let chunk = vec![0x5Au8; 1 << 20];
    for _ in 0..160 {
        if !write_some(&mut s, &chunk).await {
            break;
        }
        sent += chunk.len() as u64;
    }
    (Some(s), sent)
}

/// The bystander: write, read back and stat, over and over, each cycle
/// within 20 s, until told to stop.
async fn bystander(
    mut nfs: Nfs,
    fh: nfs_fh3,
    stop: Arc<AtomicBool>,
) -> Result<(u64, Duration), String> {
    let root = nfs.root.clone();
    let mut cycles = 0u64;
    let mut slowest = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) || cycles < 3 {
        let t0 = Instant::now();
        let data = format!("cycle {cycles:08} ").repeat(256).into_bytes();
        let offset = (cycles % 16) * data.len() as u64;
        let res = tokio::time::timeout(Duration::from_secs(20), async {
            nfs.write(&fh, offset, &data, stable_how::FILE_SYNC).await?;
            let (got, _) = nfs.read(&fh, offset, data.len() as u32).await?;
            nfs.getattr(&root).await?;
            Ok::<_, cairn_tests::NfsError>(got)
        })
        .await;
        match res {
            Err(_) => return Err(format!("cycle {cycles} took more than 20 s")),
            Ok(Err(e)) => return Err(format!("cycle {cycles}: {e}")),
            Ok(Ok(got)) if got != data => {
                return Err(format!("cycle {cycles}: read back other data"))
            }
            Ok(Ok(_)) => {}
        }
        slowest = slowest.max(t0.elapsed());
        cycles += 1;
    }
    Ok((cycles, slowest))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_records_neither_stop_service_nor_grow_memory() {
    let seed = test_seed("garbage_rpc");
    let mut gw = Gateway::start();
    let addr = gw.addr();
    let pid = gw.pid();

    // Warm up so that the baseline includes a served client.
    let mut nfs = mount(&gw, Creds::root()).await;
    let root = nfs.root.clone();
    let file = nfs.create(&root, "probe", 0o644).await.unwrap();
    nfs.write_all(&file, 0, &vec![7u8; 256 * 1024], stable_how::FILE_SYNC)
        .await
        .unwrap();
    nfs.read_all(&file).await.unwrap();
    let base_rss = proc_status_kib(pid, "VmRSS");
    let base_hwm = proc_status_kib(pid, "VmHWM");
    let base_vm = proc_status_kib(pid, "VmSize");
    let base_peak = proc_status_kib(pid, "VmPeak");

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let other = nfs.as_user(Creds::user(1000, 1000)).await.unwrap();
        let fh = nfs.create(&root, "bystander", 0o666).await.unwrap();
        nfs.setattr(&fh, cairn_tests::client::mode_attr(0o666))
            .await
            .unwrap();
        tokio::spawn(bystander(other, fh, stop.clone()))
    };
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while !stop.load(Ordering::Relaxed) {
                max = max.max(proc_status_kib(pid, "VmRSS"));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            max
        })
    };

    let start = Instant::now();
    let floods: Vec<_> = (0..2).map(|_| tokio::spawn(flood(addr))).collect();
    let counters = Arc::new(Counters::default());
    let targets = Targets {
        root: root.clone(),
        file: file.clone(),
    };
    let sprayers: Vec<_> = (0..SPRAYERS)
        .map(|i| {
            tokio::spawn(spray(
                addr,
                seed ^ i as u64,
                targets.clone(),
                counters.clone(),
                start,
            ))
        })
        .collect();
    for s in sprayers {
        s.await.expect("sprayer panicked");
    }
    let mut flooded = 0;
    let mut held = Vec::new();
    for f in floods {
        let (conn, sent) = f.await.expect("flood task panicked");
        flooded += sent;
        held.extend(conn);
    }
    // Measure while the flood connections are still open.
    gw.assert_running();
    let rss_now = proc_status_kib(pid, "VmRSS");
    stop.store(true, Ordering::Relaxed);
    let (cycles, slowest) = watcher
        .await
        .expect("bystander panicked")
        .unwrap_or_else(|e| panic!("another client stopped being served during the attack: {e}"));
    let sampled_max = sampler.await.expect("sampler panicked");
    let hwm = proc_status_kib(pid, "VmHWM");
    let peak = proc_status_kib(pid, "VmPeak");
    drop(held);

    eprintln!(
        "sent {} records over {} connections (+{} MiB of flood) in {:?}; bystander {cycles} \
         cycles, slowest {slowest:?}; RSS {base_rss} KiB -> now {rss_now}, sampled max \
         {sampled_max}, peak {hwm}; VmSize {base_vm} KiB, VmPeak {base_peak} -> {peak}",
        counters.records.load(Ordering::Relaxed),
        counters.connections.load(Ordering::Relaxed),
        flooded >> 20,
        start.elapsed(),
    );
    assert!(
        hwm <= base_hwm.max(base_rss + RSS_BOUND_KIB),
        "resident memory peaked at {hwm} KiB, {} MiB over the {base_rss} KiB baseline \
         (bound {} MiB)",
        (hwm - base_rss) >> 10,
        RSS_BOUND_KIB >> 10
    );
    assert!(
        peak <= base_peak.max(base_vm + VM_BOUND_KIB),
        "virtual memory peaked at {peak} KiB, {} MiB over the {base_vm} KiB baseline: \
         something allocated what a length field claimed",
        (peak - base_vm) >> 10
    );

    // Still serving, new clients included.
    let mut fresh = mount(&gw, Creds::root()).await;
    let fresh_root = fresh.root.clone();
    fresh
        .getattr(&fresh_root)
        .await
        .expect("a new client after the attack");
    assert_eq!(fresh.read_all(&file).await.unwrap(), vec![7u8; 256 * 1024]);
}
