//! The repair on memory and faulty stores: a copy lost on a store offline
//! past its grace is made again elsewhere (a suspect store starts nothing),
//! and the copy left on the store that went away goes to the trash.

use std::sync::Arc;
use std::time::Duration;

use cairn_chunkstore::Secret;
use cairn_config::{DrainConfig, RepairConfig};
use cairn_metadata::{ChunkInfo, StoreId, Timestamp};
use tempfile::TempDir;

use super::Repairer;
use crate::core::{CreateHow, Credentials, Fs, SetAttr, Stability};
use crate::store::faulty::{Faulty, Op};
use crate::store::memory::{Identity, MemoryStore};
use crate::store::Stores;

pub(crate) struct Rig {
    _dir: TempDir,
    pub fs: Arc<Fs>,
    pub stores: Arc<Stores>,
    pub ids: Vec<StoreId>,
    faulty: Vec<Arc<Faulty>>,
}

/// An `Fs` on a temp dir and `n` faulty memory stores, known to both the
/// metadata and the pool, probed once.
pub(crate) async fn rig(n: usize) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let fs = Fs::open(
        &dir.path().join("meta.db"),
        &dir.path().join("cache"),
        1 << 30,
    )
    .unwrap();
    let fs = Arc::new(fs);
    let stores = Arc::new(Stores::new(Secret::from_bytes(&[7u8; 32]), 2, 0));
    let (mut ids, mut faulty) = (Vec::new(), Vec::new());
    for i in 0..n {
        let name = format!("s{i}");
        let n2 = name.clone();
        let id = fs
            .metadata()
            .write(true, move |tx| {
                tx.upsert_store(&n2, "127.0.0.1:1", "z", &n2, "")
            })
            .await
            .unwrap();
        let memory = Arc::new(MemoryStore::new(Identity::named(&name, 1 << 30)));
        let f = Arc::new(Faulty::new(memory));
        stores.add(id, &name, f.clone());
        ids.push(id);
        faulty.push(f);
    }
    stores.probe().await;
    Rig {
        _dir: dir,
        fs,
        stores,
        ids,
        faulty,
    }
}

/// Writes a file and drains it to the stores: the one place these tests
/// call the drainer.
async fn write_and_drain(rig: &Rig, name: &str, bytes: Vec<u8>) {
    let cred = Credentials::root();
    let root = cairn_metadata::InodeId::ROOT;
    let file = rig
        .fs
        .create(
            &cred,
            root,
            name.as_bytes(),
            CreateHow::Guarded(SetAttr::default()),
        )
        .await
        .unwrap();
    rig.fs
        .write(&cred, file.id, 0, bytes, Stability::FileSync)
        .await
        .unwrap();
    let cfg = DrainConfig {
        quiet: cairn_config::Duration(Duration::ZERO),
        // Every block fills a chunk: no wait for others to pack with.
        chunk_size: cairn_config::ByteSize(1),
        ..DrainConfig::default()
    };
    let drainer = crate::work::drain::Drainer::new(rig.fs.clone(), rig.stores.clone(), cfg);
    assert!(drainer.drain_once().await.unwrap() > 0, "nothing drained");
}

fn repairer(rig: &Rig, grace: Duration) -> Repairer {
    let cfg = RepairConfig {
        grace: cairn_config::Duration(grace),
        bandwidth: cairn_config::ByteSize(0),
        ..RepairConfig::default()
    };
    Repairer::new(rig.fs.clone(), rig.stores.clone(), cfg)
}

fn chunks(rig: &Rig) -> Vec<ChunkInfo> {
    rig.fs.metadata().read(|v| v.chunks()).unwrap()
}

#[tokio::test]
async fn a_copy_lost_past_grace_is_made_again_and_a_suspect_store_starts_nothing() {
    let rig = rig(3).await;
    // Past the inline limit, so the bytes go to the stores.
    write_and_drain(&rig, "f", vec![5u8; 100_000]).await;
    let before = chunks(&rig);
    assert_eq!(before.len(), 1);
    let holders: Vec<StoreId> = before[0].placements.iter().map(|p| p.1).collect();
    assert_eq!(holders.len(), 2, "the default class keeps two copies");
    let lost = holders[0];
    let spare = *rig.ids.iter().find(|s| !holders.contains(s)).unwrap();
    let i = rig.ids.iter().position(|s| *s == lost).unwrap();
    rig.faulty[i].fail_always(Op::Capacity, true);
    rig.faulty[i].fail_always(Op::Get, true);
    rig.stores.probe().await;

    // Suspect (within its grace): nothing to repair.
    let patient = repairer(&rig, Duration::from_secs(3600));
    assert_eq!(patient.repair_one().await.unwrap(), 0);
    assert_eq!(chunks(&rig)[0].placements, before[0].placements);

    // Offline past grace: the copy is made on the spare store.
    let prompt = repairer(&rig, Duration::ZERO);
    assert_eq!(prompt.repair_one().await.unwrap(), before[0].size);
    let after: Vec<StoreId> = chunks(&rig)[0].placements.iter().map(|p| p.1).collect();
    assert!(
        after.contains(&spare) && !after.contains(&lost),
        "{after:?}"
    );
    assert_eq!(after.len(), 2);
    // The copy left on the lost store goes to the trash; nothing placed is.
    let later = Timestamp(Timestamp::now().0 + 1_000_000_000);
    let trash = rig.fs.metadata().read(|v| v.trash(later, 10)).unwrap();
    assert_eq!(trash.len(), 1, "{trash:?}");
    assert_eq!(trash[0].0, lost);

    // The store comes back: its copy is not counted again, nothing to do.
    rig.faulty[i].fail_always(Op::Capacity, false);
    rig.faulty[i].fail_always(Op::Get, false);
    rig.stores.probe().await;
    assert_eq!(prompt.repair_one().await.unwrap(), 0);
    assert_eq!(chunks(&rig)[0].placements.len(), 2);
}

#[tokio::test]
async fn no_copy_is_made_on_a_store_whose_trash_still_holds_it() {
    let rig = rig(3).await;
    write_and_drain(&rig, "f", vec![6u8; 100_000]).await;
    let info = chunks(&rig).remove(0);
    let holders: Vec<StoreId> = info.placements.iter().map(|p| p.1).collect();
    let spare = *rig.ids.iter().find(|s| !holders.contains(s)).unwrap();
    let i = rig.ids.iter().position(|s| *s == holders[0]).unwrap();
    rig.faulty[i].fail_always(Op::Capacity, true);
    rig.stores.probe().await;
    // The spare store's trash holds the chunk's object (moved off earlier;
    // the collector may be deleting it right now).
    let key = crate::store::ObjectKey::of(info.id, info.layout, 0).to_string();
    let trashed = vec![(spare, key.clone())];
    rig.fs
        .metadata()
        .write(true, move |tx| tx.put_in_trash(&trashed, Timestamp::now()))
        .await
        .unwrap();
    let repairer = repairer(&rig, Duration::ZERO);
    assert_eq!(repairer.repair_one().await.unwrap(), 0);
    assert_eq!(repairer.progress().lock().unwrap().unplaceable_chunks, 1);
    // Once the collector is done with it, the copy is made there.
    rig.fs
        .metadata()
        .write(true, move |tx| tx.forget_trash(spare, &key))
        .await
        .unwrap();
    assert_eq!(repairer.repair_one().await.unwrap(), info.size);
    assert!(chunks(&rig)[0].placements.iter().any(|p| p.1 == spare));
}

#[tokio::test]
async fn a_store_that_bills_listings_is_listed_once_an_interval_and_keeps_its_orphan_clock() {
    let rig = rig(2).await;
    rig.faulty[0].set_list_every(Duration::from_secs(3600));
    // An object no chunk references on each store.
    let stray = crate::store::ObjectKey::of(
        cairn_metadata::ChunkId(999),
        cairn_metadata::ChunkLayout::Replicas,
        0,
    )
    .to_string();
    for &id in &rig.ids {
        rig.stores
            .put(id, &stray, Arc::new(b"stray".to_vec()))
            .await
            .unwrap();
    }
    let mut repairer = repairer(&rig, Duration::ZERO);
    let lists = |rig: &Rig| [rig.faulty[0].calls(Op::List), rig.faulty[1].calls(Op::List)];
    let before = lists(&rig);
    repairer.audit().await.unwrap();
    let first = repairer.unreferenced.clone();
    repairer.audit().await.unwrap();
    let after = lists(&rig);
    assert_eq!(
        [after[0] - before[0], after[1] - before[1]],
        [1, 2],
        "the billed store is listed once, the other at every audit"
    );
    // Both strays are still on their orphan clocks, from the first sighting.
    assert_eq!(
        repairer.unreferenced.len(),
        2,
        "{:?}",
        repairer.unreferenced
    );
    for (id, since) in &first {
        assert_eq!(repairer.unreferenced.get(id), Some(since), "{id:?}");
    }
}

#[tokio::test]
async fn the_bucket_scrub_finds_a_rotten_copy_and_repair_makes_it_again() {
    let rig = rig(3).await;
    write_and_drain(&rig, "f", vec![3u8; 200_000]).await;
    let info = chunks(&rig).remove(0);
    let rotten = info.placements[0].1;
    let i = rig.ids.iter().position(|s| *s == rotten).unwrap();
    // Every store is scrubbed by the gateway; only one holds rotten bytes.
    for f in &rig.faulty {
        f.set_gateway_scrub(Duration::ZERO, 0);
    }
    rig.faulty[i].set_flip(true);
    let repairer = repairer(&rig, Duration::ZERO);
    let mut scrub = super::scrub::Scrub::new(rig.stores.clone(), repairer.condemned());
    let key = crate::store::ObjectKey::of(info.id, info.layout, 0).to_string();
    let mut steps = 0;
    while scrub.scrub_one().await.unwrap() && steps < 20 {
        steps += 1;
    }
    let condemned = repairer.condemned().lock().unwrap().clone();
    assert_eq!(
        condemned.into_iter().collect::<Vec<_>>(),
        vec![(rotten, key)],
        "only the rotten copy is condemned ({steps} steps)"
    );
    assert_eq!(repairer.repair_one().await.unwrap(), info.size);
    let placed: Vec<StoreId> = chunks(&rig)[0].placements.iter().map(|p| p.1).collect();
    assert!(!placed.contains(&rotten), "{placed:?}");
    assert_eq!(placed.len(), 2, "{placed:?}");
    assert!(
        repairer.condemned().lock().unwrap().is_empty(),
        "the rotten copy given up is no longer condemned"
    );
}
