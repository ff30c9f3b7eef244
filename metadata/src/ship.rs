//! Shipping the metadata off the gateway: consistent snapshots (SQLite's
//! online backup API) and, between them, changesets (SQLite's session
//! extension) of everything committed since. Both are taken in the writer
//! thread between transactions, so a snapshot and the changes after it meet
//! exactly; [`restore`] replays them in order onto the snapshot.
//!
//! Tables without a primary key are not recorded by sessions; of ours that
//! is `schema_version` (fixed) and SQLite's own `sqlite_sequence`, which
//! [`restore`] moves far past every id the restored rows use, so ids used
//! after the restore point are never handed out again.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::session::{ConflictAction, ConflictType, Session};
use rusqlite::{Connection, OpenFlags, MAIN_DB};
use tracing::error;

use crate::writer::ShipCmd;
use crate::{MetaError, Metadata};

/// How far restored AUTOINCREMENT sequences jump past the restored rows.
const SEQUENCE_MARGIN: i64 = 1 << 24;

/// A session recording every table (no session: shipping reports an error).
pub(crate) fn new_session(conn: &Connection) -> Option<Session<'_>> {
    let made = Session::new(conn).and_then(|mut s| {
        s.attach::<&str>(None)?;
        Ok(s)
    });
    match made {
        Ok(s) => Some(s),
        Err(e) => {
            error!(cause = %e, "cannot record metadata changes; shipping is off");
            None
        }
    }
}

pub(crate) fn serve<'c>(conn: &'c Connection, session: &mut Option<Session<'c>>, cmd: ShipCmd) {
    match cmd {
        ShipCmd::Snapshot { dest, reply } => {
            let done = conn
                .backup(MAIN_DB, &dest, None::<fn(rusqlite::backup::Progress)>)
                .map_err(MetaError::from)
                .and_then(|()| crate::db::make_private(&dest));
            if done.is_ok() {
                // A snapshot (re)starts recording, also after a Stop.
                *session = new_session(conn);
            }
            let _ = reply.send(done);
        }
        ShipCmd::Stop => *session = None,
        ShipCmd::Changes { reply } => {
            let taken = match session.as_mut() {
                None => Err(MetaError::ShippingOff),
                Some(s) if s.is_empty() => Ok(Vec::new()),
                Some(s) => {
                    let mut out = Vec::new();
                    s.changeset_strm(&mut out)
                        .map(|()| out)
                        .map_err(MetaError::from)
                }
            };
            if matches!(&taken, Ok(bytes) if !bytes.is_empty()) {
                *session = new_session(conn);
            }
            let _ = reply.send(taken);
        }
    }
}

impl Metadata {
    /// Writes a consistent copy of the database to `dest` and starts a new
    /// run of changes from it. Blocks until done.
    pub fn snapshot_to(&self, dest: &Path) -> Result<(), MetaError> {
        let (reply, rx) = mpsc::channel();
        self.ship(ShipCmd::Snapshot {
            dest: dest.to_owned(),
            reply,
        })?;
        rx.recv().map_err(|_| MetaError::WriterGone)?
    }

    /// Stops recording changes (metadata shipping is off).
    pub fn stop_recording(&self) -> Result<(), MetaError> {
        self.ship(ShipCmd::Stop)
    }

    /// The changes committed since the last snapshot or call, as a changeset
    /// (empty: none). Blocks until done.
    pub fn take_changes(&self) -> Result<Vec<u8>, MetaError> {
        let (reply, rx) = mpsc::channel();
        self.ship(ShipCmd::Changes { reply })?;
        rx.recv().map_err(|_| MetaError::WriterGone)?
    }
}

/// Rebuilds a database at `db` (a snapshot file already there) by applying
/// `changesets` in order, then moves every AUTOINCREMENT sequence past the
/// ids in use. A changeset that does not apply cleanly is an error naming
/// its position; nothing after it is applied.
pub fn restore(db: &Path, changesets: &[Vec<u8>]) -> Result<(), (usize, MetaError)> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| (0, e.into()))?;
    for (i, cs) in changesets.iter().enumerate() {
        let mut input: &[u8] = cs;
        // Replayed in order onto the snapshot they follow, any conflict
        // means a damaged or misplaced changeset: stop.
        let applied = conn.apply_strm(
            &mut input,
            None::<fn(&str) -> bool>,
            |_kind: ConflictType, _item| ConflictAction::SQLITE_CHANGESET_ABORT,
        );
        applied.map_err(|e| (i, e.into()))?;
    }
    let tables: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_sequence")
            .map_err(|e| (changesets.len(), e.into()))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| (changesets.len(), e.into()))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| (changesets.len(), e.into()))?
    };
    for table in tables {
        let sql = format!(
            "UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(rowid), 0) FROM \"{t}\")) + {SEQUENCE_MARGIN} WHERE name = '{t}'",
            t = table.replace(['"', '\''], "")
        );
        conn.execute(&sql, [])
            .map_err(|e| (changesets.len(), e.into()))?;
    }
    Ok(())
}
