//! Opening the database and the two ways in: [`Metadata::read`] on a pooled
//! reader connection, [`Metadata::write`] through the group-commit writer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::writer::{self, Completion, Job, Msg, ShipCmd};
use crate::{schema, MetaError, Tx, View};

/// The catalogue. Cheap to share behind an `Arc`.
pub struct Metadata {
    path: PathBuf,
    jobs: Mutex<Option<Sender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    unsynced: Arc<AtomicBool>,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metadata")
            .field("path", &self.path)
            .finish()
    }
}

fn connect(path: &Path) -> Result<Connection, MetaError> {
    let open = |source| MetaError::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open)?;
    conn.pragma_update(None, "busy_timeout", 10_000)
        .map_err(open)?;
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(open)?;
    // The query planner stability guarantee: a statement keeps the plan it
    // was compiled with whatever values are bound. Without it SQLite
    // compiles a statement again on every new binding of a variable that a
    // partial index (`slots_dirty`) or a LIMIT might use, which is most of
    // the reads of `slots` and `blocks`; the plans do not depend on the
    // values here (no ANALYZE statistics are kept).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(open)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The database and its WAL and shared-memory files are for the gateway's
/// user only (they hold file names and small files' bytes): called once
/// SQLite has opened (and so created) them, since SQLite gives a new
/// database its own default mode; later WAL and `-shm` files take the
/// database's mode.
pub(crate) fn make_private(path: &Path) -> Result<(), MetaError> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(MetaError::Open {
                    path: path.to_owned(),
                    source: rusqlite::Error::ToSqlConversionFailure(Box::new(source)),
                })
            }
        }
    }
    Ok(())
}

impl Metadata {
    /// Opens (creating if needed) the database at `path` and migrates it to
    /// the current schema. The folder holding it must exist.
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        let mut conn = connect(path)?;
        match schema::migrate(&mut conn).map_err(|source| MetaError::Open {
            path: path.to_owned(),
            source,
        })? {
            Ok(_) => {}
            Err(found) => {
                return Err(MetaError::SchemaTooNew {
                    path: path.to_owned(),
                    found,
                    supported: schema::SCHEMA_VERSION,
                })
            }
        }
        make_private(path)?;
        let (tx, rx) = mpsc::channel();
        let unsynced = Arc::new(AtomicBool::new(false));
        let flag = unsynced.clone();
        let handle = std::thread::Builder::new()
            .name("cairn-meta-writer".into())
            .spawn(move || writer::run(conn, rx, flag))
            .map_err(|e| MetaError::Open {
                path: path.to_owned(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(Metadata {
            path: path.to_owned(),
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            readers: Mutex::new(Vec::new()),
            unsynced,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a reader connection, in one read transaction: every
    /// query in it sees the same committed state, the latest when `f`'s
    /// first query ran, and the database's locks are taken once, not once
    /// per query.
    pub fn read<R>(
        &self,
        f: impl FnOnce(&View<'_>) -> Result<R, MetaError>,
    ) -> Result<R, MetaError> {
        let conn = match self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        // Deferred: no lock until the first query.
        run_cached(&conn, "BEGIN")?;
        let result = f(&View { conn: &conn });
        // A read changed nothing: ending it either way is the same.
        if run_cached(&conn, "COMMIT").is_err() {
            let _ = run_cached(&conn, "ROLLBACK");
        }
        // A connection still inside a transaction would hold its snapshot
        // forever: drop it instead.
        if conn.is_autocommit() {
            self.readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
        }
        result
    }

    /// Runs `f` inside the next grouped transaction and resolves once that
    /// transaction committed (durably, if `durable`). If `f` fails, its
    /// changes are undone and the error returned; other jobs are unaffected.
    pub async fn write<R, E, F>(&self, durable: bool, f: F) -> Result<R, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<MetaError> + Send + 'static,
    {
        let rx = self.submit(durable, f)?;
        rx.await.map_err(|_| E::from(MetaError::WriterGone))?
    }

    /// Hands `f` to the writer now and returns a future of its outcome, so
    /// a caller can release a lock knowing every later job commits after
    /// this one (the writer runs jobs in the order they arrive).
    pub fn begin_write<R, E, F>(
        &self,
        durable: bool,
        f: F,
    ) -> Result<impl std::future::Future<Output = Result<R, E>> + use<R, E, F>, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<MetaError> + Send + 'static,
    {
        let rx = self.submit(durable, f)?;
        Ok(async move { rx.await.map_err(|_| E::from(MetaError::WriterGone))? })
    }

    /// [`Metadata::write`] for callers outside an async runtime.
    pub fn write_blocking<R, E, F>(&self, durable: bool, f: F) -> Result<R, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<MetaError> + Send + 'static,
    {
        let rx = self.submit(durable, f)?;
        rx.blocking_recv()
            .map_err(|_| E::from(MetaError::WriterGone))?
    }

    fn submit<R, E, F>(
        &self,
        durable: bool,
        f: F,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<R, E>>, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<MetaError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let run = Box::new(move |conn: &Connection| -> Completion {
            let result = run_in_savepoint(conn, f);
            Box::new(move |commit_error: Option<MetaError>| {
                let outcome = match commit_error {
                    None => result,
                    Some(e) => Err(E::from(e)),
                };
                let _ = tx.send(outcome);
            })
        });
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let sender = jobs.as_ref().ok_or(MetaError::WriterGone)?;
        sender
            .send(Msg::Job(Job { durable, run }))
            .map_err(|_| E::from(MetaError::WriterGone))?;
        Ok(rx)
    }

    /// Makes every committed change durable: a no-op when the last commit
    /// was already durable, else one durable commit (shared with whatever
    /// else is in flight) that fsyncs the WAL holding the earlier ones.
    pub async fn sync(&self) -> Result<(), MetaError> {
        if !self.unsynced.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.write(true, |tx| tx.touch()).await
    }

    /// Hands a shipping request to the writer thread.
    pub(crate) fn ship(&self, cmd: ShipCmd) -> Result<(), MetaError> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let sender = jobs.as_ref().ok_or(MetaError::WriterGone)?;
        sender
            .send(Msg::Ship(cmd))
            .map_err(|_| MetaError::WriterGone)
    }

    /// Stops the writer after it finished the jobs already handed to it.
    pub fn close(&self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Metadata {
    fn drop(&mut self) {
        self.close();
    }
}

fn run_in_savepoint<R, E, F>(conn: &Connection, f: F) -> Result<R, E>
where
    F: FnOnce(&Tx<'_>) -> Result<R, E>,
    E: From<MetaError>,
{
    run_cached(conn, "SAVEPOINT job").map_err(|e| E::from(e.into()))?;
    let tx = Tx {
        view: View { conn },
    };
    let result = match catch_unwind(AssertUnwindSafe(|| f(&tx))) {
        Ok(r) => r,
        Err(panic) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            std::panic::resume_unwind(panic);
        }
    };
    let ended = if result.is_ok() {
        run_cached(conn, "RELEASE job")
    } else {
        run_cached(conn, "ROLLBACK TO job").and_then(|()| run_cached(conn, "RELEASE job"))
    };
    ended.map_err(|e| E::from(e.into()))?;
    result
}

/// Runs one statement through the statement cache: the writer issues the
/// same few transaction-control statements for every job, so parsing them
/// each time would be waste.
pub(crate) fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
