//! What `cairn status` shows of the repair work: the queue, the rate and
//! ETA, the last audit, and rebalancing.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::REBALANCE_SPREAD;

/// The repair worker's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairProgress {
    pub waiting_chunks: u64,
    pub waiting_bytes: u64,
    pub stuck_chunks: u64,
    pub unplaceable_chunks: u64,
    pub repaired_chunks: u64,
    pub repaired_bytes: u64,
    pub bytes_per_second: f64,
    pub eta_seconds: Option<f64>,
    pub last_audit_seconds_ago: Option<u64>,
    pub orphans_trashed: u64,
    pub rebalance: Rebalance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rebalance {
    pub fill_spread_points: f64,
    pub target_points: f64,
    pub moved_chunks: u64,
    pub moved_bytes: u64,
}

/// What `cairn status` shows of the repair work.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// Chunks below their class (or on a store being drained) at the last
    /// pass, and their bytes on the stores.
    pub waiting_chunks: u64,
    pub waiting_bytes: u64,
    /// Chunks that cannot be repaired now (too few copies or shards left).
    pub stuck_chunks: u64,
    /// Chunks short of copies that no store can take now (left out of the
    /// waiting work and its ETA).
    pub unplaceable_chunks: u64,
    pub repaired_chunks: u64,
    pub repaired_bytes: u64,
    /// Bytes written by repairs since the queue last became non-empty, and
    /// when that was: the rate for the ETA.
    pub(super) burst_bytes: u64,
    pub(super) burst_since: Option<Instant>,
    pub last_audit: Option<Instant>,
    pub orphans_trashed: u64,
    /// Rebalancing: the fill gap between the fullest and the emptiest active
    /// store (points), and the copies moved so far.
    pub fill_spread_points: f64,
    pub rebalanced_chunks: u64,
    pub rebalanced_bytes: u64,
}

impl Progress {
    /// What `cairn status` shows of it.
    pub fn report(&self) -> RepairProgress {
        let rate = match self.burst_since {
            Some(t) if t.elapsed() > Duration::from_secs(1) && self.burst_bytes > 0 => {
                self.burst_bytes as f64 / t.elapsed().as_secs_f64()
            }
            _ => 0.0,
        };
        let eta = (rate > 0.0).then(|| (self.waiting_bytes as f64 / rate).round());
        RepairProgress {
            waiting_chunks: self.waiting_chunks,
            waiting_bytes: self.waiting_bytes,
            stuck_chunks: self.stuck_chunks,
            unplaceable_chunks: self.unplaceable_chunks,
            repaired_chunks: self.repaired_chunks,
            repaired_bytes: self.repaired_bytes,
            bytes_per_second: rate.round(),
            eta_seconds: eta,
            last_audit_seconds_ago: self.last_audit.map(|t| t.elapsed().as_secs()),
            orphans_trashed: self.orphans_trashed,
            rebalance: Rebalance {
                fill_spread_points: (self.fill_spread_points * 10.0).round() / 10.0,
                target_points: REBALANCE_SPREAD * 100.0,
                moved_chunks: self.rebalanced_chunks,
                moved_bytes: self.rebalanced_bytes,
            },
        }
    }
}
