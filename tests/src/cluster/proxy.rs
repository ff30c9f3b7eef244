//! A TCP proxy that keeps every byte it relays, to check what crosses the
//! wire between the gateway and a store, and that can go silent on demand
//! (a black-holed link: connections stay open, nothing gets through).

use super::*;

/// Bytes one proxied connection carried, per direction.
#[derive(Clone, Debug, Default)]
pub struct Relayed {
    /// Gateway to store.
    pub upstream: Vec<u8>,
    /// Store to gateway.
    pub downstream: Vec<u8>,
}

pub(super) type Recording = Arc<Mutex<Vec<Relayed>>>;

/// Set while the proxy relays nothing.
type Silence = Arc<std::sync::atomic::AtomicBool>;

/// A TCP proxy on its own thread and runtime: every connection accepted on
/// [`addr`](Self::addr) is relayed to the target, and every byte is kept, per
/// connection and direction (so a pattern split across reads of one stream
/// is still found whole). Stops when dropped.
pub struct RecordingProxy {
    addr: SocketAddr,
    recording: Recording,
    silence: Silence,
    _thread: crate::relay::RelayThread,
}

impl RecordingProxy {
    /// Listens on a fresh port below the ephemeral range, relaying to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let port = allocate_port();
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let listener = std::net::TcpListener::bind(addr).expect("bind the proxy port");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let recording: Recording = Arc::default();
        let silence: Silence = Arc::default();
        let rec = recording.clone();
        let quiet = silence.clone();
        let thread =
            crate::relay::RelayThread::accept("recording-proxy", listener, move |client| {
                // Numbered in accept order.
                let index = {
                    let mut all = rec.lock().unwrap_or_else(|e| e.into_inner());
                    all.push(Relayed::default());
                    all.len() - 1
                };
                connection(client, target, rec.clone(), quiet.clone(), index)
            })
            .expect("spawn the proxy thread");
        Self {
            addr,
            recording,
            silence,
            _thread: thread,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Silences the link (`true`): connections are still accepted and stay
    /// open, but every byte in either direction is swallowed, as on a link
    /// that black-holes its packets. `false` relays again (connections that
    /// lost bytes meanwhile are out of step and get dropped by their ends).
    pub fn set_silent(&self, silent: bool) {
        self.silence
            .store(silent, std::sync::atomic::Ordering::SeqCst);
    }

    /// Everything relayed so far, one entry per connection.
    pub fn relayed(&self) -> Vec<Relayed> {
        self.recording
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Total bytes relayed (both directions, every connection).
    pub fn total_bytes(&self) -> usize {
        self.relayed()
            .iter()
            .map(|r| r.upstream.len() + r.downstream.len())
            .sum()
    }
}

/// Relays one accepted connection both ways, recording it.
async fn connection(
    client: tokio::net::TcpStream,
    target: SocketAddr,
    recording: Recording,
    silence: Silence,
    index: usize,
) {
    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = relay(cr, sw, recording.clone(), silence.clone(), index, true);
    let down = relay(sr, cw, recording, silence, index, false);
    tokio::join!(up, down);
}

pub(super) async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    recording: Recording,
    silence: Silence,
    index: usize,
    upstream: bool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if silence.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        {
            let mut rec = recording.lock().unwrap_or_else(|e| e.into_inner());
            let entry = &mut rec[index];
            let side = if upstream {
                &mut entry.upstream
            } else {
                &mut entry.downstream
            };
            side.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
