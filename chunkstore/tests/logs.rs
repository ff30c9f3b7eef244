//! The store's logs, captured at TRACE from every thread, never show the
//! cluster secret, the derived key, or payload bytes, even when a client is
//! refused or a shard is quarantined.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use cairn_chunkstore::layout::{shard_path, SHARD_PAYLOAD_OFFSET};
use cairn_chunkstore::{Secret, StoreClient};
use common::TestStore;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_and_payload_never_appear_in_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let store = TestStore::start().await;
    let secret_text = std::fs::read_to_string(&store.cfg.secret_file).unwrap();
    let payload = b"MARKER-PAYLOAD-0123456789-MARKER".repeat(100);

    let mut client = store.client().await;
    client.put("logged-key", &payload).await.unwrap();
    client.get("logged-key", 0, 64).await.unwrap();
    let wrong = Secret::from_bytes(&[0x22; 64]);
    assert!(StoreClient::connect(store.addr, &wrong).await.is_err());

    let path = shard_path(&store.data_dir(), "logged-key");
    let mut raw = std::fs::read(&path).unwrap();
    raw[SHARD_PAYLOAD_OFFSET as usize + 30] ^= 0xff;
    std::fs::write(&path, raw).unwrap();
    assert!(client.get("logged-key", 0, 1).await.is_err());

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.contains("handshake refused"), "{logs}");
    assert!(
        logs.contains("put stored") && logs.contains("resumed=0"),
        "each stored put is logged with the bytes resumed: {logs}"
    );
    assert!(logs.contains("quarantined"), "{logs}");
    assert!(logs.contains("logged-key"), "keys are logged: {logs}");
    assert!(!logs.contains(secret_text.trim()), "secret in logs");
    assert!(!logs.contains(&"22".repeat(16)), "wrong secret in logs");
    assert!(!logs.contains("MARKER-PAYLOAD"), "payload in logs");
}
