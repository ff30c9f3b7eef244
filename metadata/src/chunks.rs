//! Chunks as wholes: their layout (whole replicas or erasure-coded shards),
//! where each replica or shard lives, the re-layout of a chunk by the archive
//! transition, and the trash of store objects no chunk uses any more.

use rusqlite::{params, OptionalExtension};

use crate::{ChunkId, ClassId, MetaError, StoreId, Timestamp, Tx, View};

/// `(shard, store)` pairs of one chunk, by shard.
pub type Placements = Vec<(u32, StoreId)>;

/// How a chunk's bytes are kept, fixed when they are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkLayout {
    /// Every placement holds the whole chunk.
    Replicas,
    /// `k` data shards (the chunk cut in `k` consecutive pieces of
    /// `shard_len` bytes, the last one zero-padded) and `m` parity shards of
    /// the same length; placement `shard` is the shard index.
    Ec { k: u32, m: u32, shard_len: u64 },
}

impl ChunkLayout {
    pub(crate) fn from_columns(k: i64, m: i64, shard_len: i64) -> ChunkLayout {
        if k == 0 {
            ChunkLayout::Replicas
        } else {
            ChunkLayout::Ec {
                k: k as u32,
                m: m as u32,
                shard_len: shard_len as u64,
            }
        }
    }

    /// The name of the store object holding placement `shard` of `chunk`
    /// in this layout (see [`object_name`]).
    pub fn object_name(self, chunk: ChunkId, shard: u32) -> String {
        match self {
            ChunkLayout::Replicas => object_name(chunk, None),
            ChunkLayout::Ec { .. } => object_name(chunk, Some(shard)),
        }
    }

    fn columns(self) -> (i64, i64, i64) {
        match self {
            ChunkLayout::Replicas => (0, 0, 0),
            ChunkLayout::Ec { k, m, shard_len } => (i64::from(k), i64::from(m), shard_len as i64),
        }
    }
}

/// The one naming rule of chunk objects on stores, which the trash and the
/// placements share: `c<chunk: 16 hex>` for a whole replica,
/// `c<chunk: 16 hex>.s<shard: 2+ digits>` for an erasure-coded shard. The
/// gateway's `ObjectKey` prints chunk keys with it.
pub fn object_name(chunk: ChunkId, shard: Option<u32>) -> String {
    match shard {
        None => format!("c{:016x}", chunk.0),
        Some(shard) => format!("c{:016x}.s{shard:02}", chunk.0),
    }
}

/// Where a store is in its life: in service, being emptied
/// (`cairn store drain`), or retired (`cairn store remove`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreState {
    Active = 0,
    Draining = 1,
    Removed = 2,
}

impl StoreState {
    fn from_column(v: i64) -> StoreState {
        match v {
            1 => StoreState::Draining,
            2 => StoreState::Removed,
            _ => StoreState::Active,
        }
    }
}

/// One placement with its recorded checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementCheck {
    pub chunk: ChunkId,
    pub layout: ChunkLayout,
    pub size: u64,
    pub shard: u32,
    pub store: StoreId,
    /// crc32c, 4 bytes LE; empty when none was recorded.
    pub checksum: Vec<u8>,
}

/// One stored chunk, as status, listings and the archive transition see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    pub id: ChunkId,
    pub class: ClassId,
    pub layout: ChunkLayout,
    /// Bytes of the chunk body (sealed blocks back to back).
    pub size: u64,
    pub created: Timestamp,
    /// `(shard, store)`, by shard.
    pub placements: Vec<(u32, StoreId)>,
    /// Plaintext bytes of the blocks in it that files still use.
    pub logical: u64,
}

impl ChunkInfo {
    /// Bytes the chunk occupies on the stores in all (every placement).
    pub fn stored_bytes(&self) -> u64 {
        let each = match self.layout {
            ChunkLayout::Replicas => self.size,
            ChunkLayout::Ec { shard_len, .. } => shard_len,
        };
        each * self.placements.len() as u64
    }
}

/// Parses `group_concat(shard || ':' || store_id)`, sorted by shard.
pub(crate) fn placement_list(text: Option<String>) -> Vec<(u32, StoreId)> {
    let mut out: Vec<(u32, StoreId)> = text
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| {
            let (shard, store) = pair.split_once(':')?;
            Some((shard.parse().ok()?, StoreId(store.parse().ok()?)))
        })
        .collect();
    out.sort_unstable();
    out
}

const CHUNK_SELECT: &str = "SELECT c.id, c.class_id, c.ec_k, c.ec_m, c.shard_len, c.size, c.created_ns,
        (SELECT group_concat(p.shard || ':' || p.store_id) FROM placements p WHERE p.chunk_id = c.id),
        (SELECT coalesce(sum(b.plain_len), 0) FROM blocks b WHERE b.chunk_id = c.id AND b.refcount > 0)
     FROM chunks c";

fn chunk_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChunkInfo> {
    Ok(ChunkInfo {
        id: ChunkId(r.get::<_, i64>(0)? as u64),
        class: ClassId(r.get::<_, i64>(1)? as u64),
        layout: ChunkLayout::from_columns(r.get(2)?, r.get(3)?, r.get(4)?),
        size: r.get::<_, i64>(5)? as u64,
        created: Timestamp(r.get(6)?),
        placements: placement_list(r.get(7)?),
        logical: r.get::<_, i64>(8)? as u64,
    })
}

impl View<'_> {
    /// Every stored chunk.
    pub fn chunks(&self) -> Result<Vec<ChunkInfo>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{CHUNK_SELECT} WHERE c.state = 1 ORDER BY c.id"))?;
        let rows = stmt.query_map([], chunk_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One stored chunk.
    pub fn chunk(&self, id: ChunkId) -> Result<Option<ChunkInfo>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{CHUNK_SELECT} WHERE c.state = 1 AND c.id = ?1"))?;
        Ok(stmt.query_row([id.0 as i64], chunk_from_row).optional()?)
    }

    /// Every placement of every stored chunk, with its recorded checksum.
    pub fn placement_checks(&self) -> Result<Vec<PlacementCheck>, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, c.ec_k, c.ec_m, c.shard_len, c.size, p.shard, p.store_id, p.checksum
             FROM chunks c JOIN placements p ON p.chunk_id = c.id WHERE c.state = 1
             ORDER BY c.id, p.shard",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PlacementCheck {
                chunk: ChunkId(r.get::<_, i64>(0)? as u64),
                layout: ChunkLayout::from_columns(r.get(1)?, r.get(2)?, r.get(3)?),
                size: r.get::<_, i64>(4)? as u64,
                shard: r.get(5)?,
                store: StoreId(r.get::<_, i64>(6)? as u64),
                checksum: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stored replica chunks of `class` created before `before` that still
    /// hold live blocks, oldest first: what the archive transition re-lays.
    pub fn replica_chunks_before(
        &self,
        class: ClassId,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<ChunkId>, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id FROM chunks c WHERE c.state = 1 AND c.ec_k = 0 AND c.class_id = ?1
             AND c.created_ns < ?2
             AND EXISTS (SELECT 1 FROM blocks b WHERE b.chunk_id = c.id AND b.refcount > 0)
             ORDER BY c.created_ns LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![class.0 as i64, before.0, limit as i64], |r| {
            Ok(ChunkId(r.get::<_, i64>(0)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Chunks still being written (state 0): their objects may exist on
    /// stores before any placement names them.
    pub fn pending_chunk_ids(&self) -> Result<Vec<ChunkId>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM chunks WHERE state = 0")?;
        let rows = stmt.query_map([], |r| Ok(ChunkId(r.get::<_, i64>(0)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Placements (of any chunk) on `store`.
    pub fn placements_on(&self, store: StoreId) -> Result<u64, MetaError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM placements WHERE store_id = ?1",
            [store.0 as i64],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Every store's life-cycle state ([`StoreState`]).
    pub fn store_states(&self) -> Result<Vec<(StoreId, StoreState)>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, state FROM stores ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                StoreId(r.get::<_, i64>(0)? as u64),
                StoreState::from_column(r.get(1)?),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores whose trash holds `key` (waiting for the collector).
    pub fn trashed_on(&self, key: &str) -> Result<Vec<StoreId>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT store_id FROM trash WHERE key = ?1 ORDER BY store_id")?;
        let rows = stmt.query_map([key], |r| Ok(StoreId(r.get::<_, i64>(0)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Objects in the trash since before `before`, oldest first.
    pub fn trash(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<(StoreId, String)>, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT store_id, key FROM trash WHERE since_ns < ?1 ORDER BY since_ns LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![before.0, limit as i64], |r| {
            Ok((StoreId(r.get::<_, i64>(0)? as u64), r.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Tx<'_> {
    /// Re-lays a stored chunk: its layout and placements become the given
    /// ones, and the objects of the old layout (`old_objects`) go to the
    /// trash. Returns false, changing nothing, if the chunk is no longer
    /// stored (collected meanwhile).
    pub fn relayout_chunk(
        &self,
        chunk: ChunkId,
        layout: ChunkLayout,
        placements: &[(u32, StoreId)],
        old_objects: &[(StoreId, String)],
        now: Timestamp,
    ) -> Result<bool, MetaError> {
        let (k, m, shard_len) = layout.columns();
        let n = self.conn().execute(
            "UPDATE chunks SET ec_k = ?2, ec_m = ?3, shard_len = ?4 WHERE id = ?1 AND state = 1",
            params![chunk.0 as i64, k, m, shard_len],
        )?;
        if n == 0 {
            return Ok(false);
        }
        self.conn().execute(
            "DELETE FROM placements WHERE chunk_id = ?1",
            [chunk.0 as i64],
        )?;
        self.add_placements(chunk, layout, placements, &[])?;
        self.put_in_trash(old_objects, now)?;
        Ok(true)
    }

    /// A repair: placements `removed` (lost, or on a store being emptied)
    /// give way to `added` (copies just made), and the removed objects go to
    /// the trash. Changes nothing and returns false unless the chunk is still
    /// stored in `layout` and every removed placement still exists (a
    /// collection, re-layout or other repair came first).
    pub fn repair_chunk(
        &self,
        chunk: ChunkId,
        layout: ChunkLayout,
        removed: &[(u32, StoreId)],
        added: &[(u32, StoreId)],
        trash: &[(StoreId, String)],
        now: Timestamp,
    ) -> Result<bool, MetaError> {
        let (k, m, shard_len) = layout.columns();
        let current: Option<i64> = self
            .conn()
            .query_row(
                "SELECT 1 FROM chunks WHERE id = ?1 AND state = 1 AND ec_k = ?2 AND ec_m = ?3 AND shard_len = ?4",
                params![chunk.0 as i64, k, m, shard_len],
                |r| r.get(0),
            )
            .optional()?;
        if current.is_none() {
            return Ok(false);
        }
        let mut exists = self.conn().prepare_cached(
            "SELECT count(*) FROM placements WHERE chunk_id = ?1 AND shard = ?2 AND store_id = ?3",
        )?;
        for (shard, store) in removed {
            let n: i64 =
                exists.query_row(params![chunk.0 as i64, shard, store.0 as i64], |r| r.get(0))?;
            if n == 0 {
                return Ok(false);
            }
        }
        for (shard, store) in removed {
            self.conn().execute(
                "DELETE FROM placements WHERE chunk_id = ?1 AND shard = ?2 AND store_id = ?3",
                params![chunk.0 as i64, shard, store.0 as i64],
            )?;
        }
        self.add_placements(chunk, layout, added, &[])?;
        self.put_in_trash(trash, now)?;
        Ok(true)
    }

    /// Records the crc32c (4 bytes LE) of one placement's object, as the
    /// store reports it, for `cairn fsck --deep`.
    pub fn set_checksum(
        &self,
        chunk: ChunkId,
        shard: u32,
        store: StoreId,
        checksum: &[u8],
    ) -> Result<(), MetaError> {
        self.conn().execute(
            "UPDATE placements SET checksum = ?4 WHERE chunk_id = ?1 AND shard = ?2 AND store_id = ?3",
            params![chunk.0 as i64, shard, store.0 as i64, checksum],
        )?;
        Ok(())
    }

    /// Records placements of a chunk in `layout`. An object placed on a
    /// store leaves that store's trash in the same transaction: a placement
    /// and a trash entry for the same (store, key) never coexist, so the
    /// collector never deletes a copy that was just put back.
    pub(crate) fn add_placements(
        &self,
        chunk: ChunkId,
        layout: ChunkLayout,
        placements: &[(u32, StoreId)],
        checksum: &[u8],
    ) -> Result<(), MetaError> {
        let mut stmt = self.conn().prepare_cached(
            "INSERT OR REPLACE INTO placements (chunk_id, shard, store_id, checksum) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (shard, store) in placements {
            stmt.execute(params![chunk.0 as i64, shard, store.0 as i64, checksum])?;
            self.forget_trash(*store, &layout.object_name(chunk, *shard))?;
        }
        Ok(())
    }

    pub(crate) fn set_layout(&self, chunk: ChunkId, layout: ChunkLayout) -> Result<(), MetaError> {
        let (k, m, shard_len) = layout.columns();
        self.conn().execute(
            "UPDATE chunks SET ec_k = ?2, ec_m = ?3, shard_len = ?4 WHERE id = ?1",
            params![chunk.0 as i64, k, m, shard_len],
        )?;
        Ok(())
    }

    /// Sets the life-cycle state of the store named `name`; `None` if no
    /// store has that name.
    pub fn set_store_state(
        &self,
        name: &str,
        state: StoreState,
    ) -> Result<Option<StoreId>, MetaError> {
        let id: Option<i64> = self
            .conn()
            .query_row(
                "UPDATE stores SET state = ?2 WHERE name = ?1 RETURNING id",
                params![name, state as i64],
                |r| r.get(0),
            )
            .optional()?;
        Ok(id.map(|id| StoreId(id as u64)))
    }

    /// Forgets chunks left pending (state 0) by a gateway that stopped
    /// mid-drain; called at start, when no upload can be in flight. Whatever
    /// they put on stores is unreferenced then, for the orphan collector.
    pub fn forget_pending_chunks(&self) -> Result<usize, MetaError> {
        Ok(self.conn().execute(
            "DELETE FROM chunks WHERE state = 0 AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.chunk_id = chunks.id)",
            [],
        )?)
    }

    /// Objects to delete from stores once the collector gets to them.
    pub fn put_in_trash(
        &self,
        objects: &[(StoreId, String)],
        now: Timestamp,
    ) -> Result<(), MetaError> {
        let mut stmt = self.conn().prepare_cached(
            "INSERT OR IGNORE INTO trash (store_id, key, since_ns) VALUES (?1, ?2, ?3)",
        )?;
        for (store, key) in objects {
            stmt.execute(params![store.0 as i64, key, now.0])?;
        }
        Ok(())
    }

    /// The object was deleted from its store (or was already gone).
    pub fn forget_trash(&self, store: StoreId, key: &str) -> Result<(), MetaError> {
        self.conn().execute(
            "DELETE FROM trash WHERE store_id = ?1 AND key = ?2",
            params![store.0 as i64, key],
        )?;
        Ok(())
    }
}
