//! The emulator against echo and sink servers of its own: the schedule is a
//! function of the seed, latency is added each way in order, the cap holds
//! across connections, stalls stop the bytes, drops reset, silence swallows.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A server on 127.0.0.1 that echoes every connection back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A server on 127.0.0.1 that reads and forgets everything.
async fn sink_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let addr = listener.local_addr().expect("sink addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[test]
fn the_schedule_is_a_function_of_the_seed() {
    let spec = WanSpec::new(Duration::from_millis(50), Duration::ZERO, 20.0, 7)
        .with_stalls(0.01, Duration::from_secs(2), Duration::from_secs(10))
        .with_drops(0.005);
    let events = |s: &WanSpec| -> Vec<(u64, Dir, Event)> {
        (0..20_000u64)
            .flat_map(|m| [(m, Dir::Up), (m, Dir::Down)])
            .filter_map(|(m, d)| s.event(d, m).map(|e| (m, d, e)))
            .collect()
    };
    let a = events(&spec);
    assert_eq!(a, events(&spec.clone()), "same seed, same schedule");
    assert_ne!(
        a,
        events(&spec.reseeded(8)),
        "another seed, another schedule"
    );
    let stalls: Vec<Duration> = a
        .iter()
        .filter_map(|(_, _, e)| match e {
            Event::Stall(d) => Some(*d),
            Event::Drop => None,
        })
        .collect();
    let drops = a.len() - stalls.len();
    // 40 000 draws: 400 stalls and 200 drops expected.
    assert!(
        (340..=460).contains(&stalls.len()),
        "{} stalls",
        stalls.len()
    );
    assert!((150..=250).contains(&drops), "{drops} drops");
    assert!(
        stalls
            .iter()
            .all(|d| (Duration::from_secs(2)..=Duration::from_secs(10)).contains(d)),
        "stalls out of 2–10 s: {stalls:?}"
    );
}

#[tokio::test]
async fn latency_is_added_each_way_and_order_is_kept() {
    let echo = echo_server().await;
    let spec = WanSpec::new(
        Duration::from_millis(100),
        Duration::from_millis(40),
        0.0,
        1,
    );
    let wan = WanProxy::start(echo, spec);
    let mut s = TcpStream::connect(wan.addr()).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut rtts = Vec::new();
    for i in 0..5u8 {
        let start = Instant::now();
        s.write_all(&[i]).await.expect("ping");
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.expect("pong");
        assert_eq!(b[0], i);
        rtts.push(start.elapsed());
    }
    for rtt in &rtts {
        assert!(
            (Duration::from_millis(80)..Duration::from_millis(170)).contains(rtt),
            "round trips {rtts:?} for 100 ms ± 20 ms"
        );
    }
    // Many small writes with jitter far above their spacing come back in order.
    let sent: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        for piece in sent.chunks(10) {
            w.write_all(piece).await.expect("write");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        sent
    });
    let mut got = vec![0u8; 2000];
    r.read_exact(&mut got).await.expect("read back");
    assert_eq!(got, writer.await.expect("writer"), "bytes out of order");
}

#[tokio::test]
async fn the_cap_holds_across_the_connections_of_a_link() {
    let sink = sink_server().await;
    // 8 Mbit/s: 1 000 000 bytes per second upstream.
    let spec = WanSpec::new(Duration::from_millis(20), Duration::ZERO, 8.0, 2);
    let wan = WanProxy::start(sink, spec);
    let addr = wan.addr();
    let mut senders = Vec::new();
    for _ in 0..3 {
        senders.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let buf = vec![7u8; 64 * 1024];
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(4500) {
                if s.write_all(&buf).await.is_err() {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (t0, b0) = (Instant::now(), wan.counters().up_bytes);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (t1, b1) = (Instant::now(), wan.counters().up_bytes);
    let rate = (b1 - b0) as f64 / (t1 - t0).as_secs_f64();
    assert!(
        (rate - 1e6).abs() < 0.04 * 1e6,
        "{rate:.0} B/s through a 1 000 000 B/s cap"
    );
    for s in senders {
        s.await.expect("sender");
    }
}

#[tokio::test]
async fn a_stall_stops_the_bytes_and_a_drop_resets_the_connection() {
    let echo = echo_server().await;
    let stall = Duration::from_millis(400);
    let spec = WanSpec::new(Duration::from_millis(2), Duration::ZERO, 0.0, 3)
        .with_stalls(1.0, stall, stall);
    let wan = WanProxy::start(echo, spec);
    let mut s = TcpStream::connect(wan.addr()).await.expect("connect");
    let data = vec![1u8; (MIB + MIB / 2) as usize];
    let start = Instant::now();
    let (mut r, mut w) = s.split();
    let (wrote, read) = tokio::join!(w.write_all(&data), async {
        let mut back = vec![0u8; data.len()];
        r.read_exact(&mut back).await.map(|_| back)
    });
    wrote.expect("write");
    assert_eq!(read.expect("read back"), data);
    // One MiB crossed each way: two stalls, one after the other at best.
    let took = start.elapsed();
    let c = wan.counters();
    assert_eq!(c.stalls, 2, "{c:?}");
    assert!(
        took >= stall,
        "1.5 MiB echoed in {took:?} through 400 ms stalls"
    );
    assert_eq!(c.drops, 0, "{c:?}");

    let spec = WanSpec::new(Duration::from_millis(2), Duration::ZERO, 0.0, 4).with_drops(1.0);
    let wan = WanProxy::start(echo, spec);
    let mut s = TcpStream::connect(wan.addr()).await.expect("connect");
    let mut failed = false;
    let (mut r, mut w) = s.split();
    let chunk = vec![2u8; 64 * 1024];
    // Linux reports a reset's error to one call only: the write or the
    // read, whichever comes first (the other then sees a closed socket).
    let (write_failed, got) = tokio::join!(
        async {
            for _ in 0..64 {
                if w.write_all(&chunk).await.is_err() {
                    return true;
                }
            }
            false
        },
        async {
            let mut total = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => total += n as u64,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            total
        }
    );
    assert!(
        failed || write_failed,
        "the connection ended without a reset after {got} bytes"
    );
    assert!(
        got < 2 * MIB,
        "{got} bytes echoed through a drop at the first MiB"
    );
    assert_eq!(wan.counters().drops, 1, "{:?}", wan.counters());
}

#[tokio::test]
async fn a_silent_link_swallows_bytes_and_keeps_connections_open() {
    let echo = echo_server().await;
    let spec = WanSpec::new(Duration::from_millis(10), Duration::ZERO, 0.0, 5);
    let wan = WanProxy::start(echo, spec);
    let mut s = TcpStream::connect(wan.addr()).await.expect("connect");
    wan.set_silent(true);
    s.write_all(b"lost").await.expect("write while silent");
    let mut b = [0u8; 4];
    let waited = tokio::time::timeout(Duration::from_millis(300), s.read(&mut b)).await;
    assert!(waited.is_err(), "a silent link answered: {waited:?}");
    assert_eq!(wan.counters().bytes(), 0, "{:?}", wan.counters());
    wan.set_silent(false);
    s.write_all(b"back").await.expect("write");
    s.read_exact(&mut b)
        .await
        .expect("read once the link is back");
    assert_eq!(&b, b"back");
}
