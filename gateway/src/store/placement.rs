//! Placement: which chunk stores receive the copies or shards of one chunk.
//!
//! Pure logic over a snapshot of the stores ([`StoreView`]). The promise of
//! [`place`]: a target is always an online, non-excluded store with room above
//! its reserve whose labels satisfy that copy's rule; no store gets two copies;
//! a strict class never puts two copies in one spread domain; a loose class
//! spreads as wide as the stores allow and says when it had to share a domain.
//! Among equally good choices the store whose link would finish the chunk
//! soonest wins (bytes queued to it plus the chunk, over its measured upload
//! rate, counted in chunk-times of the fastest link), so every link is kept
//! busy; stores whose fill is more than [`FILL_BAND`] above the emptiest come
//! after, by fill, so fills stay within bounds. Equal waits go to the lowest
//! fill ratio (ties by id), so equal drives fill evenly. The result is
//! deterministic.

use std::cmp::Ordering;

use cairn_metadata::StoreId;

use crate::class::{ClassSpec, LabelRule, Layout, Spread};

/// Stores whose fill ratio is within this of the emptiest eligible store
/// share new chunks by link load; fuller ones wait until the others catch up.
pub const FILL_BAND: f64 = 0.05;

/// What placement needs to know about one chunk store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreView {
    pub id: StoreId,
    pub name: String,
    pub zone: String,
    pub host: String,
    pub labels: Vec<String>,
    pub online: bool,
    /// Bytes the store can hold in all.
    pub capacity: u64,
    /// Bytes it holds now.
    pub used: u64,
    /// Bytes that must stay free.
    pub reserve: u64,
    /// Bytes queued or in flight to it now.
    pub queued: u64,
    /// Its measured upload rate, bytes per second (0: not measured yet).
    pub rate: u64,
}

/// Where one chunk's copies or shards go, and how well that meets its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// One entry per copy or shard, in the class's rule order; `None` where
    /// no store could be found.
    pub targets: Vec<Option<StoreId>>,
    pub health: PlacementHealth,
}

/// How a placement compares to what its class asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementHealth {
    /// Every copy placed, each in its own spread domain.
    Full,
    /// Loose class: every copy placed, but some share a spread domain.
    AtRisk {
        domains_used: usize,
        domains_wanted: usize,
    },
    /// Fewer copies placed than the class asks (a strict class short of
    /// domains, or no eligible store for some copy); `why` says what is missing.
    Undergoal {
        placed: usize,
        wanted: usize,
        why: String,
    },
}

impl StoreView {
    /// Whether `size` more bytes fit while keeping the reserve free.
    pub fn has_room(&self, size: u64) -> bool {
        let needed = u128::from(self.used) + u128::from(size) + u128::from(self.reserve);
        self.capacity > 0 && needed <= u128::from(self.capacity)
    }

    /// The spread domain this store belongs to.
    pub fn domain(&self, spread: Spread) -> Domain<'_> {
        match spread {
            Spread::Store => Domain::Store(self.id),
            // Hosts are keyed by name alone: two stores naming the same host are
            // treated as one failure domain, never as two.
            Spread::Host => Domain::Named(&self.host),
            Spread::Zone => Domain::Named(&self.zone),
        }
    }

    /// `(used + size) / capacity`.
    fn fill(&self, size: u64) -> f64 {
        (self.used.saturating_add(size)) as f64 / self.capacity.max(1) as f64
    }

    /// How many chunk-times of a link at `best` bytes/s this store's link
    /// needs to finish what is queued to it and `size` more (an unmeasured
    /// link counts as fast as `best`; with nothing measured, bytes queued in
    /// chunks of `size`).
    fn wait(&self, size: u64, best: u64) -> u64 {
        let size = size.max(1 << 20);
        let rate = if self.rate == 0 { best } else { self.rate };
        let ahead = u128::from(self.queued) + u128::from(size);
        if rate == 0 || best == 0 {
            return (ahead / u128::from(size)) as u64;
        }
        let chunk_times = ahead * u128::from(best) / (u128::from(rate) * u128::from(size));
        chunk_times.min(u128::from(u64::MAX)) as u64
    }

    /// Compares fill ratios `(used + size) / capacity`, exactly; ties by id.
    fn fuller_than(&self, other: &StoreView, size: u64) -> Ordering {
        let a = (u128::from(self.used) + u128::from(size)) * u128::from(other.capacity);
        let b = (u128::from(other.used) + u128::from(size)) * u128::from(self.capacity);
        a.cmp(&b).then(self.id.cmp(&other.id))
    }
}

/// A spread domain: one store, or the name of a host or zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Domain<'a> {
    Store(StoreId),
    Named(&'a str),
}

/// How many distinct spread domains (of the class's spread) the online stores
/// that match at least one of its label rules and are not over their reserve
/// offer. `cairn class create` compares it with [`ClassSpec::domains_needed`].
pub fn domain_count(spec: &ClassSpec, stores: &[StoreView]) -> usize {
    let mut domains: Vec<Domain<'_>> = stores
        .iter()
        .filter(|s| s.online && s.has_room(0))
        .filter(|s| (0..spec.copies()).any(|i| spec.rule(i).matches(&s.labels)))
        .map(|s| s.domain(spec.spread))
        .collect();
    domains.sort_unstable();
    domains.dedup();
    domains.len()
}

/// Chooses stores for the copies or shards of one chunk of `size` bytes,
/// never using a store listed in `exclude`.
pub fn place(spec: &ClassSpec, stores: &[StoreView], size: u64, exclude: &[StoreId]) -> Placement {
    let copies = spec.copies();
    // Eligible stores, best (least full) first; a repeated id counts once.
    let mut eligible: Vec<&StoreView> = stores
        .iter()
        .filter(|s| s.online && s.has_room(size) && !exclude.contains(&s.id))
        .collect();
    let emptiest = eligible
        .iter()
        .map(|s| s.fill(size))
        .fold(f64::INFINITY, f64::min);
    let best = eligible.iter().map(|s| s.rate).max().unwrap_or(0);
    let key = |s: &StoreView| {
        let banded = s.fill(size) <= emptiest + FILL_BAND;
        (!banded, if banded { s.wait(size, best) } else { 0 })
    };
    eligible.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.fuller_than(b, size)));
    eligible.dedup_by_key(|s| s.id);

    let mut domains: Vec<Domain<'_>> = eligible.iter().map(|s| s.domain(spec.spread)).collect();
    domains.sort_unstable();
    domains.dedup();
    let domain_of: Vec<usize> = eligible
        .iter()
        .map(|s| domains.binary_search(&s.domain(spec.spread)).unwrap_or(0))
        .collect();

    // Per copy, the eligible stores its rule accepts (best first).
    let candidates: Vec<Vec<usize>> = (0..copies)
        .map(|c| {
            (0..eligible.len())
                .filter(|&i| spec.rule(c).matches(&eligible[i].labels))
                .collect()
        })
        .collect();
    // Specific labels before `*`, most constrained first, so `ssd,*` keeps
    // the only ssd for the copy that needs it.
    let mut order: Vec<usize> = (0..copies).collect();
    order.sort_by_key(|&c| (*spec.rule(c) == LabelRule::Any, candidates[c].len(), c));

    let mut targets: Vec<Option<usize>> = vec![None; copies];
    let mut store_used = vec![false; eligible.len()];
    let mut domain_load = vec![0usize; domains.len()];
    // Each round gives the pending copies at most one new copy per domain. A
    // strict class gets one round; a loose one repeats, widest spread first.
    loop {
        let pending: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&c| targets[c].is_none())
            .collect();
        if pending.is_empty() {
            break;
        }
        let adj: Vec<Vec<(usize, usize)>> = pending
            .iter()
            .map(|&c| {
                let mut best: Vec<(usize, usize)> = Vec::new();
                for &s in &candidates[c] {
                    let d = domain_of[s];
                    let free = !store_used[s] && (!spec.strict || domain_load[d] == 0);
                    if free && !best.iter().any(|&(bd, _)| bd == d) {
                        best.push((d, s)); // candidates are best first
                    }
                }
                // Least-loaded domains first; stable, so by link wait and fill
                // within a load.
                best.sort_by_key(|&(d, _)| domain_load[d]);
                best
            })
            .collect();
        let matched = max_matching(&adj, domains.len());
        let mut progress = false;
        for (p, m) in matched.into_iter().enumerate() {
            if let Some((d, s)) = m {
                targets[pending[p]] = Some(s);
                store_used[s] = true;
                domain_load[d] += 1;
                progress = true;
            }
        }
        if spec.strict || !progress {
            break;
        }
    }

    let placed = targets.iter().flatten().count();
    let mut used_domains: Vec<usize> = targets.iter().flatten().map(|&s| domain_of[s]).collect();
    used_domains.sort_unstable();
    used_domains.dedup();
    let health = if placed < copies {
        PlacementHealth::Undergoal {
            placed,
            wanted: copies,
            why: undergoal_reason(spec, &targets, &candidates, &domain_of, size),
        }
    } else if used_domains.len() < copies {
        PlacementHealth::AtRisk {
            domains_used: used_domains.len(),
            domains_wanted: spec.domains_needed(),
        }
    } else {
        PlacementHealth::Full
    };
    Placement {
        targets: targets
            .into_iter()
            .map(|t| t.map(|s| eligible[s].id))
            .collect(),
        health,
    }
}

/// Maximum bipartite matching of copies to domains (Kuhn's algorithm). Each
/// copy takes its first free choice when it has one, and only otherwise
/// moves earlier copies along to their next choices.
fn max_matching(adj: &[Vec<(usize, usize)>], n_domains: usize) -> Vec<Option<(usize, usize)>> {
    fn augment(
        u: usize,
        adj: &[Vec<(usize, usize)>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
        chosen: &mut [Option<(usize, usize)>],
    ) -> bool {
        for &(d, s) in &adj[u] {
            if seen[d] {
                continue;
            }
            seen[d] = true;
            let free = match owner[d] {
                None => true,
                Some(v) => augment(v, adj, seen, owner, chosen),
            };
            if free {
                owner[d] = Some(u);
                chosen[u] = Some((d, s));
                return true;
            }
        }
        false
    }

    let mut owner: Vec<Option<usize>> = vec![None; n_domains];
    let mut chosen: Vec<Option<(usize, usize)>> = vec![None; adj.len()];
    for u in 0..adj.len() {
        if let Some(&(d, s)) = adj[u].iter().find(|&&(d, _)| owner[d].is_none()) {
            owner[d] = Some(u);
            chosen[u] = Some((d, s));
        } else {
            let mut seen = vec![false; n_domains];
            augment(u, adj, &mut seen, &mut owner, &mut chosen);
        }
    }
    chosen
}

fn undergoal_reason(
    spec: &ClassSpec,
    targets: &[Option<usize>],
    candidates: &[Vec<usize>],
    domain_of: &[usize],
    size: u64,
) -> String {
    let unit = match spec.layout {
        Layout::Replicas { .. } => "copy",
        Layout::ErasureCoded { .. } => "shard",
    };
    let room = format!("online with room for {size} bytes above its reserve");
    let mut reasons = Vec::new();
    for (c, t) in targets.iter().enumerate() {
        if t.is_some() {
            continue;
        }
        if candidates[c].is_empty() {
            let label = match spec.rule(c) {
                LabelRule::Any => String::new(),
                LabelRule::Label(l) => format!(" with label {l}"),
            };
            reasons.push(format!("{unit} {}: no store{label} is {room}", c + 1));
        }
    }
    if reasons.is_empty() {
        let mut offered: Vec<usize> = candidates.iter().flatten().map(|&s| domain_of[s]).collect();
        offered.sort_unstable();
        offered.dedup();
        let spread = spec.spread;
        if spec.strict {
            reasons.push(format!(
                "strict spread {spread}: needs {} {spread}s, the eligible stores ({room}, matching labels) span {}",
                spec.domains_needed(),
                offered.len()
            ));
        } else {
            reasons.push(format!(
                "not enough distinct eligible stores ({room}, matching labels) for {} {unit}s",
                spec.copies()
            ));
        }
    }
    reasons.join("; ")
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
