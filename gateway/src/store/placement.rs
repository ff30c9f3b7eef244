//! Placement: which chunk stores receive the copies or shards of one chunk.
//!
//! Pure logic over a snapshot of the stores ([`StoreView`]). The promise of
//! [`place`]: a target is always an online, non-excluded store with room above
//! its reserve whose labels satisfy that copy's rule; no store gets two copies;
//! a strict class never puts two copies in one spread domain; a loose class
//! spreads as wide as the stores allow and says when it had to share a domain.
//! Among equally good choices the store with the lowest fill ratio wins (ties
//! by id), so equal drives fill evenly. The result is deterministic.

use std::cmp::Ordering;

use cairn_metadata::StoreId;

use crate::class::{ClassSpec, LabelRule, Layout, Spread};

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
    eligible.sort_by(|a, b| a.fuller_than(b, size));
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
                // Least-loaded domains first; stable, so by fill within a load.
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn store(id: u64, zone: &str, host: &str, labels: &[&str], used: u64) -> StoreView {
        StoreView {
            id: StoreId(id),
            name: format!("s{id}"),
            zone: zone.into(),
            host: host.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            online: true,
            capacity: 1000,
            used,
            reserve: 0,
        }
    }

    fn spec(replicas: u8, labels: &str, spread: &str, strict: bool) -> ClassSpec {
        ClassSpec::parse(
            "t",
            Some(replicas),
            None,
            Some(labels),
            Some(spread),
            strict,
            !strict,
        )
        .unwrap()
    }

    #[test]
    fn lowest_fill_first_one_per_host() {
        let stores = [
            store(1, "z", "a", &["hdd"], 500),
            store(2, "z", "a", &["hdd"], 100),
            store(3, "z", "b", &["hdd"], 300),
            store(4, "z", "c", &["hdd"], 200),
        ];
        let p = place(&spec(2, "*", "host", true), &stores, 10, &[]);
        assert_eq!(p.targets, vec![Some(StoreId(2)), Some(StoreId(4))]);
        assert_eq!(p.health, PlacementHealth::Full);
        // Excluding a store and its fill order still holds.
        let p = place(&spec(2, "*", "host", true), &stores, 10, &[StoreId(2)]);
        assert_eq!(p.targets, vec![Some(StoreId(4)), Some(StoreId(3))]);
    }

    #[test]
    fn specific_labels_before_any() {
        // The only ssd is the emptiest store: `*` must not take it from `ssd`.
        let stores = [
            store(1, "z", "a", &["ssd"], 0),
            store(2, "z", "b", &["hdd"], 500),
            store(3, "z", "c", &["hdd"], 600),
        ];
        let p = place(&spec(2, "*,ssd", "host", true), &stores, 1, &[]);
        assert_eq!(p.targets, vec![Some(StoreId(2)), Some(StoreId(1))]);
        assert_eq!(p.health, PlacementHealth::Full);
    }

    #[test]
    fn strict_short_of_hosts_is_undergoal_and_says_why() {
        let stores = [
            store(1, "z", "a", &["hdd"], 0),
            store(2, "z", "a", &["hdd"], 0),
            store(3, "z", "b", &["hdd"], 0),
        ];
        let p = place(&spec(3, "hdd", "host", true), &stores, 1, &[]);
        assert_eq!(p.targets.iter().flatten().count(), 2);
        match p.health {
            PlacementHealth::Undergoal {
                placed,
                wanted,
                why,
            } => {
                assert_eq!((placed, wanted), (2, 3));
                assert!(
                    why.contains("needs 3 hosts") && why.contains("span 2"),
                    "{why}"
                );
            }
            h => panic!("{h:?}"),
        }
        let ssd = place(&spec(2, "ssd,hdd", "host", true), &stores, 1, &[]);
        match ssd.health {
            PlacementHealth::Undergoal { placed: 1, why, .. } => {
                assert!(why.contains("copy 1: no store with label ssd"), "{why}")
            }
            h => panic!("{h:?}"),
        }
    }

    #[test]
    fn loose_reuses_domains_and_reports_at_risk() {
        let stores = [
            store(1, "z", "a", &["hdd"], 0),
            store(2, "z", "a", &["hdd"], 0),
            store(3, "z", "b", &["hdd"], 0),
        ];
        let p = place(&spec(3, "*", "host", false), &stores, 1, &[]);
        assert_eq!(p.targets.iter().flatten().count(), 3);
        assert_eq!(
            p.health,
            PlacementHealth::AtRisk {
                domains_used: 2,
                domains_wanted: 3
            }
        );
    }

    #[test]
    fn offline_full_and_reserved_stores_are_skipped() {
        let mut stores = vec![
            store(1, "z", "a", &[], 0),
            store(2, "z", "b", &[], 900),
            store(3, "z", "c", &[], 0),
        ];
        stores[0].online = false;
        stores[2].reserve = 995;
        let p = place(&spec(1, "*", "host", false), &stores, 10, &[]);
        assert_eq!(p.targets, vec![Some(StoreId(2))]);
        let p = place(&spec(1, "*", "host", false), &stores, 101, &[]);
        assert_eq!(p.targets, vec![None]);
        assert!(matches!(
            p.health,
            PlacementHealth::Undergoal { placed: 0, .. }
        ));
    }

    #[test]
    fn erasure_coded_one_shard_per_domain() {
        let stores: Vec<StoreView> = (1..=6)
            .map(|i| store(i, "z", &format!("h{i}"), &["hdd"], 0))
            .collect();
        let ec = ClassSpec::parse("ec", None, Some("4+1"), None, None, true, false).unwrap();
        let p = place(&ec, &stores, 1, &[]);
        assert_eq!(p.targets.iter().flatten().count(), 5);
        assert_eq!(p.health, PlacementHealth::Full);
        assert_eq!(domain_count(&ec, &stores), 6);
        let p = place(&ec, &stores[..4], 1, &[]);
        assert!(matches!(
            p.health,
            PlacementHealth::Undergoal {
                placed: 4,
                wanted: 5,
                ..
            }
        ));
    }

    #[test]
    fn domain_count_by_spread_and_labels() {
        let stores = [
            store(1, "z1", "a", &["hdd"], 0),
            store(2, "z1", "b", &["ssd"], 0),
            store(3, "z2", "c", &["hdd"], 0),
            store(4, "z2", "c", &["hdd"], 0),
        ];
        assert_eq!(domain_count(&spec(2, "*", "host", true), &stores), 3);
        assert_eq!(domain_count(&spec(2, "*", "zone", true), &stores), 2);
        assert_eq!(domain_count(&spec(2, "hdd", "store", true), &stores), 3);
        assert_eq!(domain_count(&spec(2, "ssd", "host", true), &stores), 1);
    }

    fn arb_stores() -> impl Strategy<Value = Vec<StoreView>> {
        (1usize..=6, 1usize..=3).prop_flat_map(|(hosts, zones)| {
            let one = (
                0..hosts,
                prop::sample::select(vec![vec![], vec!["hdd"], vec!["ssd"], vec!["hdd", "ssd"]]),
                prop::bool::weighted(0.85),
                1u64..10_000,
                0u64..=100,
                0u64..200,
            );
            prop::collection::vec(one, 1..=12).prop_map(move |raw| {
                raw.into_iter()
                    .enumerate()
                    .map(
                        |(i, (h, labels, online, capacity, used_pct, reserve))| StoreView {
                            id: StoreId(i as u64 + 1),
                            name: format!("s{i}"),
                            zone: format!("z{}", h % zones),
                            host: format!("h{h}"),
                            labels: labels.into_iter().map(String::from).collect(),
                            online,
                            capacity,
                            used: capacity * used_pct / 100,
                            reserve,
                        },
                    )
                    .collect()
            })
        })
    }

    fn arb_spec(rules: Vec<&'static str>) -> impl Strategy<Value = ClassSpec> {
        let layout = prop_oneof![
            (1u8..=8).prop_map(|n| Layout::Replicas { n }),
            (2u8..=6, 1u8..=3).prop_map(|(k, m)| Layout::ErasureCoded { k, m }),
        ];
        let spread = prop::sample::select(vec![Spread::Store, Spread::Host, Spread::Zone]);
        (layout, spread, any::<bool>(), any::<bool>()).prop_flat_map(
            move |(layout, spread, strict, per_copy)| {
                let count = if per_copy { layout.copies() } else { 1 };
                let rule = prop::sample::select(rules.clone()).prop_map(|r| match r {
                    "*" => LabelRule::Any,
                    l => LabelRule::Label(l.into()),
                });
                prop::collection::vec(rule, count).prop_map(move |labels| ClassSpec {
                    name: "p".into(),
                    layout,
                    labels,
                    spread,
                    strict,
                    archive: None,
                    durability: crate::class::Durability::Local,
                })
            },
        )
    }

    proptest! {
        #[test]
        fn placement_respects_rules(
            stores in arb_stores(),
            spec in arb_spec(vec!["*", "hdd", "ssd"]),
            size in 0u64..500,
            exclude in prop::collection::vec((1u64..=12).prop_map(StoreId), 0..3),
        ) {
            spec.validate().unwrap();
            let p = place(&spec, &stores, size, &exclude);
            prop_assert_eq!(p.targets.len(), spec.copies());
            let placed: Vec<&StoreView> = p.targets.iter().flatten()
                .map(|id| stores.iter().find(|s| s.id == *id).unwrap())
                .collect();
            let mut ids: Vec<StoreId> = placed.iter().map(|s| s.id).collect();
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), placed.len(), "a store got two copies");
            for (c, t) in p.targets.iter().enumerate() {
                if let Some(id) = t {
                    let s = stores.iter().find(|s| s.id == *id).unwrap();
                    prop_assert!(s.online && s.has_room(size) && !exclude.contains(id));
                    prop_assert!(spec.rule(c).matches(&s.labels), "copy {} on {:?}", c, s);
                }
            }
            let mut doms: Vec<Domain<'_>> = placed.iter().map(|s| s.domain(spec.spread)).collect();
            doms.sort_unstable();
            doms.dedup();
            if spec.strict {
                prop_assert_eq!(doms.len(), placed.len(), "strict class shares a domain");
            }
            match &p.health {
                PlacementHealth::Full => {
                    prop_assert_eq!(placed.len(), spec.copies());
                    prop_assert_eq!(doms.len(), spec.copies());
                }
                PlacementHealth::AtRisk { domains_used, domains_wanted } => {
                    prop_assert!(!spec.strict);
                    prop_assert_eq!(placed.len(), spec.copies());
                    prop_assert_eq!(*domains_used, doms.len());
                    prop_assert!(domains_used < domains_wanted);
                }
                PlacementHealth::Undergoal { placed: n, wanted, why } => {
                    prop_assert_eq!(*n, placed.len());
                    prop_assert!(*n < *wanted && !why.is_empty());
                }
            }
            // With only `*` rules a loose class places as many copies as
            // there are eligible stores, and a strict one as many as domains.
            if spec.labels.iter().all(|r| *r == LabelRule::Any) {
                let eligible: Vec<&StoreView> = stores.iter()
                    .filter(|s| s.online && s.has_room(size) && !exclude.contains(&s.id))
                    .collect();
                let mut ed: Vec<Domain<'_>> = eligible.iter().map(|s| s.domain(spec.spread)).collect();
                ed.sort_unstable();
                ed.dedup();
                let most = if spec.strict { ed.len() } else { eligible.len() };
                prop_assert_eq!(placed.len(), most.min(spec.copies()));
                if !spec.strict {
                    prop_assert_eq!(doms.len(), ed.len().min(spec.copies()));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn equal_stores_fill_evenly(
            zones in 1usize..=3,
            hosts_per_zone in 1usize..=2,
            stores_per_host in 1usize..=2,
            spec in arb_spec(vec!["*", "hdd"]),
        ) {
            const CHUNKS: u64 = 2_000;
            const SIZE: u64 = 4 << 20;
            let n = zones * hosts_per_zone * stores_per_host;
            // Room for every chunk at about two-thirds full.
            let per_store = (CHUNKS * spec.copies() as u64).div_ceil(n as u64) * 3 / 2 + 1;
            let mut stores: Vec<StoreView> = (0..n)
                .map(|i| {
                    let host = i / stores_per_host;
                    StoreView {
                        id: StoreId(i as u64 + 1),
                        name: format!("s{i}"),
                        zone: format!("z{}", host / hosts_per_zone),
                        host: format!("h{host}"),
                        labels: vec!["hdd".into()],
                        online: true,
                        capacity: per_store * SIZE,
                        used: 0,
                        reserve: SIZE,
                    }
                })
                .collect();
            for _ in 0..CHUNKS {
                let p = place(&spec, &stores, SIZE, &[]);
                prop_assert!(p.targets.iter().any(Option::is_some));
                for id in p.targets.iter().flatten() {
                    stores[id.0 as usize - 1].used += SIZE;
                }
            }
            let fills: Vec<f64> = stores.iter().map(|s| s.used as f64 / s.capacity as f64).collect();
            let max = fills.iter().cloned().fold(0.0, f64::max);
            let min = fills.iter().cloned().fold(1.0, f64::min);
            prop_assert!(max - min <= 0.10, "fills {:?} for {}", fills, spec.describe());
        }
    }
}
