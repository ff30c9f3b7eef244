//! What block reads know about each store's load: the gets in flight to it
//! now, and the latency of its recent gets (small and large apart). Reads
//! pick the copy with the fewest gets in flight (then the lowest latency),
//! so concurrent reads spread over every store link, and hedge a get that
//! has not answered within a few of that store's usual latencies.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_metadata::StoreId;

/// Latencies remembered per store and size class.
const SAMPLES: usize = 32;
/// Gets of more than this count as large (their latency is mostly transfer).
const SMALL: u64 = 256 * 1024;
/// The hedge delay is never below this.
pub const HEDGE_FLOOR: Duration = Duration::from_millis(20);
/// Nor, before a store has answered this many gets of a size class, other
/// than [`HEDGE_UNKNOWN`].
const WARM: usize = 3;
const HEDGE_UNKNOWN: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
struct Load {
    in_flight: usize,
    small: VecDeque<Duration>,
    large: VecDeque<Duration>,
}

impl Load {
    fn samples(&self, len: u64) -> &VecDeque<Duration> {
        if len > SMALL {
            &self.large
        } else {
            &self.small
        }
    }

    fn median(&self, len: u64) -> Option<Duration> {
        let s = self.samples(len);
        if s.len() < WARM {
            return None;
        }
        let mut v: Vec<Duration> = s.iter().copied().collect();
        v.sort();
        Some(v[v.len() / 2])
    }
}

/// Every store's load; shared by all reads of a pool.
#[derive(Debug, Default)]
pub struct Loads(Arc<Mutex<HashMap<StoreId, Load>>>);

/// One get in flight to a store, counted until dropped; [`Flight::done`]
/// records its latency.
#[derive(Debug)]
pub struct Flight {
    loads: Arc<Mutex<HashMap<StoreId, Load>>>,
    store: StoreId,
    len: u64,
    started: tokio::time::Instant,
}

impl Flight {
    /// The get answered: remember how long it took.
    pub fn done(self) {
        let took = self.started.elapsed();
        let mut map = self.loads.lock().unwrap_or_else(|p| p.into_inner());
        let load = map.entry(self.store).or_default();
        let s = if self.len > SMALL {
            &mut load.large
        } else {
            &mut load.small
        };
        if s.len() == SAMPLES {
            s.pop_front();
        }
        s.push_back(took);
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut map = self.loads.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(load) = map.get_mut(&self.store) {
            load.in_flight = load.in_flight.saturating_sub(1);
        }
    }
}

impl Loads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StoreId, Load>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a get of `len` bytes to `store` as in flight from now.
    pub fn start(&self, store: StoreId, len: u64) -> Flight {
        self.lock().entry(store).or_default().in_flight += 1;
        Flight {
            loads: self.0.clone(),
            store,
            len,
            started: tokio::time::Instant::now(),
        }
    }

    /// `stores` ordered by gets in flight, then median latency for a get of
    /// `len` bytes (an unmeasured store first, to learn it); ties keep their
    /// order.
    pub fn rank(&self, stores: &mut [StoreId], len: u64) {
        let map = self.lock();
        stores.sort_by_key(|s| {
            map.get(s).map_or((0, Duration::ZERO), |l| {
                (l.in_flight, l.median(len).unwrap_or(Duration::ZERO))
            })
        });
    }

    /// How long to wait on `store` for a get of `len` bytes before asking
    /// another copy: `fixed` if set, else three times its median latency,
    /// at least [`HEDGE_FLOOR`] (before it has a median, [`HEDGE_UNKNOWN`]).
    pub fn hedge_delay(&self, store: StoreId, len: u64, fixed: Option<Duration>) -> Duration {
        if let Some(d) = fixed {
            return d;
        }
        self.lock()
            .get(&store)
            .and_then(|l| l.median(len))
            .map_or(HEDGE_UNKNOWN, |m| (m * 3).max(HEDGE_FLOOR))
    }

    /// Gets in flight to `store` now.
    #[cfg(test)]
    pub fn in_flight(&self, store: StoreId) -> usize {
        self.lock().get(&store).map_or(0, |l| l.in_flight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ranks_by_flights_then_latency_and_hedges_at_three_medians() {
        let loads = Loads::default();
        let (a, b) = (StoreId(1), StoreId(2));
        let held = loads.start(a, 10);
        let mut order = [a, b];
        loads.rank(&mut order, 10);
        assert_eq!(order, [b, a], "the busy store last");
        drop(held);
        assert_eq!(loads.in_flight(a), 0);
        assert_eq!(loads.hedge_delay(a, 10, None), HEDGE_UNKNOWN);
        for (store, ms) in [(a, 40), (b, 5)] {
            for _ in 0..WARM {
                let f = loads.start(store, 10);
                tokio::time::advance(Duration::from_millis(ms)).await;
                f.done();
            }
        }
        let mut order = [a, b];
        loads.rank(&mut order, 10);
        assert_eq!(order, [b, a], "the faster store first");
        assert_eq!(loads.hedge_delay(a, 10, None), Duration::from_millis(120));
        assert_eq!(loads.hedge_delay(b, 10, None), HEDGE_FLOOR);
        assert_eq!(loads.hedge_delay(b, 1 << 20, None), HEDGE_UNKNOWN);
        let fixed = Some(Duration::from_secs(1));
        assert_eq!(loads.hedge_delay(a, 10, fixed), Duration::from_secs(1));
    }
}
