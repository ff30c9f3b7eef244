//! The `ChunkStore` contract against the real thing: the gateway's Noise
//! client on a `cairn chunkstore` daemon passes the same conformance suite
//! as the memory store, and a pooled connection to a daemon that restarted
//! is replaced without the caller seeing an error.

use std::sync::Arc;

use cairn_chunkstore::Secret;
use cairn_gateway::store::conformance;
use cairn_gateway::store::noise::NoiseStore;
use cairn_gateway::store::ChunkStore;
use cairn_tests::{Store, StoreSpec};

/// A fresh daemon on its own, and the gateway's client for it.
fn daemon() -> (tempfile::TempDir, Store, Arc<NoiseStore>) {
    let root = tempfile::Builder::new()
        .prefix("cairn-conformance-")
        .tempdir()
        .expect("create temp dir");
    let secret_path = root.path().join("cluster.secret");
    let secret = Secret::generate_file(&secret_path).expect("write the secret");
    let store = Store::standalone(
        root.path(),
        StoreSpec::new("a", "ha", &["hdd"]),
        &secret_path,
    );
    let client = Arc::new(NoiseStore::new(&store.addr().to_string(), secret));
    (root, store, client)
}

#[tokio::test]
async fn a_real_chunk_store_passes_the_conformance_suite() {
    let (_root, store, client) = daemon();
    conformance::check_all(client.as_ref()).await;
    let cap = client.capacity().await.expect("capacity");
    assert_eq!((cap.name.as_str(), cap.host.as_str()), ("a", "ha"));
    assert_eq!(cap.labels, ["hdd"]);
    drop(store);
}

#[tokio::test]
async fn a_stale_pooled_connection_is_replaced() {
    let (_root, mut store, client) = daemon();
    client
        .put("c0000000000000001", b"bytes")
        .await
        .expect("put");
    store.restart();
    let stat = client
        .stat("c0000000000000001")
        .await
        .expect("stat after the daemon restarted");
    assert_eq!(stat.len, 5);
}
