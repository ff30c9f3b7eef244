//! Allocation by slot, for fallocate, st_blocks and SEEK_DATA/SEEK_HOLE: a
//! slot with a row is allocated (written, or reserved by fallocate), a slot
//! without one is a hole that reads as zeros. A reserved slot is clean,
//! cached and has no block: it reads as zeros from the cache (where nothing
//! was written), is never drained (nothing is dirty) and never evicted
//! (there is no block to read it back from).

use rusqlite::params;

use crate::{InodeId, MetaError, Tx, View, SLOT_SIZE};

impl View<'_> {
    /// Bytes the file has allocated, for st_blocks: each slot with a row
    /// counts whole, except the slot holding the end of the file (`size`
    /// rounded up to `granule`), which counts up to that end unless slots
    /// past it are reserved (a reservation that kept the size ran on).
    pub fn allocated_bytes(
        &self,
        inode: InodeId,
        size: u64,
        granule: u64,
    ) -> Result<u64, MetaError> {
        let end = size.div_ceil(granule).saturating_mul(granule);
        let (last, part) = (end / SLOT_SIZE, end % SLOT_SIZE);
        let mut stmt = self.conn.prepare_cached(
            "SELECT count(*), coalesce(max(slot = ?2), 0), coalesce(max(slot), 0) FROM slots WHERE inode = ?1",
        )?;
        let (count, has_last, max): (i64, bool, i64) = stmt.query_row(
            params![inode.0 as i64, last.min(i64::MAX as u64) as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let whole = (count as u64).saturating_mul(SLOT_SIZE);
        Ok(if has_last && part > 0 && max as u64 == last {
            whole - (SLOT_SIZE - part)
        } else {
            whole
        })
    }

    /// The first slot at or after `from` that has a row (`allocated`) or
    /// has none, if any before `limit`.
    pub fn next_slot(
        &self,
        inode: InodeId,
        from: u64,
        limit: u64,
        allocated: bool,
    ) -> Result<Option<u64>, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT slot FROM slots WHERE inode = ?1 AND slot BETWEEN ?2 AND ?3 ORDER BY slot",
        )?;
        let rows = stmt.query_map(
            params![
                inode.0 as i64,
                from.min(i64::MAX as u64) as i64,
                limit.min(i64::MAX as u64) as i64
            ],
            |r| r.get::<_, i64>(0),
        )?;
        let mut expect = from;
        for row in rows {
            let slot = row? as u64;
            if allocated {
                return Ok(Some(slot));
            }
            if slot != expect {
                return Ok(Some(expect));
            }
            expect = slot + 1;
        }
        Ok((!allocated && expect <= limit).then_some(expect))
    }
}

impl Tx<'_> {
    /// Reserves slots `first..=last` of `inode` that have no row yet (see
    /// the module doc). Returns how many were added.
    pub fn reserve_slots(&self, inode: InodeId, first: u64, last: u64) -> Result<u64, MetaError> {
        let version = self.next_slot_version()?;
        let mut stmt = self.conn().prepare_cached(
            "INSERT OR IGNORE INTO slots (inode, slot, block_id, valid_len, cached, dirty, version, dirty_since_ns)
             VALUES (?1, ?2, NULL, 0, 1, 0, ?3, NULL)",
        )?;
        let mut added = 0;
        for slot in first..=last {
            added += stmt.execute(params![inode.0 as i64, slot as i64, version as i64])? as u64;
        }
        Ok(added)
    }

    /// Makes slots `first..=last` of `inode` holes: their rows go and their
    /// blocks lose a reference. The caller punches the cache range after.
    pub fn punch_slots(&self, inode: InodeId, first: u64, last: u64) -> Result<(), MetaError> {
        let range = params![inode.0 as i64, first as i64, last as i64];
        self.conn().execute(
            "UPDATE blocks SET refcount = refcount - 1 WHERE id IN
                (SELECT block_id FROM slots WHERE inode = ?1 AND slot BETWEEN ?2 AND ?3 AND block_id IS NOT NULL)",
            range,
        )?;
        self.conn().execute(
            "DELETE FROM slots WHERE inode = ?1 AND slot BETWEEN ?2 AND ?3",
            range,
        )?;
        Ok(())
    }
}
