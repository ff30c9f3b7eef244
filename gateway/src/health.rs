//! Chunk standing: the one rule for how a chunk stands against its class,
//! used by the repairer (what to make, what to drop, which chunk first),
//! `cairn status` (healthy / undergoal / at risk / endangered / missing)
//! and `cairn fsck --deep`.
//!
//! Two questions, answered from the same facts:
//! - **Now** (the [`Standing`] status shows): a copy or shard counts if its
//!   store answered its last probe or request (`StoreView::online`; a
//!   suspect store's copies do not, nor those of a store not probed yet),
//!   the store is not removed and the object is not known bad. A store being drained still
//!   serves reads, so its copies count until they are replaced.
//! - **Lost** (what repair replaces): a copy is lost once its store is
//!   offline (silent past `[repair] grace`), removed, or the object is known
//!   bad; a suspect store's copies are not lost yet, so a flapping link
//!   starts no repair. Copies on a draining store are dropped once made
//!   elsewhere. `spare` (readable copies beyond the minimum to read the
//!   chunk) orders the repair: lowest first; below zero nothing can be done.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cairn_metadata::{ChunkInfo, ChunkLayout, StoreId, StoreState};

use crate::class::ClassSpec;
use crate::store::placement::StoreView;
use crate::store::{Reach, Stores};

/// How a chunk stands against its class now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Standing {
    Healthy,
    /// Fewer copies or shards readable than the class asks.
    Undergoal,
    /// All there, but some share a spread domain.
    AtRisk,
    /// Not readable: no replica, or fewer than `k` shards.
    Missing,
    /// Readable, but one more failure loses data: one replica left, or
    /// exactly `k` shards (of a class that wants more).
    Endangered,
}

impl Standing {
    pub const ALL: [Standing; 5] = [
        Standing::Healthy,
        Standing::Undergoal,
        Standing::AtRisk,
        Standing::Missing,
        Standing::Endangered,
    ];

    /// The key `cairn status --json` counts it under.
    pub fn name(self) -> &'static str {
        match self {
            Standing::Healthy => "healthy",
            Standing::Undergoal => "undergoal",
            Standing::AtRisk => "at_risk",
            Standing::Missing => "missing",
            Standing::Endangered => "endangered",
        }
    }
}

/// One store as the rule sees it.
#[derive(Debug, Clone)]
pub struct StoreFacts {
    /// Lost past the grace: see `Stores::health`.
    pub reach: Reach,
    pub life: StoreState,
    /// Answering now (`online`) and its spread domains.
    pub view: Option<StoreView>,
}

/// Every known store's facts, taken once per pass.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    stores: HashMap<StoreId, StoreFacts>,
}

impl Fleet {
    /// The stores as `stores` knows them now.
    pub fn of(stores: &Stores, grace: Duration) -> Fleet {
        Fleet::new(stores.views().into_iter().map(|v| {
            let (reach, life) = stores.health(v.id, grace);
            (v, reach, life)
        }))
    }

    pub fn new(stores: impl IntoIterator<Item = (StoreView, Reach, StoreState)>) -> Fleet {
        Fleet {
            stores: stores
                .into_iter()
                .map(|(view, reach, life)| {
                    let id = view.id;
                    let view = Some(view);
                    (id, StoreFacts { reach, life, view })
                })
                .collect(),
        }
    }

    /// A store it does not know is gone: offline and removed.
    fn facts(&self, id: StoreId) -> &StoreFacts {
        static GONE: StoreFacts = StoreFacts {
            reach: Reach::Offline,
            life: StoreState::Removed,
            view: None,
        };
        self.stores.get(&id).unwrap_or(&GONE)
    }
}

/// One chunk's standing and what repair would do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkStanding {
    pub standing: Standing,
    /// Copies or shards not lost beyond the minimum to read the chunk
    /// (lower: more urgent; negative: cannot be repaired now).
    pub spare: i64,
    /// Placements that still hold good data and stay.
    pub keep: Vec<(u32, StoreId)>,
    /// Placements to give up once replaced: lost ones, and those on stores
    /// being drained (still readable).
    pub drop: Vec<(u32, StoreId)>,
    /// Copy or shard indices to make.
    pub make: Vec<u32>,
}

/// How `info`, held to `spec` (its effective spec: see
/// `catalog::Class::effective`), stands with the stores in `fleet`; `bad`
/// says whether the object of one placement is known missing or corrupt.
pub fn assess(
    info: &ChunkInfo,
    spec: &ClassSpec,
    fleet: &Fleet,
    bad: impl Fn(u32, StoreId) -> bool,
) -> ChunkStanding {
    let (minimum, wanted) = match info.layout {
        ChunkLayout::Replicas => (1usize, spec.copies()),
        ChunkLayout::Ec { k, m, .. } => (k as usize, (k + m) as usize),
    };
    let (mut keep, mut drop) = (Vec::new(), Vec::new());
    let (mut readable, mut now) = (0usize, 0usize);
    let mut domains = HashSet::new();
    for &(shard, store) in &info.placements {
        let facts = fleet.facts(store);
        let bad = bad(shard, store);
        let removed = facts.life == StoreState::Removed;
        let lost = bad || removed || facts.reach == Reach::Offline;
        if !lost {
            readable += 1;
        }
        if let Some(view) = facts.view.as_ref().filter(|v| v.online && !bad && !removed) {
            now += 1;
            domains.insert(view.domain(spec.spread));
        }
        if lost || facts.life == StoreState::Draining {
            drop.push((shard, store));
        } else {
            keep.push((shard, store));
        }
    }
    let held: HashSet<u32> = keep.iter().map(|p| p.0).collect();
    let make: Vec<u32> = match info.layout {
        // Copy indices not held by a kept placement, up to the class's count.
        ChunkLayout::Replicas => (0..wanted as u32)
            .filter(|i| !held.contains(i))
            .take(wanted.saturating_sub(keep.len()))
            .collect(),
        ChunkLayout::Ec { .. } => (0..wanted as u32).filter(|i| !held.contains(i)).collect(),
    };
    let standing = if now < minimum {
        Standing::Missing
    } else if now == minimum && wanted > minimum {
        Standing::Endangered
    } else if now < wanted {
        Standing::Undergoal
    } else if domains.len() < wanted {
        Standing::AtRisk
    } else {
        Standing::Healthy
    };
    ChunkStanding {
        standing,
        spare: readable as i64 - minimum as i64,
        keep,
        drop,
        make,
    }
}

#[cfg(test)]
mod tests;
