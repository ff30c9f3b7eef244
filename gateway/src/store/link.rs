//! What the pool knows about the link to one store ([`Link`]): a round-trip
//! estimate (EWMA of probe latency), upload and download throughput (EWMA of
//! each large transfer's rate times the transfers alongside it), what is
//! queued and in flight, and when bytes last moved; and the pacing of uploads
//! to it ([`Pace`]: a concurrency limit and one bandwidth cap per
//! [`Purpose`]). The promise of [`Link::moving`]: a store with a transfer
//! finished within [`PROGRESS_WINDOW`], or an upload still inside the time its
//! size should take at the measured rate, is moving bytes, and no failed probe
//! makes it suspect. All times are tokio's, so tests run on a paused clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::Pacer;

/// A store whose transfer finished this recently is moving bytes.
pub const PROGRESS_WINDOW: Duration = Duration::from_secs(10);
/// Bytes a throughput sample needs before it counts (smaller transfers are
/// dominated by round trips).
const SAMPLE_BYTES: u64 = 1 << 20;
/// The rate a transfer is allowed before any is measured (1 Mbit/s).
const FLOOR_RATE: f64 = 125_000.0;
/// Added to every transfer's allowance (connect, round trips, the store's fsync).
const ALLOWANCE_SLACK: Duration = Duration::from_secs(10);
/// No transfer alone keeps a store counted as moving longer than this (a
/// silent daemon's connection fails within a minute of its last byte).
const MAX_ALLOWANCE: Duration = Duration::from_secs(180);
/// Weight of a new sample in every estimate.
const ALPHA: f64 = 0.3;

/// Why bytes are sent to a store: each has its own bandwidth cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// New data from the cache, and the metadata shipper.
    Drain,
    /// Copies remade after a loss, and decommissioning.
    Repair,
    /// Copies moved between stores to even their fills.
    Rebalance,
}

/// Bytes per second one store may be sent for each [`Purpose`] (0: no cap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub drain: u64,
    pub repair: u64,
    pub rebalance: u64,
}

/// An exponentially weighted moving average.
#[derive(Debug, Clone, Copy, Default)]
struct Ewma(Option<f64>);

impl Ewma {
    fn add(&mut self, sample: f64) {
        self.0 = Some(match self.0 {
            None => sample,
            Some(old) => old + ALPHA * (sample - old),
        });
    }
}

/// Throughput of one direction. Each transfer of at least [`SAMPLE_BYTES`]
/// gives a sample: its own rate times how many transfers ran alongside it on
/// average (they share the link), so concurrent transfers measure the link.
#[derive(Debug, Default)]
struct Rate {
    ewma: Ewma,
    active: u32,
    /// Transfer-seconds run so far (the integral of `active` over time).
    load: f64,
    last: Option<Instant>,
}

impl Rate {
    fn advance(&mut self, now: Instant) {
        if let Some(last) = self.last {
            self.load += f64::from(self.active) * now.saturating_duration_since(last).as_secs_f64();
        }
        self.last = Some(now);
    }

    /// A transfer starts; returns the load so far, for [`Rate::finish`].
    fn start(&mut self, now: Instant) -> f64 {
        self.advance(now);
        self.active += 1;
        self.load
    }

    fn finish(&mut self, now: Instant, since: Instant, load_then: f64, bytes: u64) {
        self.advance(now);
        self.active = self.active.saturating_sub(1);
        let took = now.saturating_duration_since(since).as_secs_f64();
        if bytes >= SAMPLE_BYTES && took > 0.0 {
            let alongside = ((self.load - load_then) / took).max(1.0);
            self.ewma.add(bytes as f64 / took * alongside);
        }
    }

    fn get(&self) -> Option<f64> {
        self.ewma.0
    }
}

/// One transfer under way, from [`Link::start`] to [`Link::finish`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    id: u64,
    dir: Direction,
    at: Instant,
    load: f64,
}

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// One store's link; see the module doc.
#[derive(Debug, Default)]
pub struct Link {
    rtt: Ewma,
    up: Rate,
    down: Rate,
    /// Bytes waiting for their turn or on their way to the store.
    queued: u64,
    /// Transfers running: ticket id, and until when each counts as moving.
    running: Vec<(u64, Instant)>,
    next_id: u64,
    last_progress: Option<Instant>,
}

/// What `cairn status` shows of a link.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkStats {
    pub rtt: Option<Duration>,
    /// Bytes per second.
    pub up: Option<f64>,
    pub down: Option<f64>,
    pub queued: u64,
    pub running: usize,
    /// How long ago bytes last moved.
    pub idle: Option<Duration>,
}

impl Link {
    pub fn add_rtt(&mut self, rtt: Duration) {
        self.rtt.add(rtt.as_secs_f64());
    }

    /// Measured upload rate, bytes per second.
    pub fn up_rate(&self) -> Option<f64> {
        self.up.get()
    }

    pub fn rtt(&self) -> Option<Duration> {
        self.rtt.0.map(Duration::from_secs_f64)
    }

    pub fn queued(&self) -> u64 {
        self.queued
    }

    /// `bytes` wait to be sent (placement counts them as load at once).
    pub fn enqueue(&mut self, bytes: u64) {
        self.queued += bytes;
    }

    pub fn dequeue(&mut self, bytes: u64) {
        self.queued = self.queued.saturating_sub(bytes);
    }

    /// A transfer of `bytes` starts; returns its ticket for [`Link::finish`].
    pub fn start(&mut self, dir: Direction, bytes: u64, now: Instant) -> Ticket {
        let rate = match dir {
            Direction::Up => &mut self.up,
            Direction::Down => &mut self.down,
        };
        // An upload may take as long as all that is queued at the measured
        // rate, twice over, plus slack (the link is shared). A download
        // earns nothing until it completes: it has its own stall limit.
        let per_sec = rate.get().unwrap_or(FLOOR_RATE).max(FLOOR_RATE);
        let allowed = match dir {
            Direction::Up => {
                (Duration::from_secs_f64(2.0 * self.queued.max(bytes) as f64 / per_sec)
                    + ALLOWANCE_SLACK)
                    .min(MAX_ALLOWANCE)
            }
            Direction::Down => Duration::ZERO,
        };
        let load = rate.start(now);
        self.next_id += 1;
        self.running.push((self.next_id, now + allowed));
        Ticket {
            id: self.next_id,
            dir,
            at: now,
            load,
        }
    }

    /// A transfer ends; `moved` the bytes it carried (0 when it failed).
    pub fn finish(&mut self, ticket: Ticket, moved: u64, now: Instant) {
        self.running.retain(|&(id, _)| id != ticket.id);
        let rate = match ticket.dir {
            Direction::Up => &mut self.up,
            Direction::Down => &mut self.down,
        };
        rate.finish(now, ticket.at, ticket.load, moved);
        if moved > 0 {
            self.last_progress = Some(now);
        }
    }

    /// Whether bytes move: see the module doc.
    pub fn moving(&self, now: Instant) -> bool {
        self.last_progress
            .is_some_and(|t| now.saturating_duration_since(t) < PROGRESS_WINDOW)
            || self.running.iter().any(|&(_, until)| until > now)
    }

    /// Uploads that keep the link's bandwidth-delay product filled with
    /// objects of `object` bytes: one more than fit in it, within `2..=max`.
    pub fn depth(&self, object: u64, max: usize) -> usize {
        let bdp = match (self.up.get(), self.rtt.0) {
            (Some(rate), Some(rtt)) => rate * rtt,
            _ => 0.0,
        };
        let fit = (bdp / object.max(1) as f64).ceil() as usize;
        (fit + 1).clamp(2, max.max(2))
    }

    pub fn stats(&self, now: Instant) -> LinkStats {
        LinkStats {
            rtt: self.rtt(),
            up: self.up.get(),
            down: self.down.get(),
            queued: self.queued,
            running: self.running.len(),
            idle: self.last_progress.map(|t| now.saturating_duration_since(t)),
        }
    }
}

/// One bandwidth cap: the time the link is next free for this purpose.
/// Uploads are paced piece by piece through it ([`Pacer`]), so the cap
/// holds within a transfer, not only on average over many.
#[derive(Debug)]
pub struct Limiter {
    bytes_per_sec: u64,
    next_free: Mutex<Instant>,
    /// Uploads of this purpose at once when capped: two keep the link busy
    /// between two uploads, and a capped purpose never holds every slot.
    flights: Arc<Semaphore>,
}

/// Uploads of one capped purpose to one store at once.
const CAPPED_FLIGHTS: usize = 2;

impl Limiter {
    fn new(bytes_per_sec: u64) -> Self {
        Limiter {
            bytes_per_sec,
            next_free: Mutex::new(Instant::now()),
            flights: Arc::new(Semaphore::new(CAPPED_FLIGHTS)),
        }
    }

    fn capped(&self) -> bool {
        self.bytes_per_sec > 0
    }
}

impl Pacer for Limiter {
    /// Waits until `bytes` may start so that no more than the cap is sent.
    fn wait(&self, bytes: u64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if !self.capped() {
                return;
            }
            let start = {
                let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
                let start = (*next).max(Instant::now());
                *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
                start
            };
            tokio::time::sleep_until(start).await;
        })
    }
}

/// Leave to send one upload: its store slot, its purpose's flight when
/// capped, and the pacer its bytes go through.
pub struct Admission<'a> {
    _slot: Option<OwnedSemaphorePermit>,
    _flight: Option<OwnedSemaphorePermit>,
    pub pacer: &'a Limiter,
}

/// Paces uploads to one store: at most `concurrency` at once and, per
/// purpose with a cap, no faster than it. Probes never pass here.
#[derive(Debug)]
pub struct Pace {
    slots: Arc<Semaphore>,
    drain: Limiter,
    repair: Limiter,
    rebalance: Limiter,
}

impl Pace {
    pub fn new(concurrency: usize, caps: Caps) -> Self {
        Pace {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            drain: Limiter::new(caps.drain),
            repair: Limiter::new(caps.repair),
            rebalance: Limiter::new(caps.rebalance),
        }
    }

    /// Waits for a slot for one upload of `purpose` (a capped purpose first
    /// waits for one of its own few flights, so it holds no more than those
    /// slots while its bytes trickle); the upload then sends through
    /// [`Admission::pacer`].
    pub async fn admit(&self, purpose: Purpose) -> Admission<'_> {
        let limiter = match purpose {
            Purpose::Drain => &self.drain,
            Purpose::Repair => &self.repair,
            Purpose::Rebalance => &self.rebalance,
        };
        let flight = match limiter.capped() {
            true => limiter.flights.clone().acquire_owned().await.ok(),
            false => None,
        };
        Admission {
            _slot: self.slots.clone().acquire_owned().await.ok(),
            _flight: flight,
            pacer: limiter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throughput_counts_concurrent_transfers_as_one_link() {
        let mut link = Link::default();
        let t0 = Instant::now();
        // Two 4 MiB uploads side by side, both done after 1 s: 8 MiB/s.
        let a = link.start(Direction::Up, 4 << 20, t0);
        let b = link.start(Direction::Up, 4 << 20, t0);
        let t1 = t0 + Duration::from_secs(1);
        link.finish(a, 4 << 20, t1);
        link.finish(b, 4 << 20, t1);
        let rate = link.up_rate().unwrap_or(0.0);
        assert!((rate - 8.0 * 1048576.0).abs() < 1.0, "{rate}");
        assert!(link.moving(t1));
        assert!(!link.moving(t1 + PROGRESS_WINDOW));
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_transfer_counts_as_moving_for_its_allowance() {
        let mut link = Link::default();
        let t0 = Instant::now();
        // 32 MiB at the 1 Mbit/s floor: the longest allowance.
        let _ = link.start(Direction::Up, 32 << 20, t0);
        assert!(link.moving(t0 + Duration::from_secs(170)));
        assert!(!link.moving(t0 + MAX_ALLOWANCE));
        // Measured at 4 MiB/s, 1 MiB may take 0.5 s + slack.
        let mut link = Link::default();
        let a = link.start(Direction::Up, 4 << 20, t0);
        link.finish(a, 4 << 20, t0 + Duration::from_secs(1));
        let t1 = t0 + PROGRESS_WINDOW * 2;
        let _ = link.start(Direction::Up, 1 << 20, t1);
        assert!(link.moving(t1 + ALLOWANCE_SLACK));
        assert!(!link.moving(t1 + ALLOWANCE_SLACK + Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn depth_fills_the_bandwidth_delay_product() {
        let mut link = Link::default();
        assert_eq!(link.depth(32 << 20, 8), 2);
        let t0 = Instant::now();
        let a = link.start(Direction::Up, 100 << 20, t0);
        link.finish(a, 100 << 20, t0 + Duration::from_secs(1));
        link.add_rtt(Duration::from_millis(500));
        // 100 MiB/s × 0.5 s = 50 MiB in flight: 4 MiB objects, 13 + 1, capped.
        assert_eq!(link.depth(4 << 20, 8), 8);
        assert_eq!(link.depth(32 << 20, 8), 3);
    }
}
