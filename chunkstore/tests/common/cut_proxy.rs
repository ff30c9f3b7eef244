//! A TCP proxy on 127.0.0.1 that relays to a target and cuts connections
//! short: the i-th connection accepted is closed, both ways, once `cuts[i]`
//! bytes went upstream (client to target); connections past the list are
//! relayed whole. It counts the bytes each connection carried upstream, so a
//! test sees how much a client really delivered. Stops when dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Upstream bytes per connection, in accept order.
type Counts = Arc<Mutex<Vec<u64>>>;

pub struct CutProxy {
    pub addr: SocketAddr,
    upstream: Counts,
    task: JoinHandle<()>,
}

impl CutProxy {
    /// Listens on 127.0.0.1:0, relaying to `target`.
    pub async fn start(target: SocketAddr, cuts: Vec<u64>) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Counts::default();
        let counts = Arc::clone(&upstream);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let index = {
                    let mut counts = counts.lock().unwrap();
                    counts.push(0);
                    counts.len() - 1
                };
                let cut = cuts.get(index).copied();
                conns.spawn(relay(client, target, cut, Arc::clone(&counts), index));
            }
        });
        CutProxy {
            addr,
            upstream,
            task,
        }
    }

    /// Bytes each connection carried upstream so far.
    pub fn upstream(&self) -> Vec<u64> {
        self.upstream.lock().unwrap().clone()
    }

    pub fn upstream_total(&self) -> u64 {
        self.upstream().iter().sum()
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, target: SocketAddr, cut: Option<u64>, counts: Counts, i: usize) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 << 10];
        let mut sent = 0u64;
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n as u64,
            };
            let n = cut.map_or(n, |cut| n.min(cut - sent));
            if to_server.write_all(&buf[..n as usize]).await.is_err() {
                return;
            }
            sent += n;
            counts.lock().unwrap()[i] = sent;
            if cut == Some(sent) {
                return;
            }
        }
    };
    let down = tokio::io::copy(&mut from_server, &mut to_client);
    // Either direction ending closes both sockets.
    tokio::select! {
        () = up => {}
        _ = down => {}
    }
}
