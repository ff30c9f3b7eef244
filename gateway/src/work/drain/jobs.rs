//! The drainer's runner jobs and how they start: the drain pass with cache
//! eviction, the trash, the archive transition (paced by its bandwidth),
//! collection with compaction every 10 s, and the store probe every 2 s.
//! All stop on one [`Shutdown`], each after its current step.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::Drainer;
use crate::error::Error;
use crate::work::runner::{self, Board, Job, Shutdown, Step};

/// Starts every drain job; the handles end once `shutdown` is asked for.
pub fn spawn(drainer: Drainer, shutdown: &Shutdown, board: &Board) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(runner::run(
            Pass(drainer.clone()),
            shutdown.subscribe(),
            board.clone(),
        )),
        tokio::spawn(runner::run(
            Trash(drainer.clone()),
            shutdown.subscribe(),
            board.clone(),
        )),
        tokio::spawn(runner::run(
            Archive(drainer.clone()),
            shutdown.subscribe(),
            board.clone(),
        )),
        tokio::spawn(runner::run(
            Collect(drainer.clone()),
            shutdown.subscribe(),
            board.clone(),
        )),
        tokio::spawn(runner::run(
            Probe(drainer),
            shutdown.subscribe(),
            board.clone(),
        )),
    ]
}

/// Drains what is quiet, then evicts clean data past the watermark. A
/// failed pass leaves the data in the cache and evicts nothing.
pub struct Pass(pub Drainer);

impl Job for Pass {
    fn name(&self) -> &'static str {
        "drain"
    }

    async fn step(&mut self) -> Result<Step, Error> {
        let drained = self.0.drain_once().await?;
        if let Err(e) = self.0.keep_cache_room().await {
            tracing::warn!(cause = %e, "cache eviction failed");
        }
        Ok(if drained > 0 { Step::Busy } else { Step::Idle })
    }
}

/// Deletes trashed objects that are due (after the shipped metadata, when
/// shipping is on).
pub struct Trash(pub Drainer);

impl Job for Trash {
    fn name(&self) -> &'static str {
        "trash"
    }

    async fn step(&mut self) -> Result<Step, Error> {
        let n = self.0.empty_trash().await?;
        Ok(if n > 0 { Step::Busy } else { Step::Idle })
    }
}

/// Re-lays one replica chunk as erasure shards per step, pausing after it
/// to keep under `archive_bandwidth`.
pub struct Archive(pub Drainer);

impl Job for Archive {
    fn name(&self) -> &'static str {
        "archive"
    }

    async fn step(&mut self) -> Result<Step, Error> {
        let bytes = self.0.archive_one().await?;
        Ok(Step::Throttled(self.0.archive_pause(bytes)))
    }
}

/// Collects dead chunks and compacts sparse ones, every 10 s.
pub struct Collect(pub Drainer);

impl Job for Collect {
    fn name(&self) -> &'static str {
        "collect"
    }

    async fn step(&mut self) -> Result<Step, Error> {
        let collected = self.0.collect().await;
        let compacted = self.0.compact().await;
        collected?;
        compacted?;
        Ok(Step::Idle)
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// Asks every store whether it is up, every 2 s.
pub struct Probe(pub Drainer);

impl Job for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    async fn step(&mut self) -> Result<Step, Error> {
        self.0.stores.probe().await;
        Ok(Step::Idle)
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_secs(2)
    }
}
