//! One emulated WAN link ([`cairn_tests::WanProxy`]) as a process, for
//! `bench/wan.sh`: relays every connection on `--listen` to `--target` with
//! the round trip, jitter, per-direction cap, stalls and drops asked, and
//! keeps its counters in a file (one JSON object, rewritten atomically every
//! 100 ms) so the bench can read the bytes each workload moved. Runs until
//! SIGTERM/SIGINT; listens where it is told (use 127.0.0.1).
//!
//! ```text
//! cargo run --release -p cairn-tests --example wanproxy -- \
//!     --listen 127.0.0.1:P --target 127.0.0.1:Q --rtt-ms 100 --jitter-ms 10 --mbit 100 \
//!     --stall-pct 0.03 --seed 1 --counters /tmp/link-a.json
//! ```
//!
//! `--stall-pct P`: percent of the MiBs relayed (each direction) that start a
//! stall of `--stall-min-s`..`--stall-max-s` seconds (default 2..10); 1% of
//! 32 MiB transfers stalled is `--stall-pct 0.03`. `--drop-pct P`: percent of
//! the MiBs that reset their connection (default 0). `--mbit 0`: no cap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_tests::{WanProxy, WanSpec};

const USAGE: &str = "usage: wanproxy --listen IP:P --target IP:P [--rtt-ms 0] [--jitter-ms 0] \
[--mbit 0] [--stall-pct 0] [--stall-min-s 2] [--stall-max-s 10] [--drop-pct 0] [--seed 0] \
[--counters FILE]";

struct Args {
    listen: SocketAddr,
    target: SocketAddr,
    spec: WanSpec,
    counters: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut listen = None;
    let mut target = None;
    let (mut rtt, mut jitter, mut mbit) = (0.0f64, 0.0f64, 0.0f64);
    let (mut stall_pct, mut drop_pct) = (0.0f64, 0.0f64);
    let (mut stall_min, mut stall_max) = (2.0f64, 10.0f64);
    let mut seed = 0u64;
    let mut counters = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value; {USAGE}"))
        };
        let num = |v: String| -> Result<f64> {
            v.parse()
                .with_context(|| format!("{flag} {v:?} is not a number; {USAGE}"))
        };
        match flag.as_str() {
            "--listen" => listen = Some(value()?.parse().context("--listen IP:PORT")?),
            "--target" => target = Some(value()?.parse().context("--target IP:PORT")?),
            "--rtt-ms" => rtt = num(value()?)?,
            "--jitter-ms" => jitter = num(value()?)?,
            "--mbit" => mbit = num(value()?)?,
            "--stall-pct" => stall_pct = num(value()?)?,
            "--stall-min-s" => stall_min = num(value()?)?,
            "--stall-max-s" => stall_max = num(value()?)?,
            "--drop-pct" => drop_pct = num(value()?)?,
            "--seed" => seed = value()?.parse().context("--seed N")?,
            "--counters" => counters = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other:?}; {USAGE}"),
        }
    }
    let (Some(listen), Some(target)) = (listen, target) else {
        bail!("--listen and --target are required; {USAGE}");
    };
    for (name, v) in [
        ("--rtt-ms", rtt),
        ("--jitter-ms", jitter),
        ("--mbit", mbit),
        ("--stall-min-s", stall_min),
        ("--stall-max-s", stall_max),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{name} {v} must be a number >= 0");
        }
    }
    for (name, v) in [("--stall-pct", stall_pct), ("--drop-pct", drop_pct)] {
        if !(0.0..=100.0).contains(&v) {
            bail!("{name} {v} must be a percentage from 0 to 100");
        }
    }
    let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
    let spec = WanSpec::new(ms(rtt), ms(jitter), mbit, seed)
        .with_stalls(
            stall_pct / 100.0,
            Duration::from_secs_f64(stall_min),
            Duration::from_secs_f64(stall_max),
        )
        .with_drops(drop_pct / 100.0);
    Ok(Args {
        listen,
        target,
        spec,
        counters,
    })
}

fn write_counters(path: &PathBuf, wan: &WanProxy) -> Result<()> {
    let c = wan.counters();
    let text = format!(
        "{{\"up_bytes\":{},\"down_bytes\":{},\"stalls\":{},\"drops\":{},\"connections\":{}}}\n",
        c.up_bytes, c.down_bytes, c.stalls, c.drops, c.connections
    );
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let wan = WanProxy::start_on(args.listen, args.target, args.spec.clone())
        .with_context(|| format!("listen on {}", args.listen))?;
    eprintln!(
        "wanproxy {} -> {}: {:?}",
        wan.addr(),
        args.target,
        wan.spec()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        if let Some(path) = &args.counters {
            write_counters(path, &wan)?;
        }
    }
    if let Some(path) = &args.counters {
        write_counters(path, &wan)?;
    }
    Ok(())
}
