//! Placement tests: examples, and property tests of its promises.

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
        queued: 0,
        rate: 0,
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
                        queued: 0,
                        rate: 0,
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
                    queued: 0,
                    rate: 0,
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

/// A store with `queued` bytes waiting on a link of `rate` bytes/s.
fn loaded(id: u64, used: u64, queued: u64, rate: u64) -> StoreView {
    StoreView {
        queued,
        rate,
        ..store(id, "z", &format!("h{id}"), &["hdd"], used)
    }
}

#[test]
fn the_idle_link_gets_the_next_chunk() {
    const MIB: u64 = 1 << 20;
    let mut stores = [
        loaded(1, 100, 64 * MIB, 0),
        loaded(2, 100, 64 * MIB, 0),
        loaded(3, 100, 0, 0),
    ];
    for s in &mut stores {
        s.capacity = 1 << 40;
    }
    let two = place(&spec(2, "*", "host", true), &stores, 32 * MIB, &[]);
    assert!(two.targets.contains(&Some(StoreId(3))), "{:?}", two.targets);
    let one = place(&spec(1, "*", "host", true), &stores, 32 * MIB, &[]);
    assert_eq!(one.targets, vec![Some(StoreId(3))]);
    // Measured rates count: a link 100× faster with one chunk queued
    // finishes sooner than a slow idle one.
    stores[0] = loaded(1, 100, 32 * MIB, 100 * MIB);
    stores[0].capacity = 1 << 40;
    stores[2].rate = MIB;
    let one = place(&spec(1, "*", "host", true), &stores, 32 * MIB, &[]);
    assert_eq!(one.targets, vec![Some(StoreId(1))]);
}

#[test]
fn equal_load_goes_by_fill_and_a_far_fuller_store_waits() {
    // Equal load: the emptiest.
    let stores = [
        loaded(1, 300, 5, 10),
        loaded(2, 100, 5, 10),
        loaded(3, 200, 5, 10),
    ];
    let one = place(&spec(1, "*", "host", true), &stores, 1, &[]);
    assert_eq!(one.targets, vec![Some(StoreId(2))]);
    // Store 1 is idle but 50 points fuller than the others (more than
    // FILL_BAND): the busy ones take the copies.
    let stores = [
        loaded(1, 600, 0, 10),
        loaded(2, 100, 1 << 30, 10),
        loaded(3, 100, 1 << 30, 10),
    ];
    let two = place(&spec(2, "*", "host", true), &stores, 1, &[]);
    assert_eq!(two.targets, vec![Some(StoreId(2)), Some(StoreId(3))]);
    // Never past its reserve, however idle.
    let mut stores = stores;
    stores[0] = loaded(1, 100, 0, 10);
    stores[0].reserve = 900;
    let one = place(&spec(1, "*", "host", true), &stores, 1, &[]);
    assert_ne!(one.targets, vec![Some(StoreId(1))]);
}
