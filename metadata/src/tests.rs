//! Unit tests of the catalogue: migrations, grouped writes, cookies, check.

use super::*;
use crate::NewBlock;

fn new_file(now: Timestamp) -> NewInode {
    NewInode {
        kind: FileKind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
        symlink_target: None,
        class: None,
        parent: None,
        create_verifier: None,
        now,
        generation: 7,
    }
}

#[derive(Debug)]
enum TestError {
    Meta(#[allow(dead_code)] MetaError),
    Refused,
}

impl From<MetaError> for TestError {
    fn from(e: MetaError) -> Self {
        TestError::Meta(e)
    }
}

fn add(meta: &Metadata, name: &'static str) -> InodeId {
    meta.write_blocking(true, move |tx| {
        let mut inode = tx.insert_inode(&new_file(Timestamp::now()))?;
        inode.nlink = 1;
        tx.update_inode(&inode)?;
        tx.add_entry(InodeId::ROOT, name.as_bytes(), inode.id)?;
        Ok::<_, MetaError>(inode.id)
    })
    .unwrap()
}

#[test]
fn reopening_keeps_data_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let id = {
        let meta = Metadata::open(&path).unwrap();
        add(&meta, "a")
    };
    let meta = Metadata::open(&path).unwrap();
    assert_eq!(
        meta.read(|v| v.lookup(InodeId::ROOT, b"a")).unwrap(),
        Some(id)
    );
    meta.close();
    drop(meta);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO schema_version(version) VALUES (99)", [])
        .unwrap();
    drop(conn);
    assert!(matches!(
        Metadata::open(&path),
        Err(MetaError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn a_failing_job_undoes_only_its_own_changes() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open(&dir.path().join("m.db")).unwrap();
    let failed = meta.write_blocking(true, |tx| {
        let inode = tx.insert_inode(&new_file(Timestamp::now()))?;
        tx.add_entry(InodeId::ROOT, b"ghost", inode.id)?;
        Err::<(), _>(TestError::Refused)
    });
    assert!(matches!(failed, Err(TestError::Refused)));
    add(&meta, "real");
    assert_eq!(
        meta.read(|v| v.lookup(InodeId::ROOT, b"ghost")).unwrap(),
        None
    );
    assert!(meta
        .read(|v| v.lookup(InodeId::ROOT, b"real"))
        .unwrap()
        .is_some());
}

#[test]
fn cookies_grow_and_survive_other_removals() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open(&dir.path().join("m.db")).unwrap();
    for n in ["a", "b", "c"] {
        add(&meta, n);
    }
    let before = meta.read(|v| v.list(InodeId::ROOT, 0, 10)).unwrap();
    meta.write_blocking(true, |tx| tx.remove_entry(InodeId::ROOT, b"b"))
        .unwrap();
    add(&meta, "b");
    let after = meta.read(|v| v.list(InodeId::ROOT, 0, 10)).unwrap();
    assert_eq!(after[0], before[0]);
    assert_eq!(after[1], before[2]);
    assert!(
        after[2].cookie > before[2].cookie,
        "a re-added name must sort after the cookies handed out"
    );
    let rest = meta
        .read(|v| v.list(InodeId::ROOT, before[0].cookie, 10))
        .unwrap();
    assert_eq!(rest.len(), 2);
}

#[test]
fn check_finds_bad_link_counts_and_dangling_entries() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open(&dir.path().join("m.db")).unwrap();
    let id = add(&meta, "f");
    assert!(meta.check().unwrap().is_empty());
    meta.write_blocking(true, move |tx| {
        let mut inode = tx.inode(id)?.unwrap();
        inode.nlink = 3;
        tx.update_inode(&inode)?;
        tx.add_entry(InodeId::ROOT, b"dangling", InodeId(9999))
    })
    .unwrap();
    let found = meta.check().unwrap();
    assert!(
        found.contains(&Inconsistency::LinkCount {
            inode: id,
            stored: 3,
            counted: 1
        }),
        "{found:?}"
    );
    assert!(found.iter().any(|p| matches!(
        p,
        Inconsistency::DanglingEntry {
            child: InodeId(9999),
            ..
        }
    )));
}

#[test]
fn a_slot_rewritten_after_a_truncate_never_matches_an_old_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open(&dir.path().join("m.db")).unwrap();
    let id = add(&meta, "f");
    meta.write_blocking(true, move |tx| tx.mark_written(id, 0, 0, Timestamp::now()))
        .unwrap();
    let snap = meta.read(|v| v.slots(id, 0, 0)).unwrap()[0].version;
    // The file is truncated to nothing and written again, once.
    meta.write_blocking(true, move |tx| {
        tx.truncate_slots(id, 0)?;
        tx.mark_written(id, 0, 0, Timestamp::now())
    })
    .unwrap();
    let now = meta.read(|v| v.slots(id, 0, 0)).unwrap()[0].version;
    assert_ne!(snap, now, "a recreated slot reused a version");
    let attached = meta
        .write_blocking(true, move |tx| {
            let class = tx.upsert_class("default", "{}", Timestamp::now())?;
            let store = tx.upsert_store("s", "127.0.0.1:1", "z", "h", "")?;
            let chunk = tx.new_chunk(class, 10, Timestamp::now())?;
            let stale = NewBlock {
                inode: id,
                index: 0,
                version: snap,
                offset: 0,
                stored_len: 10,
                plain_len: 10,
                checksum: Vec::new(),
            };
            tx.attach_chunk(
                chunk,
                crate::ChunkLayout::Replicas,
                &[(0, store)],
                &[],
                &[stale],
            )
        })
        .unwrap();
    assert_eq!(
        attached, 0,
        "a block of the old bytes was attached to the new data"
    );
    assert!(meta.read(|v| v.slots(id, 0, 0)).unwrap()[0].dirty);
}

#[test]
fn relayout_swaps_placements_and_trashes_the_old_objects_in_one_commit() {
    use crate::{ChunkLayout, StoreId};
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open(&dir.path().join("m.db")).unwrap();
    let id = add(&meta, "f");
    meta.write_blocking(true, move |tx| tx.mark_written(id, 0, 0, Timestamp::now()))
        .unwrap();
    let version = meta.read(|v| v.slots(id, 0, 0)).unwrap()[0].version;
    let (chunk, class, stores) = meta
        .write_blocking(true, move |tx| {
            let class = tx.upsert_class("default", "{}", Timestamp::now())?;
            let stores: Vec<StoreId> = (0..5)
                .map(|i| tx.upsert_store(&format!("s{i}"), "127.0.0.1:1", "z", "h", ""))
                .collect::<Result<_, _>>()?;
            let chunk = tx.new_chunk(class, 100, Timestamp::now())?;
            let block = NewBlock {
                inode: id,
                index: 0,
                version,
                offset: 0,
                stored_len: 100,
                plain_len: 84,
                checksum: Vec::new(),
            };
            let copies = [(0, stores[0]), (1, stores[1])];
            tx.attach_chunk(chunk, ChunkLayout::Replicas, &copies, &[], &[block])?;
            Ok::<_, crate::MetaError>((chunk, class, stores))
        })
        .unwrap();
    let info = meta.read(|v| v.chunk(chunk)).unwrap().unwrap();
    assert_eq!(info.layout, ChunkLayout::Replicas);
    assert_eq!((info.logical, info.stored_bytes()), (84, 200));
    let later = Timestamp(Timestamp::now().0 + 1_000_000_000);
    assert_eq!(
        meta.read(|v| v.replica_chunks_before(class, later, 10))
            .unwrap(),
        vec![chunk]
    );

    let ec = ChunkLayout::Ec {
        k: 4,
        m: 1,
        shard_len: 25,
    };
    let shards: Vec<(u32, StoreId)> = (0..5).map(|i| (i, stores[i as usize])).collect();
    let old = vec![(stores[0], "c1".to_owned()), (stores[1], "c1".to_owned())];
    let (s, o) = (shards.clone(), old.clone());
    assert!(meta
        .write_blocking(true, move |tx| tx.relayout_chunk(
            chunk,
            ec,
            &s,
            &o,
            Timestamp::now()
        ))
        .unwrap());
    let info = meta.read(|v| v.chunk(chunk)).unwrap().unwrap();
    assert_eq!((info.layout, info.placements.clone()), (ec, shards));
    assert_eq!(info.stored_bytes(), 125);
    assert!(meta
        .read(|v| v.replica_chunks_before(class, later, 10))
        .unwrap()
        .is_empty());
    let block = meta.read(|v| v.slots(id, 0, 0)).unwrap()[0].block.unwrap();
    let loc = meta.read(|v| v.block_location(block)).unwrap().unwrap();
    assert_eq!(loc.layout, ec);
    assert_eq!(meta.read(|v| v.trash(later, 10)).unwrap(), old);
    let (store, key) = old[0].clone();
    meta.write_blocking(true, move |tx| tx.forget_trash(store, &key))
        .unwrap();
    assert_eq!(meta.read(|v| v.trash(later, 10)).unwrap(), old[1..]);
    // Nothing older than the trash's own time is due yet.
    assert!(meta.read(|v| v.trash(Timestamp(0), 10)).unwrap().is_empty());
}

#[test]
fn a_copy_moved_back_onto_a_store_leaves_that_stores_trash() {
    use crate::{object_name, ChunkLayout, StoreId};
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open(&dir.path().join("m.db")).unwrap();
    let (chunk, s) = meta
        .write_blocking(true, move |tx| {
            let class = tx.upsert_class("default", "{}", Timestamp::now())?;
            let s: Vec<StoreId> = (1..=3)
                .map(|i| tx.upsert_store(&format!("s{i}"), "127.0.0.1:1", "z", "h", ""))
                .collect::<Result<_, _>>()?;
            let chunk = tx.new_chunk(class, 100, Timestamp::now())?;
            tx.attach_chunk(
                chunk,
                ChunkLayout::Replicas,
                &[(0, s[0]), (1, s[1])],
                &[],
                &[],
            )?;
            Ok::<_, crate::MetaError>((chunk, s))
        })
        .unwrap();
    let key = object_name(chunk, None);
    // The rebalancer's moves from the e2e run: s2→s3, s1→s2, s3→s1, each
    // trashing the object it moved off.
    for (index, from, to) in [(1, s[1], s[2]), (0, s[0], s[1]), (1, s[2], s[0])] {
        let trash = vec![(from, key.clone())];
        let done = meta
            .write_blocking(true, move |tx| {
                tx.repair_chunk(
                    chunk,
                    ChunkLayout::Replicas,
                    &[(index, from)],
                    &[(index, to)],
                    &trash,
                    Timestamp::now(),
                )
            })
            .unwrap();
        assert!(done);
        let info = meta.read(|v| v.chunk(chunk)).unwrap().unwrap();
        let later = Timestamp(Timestamp::now().0 + 1_000_000_000);
        for (store, trashed) in meta.read(|v| v.trash(later, 10)).unwrap() {
            assert!(
                !info
                    .placements
                    .iter()
                    .any(|p| p.1 == store && trashed == key),
                "{trashed} on store {store:?} is both placed and in the trash"
            );
        }
    }
    // Placed on s1 and s2, trashed only on s3.
    assert_eq!(meta.read(|v| v.trashed_on(&key)).unwrap(), vec![s[2]]);
    // Attaching and re-laying take objects out of the trash the same way.
    let shard = ChunkLayout::Ec {
        k: 1,
        m: 1,
        shard_len: 100,
    };
    let trash = vec![(s[2], shard.object_name(chunk, 1))];
    meta.write_blocking(true, move |tx| {
        tx.put_in_trash(&trash, Timestamp::now())?;
        tx.relayout_chunk(chunk, shard, &[(0, s[0]), (1, s[2])], &[], Timestamp::now())
    })
    .unwrap();
    assert!(meta
        .read(|v| v.trashed_on(&shard.object_name(chunk, 1)))
        .unwrap()
        .is_empty());
}

#[test]
fn a_snapshot_plus_the_changes_after_it_restores_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open(&dir.path().join("m.db")).unwrap();
    let a = add(&meta, "a");
    add(&meta, "b");
    let snap = dir.path().join("snap.db");
    meta.snapshot_to(&snap).unwrap();
    assert!(
        meta.take_changes().unwrap().is_empty(),
        "no change since the snapshot"
    );
    // After the snapshot: one file added, one renamed (remove + add), data.
    let c = add(&meta, "c");
    meta.write_blocking(true, move |tx| {
        tx.remove_entry(InodeId::ROOT, b"a")?;
        tx.add_entry(InodeId::ROOT, b"a2", a)?;
        tx.mark_written(c, 0, 2, Timestamp::now())
    })
    .unwrap();
    let first = meta.take_changes().unwrap();
    assert!(!first.is_empty());
    add(&meta, "d");
    let second = meta.take_changes().unwrap();
    assert!(!second.is_empty());
    let seq_before = meta.read(|v| v.slots(c, 0, 2)).unwrap();
    meta.close();

    let restored = dir.path().join("restored.db");
    std::fs::copy(&snap, &restored).unwrap();
    crate::restore(&restored, &[first.clone(), second.clone()]).unwrap();
    let back = Metadata::open(&restored).unwrap();
    let names = |m: &Metadata| {
        ["a", "a2", "b", "c", "d"]
            .iter()
            .map(|n| {
                m.read(|v| v.lookup(InodeId::ROOT, n.as_bytes()))
                    .unwrap()
                    .is_some()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&back), vec![false, true, true, true, true]);
    assert_eq!(back.read(|v| v.slots(c, 0, 2)).unwrap(), seq_before);
    // New ids never reuse ones the lost tail may have used.
    let e = add(&back, "e");
    assert!(e.0 > c.0 + 1000, "new inode {e:?} after {c:?}");
    back.close();

    // Out of order, a changeset does not apply: an error naming it.
    let again = dir.path().join("again.db");
    std::fs::copy(&snap, &again).unwrap();
    let err = crate::restore(&again, &[second, first]).unwrap_err();
    assert_eq!(err.0, 0, "{err:?}");
}

/// Reserved slots count whole, the slot holding the end of the file only up
/// to it (unless reservations run on past it); punched slots are holes.
#[test]
fn allocation_counts_slots_and_finds_holes() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open(&dir.path().join("m.db")).unwrap();
    let id = add(&meta, "f");
    let alloc = |size| meta.read(|v| v.allocated_bytes(id, size, 4096)).unwrap();
    assert_eq!(alloc(10 * SLOT_SIZE), 0, "a file with no slots is one hole");
    meta.write_blocking(true, move |tx| tx.mark_written(id, 0, 0, Timestamp::now()))
        .unwrap();
    assert_eq!(alloc(100), 4096, "a small file counts up to its end");
    meta.write_blocking(true, move |tx| tx.reserve_slots(id, 0, 2))
        .unwrap();
    assert_eq!(
        alloc(100),
        3 * SLOT_SIZE,
        "a reservation past the end counts whole"
    );
    assert_eq!(alloc(2 * SLOT_SIZE + 1), 2 * SLOT_SIZE + 4096);
    meta.write_blocking(true, move |tx| tx.punch_slots(id, 1, 1))
        .unwrap();
    let next = |from, allocated| meta.read(|v| v.next_slot(id, from, 9, allocated)).unwrap();
    assert_eq!(next(0, false), Some(1));
    assert_eq!(next(1, true), Some(2));
    assert_eq!(next(3, true), None);
    assert_eq!(next(3, false), Some(3));
    assert_eq!(alloc(3 * SLOT_SIZE), 2 * SLOT_SIZE);
}

#[test]
fn the_class_stamp_moves_with_every_create_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open(&dir.path().join("m.db")).unwrap();
    let empty = meta.read(|v| v.class_stamp()).unwrap();
    assert_eq!(empty, ClassStamp::default());
    let a = meta
        .write_blocking(true, |tx| tx.upsert_class("a", "{}", Timestamp::now()))
        .unwrap();
    let one = meta.read(|v| v.class_stamp()).unwrap();
    assert_eq!((one.count, one.max_id), (1, a.0));
    let rows = meta.read(|v| v.classes()).unwrap();
    assert_eq!(
        rows,
        vec![ClassRow {
            id: a,
            name: "a".into(),
            spec: "{}".into()
        }]
    );
    meta.write_blocking(true, |tx| tx.delete_class("a"))
        .unwrap()
        .unwrap();
    let none = meta.read(|v| v.class_stamp()).unwrap();
    assert_ne!(none, one);
    // Ids are never reused, so a class recreated under the old name differs too.
    let b = meta
        .write_blocking(true, |tx| tx.upsert_class("a", "{}", Timestamp::now()))
        .unwrap();
    assert!(b.0 > a.0);
    assert_ne!(meta.read(|v| v.class_stamp()).unwrap(), one);
}

/// A reader's cached statements are not compiled again when a read binds
/// other values: SQLite would re-plan a statement on every new binding of a
/// variable that a partial index or a LIMIT could use, which cost a cold
/// random read a third of its gateway time.
#[test]
fn reads_with_new_values_reuse_their_compiled_statements() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = Metadata::open(&tmp.path().join("meta.db")).unwrap();
    let id = add(&meta, "f");
    let reprepared = |sql: &str| {
        meta.read(|v| {
            Ok(v.conn
                .prepare_cached(sql)?
                .get_status(rusqlite::StatementStatus::RePrepare))
        })
        .unwrap()
    };
    for i in 0..20u64 {
        meta.read(|v| v.slots(id, i, i + 3)).unwrap();
        meta.read(|v| v.block_location(BlockId(i + 1))).unwrap();
        meta.read(|v| v.inode(InodeId(i + 1))).unwrap();
    }
    let slots = format!(
        "SELECT {} FROM slots WHERE inode = ?1 AND slot BETWEEN ?2 AND ?3 ORDER BY slot",
        crate::slots::SLOT_COLUMNS
    );
    assert_eq!(reprepared(&slots), 0, "slots query re-planned");
    assert_eq!(
        reprepared(crate::slots::BLOCK_LOCATION),
        0,
        "block_location re-planned"
    );
}

#[test]
fn one_read_sees_one_state_even_when_a_write_commits_inside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = Metadata::open(&tmp.path().join("meta.db")).unwrap();
    let id = add(&meta, "f");
    let (before, after) = meta
        .read(|v| {
            let before = v.inode(id)?.unwrap().size;
            // A write commits between the read's two queries.
            meta.write_blocking(true, move |tx| {
                let mut inode = tx.inode(id)?.unwrap();
                inode.size = 12345;
                tx.update_inode(&inode)?;
                Ok::<_, MetaError>(())
            })
            .unwrap();
            Ok((before, v.inode(id)?.unwrap().size))
        })
        .unwrap();
    assert_eq!(before, after, "the second query saw a later state");
    // The next read sees the write.
    assert_eq!(meta.read(|v| v.inode(id)).unwrap().unwrap().size, 12345);
}
