//! A chunk store's network edge under strangers: a flood of idle TCP
//! connections from someone without the secret must not lock the holder of
//! the secret out nor fill the store's log, and a store whose connection
//! slots are all taken must say "busy", not "wrong secret".

use std::time::{Duration, Instant};

use cairn_chunkstore::{Secret, StoreClient, StoreError, MAX_CONNECTIONS};
use cairn_tests::{Cluster, ClusterOptions, StoreSpec};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Idle connections the flood opens.
const FLOOD: usize = 2000;
/// The most the store's log may grow by while it is flooded (a line per
/// connection would be ~150 KiB).
const LOG_GROWTH_BOUND: usize = 16 * 1024;

fn one_store() -> Cluster {
    let mut options = ClusterOptions::new(vec![StoreSpec::new("a", "ha", &["hdd"])]);
    options.log_level = "debug".into();
    Cluster::start(options)
}

fn log_len(cluster: &Cluster) -> usize {
    cluster.store("a").logs().len()
}

/// Opens up to `n` TCP connections that never say anything, each connect
/// within 5 s.
async fn open_idle(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => panic!("connect #{} to the store: {e}", held.len()),
            Err(_) => panic!("connect #{} to the store took more than 5 s", held.len()),
        }
    }
    held
}

/// Whether the store has closed `s` (EOF, a reset, or the 2-byte "busy"
/// message followed by EOF).
async fn closed_by_store(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    loop {
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn a_flood_of_idle_connections_does_not_lock_out_the_secret_holder() {
    let cluster = one_store();
    let addr = cluster.store("a").addr();
    let secret = Secret::load(cluster.secret_path()).expect("load the secret");
    let log_before = log_len(&cluster);

    let started = Instant::now();
    let mut held = open_idle(addr, FLOOD).await;
    eprintln!(
        "opened {} idle connections in {:?}",
        held.len(),
        started.elapsed()
    );

    // The holder of the secret still gets in, at once, and is served.
    let mut client = StoreClient::connect(addr, &secret)
        .await
        .unwrap_or_else(|e| panic!("the secret holder was refused during the flood: {e}"));
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    client
        .put("x-flood-probe", &data)
        .await
        .expect("put during the flood");
    assert_eq!(
        client
            .get("x-flood-probe", 0, data.len() as u64)
            .await
            .expect("get during the flood"),
        data
    );

    // The store drops every stranger within its handshake deadline (5 s),
    // so no idle connection holds a place for long.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut open = held.len();
    while open > 0 {
        assert!(
            Instant::now() < deadline,
            "{open} of {FLOOD} idle connections were still open after 20 s"
        );
        open = 0;
        for s in &mut held {
            if !closed_by_store(s).await {
                open += 1;
            }
        }
        if open > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    drop(held);

    // A second client after the flood, and the first one still works.
    let mut again = StoreClient::connect(addr, &secret)
        .await
        .expect("connect after the flood");
    again.health().await.expect("health after the flood");
    client
        .health()
        .await
        .expect("the first client after the flood");

    let growth = log_len(&cluster) - log_before;
    let log = cluster.store("a").logs();
    eprintln!("the store's log grew by {growth} bytes during the flood");
    assert!(
        growth <= LOG_GROWTH_BOUND,
        "the store's log grew by {growth} bytes for {FLOOD} idle connections (bound \
         {LOG_GROWTH_BOUND}): refusals must be rate limited\n{}",
        &log[log.len().saturating_sub(4000)..]
    );
    assert!(
        log.contains("handshake") && log.contains("suppressed"),
        "the store should still say (rate limited) that it refused handshakes:\n{log}"
    );
}

/// Connects until the store refuses; the connections in and the refusal.
async fn take_every_slot(
    addr: std::net::SocketAddr,
    secret: &Secret,
) -> (Vec<StoreClient>, StoreError) {
    let mut clients = Vec::new();
    loop {
        assert!(
            clients.len() <= MAX_CONNECTIONS,
            "{} authenticated connections were let in, more than the {MAX_CONNECTIONS} slots",
            clients.len()
        );
        match StoreClient::connect(addr, secret).await {
            Ok(c) => clients.push(c),
            Err(e) => return (clients, e),
        }
    }
}

#[tokio::test]
async fn a_store_with_every_slot_taken_says_busy_not_wrong_secret() {
    let cluster = one_store();
    let addr = cluster.store("a").addr();
    let secret = Secret::load(cluster.secret_path()).expect("load the secret");

    // Take every slot (the gateway holds a few of them already).
    let (mut clients, refusal) = take_every_slot(addr, &secret).await;
    eprintln!("refused after {} connections: {refusal}", clients.len());
    assert!(
        clients.len() > MAX_CONNECTIONS / 2,
        "refused after only {} connections: {refusal}",
        clients.len()
    );
    let text = refusal.to_string();
    assert!(
        !text.contains("secret"),
        "a full store is reported as a secret mismatch: {text}"
    );
    assert!(
        text.contains("no free connection slot") && refusal.retryable(),
        "a full store should be reported as busy (and worth retrying): {refusal:?}"
    );
    // A few more attempts are refused the same way, and logged once.
    for _ in 0..20 {
        let e = StoreClient::connect(addr, &secret)
            .await
            .expect_err("still full");
        assert!(e.to_string().contains("no free connection slot"), "{e:?}");
    }

    // Every connection in is served; one leaving frees a slot.
    clients[0]
        .health()
        .await
        .expect("health on a held connection");
    clients.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut freed = loop {
        match StoreClient::connect(addr, &secret).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("a freed slot was not given to the next client: {e}"),
        }
    };
    freed.health().await.expect("health on the freed slot");

    let log = cluster.store("a").logs();
    let lines = log
        .lines()
        .filter(|l| l.contains("connection slot"))
        .count();
    assert!(
        (1..=3).contains(&lines),
        "the store should log the full slots, rate limited; {lines} lines:\n{log}"
    );
}

#[tokio::test]
async fn the_gateway_reports_a_full_store_as_full() {
    let mut cluster = one_store();
    let addr = cluster.store("a").addr();
    let secret = Secret::load(cluster.secret_path()).expect("load the secret");
    cluster.stop_gateway();
    let (clients, refusal) = take_every_slot(addr, &secret).await;
    eprintln!("{} connections in; then: {refusal}", clients.len());
    cluster.start_gateway();
    cairn_tests::poll_until(
        "the gateway logs why store a does not answer",
        Duration::from_secs(60),
        || {
            let log = cluster.gateway_logs();
            if log.contains("no free connection slot") {
                Ok(log)
            } else {
                Err(format!(
                    "not yet:\n{}",
                    &log[log.len().saturating_sub(3000)..]
                ))
            }
        },
    );
    let log = cluster.gateway_logs();
    assert!(
        !log.contains("does not hold this cluster's secret"),
        "the gateway blames the secret for a full store:\n{log}"
    );
    // Slots freed, the gateway gets in.
    drop(clients);
    cluster.wait_store_online("a", true, Duration::from_secs(60));
}
