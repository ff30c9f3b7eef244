//! File data by slot: which 4 MiB slots of a file are cached, dirty, or
//! backed by a drained block; and the blocks, chunks and placements behind
//! them. See migration 3 in `schema.rs` for the meaning of each column.

use rusqlite::{params, OptionalExtension};

use crate::chunks::{placement_list, Placements};
use crate::{
    BlockId, ChunkId, ChunkLayout, ClassId, InodeId, MetaError, StoreId, Timestamp, Tx, View,
};

/// The fixed size of a slot: the unit of dirty tracking, of blocks, and of
/// cache eviction.
pub const SLOT_SIZE: u64 = 4 << 20;

/// One slot's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub inode: InodeId,
    pub index: u64,
    pub block: Option<BlockId>,
    pub valid_len: u64,
    pub cached: bool,
    pub dirty: bool,
    pub version: u64,
    /// Its newest bytes were in a cache that is gone: reads must fail.
    pub lost: bool,
}

/// Where a drained block lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLocation {
    pub block: BlockId,
    pub chunk: ChunkId,
    pub offset: u64,
    pub stored_len: u64,
    pub plain_len: u64,
    pub layout: ChunkLayout,
    /// `(shard, store)`, by shard: for replicas every entry holds the chunk.
    pub placements: Vec<(u32, StoreId)>,
}

/// A dirty slot waiting for the drainer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtySlot {
    pub inode: InodeId,
    pub index: u64,
    pub version: u64,
    pub class: Option<ClassId>,
    pub size: u64,
    pub since: Timestamp,
}

/// A block the drainer stored, to be attached to its slot.
#[derive(Clone, Debug)]
pub struct NewBlock {
    pub inode: InodeId,
    pub index: u64,
    pub version: u64,
    pub offset: u64,
    pub stored_len: u64,
    pub plain_len: u64,
    pub checksum: Vec<u8>,
}

fn slot_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Slot> {
    Ok(Slot {
        inode: InodeId(r.get::<_, i64>(0)? as u64),
        index: r.get::<_, i64>(1)? as u64,
        block: r.get::<_, Option<i64>>(2)?.map(|b| BlockId(b as u64)),
        valid_len: r.get::<_, i64>(3)? as u64,
        cached: r.get(4)?,
        dirty: r.get(5)?,
        version: r.get::<_, i64>(6)? as u64,
        lost: r.get(7)?,
    })
}

/// A [`DirtySlot`] from `s.inode, s.slot, s.version, i.class_id, i.size,
/// s.dirty_since_ns`.
fn dirty_slot_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DirtySlot> {
    Ok(DirtySlot {
        inode: InodeId(r.get::<_, i64>(0)? as u64),
        index: r.get::<_, i64>(1)? as u64,
        version: r.get::<_, i64>(2)? as u64,
        class: r.get::<_, Option<i64>>(3)?.map(|c| ClassId(c as u64)),
        size: r.get::<_, i64>(4)? as u64,
        since: Timestamp(r.get::<_, Option<i64>>(5)?.unwrap_or(0)),
    })
}

pub(crate) const SLOT_COLUMNS: &str =
    "inode, slot, block_id, valid_len, cached, dirty, version, lost";
/// Where a block is: [`View::block_location`]'s query.
pub(crate) const BLOCK_LOCATION: &str = "SELECT b.chunk_id, b.chunk_off, b.stored_len, b.plain_len, c.ec_k, c.ec_m, c.shard_len,
     (SELECT group_concat(p.shard || ':' || p.store_id) FROM placements p WHERE p.chunk_id = b.chunk_id)
 FROM blocks b JOIN chunks c ON c.id = b.chunk_id WHERE b.id = ?1";

impl View<'_> {
    /// The slots of `inode` from `first` to `last` inclusive that have a row.
    pub fn slots(&self, inode: InodeId, first: u64, last: u64) -> Result<Vec<Slot>, MetaError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SLOT_COLUMNS} FROM slots WHERE inode = ?1 AND slot BETWEEN ?2 AND ?3 ORDER BY slot"
        ))?;
        let rows = stmt.query_map(
            params![inode.0 as i64, first as i64, last as i64],
            slot_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Where a block's bytes are stored.
    pub fn block_location(&self, block: BlockId) -> Result<Option<BlockLocation>, MetaError> {
        let mut stmt = self.conn.prepare_cached(BLOCK_LOCATION)?;
        Ok(stmt
            .query_row([block.0 as i64], |r| {
                Ok(BlockLocation {
                    block,
                    chunk: ChunkId(r.get::<_, i64>(0)? as u64),
                    offset: r.get::<_, i64>(1)? as u64,
                    stored_len: r.get::<_, i64>(2)? as u64,
                    plain_len: r.get::<_, i64>(3)? as u64,
                    layout: ChunkLayout::from_columns(r.get(4)?, r.get(5)?, r.get(6)?),
                    placements: placement_list(r.get(7)?),
                })
            })
            .optional()?)
    }

    /// Dirty slots whose file has been quiet since `quiet_before`, oldest
    /// first. Quiet is judged from the ctime, which only the gateway's own
    /// clock sets (every write stamps it): a client can set the mtime to
    /// any date, and a future one must not keep data from draining.
    pub fn dirty_slots(
        &self,
        quiet_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<DirtySlot>, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.inode, s.slot, s.version, i.class_id, i.size, s.dirty_since_ns
             FROM slots s JOIN inodes i ON i.id = s.inode
             WHERE s.dirty = 1 AND (i.ctime_s < ?1 OR (i.ctime_s = ?1 AND i.ctime_nsec < ?3))
             ORDER BY s.dirty_since_ns LIMIT ?2",
        )?;
        let (secs, nanos) = quiet_before.split();
        let rows = stmt.query_map(params![secs, limit as i64, nanos], dirty_slot_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The dirty slots of one file, whatever their age.
    pub fn dirty_slots_of(&self, inode: InodeId) -> Result<Vec<DirtySlot>, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.inode, s.slot, s.version, i.class_id, i.size, s.dirty_since_ns
             FROM slots s JOIN inodes i ON i.id = s.inode
             WHERE s.inode = ?1 AND s.dirty = 1 ORDER BY s.slot",
        )?;
        let rows = stmt.query_map([inode.0 as i64], dirty_slot_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Bytes, slots and files waiting for the drain, and the oldest wait.
    pub fn backlog(&self) -> Result<Backlog, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT count(*), count(DISTINCT s.inode), min(s.dirty_since_ns),
                    coalesce(sum(min(i.size - s.slot * ?1, ?1)), 0)
             FROM slots s JOIN inodes i ON i.id = s.inode WHERE s.dirty = 1 AND i.size > s.slot * ?1",
        )?;
        Ok(stmt.query_row([SLOT_SIZE as i64], |r| {
            Ok(Backlog {
                slots: r.get::<_, i64>(0)? as u64,
                files: r.get::<_, i64>(1)? as u64,
                oldest: r.get::<_, Option<i64>>(2)?.map(Timestamp),
                bytes: r.get::<_, i64>(3)? as u64,
            })
        })?)
    }

    /// Clean, cached slots (candidates for eviction), least recently
    /// written first.
    pub fn clean_cached_slots(&self, limit: usize) -> Result<Vec<Slot>, MetaError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SLOT_COLUMNS} FROM slots WHERE cached = 1 AND dirty = 0 AND block_id IS NOT NULL LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], slot_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Chunks that hold no live block any more (state 1 = stored), and
    /// chunks left pending (state 0) by a drain that never finished, created
    /// before `pending_before`.
    pub fn dead_chunks(
        &self,
        pending_before: Timestamp,
    ) -> Result<Vec<(ChunkId, ChunkLayout, Placements)>, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, c.ec_k, c.ec_m, c.shard_len, group_concat(p.shard || ':' || p.store_id)
             FROM chunks c LEFT JOIN placements p ON p.chunk_id = c.id
             WHERE (c.state = 1 AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.chunk_id = c.id AND b.refcount > 0))
                OR (c.state = 0 AND c.created_ns < ?1)
             GROUP BY c.id",
        )?;
        let rows = stmt.query_map([pending_before.0], |r| {
            Ok((
                ChunkId(r.get::<_, i64>(0)? as u64),
                ChunkLayout::from_columns(r.get(1)?, r.get(2)?, r.get(3)?),
                placement_list(r.get(4)?),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// What waits for the drain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    pub bytes: u64,
    pub slots: u64,
    pub files: u64,
    pub oldest: Option<Timestamp>,
}

impl Tx<'_> {
    /// Records a write to slots `first..=last` of `inode`: their cache holds
    /// the newest bytes, which the drain has yet to store.
    pub fn mark_written(
        &self,
        inode: InodeId,
        first: u64,
        last: u64,
        now: Timestamp,
    ) -> Result<(), MetaError> {
        let version = self.next_slot_version()?;
        let mut stmt = self.conn().prepare_cached(
            "INSERT INTO slots (inode, slot, cached, dirty, version, dirty_since_ns) VALUES (?1, ?2, 1, 1, ?4, ?3)
             ON CONFLICT (inode, slot) DO UPDATE SET cached = 1, dirty = 1, relay = 0, lost = 0, version = ?4,
                 dirty_since_ns = coalesce(dirty_since_ns, ?3)",
        )?;
        for slot in first..=last {
            stmt.execute(params![inode.0 as i64, slot as i64, now.0, version as i64])?;
        }
        Ok(())
    }

    /// A slot version no slot ever had.
    pub(crate) fn next_slot_version(&self) -> Result<u64, MetaError> {
        let mut stmt = self.conn().prepare_cached(
            "UPDATE counters SET value = value + 1 WHERE name = 'slot_version' RETURNING value",
        )?;
        Ok(stmt.query_row([], |r| r.get::<_, i64>(0))? as u64)
    }

    /// A truncate to `size`: slots wholly past it go (their blocks lose a
    /// reference); the slot it cuts keeps only the bytes before it.
    pub fn truncate_slots(&self, inode: InodeId, size: u64) -> Result<(), MetaError> {
        let keep = size.div_ceil(SLOT_SIZE);
        self.conn().execute(
            "UPDATE blocks SET refcount = refcount - 1 WHERE id IN
                (SELECT block_id FROM slots WHERE inode = ?1 AND slot >= ?2 AND block_id IS NOT NULL)",
            params![inode.0 as i64, keep as i64],
        )?;
        self.conn().execute(
            "DELETE FROM slots WHERE inode = ?1 AND slot >= ?2",
            params![inode.0 as i64, keep as i64],
        )?;
        if !size.is_multiple_of(SLOT_SIZE) {
            let cut = size / SLOT_SIZE;
            let version = self.next_slot_version()?;
            self.conn().execute(
                "UPDATE slots SET valid_len = min(valid_len, ?3), version = ?4 WHERE inode = ?1 AND slot = ?2",
                params![inode.0 as i64, cut as i64, (size % SLOT_SIZE) as i64, version as i64],
            )?;
        }
        Ok(())
    }

    /// Forgets every slot of a deleted inode.
    pub fn delete_slots(&self, inode: InodeId) -> Result<(), MetaError> {
        self.truncate_slots(inode, 0)
    }

    /// Allocates a chunk row (state 0, pending) before its bytes are sent.
    pub fn new_chunk(
        &self,
        class: ClassId,
        size: u64,
        now: Timestamp,
    ) -> Result<ChunkId, MetaError> {
        self.conn().execute(
            "INSERT INTO chunks (class_id, size, state, created_ns) VALUES (?1, ?2, 0, ?3)",
            params![class.0 as i64, size as i64, now.0],
        )?;
        Ok(ChunkId(self.conn().last_insert_rowid() as u64))
    }

    /// The chunk is stored in `layout` at `placements` (shard, store):
    /// records them and its blocks, and points every slot whose version is
    /// unchanged at its new block. Returns how many slots were attached (the
    /// rest changed meanwhile and stay dirty).
    pub fn attach_chunk(
        &self,
        chunk: ChunkId,
        layout: ChunkLayout,
        placements: &[(u32, StoreId)],
        checksum: &[u8],
        blocks: &[NewBlock],
    ) -> Result<usize, MetaError> {
        self.set_layout(chunk, layout)?;
        self.add_placements(chunk, layout, placements, checksum)?;
        let mut attached = 0;
        let mut live = 0u64;
        for b in blocks {
            let current: Option<(i64, Option<i64>)> = self
                .conn()
                .query_row(
                    "SELECT version, block_id FROM slots WHERE inode = ?1 AND slot = ?2",
                    params![b.inode.0 as i64, b.index as i64],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let fresh = matches!(current, Some((v, _)) if v as u64 == b.version);
            self.conn().execute(
                "INSERT INTO blocks (chunk_id, chunk_off, stored_len, plain_len, checksum, refcount)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    chunk.0 as i64,
                    b.offset as i64,
                    b.stored_len as i64,
                    b.plain_len as i64,
                    b.checksum,
                    i64::from(fresh)
                ],
            )?;
            if !fresh {
                continue;
            }
            let block = self.conn().last_insert_rowid();
            if let Some((_, Some(old))) = current {
                self.conn().execute(
                    "UPDATE blocks SET refcount = refcount - 1 WHERE id = ?1",
                    [old],
                )?;
            }
            self.conn().execute(
                "UPDATE slots SET block_id = ?3, valid_len = ?4, dirty = 0, relay = 0, dirty_since_ns = NULL
                 WHERE inode = ?1 AND slot = ?2",
                params![b.inode.0 as i64, b.index as i64, block, b.plain_len as i64],
            )?;
            live += b.stored_len;
            attached += 1;
        }
        self.conn().execute(
            "UPDATE chunks SET state = 1, live_bytes = ?2 WHERE id = ?1",
            params![chunk.0 as i64, live as i64],
        )?;
        Ok(attached)
    }

    /// The slot's cache copy was dropped; it reads from its block now.
    pub fn mark_evicted(
        &self,
        inode: InodeId,
        index: u64,
        version: u64,
    ) -> Result<bool, MetaError> {
        let n = self.conn().execute(
            "UPDATE slots SET cached = 0 WHERE inode = ?1 AND slot = ?2 AND version = ?3 AND dirty = 0
             AND block_id IS NOT NULL",
            params![inode.0 as i64, index as i64, version as i64],
        )?;
        Ok(n == 1)
    }

    /// A chunk was deleted from its stores: forget it and its blocks.
    pub fn forget_chunk(&self, chunk: ChunkId) -> Result<(), MetaError> {
        self.conn().execute(
            "DELETE FROM placements WHERE chunk_id = ?1",
            [chunk.0 as i64],
        )?;
        self.conn()
            .execute("DELETE FROM blocks WHERE chunk_id = ?1", [chunk.0 as i64])?;
        self.conn()
            .execute("DELETE FROM chunks WHERE id = ?1", [chunk.0 as i64])?;
        Ok(())
    }

    /// Registers a store by name, updating its address and identity.
    pub fn upsert_store(
        &self,
        name: &str,
        address: &str,
        zone: &str,
        host: &str,
        labels: &str,
    ) -> Result<StoreId, MetaError> {
        self.conn().execute(
            "INSERT INTO stores (name, address, zone, host, labels) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET address = ?2, zone = ?3, host = ?4, labels = ?5",
            params![name, address, zone, host, labels],
        )?;
        Ok(StoreId(
            self.conn()
                .query_row("SELECT id FROM stores WHERE name = ?1", [name], |r| {
                    r.get::<_, i64>(0)
                })? as u64,
        ))
    }
}

impl View<'_> {
    /// Every store: id, name, address.
    pub fn stores(&self) -> Result<Vec<(StoreId, String, String)>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, name, address FROM stores ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((StoreId(r.get::<_, i64>(0)? as u64), r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl View<'_> {
    /// Stored chunks whose live blocks fill less than half of them (and are
    /// not empty: empty chunks are the collector's).
    pub fn sparse_chunks(&self, limit: usize) -> Result<Vec<ChunkId>, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT b.chunk_id FROM blocks b JOIN chunks c ON c.id = b.chunk_id WHERE c.state = 1
             GROUP BY b.chunk_id
             HAVING sum(CASE WHEN b.refcount > 0 THEN b.stored_len ELSE 0 END) > 0
                AND 2 * sum(CASE WHEN b.refcount > 0 THEN b.stored_len ELSE 0 END) < sum(b.stored_len)
             LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| Ok(ChunkId(r.get::<_, i64>(0)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The slots whose current block lives in `chunk`.
    pub fn slots_in_chunk(
        &self,
        chunk: ChunkId,
    ) -> Result<Vec<(InodeId, u64, BlockId)>, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.inode, s.slot, s.block_id FROM slots s JOIN blocks b ON b.id = s.block_id WHERE b.chunk_id = ?1",
        )?;
        let rows = stmt.query_map([chunk.0 as i64], |r| {
            Ok((
                InodeId(r.get::<_, i64>(0)? as u64),
                r.get::<_, i64>(1)? as u64,
                BlockId(r.get::<_, i64>(2)? as u64),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The drained slots of `inode` whose chunk belongs to another class
    /// than `class`.
    pub fn slots_off_class(
        &self,
        inode: InodeId,
        class: ClassId,
    ) -> Result<Vec<(u64, BlockId)>, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.slot, s.block_id FROM slots s JOIN blocks b ON b.id = s.block_id JOIN chunks c ON c.id = b.chunk_id
             WHERE s.inode = ?1 AND c.class_id != ?2",
        )?;
        let rows = stmt.query_map(params![inode.0 as i64, class.0 as i64], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                BlockId(r.get::<_, i64>(1)? as u64),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Tx<'_> {
    /// Makes a clean slot dirty again (its bytes are back in the cache), so
    /// the drainer stores it anew, marked as a re-lay: its block stays its
    /// truth until the new one is attached. False if the slot moved on
    /// meanwhile.
    pub fn redirty(
        &self,
        inode: InodeId,
        index: u64,
        block: BlockId,
        now: Timestamp,
    ) -> Result<bool, MetaError> {
        let version = self.next_slot_version()?;
        let n = self.conn().execute(
            "UPDATE slots SET cached = 1, dirty = 1, relay = 1, version = ?5, dirty_since_ns = ?4
             WHERE inode = ?1 AND slot = ?2 AND block_id = ?3 AND dirty = 0",
            params![
                inode.0 as i64,
                index as i64,
                block.0 as i64,
                now.0,
                version as i64
            ],
        )?;
        Ok(n == 1)
    }
}

impl View<'_> {
    /// Inodes with at least one slot marked cached.
    pub fn inodes_with_cached_slots(&self) -> Result<Vec<InodeId>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT inode FROM slots WHERE cached = 1")?;
        let rows = stmt.query_map([], |r| Ok(InodeId(r.get::<_, i64>(0)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Tx<'_> {
    /// The cache copy of `inode` is gone (a lost or wiped cache folder):
    /// clean slots read from their blocks again. Returns how many slots
    /// were saved that way and how many dirty ones had no other copy.
    pub fn cache_lost(&self, inode: InodeId) -> Result<(u64, u64), MetaError> {
        let relaid = self.conn().execute(
            "UPDATE slots SET cached = 0, dirty = 0, relay = 0, dirty_since_ns = NULL
             WHERE inode = ?1 AND cached = 1 AND relay = 1 AND block_id IS NOT NULL",
            [inode.0 as i64],
        )?;
        let saved = relaid
            + self.conn().execute(
                "UPDATE slots SET cached = 0 WHERE inode = ?1 AND cached = 1 AND dirty = 0 AND block_id IS NOT NULL",
                [inode.0 as i64],
            )?;
        let lost = self.conn().execute(
            "UPDATE slots SET lost = 1, cached = 0, dirty = 0, dirty_since_ns = NULL
             WHERE inode = ?1 AND cached = 1 AND dirty = 1",
            [inode.0 as i64],
        )?;
        Ok((saved as u64, lost as u64))
    }

    /// The whole cache is gone (a gateway rebuilt from the stores): every
    /// slot reads from its block again, a slot being re-laid included, and
    /// the dirty slots of files not kept inline are marked lost. Returns
    /// the inodes with lost slots, in id order.
    pub fn all_cache_lost(&self) -> Result<Vec<InodeId>, MetaError> {
        self.conn().execute(
            "UPDATE slots SET cached = 0, dirty = 0, relay = 0, dirty_since_ns = NULL
             WHERE relay = 1 AND block_id IS NOT NULL",
            [],
        )?;
        self.conn().execute(
            "UPDATE slots SET cached = 0 WHERE dirty = 0 AND block_id IS NOT NULL",
            [],
        )?;
        self.conn().execute(
            "UPDATE slots SET lost = 1, cached = 0, dirty = 0, dirty_since_ns = NULL
             WHERE dirty = 1 AND inode NOT IN (SELECT inode FROM inline_data)",
            [],
        )?;
        self.lost_inodes()
    }
}

impl View<'_> {
    /// Inodes with at least one lost slot, in id order.
    pub fn lost_inodes(&self) -> Result<Vec<InodeId>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT inode FROM slots WHERE lost = 1 ORDER BY inode")?;
        let rows = stmt.query_map([], |r| Ok(InodeId(r.get::<_, i64>(0)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
