//! The boundaries of the standing rule, store by store.

use cairn_metadata::{ChunkId, ClassId, Timestamp};

use super::*;

fn view(id: u64, host: &str) -> StoreView {
    StoreView {
        id: StoreId(id),
        name: format!("s{id}"),
        zone: "z".into(),
        host: host.into(),
        labels: Vec::new(),
        online: true,
        capacity: 1 << 30,
        used: 0,
        reserve: 0,
        queued: 0,
        rate: 0,
    }
}

/// Stores 1..=n on hosts of their own, each with the given reach and life.
fn fleet(states: &[(Reach, StoreState)]) -> Fleet {
    Fleet::new(states.iter().enumerate().map(|(i, &(reach, life))| {
        let id = i as u64 + 1;
        let mut v = view(id, &format!("h{id}"));
        v.online = reach == Reach::Online;
        (v, reach, life)
    }))
}

fn up(n: usize) -> Vec<(Reach, StoreState)> {
    vec![(Reach::Online, StoreState::Active); n]
}

fn chunk(layout: ChunkLayout, stores: &[u64]) -> ChunkInfo {
    ChunkInfo {
        id: ChunkId(7),
        class: ClassId(1),
        layout,
        size: 1 << 20,
        created: Timestamp(0),
        placements: stores
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, StoreId(s)))
            .collect(),
        logical: 1 << 20,
    }
}

fn replicas(n: u64) -> ClassSpec {
    crate::class::ClassSpec::parse("r", Some(n as u8), None, None, None, false, false).unwrap()
}

fn ec() -> (ClassSpec, ChunkLayout) {
    let spec = ClassSpec::parse("e", None, Some("4+1"), None, None, false, false).unwrap();
    (
        spec,
        ChunkLayout::Ec {
            k: 4,
            m: 1,
            shard_len: 1 << 18,
        },
    )
}

fn none(_: u32, _: StoreId) -> bool {
    false
}

#[test]
fn replicas_from_healthy_to_missing() {
    let spec = replicas(2);
    let c = chunk(ChunkLayout::Replicas, &[1, 2]);
    let all = assess(&c, &spec, &fleet(&up(2)), none);
    assert_eq!(all.standing, Standing::Healthy);
    assert_eq!((all.spare, all.make.len(), all.drop.len()), (1, 0, 0));

    // One store silent within the grace: not readable now, not lost yet.
    let mut states = up(2);
    states[1].0 = Reach::Suspect;
    let suspect = assess(&c, &spec, &fleet(&states), none);
    assert_eq!(suspect.standing, Standing::Endangered);
    assert_eq!(
        (suspect.spare, suspect.make.len()),
        (1, 0),
        "no repair storm"
    );

    // Past the grace: lost, so repair makes copy 1 again.
    states[1].0 = Reach::Offline;
    let offline = assess(&c, &spec, &fleet(&states), none);
    assert_eq!(offline.standing, Standing::Endangered);
    assert_eq!((offline.spare, offline.make.clone()), (0, vec![1]));
    assert_eq!(offline.drop, vec![(1, StoreId(2))]);

    states[0].0 = Reach::Offline;
    let gone = assess(&c, &spec, &fleet(&states), none);
    assert_eq!(gone.standing, Standing::Missing);
    assert!(gone.spare < 0, "nothing left to repair from");
}

#[test]
fn three_replicas_one_short_is_undergoal() {
    let spec = replicas(3);
    let c = chunk(ChunkLayout::Replicas, &[1, 2, 3]);
    let mut states = up(3);
    states[2].0 = Reach::Offline;
    let s = assess(&c, &spec, &fleet(&states), none);
    assert_eq!(s.standing, Standing::Undergoal);
    assert_eq!((s.spare, s.make.clone()), (1, vec![2]));
}

#[test]
fn a_store_not_probed_yet_is_not_readable_now_nor_lost() {
    let spec = replicas(2);
    let c = chunk(ChunkLayout::Replicas, &[1, 2]);
    let mut unprobed = view(2, "h2");
    unprobed.online = false;
    let fleet = Fleet::new([
        (view(1, "h1"), Reach::Online, StoreState::Active),
        (unprobed, Reach::Online, StoreState::Active),
    ]);
    let s = assess(&c, &spec, &fleet, none);
    assert_eq!(s.standing, Standing::Endangered);
    assert_eq!((s.spare, s.make.len()), (1, 0));
}

#[test]
fn copies_sharing_a_domain_are_at_risk() {
    let spec = replicas(2);
    let c = chunk(ChunkLayout::Replicas, &[1, 2]);
    let one_host = Fleet::new([
        (view(1, "h"), Reach::Online, StoreState::Active),
        (view(2, "h"), Reach::Online, StoreState::Active),
    ]);
    let s = assess(&c, &spec, &one_host, none);
    assert_eq!(s.standing, Standing::AtRisk);
    assert!(s.make.is_empty(), "nothing to make: every copy is there");
}

#[test]
fn erasure_coded_boundaries() {
    let (spec, layout) = ec();
    let c = chunk(layout, &[1, 2, 3, 4, 5]);
    assert_eq!(
        assess(&c, &spec, &fleet(&up(5)), none).standing,
        Standing::Healthy
    );

    let mut states = up(5);
    states[4].0 = Reach::Offline;
    let k_left = assess(&c, &spec, &fleet(&states), none);
    assert_eq!(k_left.standing, Standing::Endangered, "exactly k shards");
    assert_eq!((k_left.spare, k_left.make.clone()), (0, vec![4]));

    states[3].0 = Reach::Offline;
    let short = assess(&c, &spec, &fleet(&states), none);
    assert_eq!(short.standing, Standing::Missing);
    assert_eq!(short.spare, -1);
    assert_eq!(short.make, vec![3, 4]);
}

#[test]
fn a_draining_store_still_counts_until_replaced() {
    let spec = replicas(2);
    let c = chunk(ChunkLayout::Replicas, &[1, 2]);
    let mut states = up(2);
    states[1].1 = StoreState::Draining;
    let s = assess(&c, &spec, &fleet(&states), none);
    assert_eq!(
        s.standing,
        Standing::Healthy,
        "never below its class because of a drain"
    );
    assert_eq!(s.spare, 1);
    assert_eq!(s.drop, vec![(1, StoreId(2))]);
    assert_eq!(s.make, vec![1]);
}

#[test]
fn removed_unknown_and_bad_copies_are_lost() {
    let spec = replicas(2);
    let c = chunk(ChunkLayout::Replicas, &[1, 9]);
    let s = assess(&c, &spec, &fleet(&up(1)), none);
    assert_eq!(
        (s.standing, s.spare),
        (Standing::Endangered, 0),
        "store 9 is unknown"
    );

    let c = chunk(ChunkLayout::Replicas, &[1, 2]);
    let bad = assess(&c, &spec, &fleet(&up(2)), |shard, _| shard == 0);
    assert_eq!((bad.standing, bad.spare), (Standing::Endangered, 0));
    assert_eq!(bad.make, vec![0]);

    let mut states = up(2);
    states[0].1 = StoreState::Removed;
    let removed = assess(&c, &spec, &fleet(&states), none);
    assert_eq!((removed.standing, removed.spare), (Standing::Endangered, 0));
}
