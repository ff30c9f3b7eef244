//! The gateway's client of a chunk store over a link that drops every
//! connection mid-put: [`NoiseStore::put`] resumes on new connections and
//! completes a 32 MiB put, delivering each byte about once; a put that gives
//! up after its resumes is resumed, not restarted, by the next put of the key.

#[path = "../../chunkstore/tests/common/mod.rs"]
mod common;

use cairn_chunkstore::layout::SHARD_BLOCK;
use cairn_chunkstore::protocol::MAX_NOISE_MESSAGE;
use cairn_gateway::store::noise::{NoiseStore, MAX_RESUMES};
use cairn_gateway::store::ChunkStore;
use common::cut_proxy::CutProxy;
use common::{Rng, TestStore};

/// At most one block and one Noise message re-sent per dropped connection,
/// plus the framing.
fn bound(len: u64, connections: usize) -> u64 {
    len + connections as u64 * (SHARD_BLOCK + MAX_NOISE_MESSAGE as u64) + len / 2000 + 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_through_a_link_that_drops_every_connection_completes() {
    let store = TestStore::start().await;
    let len = 32u64 << 20;
    let data = Rng(0x13).bytes(len as usize);
    // Every connection but the last is cut after 10 MiB.
    let proxy = CutProxy::start(store.addr, vec![10 << 20; 3]).await;
    let client = NoiseStore::new(&proxy.addr.to_string(), store.secret.clone());

    let stat = client.put("chunk-wan", &data).await.expect("put resumes");
    assert_eq!((stat.len, stat.crc), (len, crc32c::crc32c(&data)));
    let upstream = proxy.upstream();
    assert_eq!(upstream.len(), 4, "{upstream:?}");
    let total = proxy.upstream_total();
    eprintln!("delivered {total} bytes for {len} over {upstream:?}");
    assert!(
        total <= bound(len, 3),
        "{total} bytes for {len}: {upstream:?}"
    );

    let direct = NoiseStore::new(&store.addr.to_string(), store.secret.clone());
    assert_eq!(direct.stat("chunk-wan").await.unwrap().crc, stat.crc);
    assert!(direct.get("chunk-wan", 0, len, None).await.unwrap() == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_gave_up_is_resumed_by_the_next_put_of_the_key() {
    let store = TestStore::start().await;
    let len = 32u64 << 20;
    let data = Rng(0x14).bytes(len as usize);
    // Each connection carries 3 MiB at most: more attempts than one put makes.
    let proxy = CutProxy::start(store.addr, vec![3 << 20; 64]).await;
    let client = NoiseStore::new(&proxy.addr.to_string(), store.secret.clone());

    let mut calls = 0;
    let stat = loop {
        calls += 1;
        match client.put("chunk-flaky", &data).await {
            Ok(stat) => break stat,
            Err(err) => {
                assert!(err.retryable(), "{err}");
                assert!(calls < 5, "still failing after {calls} puts: {err}");
            }
        }
    };
    assert!(
        calls > 1,
        "one put of {} attempts was enough",
        MAX_RESUMES + 1
    );
    assert_eq!((stat.len, stat.crc), (len, crc32c::crc32c(&data)));
    let upstream = proxy.upstream();
    let total = proxy.upstream_total();
    eprintln!("{calls} puts delivered {total} bytes for {len} over {upstream:?}");
    assert!(
        total <= bound(len, upstream.len()),
        "{total} bytes for {len}: {upstream:?}"
    );
    let direct = NoiseStore::new(&store.addr.to_string(), store.secret.clone());
    assert!(direct.get("chunk-flaky", 0, len, None).await.unwrap() == data);
}
