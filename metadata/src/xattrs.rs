//! Extended attributes: opaque name → value pairs per inode (`xattrs`
//! table, schema v6). Names and values are bytes; the filesystem core
//! decides which names it accepts and how large they may be.

use rusqlite::{params, OptionalExtension};

use crate::{InodeId, MetaError, Tx, View};

impl View<'_> {
    /// The value of `name` on `id`, if set.
    pub fn xattr(&self, id: InodeId, name: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM xattrs WHERE inode = ?1 AND name = ?2")?;
        Ok(stmt
            .query_row(params![id.0 as i64, name], |r| r.get(0))
            .optional()?)
    }

    /// Every attribute name set on `id`, in byte order.
    pub fn xattr_names(&self, id: InodeId) -> Result<Vec<Vec<u8>>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM xattrs WHERE inode = ?1 ORDER BY name")?;
        let rows = stmt.query_map([id.0 as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Tx<'_> {
    /// Sets `name` on `id` to `value`, replacing any earlier value.
    pub fn set_xattr(&self, id: InodeId, name: &[u8], value: &[u8]) -> Result<(), MetaError> {
        let mut stmt = self.conn().prepare_cached(
            "INSERT OR REPLACE INTO xattrs (inode, name, value) VALUES (?1, ?2, ?3)",
        )?;
        stmt.execute(params![id.0 as i64, name, value])?;
        Ok(())
    }

    /// Removes `name` from `id`; returns whether it was set.
    pub fn remove_xattr(&self, id: InodeId, name: &[u8]) -> Result<bool, MetaError> {
        let mut stmt = self
            .conn()
            .prepare_cached("DELETE FROM xattrs WHERE inode = ?1 AND name = ?2")?;
        Ok(stmt.execute(params![id.0 as i64, name])? > 0)
    }

    /// Drops every attribute of a deleted inode.
    pub(crate) fn delete_xattrs(&self, id: InodeId) -> Result<(), MetaError> {
        let mut stmt = self
            .conn()
            .prepare_cached("DELETE FROM xattrs WHERE inode = ?1")?;
        stmt.execute([id.0 as i64])?;
        Ok(())
    }
}
