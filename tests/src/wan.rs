//! WAN emulation for tests and benches: a TCP proxy per store link
//! ([`WanProxy`]) that delays every byte by a one-way latency with jitter
//! (order kept per connection), caps each direction's bandwidth across all
//! connections of the link, and injects stalls (nothing flows either way,
//! connections stay open) and connection resets at points of the traffic a
//! seed fixes ([`WanSpec::event`]); it counts what it relays, and can go
//! silent on demand. It keeps no byte it relays.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::gateway::allocate_port;
use crate::relay::RelayThread;

#[cfg(test)]
mod tests;

/// The unit of traffic the stall and drop schedule is drawn for.
pub const MIB: u64 = 1 << 20;
/// Most bytes relayed as one piece (one latency stamp, one bandwidth grant).
const PIECE: usize = 16 * 1024;
/// How far an idle link's pacing clock may lag behind now: a burst this long
/// at the cap goes through at once (absorbs timer granularity).
const SLACK: Duration = Duration::from_millis(5);

/// What one emulated link does to the bytes crossing it.
#[derive(Clone, Debug, PartialEq)]
pub struct WanSpec {
    /// One-way delay added to every byte, each direction.
    pub one_way: Duration,
    /// Each piece's delay is `one_way` ± up to this, uniformly (order kept).
    pub jitter: Duration,
    /// Bytes per second, per direction, shared by every connection of the
    /// link; `None` is unlimited.
    pub bandwidth: Option<u64>,
    /// Chance that one MiB relayed (each direction counted apart) starts a
    /// stall of the link.
    pub stall_per_mib: f64,
    /// A stall lasts between these (uniformly).
    pub stall_min: Duration,
    pub stall_max: Duration,
    /// Chance that one MiB relayed resets the connection carrying it.
    pub drop_per_mib: f64,
    /// Fixes the stall and drop schedule and every jitter draw.
    pub seed: u64,
}

impl WanSpec {
    /// A link of round trip `rtt` ± `rtt_jitter` (split evenly between the
    /// two directions) and `mbit` Mbit/s per direction (`0.0`: unlimited);
    /// no stalls, no drops.
    pub fn new(rtt: Duration, rtt_jitter: Duration, mbit: f64, seed: u64) -> Self {
        Self {
            one_way: rtt / 2,
            jitter: rtt_jitter / 2,
            bandwidth: (mbit > 0.0).then(|| (mbit * 1e6 / 8.0) as u64),
            stall_per_mib: 0.0,
            stall_min: Duration::from_secs(2),
            stall_max: Duration::from_secs(10),
            drop_per_mib: 0.0,
            seed,
        }
    }

    /// With stalls of `min..=max` started by a share `per_mib` of the MiBs.
    pub fn with_stalls(mut self, per_mib: f64, min: Duration, max: Duration) -> Self {
        self.stall_per_mib = per_mib;
        self.stall_min = min;
        self.stall_max = max.max(min);
        self
    }

    /// With a share `per_mib` of the MiBs resetting their connection.
    pub fn with_drops(mut self, per_mib: f64) -> Self {
        self.drop_per_mib = per_mib;
        self
    }

    /// The same link with its schedule drawn from `seed` (one per store).
    pub fn reseeded(&self, seed: u64) -> Self {
        Self {
            seed,
            ..self.clone()
        }
    }

    /// What happens when the link has relayed `mib` MiB in direction `dir`:
    /// a pure function of the seed, whichever connection carries that MiB.
    pub fn event(&self, dir: Dir, mib: u64) -> Option<Event> {
        let h = splitmix(self.seed ^ splitmix(mib.wrapping_mul(2) + dir as u64));
        let u = unit(h);
        if u < self.stall_per_mib {
            let span = self.stall_max.saturating_sub(self.stall_min);
            Some(Event::Stall(
                self.stall_min + span.mul_f64(unit(splitmix(h))),
            ))
        } else if u < self.stall_per_mib + self.drop_per_mib {
            Some(Event::Drop)
        } else {
            None
        }
    }
}

/// A direction of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client (the gateway) to target (the store).
    Up = 0,
    /// Target to client.
    Down = 1,
}

/// What the schedule does at one MiB of a link's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// No byte flows either way for this long; connections stay open.
    Stall(Duration),
    /// The connection carrying that MiB is reset (RST both ends).
    Drop,
}

/// What a link has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WanCounters {
    /// Bytes delivered to the target (gateway to store).
    pub up_bytes: u64,
    /// Bytes delivered to the client (store to gateway).
    pub down_bytes: u64,
    /// Stalls started.
    pub stalls: u64,
    /// Connections reset by the schedule.
    pub drops: u64,
    /// Connections accepted.
    pub connections: u64,
}

impl WanCounters {
    /// Bytes delivered both ways.
    pub fn bytes(&self) -> u64 {
        self.up_bytes + self.down_bytes
    }
}

/// The SplitMix64 finaliser: a well-mixed u64 from any u64.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `h` as a number in `[0, 1)`.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Paces one direction of a link: the time the link's last granted byte has
/// gone out (a virtual clock; it runs ahead of now while the link is busy).
#[derive(Debug)]
struct Pacer {
    rate: Option<u64>,
    next_free: Instant,
}

impl Pacer {
    /// When `n` bytes asked for at `now` have gone out at the cap.
    fn grant(&mut self, n: usize, now: Instant) -> Instant {
        let Some(rate) = self.rate else { return now };
        let base = self.next_free.max(now.checked_sub(SLACK).unwrap_or(now));
        self.next_free = base + Duration::from_secs_f64(n as f64 / rate as f64);
        self.next_free
    }
}

/// One link's shared state: its spec, pacing, stall and counters.
struct Link {
    spec: WanSpec,
    silent: AtomicBool,
    pacers: [Mutex<Pacer>; 2],
    /// Bytes accepted per direction (the schedule's position).
    accepted: [AtomicU64; 2],
    delivered: [AtomicU64; 2],
    stalls: AtomicU64,
    drops: AtomicU64,
    connections: AtomicU64,
    /// The end of the stall under way, if any.
    stall_until: Mutex<Option<Instant>>,
}

impl Link {
    fn new(spec: WanSpec) -> Self {
        let pacer = || {
            Mutex::new(Pacer {
                rate: spec.bandwidth,
                next_free: Instant::now(),
            })
        };
        Self {
            pacers: [pacer(), pacer()],
            spec,
            silent: AtomicBool::new(false),
            accepted: Default::default(),
            delivered: Default::default(),
            stalls: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            stall_until: Mutex::new(None),
        }
    }

    fn silent(&self) -> bool {
        self.silent.load(Ordering::SeqCst)
    }

    /// Sleeps while a stall is under way.
    async fn wait_unstalled(&self) {
        loop {
            let until = *self.stall_until.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }

    /// Counts `n` more bytes accepted in `dir` and applies the events of
    /// every MiB boundary they cross; `Err(())` when the connection must be
    /// reset.
    fn account(&self, dir: Dir, n: u64) -> Result<(), Reset> {
        let before = self.accepted[dir as usize].fetch_add(n, Ordering::SeqCst);
        let mut reset = Ok(());
        for mib in before / MIB + 1..=(before + n) / MIB {
            match self.spec.event(dir, mib) {
                Some(Event::Stall(d)) => {
                    self.stalls.fetch_add(1, Ordering::SeqCst);
                    let mut until = self.stall_until.lock().unwrap_or_else(|e| e.into_inner());
                    let end = Instant::now() + d;
                    *until = Some(until.map_or(end, |t| t.max(end)));
                }
                Some(Event::Drop) => reset = Err(Reset),
                None => {}
            }
        }
        reset
    }

    fn counters(&self) -> WanCounters {
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        WanCounters {
            up_bytes: get(&self.delivered[0]),
            down_bytes: get(&self.delivered[1]),
            stalls: get(&self.stalls),
            drops: get(&self.drops),
            connections: get(&self.connections),
        }
    }
}

/// A connection the schedule resets.
#[derive(Debug)]
struct Reset;

/// An emulated WAN link in front of one target, on its own thread and
/// runtime ([`RelayThread`]); stops when dropped.
pub struct WanProxy {
    addr: SocketAddr,
    link: Arc<Link>,
    _thread: RelayThread,
}

impl WanProxy {
    /// Listens on a fresh 127.0.0.1 port below the ephemeral range.
    pub fn start(target: SocketAddr, spec: WanSpec) -> Self {
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, allocate_port()));
        Self::start_on(addr, target, spec).expect("bind the WAN proxy port")
    }

    /// Listens on `listen`.
    pub fn start_on(
        listen: SocketAddr,
        target: SocketAddr,
        spec: WanSpec,
    ) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let link = Arc::new(Link::new(spec));
        let shared = link.clone();
        let thread = RelayThread::accept("wan-proxy", listener, move |client| {
            let index = shared.connections.fetch_add(1, Ordering::SeqCst);
            connection(client, target, shared.clone(), index)
        })?;
        Ok(Self {
            addr,
            link,
            _thread: thread,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn spec(&self) -> &WanSpec {
        &self.link.spec
    }

    /// Silences the link (`true`): connections are accepted and stay open,
    /// but every byte either way is swallowed. `false` relays again.
    pub fn set_silent(&self, silent: bool) {
        self.link.silent.store(silent, Ordering::SeqCst);
    }

    /// What the link has relayed and done so far.
    pub fn counters(&self) -> WanCounters {
        self.link.counters()
    }
}

/// Relays one connection both ways until both ends close or the schedule
/// resets it.
async fn connection(
    mut client: tokio::net::TcpStream,
    target: SocketAddr,
    link: Arc<Link>,
    index: u64,
) {
    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let outcome = {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        let seed = |dir: Dir| splitmix(link.spec.seed ^ splitmix(index * 2 + dir as u64));
        let up = pipe(&link, Dir::Up, cr, sw, seed(Dir::Up));
        let down = pipe(&link, Dir::Down, sr, cw, seed(Dir::Down));
        tokio::try_join!(up, down)
    };
    if outcome.is_err() {
        link.drops.fetch_add(1, Ordering::SeqCst);
        // A zero linger closes with a reset at once; it never blocks.
        #[allow(deprecated)]
        for s in [&client, &server] {
            let _ = s.set_linger(Some(Duration::ZERO));
        }
    }
}

/// One direction of a connection: a reader that paces and stamps pieces,
/// and a writer that delivers each at its time.
async fn pipe(
    link: &Link,
    dir: Dir,
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    seed: u64,
) -> Result<(), Reset> {
    let spec = &link.spec;
    let in_flight = spec.bandwidth.map_or(1024, |rate| {
        let bdp = rate as f64 * (spec.one_way + spec.jitter).as_secs_f64();
        (bdp as usize / PIECE).max(16) * 2
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(in_flight);
    let reader = async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut last = Instant::now();
        let mut buf = vec![0u8; PIECE];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => n,
            };
            if link.silent() {
                continue;
            }
            link.wait_unstalled().await;
            link.account(dir, n as u64)?;
            link.wait_unstalled().await;
            let now = Instant::now();
            let sent = link.pacers[dir as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .grant(n, now);
            let delay = jittered(&mut rng, spec.one_way, spec.jitter);
            last = last.max(sent + delay);
            if tx.send((last, buf[..n].to_vec())).await.is_err() {
                return Ok(());
            }
        }
    };
    let writer = async move {
        while let Some((at, piece)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            link.wait_unstalled().await;
            if link.silent() {
                continue;
            }
            if to.write_all(&piece).await.is_err() {
                break;
            }
            link.delivered[dir as usize].fetch_add(piece.len() as u64, Ordering::SeqCst);
        }
        let _ = to.shutdown().await;
        Ok::<(), Reset>(())
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

/// `base` ± up to `jitter`, uniformly.
fn jittered(rng: &mut StdRng, base: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return base;
    }
    let j = jitter.as_secs_f64();
    let offset = rng.random_range(-j..=j);
    Duration::from_secs_f64((base.as_secs_f64() + offset).max(0.0))
}
