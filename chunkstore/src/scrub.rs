//! The scrubber: re-reads every shard at a bounded rate and checks its
//! checksum, so bit rot is found before a read needs the shard. A shard that
//! fails is quarantined (as a failed get does) and so vanishes from the
//! store's listing; the gateway's audit sees it missing and rebuilds it from
//! the other copies or shards.

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

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
    let mut pace = Pace::new(cfg.bandwidth.bytes());
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
                // The pace moves to the blocking thread and back.
                let mut moved = pace;
                let checked = tokio::task::spawn_blocking(move || {
                    let checked = s.check(&key, &mut |n| moved.wait(n));
                    (checked, moved)
                })
                .await
                .map(|(checked, back)| {
                    pace = back;
                    checked
                });
                match checked {
                    Ok(Ok(())) | Ok(Err(StoreError::NotFound { .. })) => {}
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
            }
        }
        info!(shards, bytes, corrupt, elapsed = ?started.elapsed(), "scrub pass done");
        tokio::time::sleep_until(started + every).await;
    }
}

/// Keeps a pass at its rate across shards: after each check block it
/// sleeps (on the scrub's own blocking thread) until the bytes read so far
/// are due, so the disk and the cores see a steady trickle, not a whole
/// shard read at once.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Bytes per second; 0 is no limit.
    rate: u64,
    /// When the bytes read so far are due at `rate`.
    due: StdInstant,
}

impl Pace {
    fn new(rate: u64) -> Pace {
        Pace {
            rate,
            due: StdInstant::now(),
        }
    }

    fn wait(&mut self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let now = StdInstant::now();
        // Idle time earns no credit: a pass after a pause starts at the rate.
        self.due = self.due.max(now) + Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        if self.due > now {
            std::thread::sleep(self.due - now);
        }
    }
}
