//! The bucket scrub. A `cairn chunkstore` re-reads its own shards (its
//! `[scrub]`); a bucket cannot, so the gateway does it for every store whose
//! backend asks ([`ChunkStore::gateway_scrub`](crate::store::ChunkStore::gateway_scrub)):
//! once per period, every chunk object is read back whole with ranged gets
//! at the store's scrub bandwidth and checked against its crc32c. A bad
//! object goes to the repairer as condemned: rebuilt from the other copies
//! or shards, and the bad one collected. A pass runs a page of the listing
//! at a time; a store that stops answering pauses its pass where it was.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_chunkstore::{Pacer, Status};
use cairn_metadata::StoreId;
use tokio::time::Instant;
use tracing::{info, warn};

use super::Condemned;
use crate::error::Error;
use crate::store::{ObjectKey, Stores};
use crate::work::runner::{Job, Step};

/// Keys listed per page.
const PAGE: u32 = 1000;

/// One store's scrub: where its pass stands.
struct Pass {
    /// When the current (or next) pass starts.
    start: Instant,
    /// Listed keys not yet checked.
    queue: VecDeque<String>,
    /// The listing's cursor (`None` before the first page).
    after: Option<String>,
    /// The listing is exhausted: the pass ends with its queue.
    listed: bool,
    checked: u64,
    bad: u64,
    pace: Arc<Rate>,
}

/// The job; see the module doc.
pub struct Scrub {
    stores: Arc<Stores>,
    condemned: Condemned,
    passes: HashMap<StoreId, Pass>,
}

impl Scrub {
    pub fn new(stores: Arc<Stores>, condemned: Condemned) -> Self {
        Scrub {
            stores,
            condemned,
            passes: HashMap::new(),
        }
    }

    /// Checks one object of the first store whose pass is due; whether
    /// there was one.
    pub async fn scrub_one(&mut self) -> Result<bool, Error> {
        let now = Instant::now();
        for (id, every, rate) in self.stores.gateway_scrubs() {
            // A store's first pass starts one period after the gateway.
            let pass = self
                .passes
                .entry(id)
                .or_insert_with(|| Pass::new(now + every, rate));
            if pass.start > now || !self.stores.is_online(id) {
                continue;
            }
            if pass.queue.is_empty() && !pass.listed {
                let page = match self.stores.list(id, pass.after.as_deref(), PAGE).await {
                    Ok(page) => page,
                    Err(_) => continue,
                };
                pass.listed = page.len() < PAGE as usize;
                pass.after = page.last().map(|e| e.key.clone()).or(pass.after.take());
                pass.queue.extend(
                    page.into_iter()
                        .map(|e| e.key)
                        .filter(|k| k.parse::<ObjectKey>().is_ok_and(|o| o.chunk().is_some())),
                );
            }
            let Some(key) = pass.queue.pop_front() else {
                if pass.listed {
                    let name = self.stores.name(id);
                    info!(store = %name, checked = pass.checked, bad = pass.bad, "bucket scrub pass done");
                    *pass = Pass::new(pass.start + every, rate);
                }
                continue;
            };
            match self.stores.verify(id, &key, pass.pace.as_ref()).await {
                Ok(()) => pass.checked += 1,
                Err(e) if e.status() == Status::Corrupt => {
                    pass.checked += 1;
                    pass.bad += 1;
                    warn!(store = %self.stores.name(id), key, cause = %e, "bit rot in a bucket: the object goes to repair");
                    self.condemned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert((id, key));
                }
                // Deleted since the listing (collected, compacted).
                Err(e) if e.status() == Status::NotFound => {}
                // Unreachable: the pass waits for the store, at this key.
                Err(_) => pass.queue.push_front(key),
            }
            return Ok(true);
        }
        Ok(false)
    }
}

impl Pass {
    fn new(start: Instant, rate: u64) -> Pass {
        Pass {
            start,
            queue: VecDeque::new(),
            after: None,
            listed: false,
            checked: 0,
            bad: 0,
            pace: Arc::new(Rate::new(rate)),
        }
    }
}

impl Job for Scrub {
    fn name(&self) -> &'static str {
        "scrub"
    }

    async fn step(&mut self) -> Result<Step, Error> {
        Ok(if self.scrub_one().await? {
            Step::Busy
        } else {
            Step::Idle
        })
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// At most `rate` bytes per second since the first byte (0: no limit).
#[derive(Debug)]
struct Rate {
    rate: u64,
    /// When the count started, and the bytes allowed since.
    sent: Mutex<Option<(Instant, u64)>>,
}

impl Rate {
    fn new(rate: u64) -> Rate {
        Rate {
            rate,
            sent: Mutex::new(None),
        }
    }
}

impl Pacer for Rate {
    fn wait(&self, bytes: u64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if self.rate == 0 {
                return;
            }
            let due = {
                let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
                let (since, total) = sent.get_or_insert_with(|| (Instant::now(), 0));
                let due = *since + Duration::from_secs_f64(*total as f64 / self.rate as f64);
                *total += bytes;
                due
            };
            tokio::time::sleep_until(due).await;
        })
    }
}
