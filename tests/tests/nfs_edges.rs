//! The NFS port's edges under hostile or careless clients: what a record
//! mark promises is not allocated before it arrives, replies a client leaves
//! unread do not pile up, `nfs.max_connections` caps the connections, and a
//! credential past RFC 5531's limits is refused with AUTH_BADCRED.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cairn_tests::gateway::proc_status_kib;
use cairn_tests::rawrpc::{call_header, marker, nfs_null_call, read_reply, record, Reply, Xdr};
use cairn_tests::{mount, Creds, Gateway, GatewayOptions};
use nfs3_types::nfs3::stable_how;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NFS: u32 = 100_003;
/// Connections that each claim a 1 MiB record (under the default cap of 1024).
const CLAIMING: usize = 1000;
/// Resident memory growth allowed for them (1 MiB each would be ~1 GiB).
const CLAIM_RSS_BOUND_KIB: u64 = 200 * 1024;
/// Connections that each pipeline [`READS`] 1 MiB READs and read nothing.
const PIPELINERS: usize = 8;
const READS: u32 = 64;
/// Resident memory growth allowed for them (all replies at once would be
/// ~512 MiB, 32 per connection ~264 MiB).
const PIPELINE_RSS_BOUND_KIB: u64 = 100 * 1024;
/// How long memory is watched after the load is in place.
const WATCH: Duration = Duration::from_secs(2);

async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connect within 5 s")
        .expect("connect to the NFS port")
}

/// A NULL call answered on `s`.
async fn null_answered(s: &mut TcpStream, xid: u32) -> bool {
    if s.write_all(&nfs_null_call(xid)).await.is_err() {
        return false;
    }
    matches!(
        read_reply(s, Duration::from_secs(5)).await,
        Reply::Record(_)
    )
}

/// The highest VmRSS seen over [`WATCH`], sampled every 25 ms.
async fn watch_rss(pid: u32) -> u64 {
    let start = Instant::now();
    let mut max = 0;
    while start.elapsed() < WATCH {
        max = max.max(proc_status_kib(pid, "VmRSS"));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    max
}

/// Reads one whole reply record of up to 2 MiB.
async fn read_big_reply(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut mark = [0u8; 4];
    s.read_exact(&mut mark).await?;
    let len = (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize;
    assert!(len <= 2 << 20, "a reply of {len} bytes");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    Ok(body)
}

fn word(payload: &[u8], i: usize) -> u32 {
    u32::from_be_bytes(payload[i * 4..i * 4 + 4].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_marks_alone_cost_nothing_like_what_they_claim() {
    let gw = Gateway::start();
    let (addr, pid) = (gw.addr(), gw.pid());
    let mut nfs = mount(&gw, Creds::root()).await;
    let root = nfs.root.clone();
    nfs.getattr(&root).await.expect("getattr");
    let base_rss = proc_status_kib(pid, "VmRSS");
    let base_hwm = proc_status_kib(pid, "VmHWM");

    // Each connection has a call answered (so it is being served), then
    // claims a 1 MiB record and sends one KiB of it.
    let mut held = Vec::with_capacity(CLAIMING);
    for i in 0..CLAIMING {
        let mut s = connect(addr).await;
        assert!(
            null_answered(&mut s, i as u32).await,
            "connection {i} was not served"
        );
        s.write_all(&marker(1 << 20, true)).await.unwrap();
        s.write_all(&[0x5a; 1024]).await.unwrap();
        held.push(s);
    }
    let watched = watch_rss(pid).await;
    let hwm = proc_status_kib(pid, "VmHWM");
    eprintln!(
        "{CLAIMING} connections each claiming 1 MiB: RSS {base_rss} KiB -> watched max \
         {watched} KiB, peak {hwm} KiB"
    );
    assert!(
        hwm <= base_hwm.max(base_rss + CLAIM_RSS_BOUND_KIB),
        "resident memory peaked at {hwm} KiB, {} MiB over the {base_rss} KiB baseline \
         (bound {} MiB): the gateway allocates what record marks claim",
        hwm.saturating_sub(base_rss) >> 10,
        CLAIM_RSS_BOUND_KIB >> 10
    );

    // Closed, they leave nothing behind; the gateway still serves.
    drop(held);
    let mut fresh = connect(addr).await;
    assert!(
        null_answered(&mut fresh, 1).await,
        "a new connection after the burst"
    );
    nfs.getattr(&root).await.expect("getattr after the burst");
    let after = proc_status_kib(pid, "VmRSS");
    assert!(
        after <= base_rss + CLAIM_RSS_BOUND_KIB,
        "after the connections closed the gateway holds {after} KiB (baseline {base_rss})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_left_unread_do_not_pile_up() {
    let gw = Gateway::start();
    let (addr, pid) = (gw.addr(), gw.pid());
    let mut nfs = mount(&gw, Creds::root()).await;
    let root = nfs.root.clone();
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let file = nfs.create(&root, "big", 0o644).await.unwrap();
    nfs.write_all(&file, 0, &data, stable_how::FILE_SYNC)
        .await
        .unwrap();
    assert_eq!(nfs.read_all(&file).await.unwrap(), data);
    let base_rss = proc_status_kib(pid, "VmRSS");
    let base_hwm = proc_status_kib(pid, "VmHWM");

    let cred = Creds::root().opaque_auth();
    let mut held = Vec::new();
    for c in 0..PIPELINERS as u32 {
        let mut s = connect(addr).await;
        let mut calls = Vec::new();
        for i in 0..READS {
            let mut p = call_header(c * 1000 + i, NFS, 3, 6, &cred);
            p.extend(
                Xdr::new()
                    .opaque(&file.data)
                    .u64(0)
                    .u32(1 << 20)
                    .into_bytes(),
            );
            calls.extend(record(&p));
        }
        s.write_all(&calls).await.unwrap();
        held.push(s);
    }
    let watched = watch_rss(pid).await;
    let hwm = proc_status_kib(pid, "VmHWM");
    eprintln!(
        "{PIPELINERS} connections × {READS} unread 1 MiB READs: RSS {base_rss} KiB -> \
         watched max {watched} KiB, peak {hwm} KiB"
    );
    // Another client is served meanwhile.
    let (got, _) = tokio::time::timeout(Duration::from_secs(20), nfs.read(&file, 0, 4096))
        .await
        .expect("a read by another client within 20 s")
        .expect("read by another client");
    assert_eq!(got, data[..4096]);
    assert!(
        hwm <= base_hwm.max(base_rss + PIPELINE_RSS_BOUND_KIB),
        "resident memory peaked at {hwm} KiB, {} MiB over the {base_rss} KiB baseline \
         (bound {} MiB): unread replies pile up",
        hwm.saturating_sub(base_rss) >> 10,
        PIPELINE_RSS_BOUND_KIB >> 10
    );

    // Once the clients read, every reply comes, whole and right.
    for (c, s) in held.iter_mut().enumerate() {
        let mut xids = Vec::new();
        for _ in 0..READS {
            let reply = tokio::time::timeout(Duration::from_secs(30), read_big_reply(s))
                .await
                .unwrap_or_else(|_| panic!("connection {c}: replies stopped after {}", xids.len()))
                .expect("read a reply");
            // xid, REPLY, MSG_ACCEPTED, verifier (2 words), SUCCESS, NFS3_OK.
            assert_eq!(
                (
                    word(&reply, 1),
                    word(&reply, 2),
                    word(&reply, 5),
                    word(&reply, 6)
                ),
                (1, 0, 0, 0),
                "connection {c}: not a successful READ reply"
            );
            assert!(
                reply.len() > 1 << 20,
                "a short READ reply: {} bytes",
                reply.len()
            );
            assert!(
                contains(&reply, &data[..4096]),
                "the READ reply lacks the data"
            );
            xids.push(word(&reply, 0) - c as u32 * 1000);
        }
        xids.sort_unstable();
        assert_eq!(
            xids,
            (0..READS).collect::<Vec<_>>(),
            "connection {c}: replies"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn connections_past_nfs_max_connections_are_closed() {
    const MAX: u32 = 8;
    let gw = Gateway::start_with(GatewayOptions {
        nfs_max_connections: Some(MAX),
        ..GatewayOptions::default()
    });
    let addr = gw.addr();
    // The readiness probe's connection may still be closing: retry briefly.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.len() < MAX as usize {
        let mut s = connect(addr).await;
        if null_answered(&mut s, held.len() as u32).await {
            held.push(s);
        } else {
            assert!(
                Instant::now() < deadline,
                "only {} connections were served",
                held.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Past the cap: accepted and closed.
    for i in 0..50 {
        let mut s = connect(addr).await;
        let _ = s.write_all(&nfs_null_call(100 + i)).await;
        assert_eq!(
            read_reply(&mut s, Duration::from_secs(5)).await,
            Reply::Closed,
            "connection {} past the cap of {MAX} was served",
            i + 1
        );
    }
    // The ones in are still served.
    for (i, s) in held.iter_mut().enumerate() {
        assert!(
            null_answered(s, 200 + i as u32).await,
            "held connection {i}"
        );
    }
    // One leaving makes room for the next.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = connect(addr).await;
        if null_answered(&mut s, 300).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a freed place was not given to a new client"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = gw.logs();
    let lines = logs
        .lines()
        .filter(|l| l.contains("nfs.max_connections"))
        .count();
    assert!(
        (1..=2).contains(&lines),
        "the refusals should be logged, rate limited: {lines} lines\n{logs}"
    );
}

/// The reply to one call on `s`, which must be a whole record.
async fn answer(s: &mut TcpStream, payload: &[u8]) -> Vec<u8> {
    s.write_all(&record(payload)).await.unwrap();
    match read_reply(s, Duration::from_secs(10)).await {
        Reply::Record(r) => r,
        other => panic!("no reply: {other:?}"),
    }
}

/// A NULL call with an AUTH_SYS credential whose body is `body`.
fn null_with_cred(xid: u32, body: &[u8]) -> Vec<u8> {
    Xdr::new()
        .u32(xid)
        .u32(0) // CALL
        .u32(2)
        .u32(NFS)
        .u32(3)
        .u32(0) // NULL
        .u32(1) // AUTH_SYS
        .opaque(body)
        .u32(0) // verifier AUTH_NONE
        .u32(0)
        .into_bytes()
}

fn auth_sys_body(gids: u32, machine: &[u8]) -> Xdr {
    let mut body = Xdr::new()
        .u32(0)
        .opaque(machine)
        .u32(1000)
        .u32(1000)
        .u32(gids);
    for g in 0..gids {
        body = body.u32(2000 + g);
    }
    body
}

#[tokio::test]
async fn credentials_past_the_rfc_limits_get_auth_badcred() {
    let gw = Gateway::start();
    let mut s = connect(gw.addr()).await;
    // REPLY, MSG_DENIED, AUTH_ERROR, AUTH_BADCRED (RFC 5531 §9).
    let denied_badcred = |reply: &[u8], xid: u32, what: &str| {
        assert_eq!(
            (0..5).map(|i| word(reply, i)).collect::<Vec<_>>(),
            vec![xid, 1, 1, 1, 1],
            "{what}: expected MSG_DENIED / AUTH_ERROR / AUTH_BADCRED"
        );
    };

    let seventeen = auth_sys_body(17, b"host").into_bytes();
    denied_badcred(
        &answer(&mut s, &null_with_cred(1, &seventeen)).await,
        1,
        "17 groups",
    );

    let long = auth_sys_body(16, b"host").raw(&[0; 400]).into_bytes();
    assert!(long.len() > 400);
    denied_badcred(
        &answer(&mut s, &null_with_cred(2, &long)).await,
        2,
        "a 400+ byte credential",
    );

    let machine = auth_sys_body(0, &[b'm'; 300]).into_bytes();
    denied_badcred(
        &answer(&mut s, &null_with_cred(3, &machine)).await,
        3,
        "a 300-byte machine name",
    );

    // The connection stays usable, and the limits themselves are accepted:
    // REPLY, MSG_ACCEPTED, verifier (2 words), SUCCESS.
    let sixteen = auth_sys_body(16, &[b'm'; 255]).into_bytes();
    let reply = answer(&mut s, &null_with_cred(4, &sixteen)).await;
    assert_eq!(
        (0..6).map(|i| word(&reply, i)).collect::<Vec<_>>(),
        vec![4, 1, 0, 0, 0, 0],
        "16 groups and a 255-byte machine name are within the limits"
    );
}
