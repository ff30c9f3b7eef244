//! Reads and writes of single records. [`View`] reads (from a reader
//! connection or inside a write); [`Tx`] adds the changes and only exists
//! inside [`crate::Metadata::write`], so every change is part of a grouped,
//! committed transaction.

use std::ops::Deref;

use rusqlite::{params, Connection, OptionalExtension};

use crate::inode::{inode_from_row, INODE_COLUMNS};
use crate::{DirEntry, FileKind, FileTime, Inode, InodeId, MetaError, NewInode};

/// Read access to the catalogue.
pub struct View<'c> {
    pub(crate) conn: &'c Connection,
}

impl View<'_> {
    pub fn inode(&self, id: InodeId) -> Result<Option<Inode>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {INODE_COLUMNS} FROM inodes WHERE id = ?1"))?;
        Ok(stmt.query_row([id.0 as i64], inode_from_row).optional()?)
    }

    pub fn lookup(&self, parent: InodeId, name: &[u8]) -> Result<Option<InodeId>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT child FROM dirents WHERE parent = ?1 AND name = ?2")?;
        Ok(stmt
            .query_row(params![parent.0 as i64, name], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|c| InodeId(c as u64)))
    }

    /// Up to `limit` entries of `dir` whose cookie is greater than `after`,
    /// in cookie order.
    pub fn list(&self, dir: InodeId, after: u64, limit: usize) -> Result<Vec<DirEntry>, MetaError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, child, cookie FROM dirents WHERE parent = ?1 AND cookie > ?2 ORDER BY cookie LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![
                dir.0 as i64,
                after.min(i64::MAX as u64) as i64,
                limit.min(i64::MAX as usize) as i64
            ],
            |r| {
                Ok(DirEntry {
                    name: r.get(0)?,
                    child: InodeId(r.get::<_, i64>(1)? as u64),
                    cookie: r.get::<_, i64>(2)? as u64,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn is_empty_dir(&self, dir: InodeId) -> Result<bool, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM dirents WHERE parent = ?1 LIMIT 1")?;
        Ok(stmt
            .query_row([dir.0 as i64], |_| Ok(()))
            .optional()?
            .is_none())
    }

    /// Total inodes and the sum of file sizes, for FSSTAT.
    pub fn usage(&self) -> Result<(u64, u64), MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT count(*), coalesce(sum(size), 0) FROM inodes")?;
        Ok(stmt.query_row([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })?)
    }

    /// The inline bytes of a small file, if it keeps them in the catalogue.
    pub fn inline_data(&self, id: InodeId) -> Result<Option<Vec<u8>>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM inline_data WHERE inode = ?1")?;
        Ok(stmt.query_row([id.0 as i64], |r| r.get(0)).optional()?)
    }

    /// Every inode that keeps its bytes inline.
    pub fn inline_inodes(&self) -> Result<Vec<InodeId>, MetaError> {
        let mut stmt = self.conn.prepare_cached("SELECT inode FROM inline_data")?;
        let rows = stmt.query_map([], |r| Ok(InodeId(r.get::<_, i64>(0)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One path that names `id` from the root (`/a/b`), for reports; a
    /// file with several links gets one of them. `None` if no entry names
    /// it (an unlinked inode) or a loop is found.
    pub fn path_of(&self, id: InodeId) -> Result<Option<String>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT parent, name FROM dirents WHERE child = ?1 LIMIT 1")?;
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut at = id;
        while at != InodeId::ROOT {
            let Some((parent, name)) = stmt
                .query_row([at.0 as i64], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
                })
                .optional()?
            else {
                return Ok(None);
            };
            names.push(name);
            if names.len() > 4096 {
                return Ok(None);
            }
            at = InodeId(parent);
        }
        let mut path = String::new();
        for name in names.iter().rev() {
            path.push('/');
            path.push_str(&String::from_utf8_lossy(name));
        }
        if path.is_empty() {
            path.push('/');
        }
        Ok(Some(path))
    }

    /// A named setting kept with the metadata (see migration 7).
    pub fn setting(&self, name: &str) -> Result<Option<String>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM settings WHERE name = ?1")?;
        Ok(stmt.query_row([name], |r| r.get(0)).optional()?)
    }

    /// Files no name reaches (nlink 0): deleted while open, kept for their
    /// open handles until the last close.
    pub fn orphans(&self) -> Result<Vec<InodeId>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM inodes WHERE nlink = 0 AND kind = ?1")?;
        let rows = stmt.query_map([FileKind::File as i64], |r| {
            Ok(InodeId(r.get::<_, i64>(0)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every file inode with its size, for cache recovery and fsck.
    pub fn file_sizes(&self) -> Result<Vec<(InodeId, u64)>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, size FROM inodes WHERE kind = ?1")?;
        let rows = stmt.query_map([FileKind::File as i64], |r| {
            Ok((
                InodeId(r.get::<_, i64>(0)? as u64),
                r.get::<_, i64>(1)? as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A change inside a grouped write transaction. Reads through it see the
/// changes made so far in the same transaction.
pub struct Tx<'c> {
    pub(crate) view: View<'c>,
}

impl<'c> Deref for Tx<'c> {
    type Target = View<'c>;
    fn deref(&self) -> &View<'c> {
        &self.view
    }
}

impl Tx<'_> {
    pub(crate) fn conn(&self) -> &Connection {
        self.view.conn
    }

    /// Inserts a new inode with nlink 0 (a link or `add_entry` raises it).
    pub fn insert_inode(&self, new: &NewInode) -> Result<Inode, MetaError> {
        let mut stmt = self.conn().prepare_cached(
            "INSERT INTO inodes (kind, mode, uid, gid, size, nlink, atime_s, atime_nsec, mtime_s, mtime_nsec, ctime_s, ctime_nsec, generation, rdev, symlink_target, class_id, parent, create_verf)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?13, ?6, ?13, ?6, ?13, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        let size = new.symlink_target.as_ref().map_or(0, |t| t.len() as i64);
        let now = FileTime::from(new.now);
        stmt.execute(params![
            new.kind as i64,
            new.mode,
            new.uid,
            new.gid,
            size,
            now.secs,
            new.generation as i64,
            new.rdev as i64,
            new.symlink_target,
            new.class.map(|c| c.0 as i64),
            new.parent.map(|p| p.0 as i64),
            new.create_verifier.map(|v| v.to_vec()),
            now.nanos,
        ])?;
        let id = InodeId(self.conn().last_insert_rowid() as u64);
        self.inode(id)?
            .ok_or(MetaError::CorruptRow(id, "vanished after insert"))
    }

    /// Writes back every mutable field of `inode`.
    pub fn update_inode(&self, inode: &Inode) -> Result<(), MetaError> {
        let mut stmt = self.conn().prepare_cached(
            "UPDATE inodes SET mode = ?2, uid = ?3, gid = ?4, size = ?5, nlink = ?6, atime_s = ?7, mtime_s = ?8,
             ctime_s = ?9, class_id = ?10, parent = ?11, create_verf = ?12, atime_nsec = ?13, mtime_nsec = ?14,
             ctime_nsec = ?15 WHERE id = ?1",
        )?;
        stmt.execute(params![
            inode.id.0 as i64,
            inode.mode,
            inode.uid,
            inode.gid,
            inode.size as i64,
            inode.nlink,
            inode.atime.secs,
            inode.mtime.secs,
            inode.ctime.secs,
            inode.class.map(|c| c.0 as i64),
            inode.parent.map(|p| p.0 as i64),
            inode.create_verifier.map(|v| v.to_vec()),
            inode.atime.nanos,
            inode.mtime.nanos,
            inode.ctime.nanos,
        ])?;
        Ok(())
    }

    pub fn delete_inode(&self, id: InodeId) -> Result<(), MetaError> {
        let mut stmt = self
            .conn()
            .prepare_cached("DELETE FROM inodes WHERE id = ?1")?;
        stmt.execute([id.0 as i64])?;
        self.delete_slots(id)?;
        self.delete_xattrs(id)?;
        self.remove_inline(id)
    }

    /// Stores `data` as the inline bytes of a small file.
    pub fn set_inline(&self, id: InodeId, data: &[u8]) -> Result<(), MetaError> {
        let mut stmt = self
            .conn()
            .prepare_cached("INSERT OR REPLACE INTO inline_data (inode, data) VALUES (?1, ?2)")?;
        stmt.execute(params![id.0 as i64, data])?;
        Ok(())
    }

    /// Forgets a file's inline bytes (deleted, or moved to the cache).
    pub fn remove_inline(&self, id: InodeId) -> Result<(), MetaError> {
        let mut stmt = self
            .conn()
            .prepare_cached("DELETE FROM inline_data WHERE inode = ?1")?;
        stmt.execute([id.0 as i64])?;
        Ok(())
    }

    /// Adds `name` → `child` to `dir` and returns its cookie. The caller has
    /// checked that the name is free.
    pub fn add_entry(&self, dir: InodeId, name: &[u8], child: InodeId) -> Result<u64, MetaError> {
        let mut stmt = self
            .conn()
            .prepare_cached("INSERT INTO dirents (parent, name, child) VALUES (?1, ?2, ?3)")?;
        stmt.execute(params![dir.0 as i64, name, child.0 as i64])?;
        Ok(self.conn().last_insert_rowid() as u64)
    }

    pub fn remove_entry(&self, dir: InodeId, name: &[u8]) -> Result<(), MetaError> {
        let mut stmt = self
            .conn()
            .prepare_cached("DELETE FROM dirents WHERE parent = ?1 AND name = ?2")?;
        stmt.execute(params![dir.0 as i64, name])?;
        Ok(())
    }

    /// Bumps the commit counter: a write that makes a durable batch fsync
    /// even when it carries no other change (the barrier behind COMMIT).
    /// Sets a named setting; unchanged values write nothing.
    pub fn set_setting(&self, name: &str, value: &str) -> Result<(), MetaError> {
        self.conn().execute(
            "INSERT INTO settings (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = ?2 WHERE value != ?2",
            params![name, value],
        )?;
        Ok(())
    }

    pub fn touch(&self) -> Result<(), MetaError> {
        let mut stmt = self
            .conn()
            .prepare_cached("UPDATE counters SET value = value + 1 WHERE name = 'commit_seq'")?;
        stmt.execute([])?;
        Ok(())
    }
}
