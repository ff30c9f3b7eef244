//! Reading a byte range of a replicated chunk without waiting on a slow
//! copy: the online replica with the fewest gets in flight is asked first
//! (see `load.rs`); if it has not answered within its hedge delay, the next
//! one is asked too, and the first answer that verifies wins (the others
//! are dropped, which cancels them). A copy that fails or does not verify
//! is skipped for the next at once. When every copy failed only by not
//! answering (a stall, a dropped link), they are all asked again after a
//! short pause, until `[read] timeout` ends the read: a WAN stall of a few
//! seconds on both copies delays a read, it does not fail it. A large range
//! is cut into frame-aligned parts read from different replicas at the same
//! time.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use cairn_metadata::{BlockLocation, StoreId};
use tracing::{debug, warn};

use super::crypto::CryptoError;
use super::frames::{self, Span, FRAME};
use super::keys::ObjectKey;
use super::pool::Stores;
use crate::core::FsError;

/// A range at least this long is read in parts from several replicas.
const SPLIT: u64 = 1 << 20;
/// Each part is at least this long.
const PART: u64 = 512 * 1024;
/// A get longer than this is hedged only when its store stops sending, or
/// after [`PATIENCE`] hedge delays (at least [`PATIENCE_FLOOR`]).
const LARGE: u64 = 256 * 1024;
const PATIENCE: u32 = 8;
const PATIENCE_FLOOR: std::time::Duration = std::time::Duration::from_secs(10);

/// The first of `set` to finish (removed from it). Pends forever on an
/// empty set.
pub(super) async fn first<F: Future + Unpin>(set: &mut Vec<F>) -> F::Output {
    std::future::poll_fn(|cx| {
        for i in 0..set.len() {
            if let Poll::Ready(v) = Pin::new(&mut set[i]).poll(cx) {
                drop(set.swap_remove(i));
                return Poll::Ready(v);
            }
        }
        Poll::Pending
    })
    .await
}

/// Runs every future at once; their outputs in order.
pub(super) async fn all<F: Future + Unpin>(futs: Vec<F>) -> Vec<F::Output> {
    let mut set: Vec<_> = futs
        .into_iter()
        .enumerate()
        .map(|(i, f)| Box::pin(async move { (i, f.await) }))
        .collect();
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    while !set.is_empty() {
        let (i, v) = first(&mut set).await;
        out[i] = Some(v);
    }
    out.into_iter().flatten().collect()
}

/// Rounds over every copy a replica read makes while all of them only
/// fail to answer; `[read] timeout` usually ends the read first.
const RETRY_ROUNDS: u32 = 30;
/// The pause before round `n` is `n` times this (at most four times).
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

type Attempt<'a> =
    Pin<Box<dyn Future<Output = (StoreId, Result<Vec<u8>, super::StoreError>)> + Send + 'a>>;

impl Stores {
    /// The replicas of `loc`: online ones ranked by load for a get of `len`
    /// bytes, then the others.
    pub(super) fn replica_order(&self, loc: &BlockLocation, len: u64) -> Vec<StoreId> {
        let mut online = Vec::new();
        let mut offline = Vec::new();
        for &(_, store) in &loc.placements {
            if online.contains(&store) || offline.contains(&store) {
                continue;
            }
            if self.is_online(store) {
                online.push(store);
            } else {
                offline.push(store);
            }
        }
        self.loads.rank(&mut online, len);
        online.extend(offline);
        online
    }

    /// Plain frames `span` of a replicated v2 block: one hedged read, or
    /// several at once (one per replica) for a large span.
    pub(super) async fn replica_frames(
        &self,
        loc: &BlockLocation,
        span: Span,
    ) -> Result<Vec<u8>, FsError> {
        let copies = self.replica_order(loc, span.len);
        let parts = (copies.len() as u64)
            .min(span.count)
            .min(span.len / PART)
            .max(1);
        if span.len < SPLIT || parts < 2 {
            return self.replica_part(loc, copies, span).await;
        }
        // Part p asks the p-th copy first: every replica link carries a part.
        let per = span.count.div_ceil(parts);
        let reads: Vec<_> = (0..parts)
            .map(|p| {
                let first = span.first + p * per;
                let count = per.min(span.first + span.count - first);
                let part = frames::span(loc.plain_len, first * FRAME, count * FRAME);
                let mut order = copies.clone();
                order.rotate_left(p as usize);
                Box::pin(self.replica_part(loc, order, part))
            })
            .collect();
        let mut plain = Vec::with_capacity((span.count * FRAME) as usize);
        for part in all(reads).await {
            plain.extend_from_slice(&part?);
        }
        Ok(plain)
    }

    /// One part: the frames of `span`, hedged across the replicas.
    async fn replica_part(
        &self,
        loc: &BlockLocation,
        order: Vec<StoreId>,
        span: Span,
    ) -> Result<Vec<u8>, FsError> {
        self.hedged(loc, order, loc.offset + span.start, span.len, |sealed| {
            frames::open(
                &self.key,
                sealed,
                loc.chunk,
                loc.offset,
                loc.plain_len,
                span.first,
                span.count,
            )
        })
        .await
    }

    /// Bytes `start..start + len` of the chunk object of `loc`, from the
    /// first replica (asked in `order`) whose answer `open` accepts; returns
    /// what `open` made of them.
    pub(super) async fn hedged(
        &self,
        loc: &BlockLocation,
        order: Vec<StoreId>,
        start: u64,
        len: u64,
        open: impl Fn(&[u8]) -> Result<Vec<u8>, CryptoError>,
    ) -> Result<Vec<u8>, FsError> {
        let key = ObjectKey::Chunk(loc.chunk).to_string();
        let mut next = order.clone().into_iter();
        // Whether every copy failed only by not answering (a stall, a
        // dropped link): then the copies are asked again, after a pause,
        // until `[read] timeout` ends the read, as a WAN stall passes.
        let mut transient = true;
        let mut round = 0u32;
        let launch = |store: StoreId| -> Attempt<'_> {
            let flight = self.loads.start(store, len);
            let key = &key;
            Box::pin(async move {
                let got = self.get(store, key, start, len).await;
                if got.is_ok() {
                    flight.done();
                }
                (store, got)
            })
        };
        let mut running: Vec<Attempt<'_>> = Vec::new();
        let mut hedge_at = None;
        // The copy asked last, which the hedge timer is for, and when.
        let mut asked: Option<(StoreId, tokio::time::Instant)> = None;
        let mut why = String::from("no replica is recorded");
        loop {
            if running.is_empty() {
                if next.len() == 0 && transient && round < RETRY_ROUNDS && !order.is_empty() {
                    round += 1;
                    let pause = RETRY_PAUSE * round.min(4);
                    debug!(chunk = %loc.chunk, round, ?pause, "no copy answered; asking them again");
                    tokio::time::sleep(pause).await;
                    next = order.clone().into_iter();
                }
                let Some(store) = next.next() else {
                    return Err(FsError::Unavailable {
                        chunk: Some(loc.chunk),
                        why,
                    });
                };
                running.push(launch(store));
                hedge_at = Some(self.hedge_deadline(store, len));
                asked = Some((store, tokio::time::Instant::now()));
            }
            let hedge = hedge_at.filter(|_| next.len() > 0);
            tokio::select! {
                (store, got) = first(&mut running) => {
                    let failure = match got {
                        Ok(sealed) => match open(&sealed) {
                            Ok(plain) => return Ok(plain),
                            // A replica that does not verify is skipped for the next.
                            Err(e) => {
                                warn!(store = %self.name(store), chunk = %loc.chunk, cause = %e, "a replica failed verification");
                                transient = false;
                                e.to_string()
                            }
                        },
                        Err(e) => {
                            warn!(store = %self.name(store), chunk = %loc.chunk, cause = %e, "a replica could not be read; trying the next");
                            transient &= super::unreachable(&e);
                            e.to_string()
                        }
                    };
                    why = format!("{}: {failure}", self.name(store));
                    if let Some(store) = next.next() {
                        running.push(launch(store));
                        hedge_at = Some(self.hedge_deadline(store, len));
                        asked = Some((store, tokio::time::Instant::now()));
                    }
                }
                () = sleep_until(hedge), if hedge.is_some() => {
                    // A large get to a store that keeps sending waits its
                    // turn on a busy link: asking another copy would only
                    // load a second link with the same bytes.
                    // (Not forever: a get on a store that answers others
                    // but not this one is hedged after PATIENCE delays, and
                    // at least PATIENCE_FLOOR: before its latency is known,
                    // a link filling up at the start of a read is no hang.)
                    let patient = |&(s, at): &(StoreId, tokio::time::Instant)| {
                        let delays = self.loads.hedge_delay(s, len, self.hedge) * PATIENCE;
                        len > LARGE
                            && self.sending(s, len)
                            && at.elapsed() < delays.max(PATIENCE_FLOOR)
                    };
                    if let Some((store, _)) = asked.filter(patient) {
                        hedge_at = Some(self.hedge_deadline(store, len));
                        continue;
                    }
                    if let Some(store) = next.next() {
                        asked = Some((store, tokio::time::Instant::now()));
                        debug!(store = %self.name(store), chunk = %loc.chunk, len, "a replica is slow; asking another too");
                        running.push(launch(store));
                        hedge_at = Some(self.hedge_deadline(store, len));
                    }
                }
            }
        }
    }

    fn hedge_deadline(&self, store: StoreId, len: u64) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.loads.hedge_delay(store, len, self.hedge)
    }

    /// Whether `store` sent anything within one hedge delay (for a get of
    /// `len` bytes) on any connection.
    fn sending(&self, store: StoreId, len: u64) -> bool {
        let within = self.loads.hedge_delay(store, len, self.hedge);
        self.store(store)
            .ok()
            .and_then(|s| s.heard())
            .is_some_and(|t| t.elapsed() < within)
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
