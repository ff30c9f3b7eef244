//! [`Faulty`]: wraps any [`ChunkStore`] and injects faults, changeable at
//! any time while a test runs: fail the Nth call of an operation, delay
//! every call, flip a byte in what `get` returns, report the store full, or
//! go silent (every call hangs; a `get` with a stall limit ends with
//! [`StoreError::Timeout`] after it, as a silent daemon's would). With no
//! fault set it is the store it wraps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Capacity, ChunkStore, ListEntry, Pacer, ShardStat, StoreError, StoreFuture};

/// A store operation, to aim a fault at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Put,
    Get,
    Stat,
    Delete,
    List,
    Capacity,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Stat => "stat",
            Op::Delete => "delete",
            Op::List => "list",
            Op::Capacity => "capacity",
        }
    }
}

#[derive(Debug, Default)]
struct Faults {
    /// Calls made so far, per operation.
    calls: HashMap<Op, u64>,
    /// Call numbers (1-based, counted since the wrapper was made) that fail.
    fail_at: HashMap<Op, Vec<u64>>,
    /// Every call of these operations fails.
    failing: Vec<Op>,
    delay: Option<Duration>,
    flip: bool,
    full: bool,
    silent: bool,
    /// Overrides the inner store's [`ChunkStore::list_every`].
    list_every: Option<Duration>,
    /// Overrides the inner store's [`ChunkStore::gateway_scrub`].
    gateway_scrub: Option<(Duration, u64)>,
}

/// A fault-injecting wrapper; see the module doc.
#[derive(Debug)]
pub struct Faulty {
    inner: Arc<dyn ChunkStore>,
    faults: Mutex<Faults>,
}

/// What a call is to suffer, decided when it starts.
struct Plan {
    fail: bool,
    delay: Option<Duration>,
    flip: bool,
    full: bool,
    silent: bool,
}

impl Faulty {
    pub fn new(inner: Arc<dyn ChunkStore>) -> Self {
        Faulty {
            inner,
            faults: Mutex::new(Faults::default()),
        }
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `n`th call of `op` made after this (1: the next) fails with a
    /// connection error (retryable).
    pub fn fail_nth(&self, op: Op, n: u64) {
        let mut f = self.faults();
        let at = f.calls.get(&op).copied().unwrap_or(0) + n.max(1);
        f.fail_at.entry(op).or_default().push(at);
    }

    /// Every call of `op` fails (or, with `false`, no longer does).
    pub fn fail_always(&self, op: Op, on: bool) {
        let mut f = self.faults();
        f.failing.retain(|&o| o != op);
        if on {
            f.failing.push(op);
        }
    }

    /// Every call waits `delay` first (`None`: no longer).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.faults().delay = delay;
    }

    /// `get` returns its bytes with one flipped (the middle one).
    pub fn set_flip(&self, on: bool) {
        self.faults().flip = on;
    }

    /// Puts are refused for lack of space and the capacity shows none free.
    pub fn set_full(&self, on: bool) {
        self.faults().full = on;
    }

    /// Every call hangs (see the module doc).
    pub fn set_silent(&self, on: bool) {
        self.faults().silent = on;
    }

    /// Calls of `op` made so far.
    /// Makes the store ask to be listed at most every `every`, as a bucket
    /// does.
    pub fn set_list_every(&self, every: Duration) {
        self.faults().list_every = Some(every);
    }

    /// Makes the store one the gateway scrubs (as a bucket is); with
    /// [`Faulty::set_flip`] on, its `verify` finds every object corrupt.
    pub fn set_gateway_scrub(&self, every: Duration, rate: u64) {
        self.faults().gateway_scrub = Some((every, rate));
    }

    pub fn calls(&self, op: Op) -> u64 {
        self.faults().calls.get(&op).copied().unwrap_or(0)
    }

    /// Counts a call of `op` and says what it suffers.
    fn plan(&self, op: Op) -> Plan {
        let mut f = self.faults();
        let n = {
            let c = f.calls.entry(op).or_default();
            *c += 1;
            *c
        };
        let fail = f.failing.contains(&op) || f.fail_at.get(&op).is_some_and(|at| at.contains(&n));
        if let Some(at) = f.fail_at.get_mut(&op) {
            at.retain(|&a| a != n);
        }
        Plan {
            fail,
            delay: f.delay,
            flip: f.flip,
            full: f.full,
            silent: f.silent,
        }
    }

    /// Applies the call's delay, silence and failure; `Ok` when the call
    /// goes on to the wrapped store.
    async fn enter(&self, op: Op, plan: &Plan, stall: Option<Duration>) -> Result<(), StoreError> {
        if let Some(d) = plan.delay {
            tokio::time::sleep(d).await;
        }
        if plan.silent {
            match stall {
                Some(after) => {
                    tokio::time::sleep(after).await;
                    return Err(StoreError::Timeout {
                        addr: self.inner.address().to_owned(),
                        op: op.name(),
                        after,
                    });
                }
                None => std::future::pending::<()>().await,
            }
        }
        if plan.fail {
            return Err(StoreError::Transport {
                addr: self.inner.address().to_owned(),
                op: op.name(),
                source: std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected fault"),
            });
        }
        Ok(())
    }
}

impl ChunkStore for Faulty {
    fn address(&self) -> &str {
        self.inner.address()
    }

    fn put<'a>(&'a self, key: &'a str, data: &'a [u8]) -> StoreFuture<'a, ShardStat> {
        Box::pin(async move {
            let plan = self.plan(Op::Put);
            self.enter(Op::Put, &plan, None).await?;
            if plan.full {
                let reserve = self.inner.capacity().await.map_or(0, |c| c.reserve);
                return Err(StoreError::NoSpace {
                    key: key.to_owned(),
                    len: data.len() as u64,
                    free: 0,
                    reserve,
                });
            }
            self.inner.put(key, data).await
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
        stall: Option<Duration>,
    ) -> StoreFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let plan = self.plan(Op::Get);
            self.enter(Op::Get, &plan, stall).await?;
            let mut bytes = self.inner.get(key, offset, len, stall).await?;
            if plan.flip && !bytes.is_empty() {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x01;
            }
            Ok(bytes)
        })
    }

    fn stat<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ShardStat> {
        Box::pin(async move {
            let plan = self.plan(Op::Stat);
            self.enter(Op::Stat, &plan, None).await?;
            self.inner.stat(key).await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let plan = self.plan(Op::Delete);
            self.enter(Op::Delete, &plan, None).await?;
            self.inner.delete(key).await
        })
    }

    fn list<'a>(&'a self, after: Option<&'a str>, limit: u32) -> StoreFuture<'a, Vec<ListEntry>> {
        Box::pin(async move {
            let plan = self.plan(Op::List);
            self.enter(Op::List, &plan, None).await?;
            self.inner.list(after, limit).await
        })
    }

    fn capacity(&self) -> StoreFuture<'_, Capacity> {
        Box::pin(async move {
            let plan = self.plan(Op::Capacity);
            self.enter(Op::Capacity, &plan, None).await?;
            let mut cap = self.inner.capacity().await?;
            if plan.full {
                cap.free = 0;
            }
            Ok(cap)
        })
    }

    fn reset(&self) {
        self.inner.reset();
    }

    fn list_every(&self) -> Duration {
        let own = self.faults().list_every;
        own.unwrap_or_else(|| self.inner.list_every())
    }

    fn gateway_scrub(&self) -> Option<(Duration, u64)> {
        let own = self.faults().gateway_scrub;
        own.or_else(|| self.inner.gateway_scrub())
    }

    fn verify<'a>(&'a self, key: &'a str, pacer: &'a dyn Pacer) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let flipped = self.faults().flip;
            if flipped {
                return Err(StoreError::Remote {
                    addr: self.inner.address().to_owned(),
                    op: "verify",
                    key: key.to_owned(),
                    status: cairn_chunkstore::Status::Corrupt,
                    detail: "a byte flipped (fault injection)".to_owned(),
                });
            }
            self.inner.verify(key, pacer).await
        })
    }

    fn heard(&self) -> Option<tokio::time::Instant> {
        self.inner.heard()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::store::memory::{Identity, MemoryStore};
    use crate::store::Status;

    fn faulty() -> Faulty {
        Faulty::new(Arc::new(MemoryStore::new(Identity::named("m", 1 << 20))))
    }

    #[tokio::test]
    async fn the_nth_call_fails_and_the_others_do_not() {
        let f = faulty();
        f.put("k", b"one").await.expect("a put before the fault");
        f.fail_nth(Op::Put, 2);
        f.put("k", b"two").await.expect("the first put after");
        let e = f
            .put("k", b"three")
            .await
            .expect_err("the second put after");
        assert!(e.retryable(), "an injected failure is retryable: {e}");
        f.put("k", b"four").await.expect("the third put after");
        assert_eq!(f.calls(Op::Put), 4);
        assert_eq!(f.get("k", 0, 4, None).await.expect("get"), b"four");
        f.fail_always(Op::Stat, true);
        f.stat("k").await.expect_err("stat fails while set");
        f.stat("k").await.expect_err("and again");
        f.fail_always(Op::Stat, false);
        f.stat("k").await.expect("stat answers once unset");
    }

    #[tokio::test]
    async fn a_flipped_byte_differs_in_one_place_until_unset() {
        let f = faulty();
        let data: Vec<u8> = (0..100).collect();
        f.put("k", &data).await.expect("put");
        f.set_flip(true);
        let got = f.get("k", 0, 100, None).await.expect("get");
        let differ = got.iter().zip(&data).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 1, "one byte flipped");
        f.set_flip(false);
        assert_eq!(f.get("k", 0, 100, None).await.expect("get"), data);
    }

    #[tokio::test]
    async fn a_full_store_refuses_puts_and_shows_no_room() {
        let f = faulty();
        f.set_full(true);
        let e = f.put("k", b"x").await.expect_err("put on a full store");
        assert_eq!(e.status(), Status::NoSpace);
        assert_eq!(f.capacity().await.expect("capacity").free, 0);
        f.set_full(false);
        f.put("k", b"x").await.expect("put once there is room");
        assert!(f.capacity().await.expect("capacity").free > 0);
    }

    #[tokio::test]
    async fn a_silent_store_times_out_at_the_stall_limit_or_hangs() {
        let f = faulty();
        f.put("k", b"x").await.expect("put");
        f.set_silent(true);
        let stall = Duration::from_millis(50);
        let start = Instant::now();
        let e = f.get("k", 0, 1, Some(stall)).await.expect_err("silent get");
        assert!(matches!(e, StoreError::Timeout { .. }), "{e}");
        assert!(start.elapsed() >= stall);
        let hung = tokio::time::timeout(stall, f.stat("k")).await;
        assert!(hung.is_err(), "a call without a stall limit hangs");
        f.set_silent(false);
        f.stat("k").await.expect("stat once it speaks again");
    }

    #[tokio::test]
    async fn a_delay_holds_every_call() {
        let f = faulty();
        let delay = Duration::from_millis(30);
        f.set_delay(Some(delay));
        let start = Instant::now();
        f.put("k", b"x").await.expect("put");
        f.stat("k").await.expect("stat");
        assert!(start.elapsed() >= delay * 2);
    }
}
