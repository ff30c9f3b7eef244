//! The storage classes table: one row per class, its spec stored as JSON
//! that only the gateway's class catalogue (`gateway/src/catalog.rs`) parses.

use rusqlite::{params, OptionalExtension};

use crate::{ClassId, MetaError, Timestamp, Tx, View};

/// One row of the classes table; `spec` is the JSON the gateway's class
/// catalogue parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRow {
    pub id: ClassId,
    pub name: String,
    pub spec: String,
}

/// See [`View::class_stamp`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassStamp {
    pub count: u64,
    pub max_id: u64,
}

impl Tx<'_> {
    /// Stores a class definition (its spec as JSON), returning its id.
    pub fn upsert_class(
        &self,
        name: &str,
        spec: &str,
        now: Timestamp,
    ) -> Result<ClassId, MetaError> {
        self.conn().execute(
            "INSERT INTO classes (name, spec, created_ns) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET spec = ?2",
            params![name, spec, now.0],
        )?;
        Ok(ClassId(
            self.conn()
                .query_row("SELECT id FROM classes WHERE name = ?1", [name], |r| {
                    r.get::<_, i64>(0)
                })? as u64,
        ))
    }
}

impl View<'_> {
    /// Every class, by id.
    pub fn classes(&self) -> Result<Vec<ClassRow>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, name, spec FROM classes ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(ClassRow {
                id: ClassId(r.get::<_, i64>(0)? as u64),
                name: r.get(1)?,
                spec: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A cheap fingerprint of the classes table: it changes whenever a class
    /// is created or deleted (ids are never reused).
    pub fn class_stamp(&self) -> Result<ClassStamp, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT count(*), coalesce(max(id), 0) FROM classes")?;
        Ok(stmt.query_row([], |r| {
            Ok(ClassStamp {
                count: r.get::<_, i64>(0)? as u64,
                max_id: r.get::<_, i64>(1)? as u64,
            })
        })?)
    }
}

impl Tx<'_> {
    /// Deletes a class nothing uses. `Err(n)` with the number of inodes and
    /// chunks still using it.
    pub fn delete_class(&self, name: &str) -> Result<Result<(), u64>, MetaError> {
        let users: i64 = self.conn().query_row(
            "SELECT (SELECT count(*) FROM inodes WHERE class_id = c.id) + (SELECT count(*) FROM chunks WHERE class_id = c.id)
             FROM classes c WHERE c.name = ?1",
            [name],
            |r| r.get(0),
        ).optional()?.unwrap_or(0);
        if users > 0 {
            return Ok(Err(users as u64));
        }
        self.conn()
            .execute("DELETE FROM classes WHERE name = ?1", [name])?;
        Ok(Ok(()))
    }
}
