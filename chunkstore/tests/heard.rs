//! A get's stall limit counts silence from the store, not from the get: a
//! get whose answer waits behind other traffic on a busy link is not cut
//! while the store keeps sending on another connection to it, and is cut
//! when the store is silent everywhere.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn_chunkstore::transport::Heard;
use cairn_chunkstore::{StoreClient, StoreError};
use common::{Rng, TestStore};
use tokio::net::{TcpListener, TcpStream};

/// How long the held connection's answers are held back.
const HELD: Duration = Duration::from_millis(2500);
/// The gets' stall limit: shorter than [`HELD`].
const STALL: Duration = Duration::from_millis(800);

/// A relay to `target` whose first connection delivers nothing from the
/// store for [`HELD`] (its requests go through); later ones relay at once.
async fn relay(target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((client, _)) = listener.accept().await {
            let held = std::mem::take(&mut first);
            let server = TcpStream::connect(target).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
            tokio::spawn(async move {
                // The handshake's answer passes; the next bytes are held.
                let mut head = [0u8; 1];
                let mut copied = vec![];
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                loop {
                    let n = sr.read(&mut head).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    copied.push(head[0]);
                    cw.write_all(&head).await.unwrap();
                    if copied.len() >= 2 {
                        let len = u16::from_be_bytes([copied[0], copied[1]]) as usize;
                        if copied.len() == 2 + len {
                            break;
                        }
                    }
                }
                if held {
                    tokio::time::sleep(HELD).await;
                }
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_waits_while_the_store_sends_on_another_connection() {
    let store = TestStore::start().await;
    let data = Rng(5).bytes(300_000);
    store.client().await.put("k", &data).await.unwrap();
    let via = relay(store.addr).await;

    let heard = Arc::new(Heard::default());
    let mut held = StoreClient::connect(via, &store.secret).await.unwrap();
    held.share_heard(heard.clone());
    let mut busy = StoreClient::connect(via, &store.secret).await.unwrap();
    busy.share_heard(heard.clone());
    // The other connection keeps the store heard for longer than HELD.
    let traffic = tokio::spawn(async move {
        for _ in 0..40 {
            busy.get("k", 0, 1000).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = tokio::time::Instant::now();
    let got = held.get_within("k", 7, 100_000, STALL).await.unwrap();
    assert_eq!(got, &data[7..100_007]);
    assert!(started.elapsed() >= HELD - Duration::from_millis(100));
    traffic.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_is_cut_when_the_store_is_silent_everywhere() {
    let store = TestStore::start().await;
    store.client().await.put("k", &[1; 5000]).await.unwrap();
    let via = relay(store.addr).await;
    let heard = Arc::new(Heard::default());
    let mut held = StoreClient::connect(via, &store.secret).await.unwrap();
    held.share_heard(heard);
    let started = tokio::time::Instant::now();
    let err = held.get_within("k", 0, 10, STALL).await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < HELD, "{:?}", started.elapsed());
}
