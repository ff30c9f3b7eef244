//! The scrubber: re-reads every shard at a bounded rate and checks its
//! checksum, so bit rot is found before a read needs the shard. A shard that
//! fails is quarantined (as a failed get does) and so vanishes from the
//! store's listing; the gateway's audit sees it missing and rebuilds it from
//! the other copies or shards.

use std::sync::Arc;
use std::time::Duration;

use cairn_config::ScrubConfig;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::error::StoreError;
use crate::store::Store;

/// Shards listed per page.
const PAGE: u32 = 256;

/// Runs passes forever (the caller aborts the task on shutdown).
pub(crate) async fn run(store: Arc<Store>, cfg: ScrubConfig) {
    let every = cfg.every.get();
    if every.is_zero() {
        return;
    }
    let rate = cfg.bandwidth.bytes();
    loop {
        let started = Instant::now();
        let (mut shards, mut bytes, mut corrupt) = (0u64, 0u64, 0u64);
        let mut after: Option<String> = None;
        loop {
            let page = store.list(after.as_deref(), PAGE);
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for entry in page {
                let (s, key) = (Arc::clone(&store), entry.key.clone());
                // A zero-length get verifies the whole payload's crc.
                let checked = tokio::task::spawn_blocking(move || s.get(&key, 0, 0)).await;
                match checked {
                    Ok(Ok(_)) | Ok(Err(StoreError::NotFound { .. })) => {}
                    Ok(Err(err @ StoreError::Corrupt { .. })) => {
                        corrupt += 1;
                        warn!(key = %entry.key, cause = %err, "scrub found a corrupt shard and quarantined it");
                    }
                    Ok(Err(err)) => {
                        warn!(key = %entry.key, cause = %err, "scrub could not read a shard")
                    }
                    Err(err) => warn!(key = %entry.key, cause = %err, "scrub task failed"),
                }
                shards += 1;
                bytes += entry.len;
                if rate > 0 {
                    tokio::time::sleep(Duration::from_secs_f64(entry.len as f64 / rate as f64))
                        .await;
                }
            }
        }
        info!(shards, bytes, corrupt, elapsed = ?started.elapsed(), "scrub pass done");
        tokio::time::sleep_until(started + every).await;
    }
}
