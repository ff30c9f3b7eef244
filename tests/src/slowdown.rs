//! A TCP proxy in front of an S3 endpoint that throttles on demand, as a
//! provider does under load: while throttling, the connections it relays are
//! cut and every request on a new one is answered `503 SlowDown` (S3's own
//! error body) and the connection closed. Otherwise it relays bytes as they
//! come. Stops when dropped.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::gateway::allocate_port;

const BODY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

/// The throttling proxy; see the module doc.
pub struct SlowDown {
    addr: SocketAddr,
    throttle: tokio::sync::watch::Sender<bool>,
    refused: Arc<AtomicU64>,
    _thread: crate::relay::RelayThread,
}

impl SlowDown {
    /// Listens on a fresh port below the ephemeral range, relaying to `target`.
    pub fn start(target: SocketAddr) -> SlowDown {
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, allocate_port()));
        let listener = std::net::TcpListener::bind(addr).expect("bind the proxy port");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let (throttle, watch) = tokio::sync::watch::channel(false);
        let refused = Arc::new(AtomicU64::new(0));
        let count = refused.clone();
        let thread = crate::relay::RelayThread::accept("slowdown-proxy", listener, move |client| {
            connection(client, target, watch.clone(), count.clone())
        })
        .expect("spawn the proxy thread");
        SlowDown {
            addr,
            throttle,
            refused,
            _thread: thread,
        }
    }

    /// The endpoint to give the gateway, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts (cutting every relayed connection) or stops throttling.
    pub fn set_throttling(&self, on: bool) {
        self.throttle.send_replace(on);
    }

    /// Requests answered 503 SlowDown so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn connection(
    mut client: tokio::net::TcpStream,
    target: SocketAddr,
    mut throttle: tokio::sync::watch::Receiver<bool>,
    refused: Arc<AtomicU64>,
) {
    if *throttle.borrow_and_update() {
        // Read the request (head and body) so the client sees the answer,
        // not a reset, then refuse it.
        if read_request(&mut client).await.is_some() {
            let answer = format!(
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                BODY.len()
            );
            if client.write_all(answer.as_bytes()).await.is_ok() {
                refused.fetch_add(1, Ordering::SeqCst);
            }
        }
        let _ = client.shutdown().await;
        return;
    }
    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = throttle.wait_for(|on| *on) => {}
    }
}

/// Reads one HTTP request's head and its `Content-Length` body; `None` if
/// the client closed first or sent something else.
async fn read_request(client: &mut tokio::net::TcpStream) -> Option<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || client.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let mut left: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = client.read(&mut buf[..want]).await.ok()?;
        if n == 0 {
            return None;
        }
        left -= n as u64;
    }
    Some(())
}
