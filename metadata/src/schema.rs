//! The schema and its forward migrations. Each migration runs once, in order,
//! inside one transaction with the bump of `schema_version`; a database newer
//! than this build is refused rather than guessed at.

use rusqlite::{Connection, Transaction};

use crate::{InodeId, Timestamp};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 8;

const MIGRATION_1: &str = r#"
CREATE TABLE inodes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           INTEGER NOT NULL,
    mode           INTEGER NOT NULL,
    uid            INTEGER NOT NULL,
    gid            INTEGER NOT NULL,
    size           INTEGER NOT NULL DEFAULT 0,
    nlink          INTEGER NOT NULL,
    atime_ns       INTEGER NOT NULL,
    mtime_ns       INTEGER NOT NULL,
    ctime_ns       INTEGER NOT NULL,
    generation     INTEGER NOT NULL,
    rdev           INTEGER NOT NULL DEFAULT 0,
    symlink_target BLOB,
    class_id       INTEGER REFERENCES classes(id),
    parent         INTEGER,
    create_verf    BLOB
);

-- The cookie is the row id: AUTOINCREMENT never reuses one, so cookies only
-- grow and an entry keeps its cookie for as long as it exists.
CREATE TABLE dirents (
    cookie INTEGER PRIMARY KEY AUTOINCREMENT,
    parent INTEGER NOT NULL,
    name   BLOB NOT NULL,
    child  INTEGER NOT NULL
);
CREATE UNIQUE INDEX dirents_by_name ON dirents(parent, name);
CREATE INDEX dirents_by_child ON dirents(child);

-- Storage classes: how a file's chunks are protected (filled in by the
-- chunk-store and erasure-coding work).
CREATE TABLE classes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    spec       TEXT NOT NULL,
    created_ns INTEGER NOT NULL
);

-- Chunk stores: one daemon per drive.
CREATE TABLE stores (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    address    TEXT NOT NULL,
    zone       TEXT NOT NULL,
    host       TEXT NOT NULL,
    labels     TEXT NOT NULL DEFAULT '',
    state      INTEGER NOT NULL DEFAULT 0,
    capacity   INTEGER NOT NULL DEFAULT 0,
    used       INTEGER NOT NULL DEFAULT 0
);

-- Chunks group blocks of one class; placements say where each replica or
-- shard lives.
CREATE TABLE chunks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    class_id   INTEGER NOT NULL REFERENCES classes(id),
    size       INTEGER NOT NULL,
    state      INTEGER NOT NULL DEFAULT 0,
    created_ns INTEGER NOT NULL
);
CREATE TABLE placements (
    chunk_id INTEGER NOT NULL REFERENCES chunks(id),
    shard    INTEGER NOT NULL,
    store_id INTEGER NOT NULL REFERENCES stores(id),
    checksum BLOB NOT NULL,
    PRIMARY KEY (chunk_id, shard, store_id)
) WITHOUT ROWID;
CREATE INDEX placements_by_store ON placements(store_id);

-- Immutable encrypted blocks inside chunks, and the file extents that point
-- at them.
CREATE TABLE blocks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id   INTEGER NOT NULL REFERENCES chunks(id),
    chunk_off  INTEGER NOT NULL,
    stored_len INTEGER NOT NULL,
    plain_len  INTEGER NOT NULL,
    checksum   BLOB NOT NULL,
    refcount   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX blocks_by_chunk ON blocks(chunk_id);
CREATE TABLE extents (
    inode     INTEGER NOT NULL,
    file_off  INTEGER NOT NULL,
    len       INTEGER NOT NULL,
    block_id  INTEGER NOT NULL REFERENCES blocks(id),
    block_off INTEGER NOT NULL,
    PRIMARY KEY (inode, file_off)
) WITHOUT ROWID;

-- Background work (drain, repair, collection), ordered by priority then age.
CREATE TABLE work_queue (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    subject     INTEGER NOT NULL,
    priority    INTEGER NOT NULL DEFAULT 0,
    not_before_ns INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (kind, subject)
);

-- Small named counters, e.g. the commit sequence bumped by durability barriers.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters(name, value) VALUES ('commit_seq', 0);
"#;

/// Version 2: the bytes of small files live in the catalogue itself, so a
/// small file costs one SQLite row instead of a local file (and its inode,
/// directory entry and fsyncs).
const MIGRATION_2: &str = r#"
CREATE TABLE inline_data (
    inode INTEGER PRIMARY KEY,
    data  BLOB NOT NULL
);
"#;

/// Version 3: file data is tracked per fixed 4 MiB slot. A slot's current
/// bytes are in the ingest cache (`cached`), in a drained block (`block_id`,
/// of which the first `valid_len` bytes count), or both; `dirty` says the
/// cache is newer than the block; `version` grows with every write so the
/// drainer can tell a slot changed while it was being uploaded. Slots replace
/// the byte-range `extents` of version 1, which nothing had used.
const MIGRATION_3: &str = r#"
DROP TABLE extents;
CREATE TABLE slots (
    inode          INTEGER NOT NULL,
    slot           INTEGER NOT NULL,
    block_id       INTEGER REFERENCES blocks(id),
    valid_len      INTEGER NOT NULL DEFAULT 0,
    cached         INTEGER NOT NULL DEFAULT 1,
    dirty          INTEGER NOT NULL DEFAULT 1,
    version        INTEGER NOT NULL DEFAULT 1,
    dirty_since_ns INTEGER,
    PRIMARY KEY (inode, slot)
) WITHOUT ROWID;
CREATE INDEX slots_dirty ON slots(dirty_since_ns) WHERE dirty = 1;
CREATE INDEX slots_by_block ON slots(block_id);
ALTER TABLE chunks ADD COLUMN live_bytes INTEGER NOT NULL DEFAULT 0;
"#;

/// Version 4: slot versions come from one counter that never repeats, so a
/// slot deleted by a truncate and written again cannot match a version the
/// drainer snapshotted before.
const MIGRATION_4: &str = r#"
INSERT INTO counters (name, value) VALUES ('slot_version', (SELECT coalesce(max(version), 0) FROM slots));
"#;

/// Version 5: a chunk has its own layout, fixed when its bytes are stored:
/// `ec_k` = 0 for whole replicas (every placement holds the whole chunk),
/// else `ec_k` data plus `ec_m` parity shards of `shard_len` bytes each
/// (placement `shard` = shard index). A chunk re-laid by the archive
/// transition changes layout in one transaction; the objects it no longer
/// uses go to `trash`, which the collector empties from the stores.
const MIGRATION_5: &str = r#"
ALTER TABLE chunks ADD COLUMN ec_k INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chunks ADD COLUMN ec_m INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chunks ADD COLUMN shard_len INTEGER NOT NULL DEFAULT 0;
CREATE TABLE trash (
    store_id INTEGER NOT NULL,
    key      TEXT NOT NULL,
    since_ns INTEGER NOT NULL,
    PRIMARY KEY (store_id, key)
) WITHOUT ROWID;
"#;

/// Version 6: extended attributes, one row per (inode, name). The SMB
/// bridge keeps DOS attributes and streams in `user.*` names; values are
/// opaque bytes. Rows go with their inode.
const MIGRATION_6: &str = r#"
CREATE TABLE xattrs (
    inode INTEGER NOT NULL,
    name  BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (inode, name)
) WITHOUT ROWID;
"#;

/// Version 7: `relay` marks a dirty slot whose cached bytes are exactly
/// its block's, sent through the drain again only to move it (a class
/// change, a compaction). Its block stays the slot's truth until the new
/// one is attached: when the cache copy is lost (a wiped cache, a restore
/// from the stores) the slot simply reads from its block again. A write
/// clears the mark.
///
/// `lost` marks a slot whose newest bytes were only in a cache that is
/// gone (a gateway rebuilt from the stores, a wiped cache folder): reads of
/// it fail with an I/O error, never silent zeros, until a write gives it
/// new bytes or a truncate or delete drops it.
///
/// `settings` keeps named texts that travel with the metadata to the
/// stores: the gateway's own config (`gateway.toml`), so a gateway rebuilt
/// from the stores listens, allows and caches as the lost one did.
const MIGRATION_7: &str = r#"
ALTER TABLE slots ADD COLUMN relay INTEGER NOT NULL DEFAULT 0;
ALTER TABLE slots ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#;

/// Version 8: file times as whole seconds and nanoseconds (`*_s`,
/// `*_nsec`) instead of i64 nanoseconds, which end in 2262: a client may set
/// any date a 64-bit `time_t` holds (SMB and `touch -d` set years like
/// 2446). Seconds round down, so times before 1970 keep `nsec` in 0..1e9.
const MIGRATION_8: &str = r#"
ALTER TABLE inodes ADD COLUMN atime_s INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inodes ADD COLUMN atime_nsec INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inodes ADD COLUMN mtime_s INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inodes ADD COLUMN mtime_nsec INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inodes ADD COLUMN ctime_s INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inodes ADD COLUMN ctime_nsec INTEGER NOT NULL DEFAULT 0;
UPDATE inodes SET
    atime_nsec = ((atime_ns % 1000000000) + 1000000000) % 1000000000,
    mtime_nsec = ((mtime_ns % 1000000000) + 1000000000) % 1000000000,
    ctime_nsec = ((ctime_ns % 1000000000) + 1000000000) % 1000000000;
UPDATE inodes SET
    atime_s = (atime_ns - atime_nsec) / 1000000000,
    mtime_s = (mtime_ns - mtime_nsec) / 1000000000,
    ctime_s = (ctime_ns - ctime_nsec) / 1000000000;
ALTER TABLE inodes DROP COLUMN atime_ns;
ALTER TABLE inodes DROP COLUMN mtime_ns;
ALTER TABLE inodes DROP COLUMN ctime_ns;
"#;

const MIGRATIONS: &[&str] = &[
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    MIGRATION_4,
    MIGRATION_5,
    MIGRATION_6,
    MIGRATION_7,
    MIGRATION_8,
];

/// Brings the database up to [`SCHEMA_VERSION`]. Returns the version found.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<Result<i64, i64>> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let found: Option<i64> =
        conn.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))?;
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Ok(Err(found));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= found {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if version == 1 {
            create_root(&tx)?;
        }
        tx.execute("INSERT INTO schema_version(version) VALUES (?1)", [version])?;
        tx.commit()?;
    }
    Ok(Ok(found))
}

fn create_root(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let now = Timestamp::now().0;
    tx.execute(
        "INSERT INTO inodes (id, kind, mode, uid, gid, size, nlink, atime_ns, mtime_ns, ctime_ns, generation, parent)
         VALUES (?1, 2, 493, 0, 0, 0, 2, ?2, ?2, ?2, 1, ?1)",
        rusqlite::params![InodeId::ROOT.0 as i64, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::inode::{inode_from_row, INODE_COLUMNS};
    use crate::FileTime;

    /// A version 6 database's nanosecond times become seconds and
    /// nanoseconds, before 1970 included (seconds round down).
    #[test]
    fn migration_8_splits_nanosecond_times() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            .unwrap();
        for (i, sql) in MIGRATIONS[..6].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            if i == 0 {
                let tx = conn.transaction().unwrap();
                create_root(&tx).unwrap();
                tx.commit().unwrap();
            }
            conn.execute(
                "INSERT INTO schema_version(version) VALUES (?1)",
                [i as i64 + 1],
            )
            .unwrap();
        }
        conn.execute(
            "UPDATE inodes SET atime_ns = -1500000000, mtime_ns = 1700000000123456789, ctime_ns = 0 WHERE id = 1",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), Ok(6));
        let inode = conn
            .query_row(
                &format!("SELECT {INODE_COLUMNS} FROM inodes WHERE id = 1"),
                [],
                inode_from_row,
            )
            .unwrap();
        assert_eq!(inode.atime, FileTime::new(-2, 500_000_000));
        assert_eq!(inode.mtime, FileTime::new(1_700_000_000, 123_456_789));
        assert_eq!(inode.ctime, FileTime::new(0, 0));
    }
}
