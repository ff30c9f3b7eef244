//! The single writer: one thread, one connection, and group commit. Jobs that
//! arrive while a transaction runs are gathered into the next one, each inside
//! its own savepoint so one job's failure undoes only its own changes. A batch
//! with any durable job commits with `synchronous=FULL`; the others commit with
//! `NORMAL`, which survives a crash of the process but not of the machine,
//! until the next durable commit syncs the WAL that holds them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use rusqlite::{Connection, ErrorCode};
use tracing::error;

use crate::db::run_cached;
use crate::MetaError;

/// Called after the batch's commit with the commit's error, if any.
pub(crate) type Completion = Box<dyn FnOnce(Option<MetaError>) + Send>;

pub(crate) struct Job {
    pub durable: bool,
    pub run: Box<dyn FnOnce(&Connection) -> Completion + Send>,
}

/// What the writer thread is asked to do.
pub(crate) enum Msg {
    Job(Job),
    /// Shipping: see [`crate::ship`].
    Ship(ShipCmd),
}

/// Shipping requests, served between transactions so that a snapshot and
/// the changes after it meet exactly.
pub(crate) enum ShipCmd {
    /// Copy the database to `dest` (online backup) and start recording
    /// changes afresh from it.
    Snapshot {
        dest: std::path::PathBuf,
        reply: std::sync::mpsc::Sender<Result<(), MetaError>>,
    },
    /// The changes committed since the last snapshot or changes (a
    /// changeset; empty when none), and start recording afresh.
    Changes {
        reply: std::sync::mpsc::Sender<Result<Vec<u8>, MetaError>>,
    },
    /// Stop recording changes (shipping is off): no session cost per write.
    Stop,
}

/// The most jobs one transaction gathers.
const MAX_BATCH: usize = 512;

/// `unsynced` is true while some committed change has not been fsync'd
/// (a `NORMAL` commit since the last `FULL` one).
pub(crate) fn run(conn: Connection, msgs: Receiver<Msg>, unsynced: Arc<AtomicBool>) {
    let mut full = false;
    let mut poisoned: Option<ErrorCode> = None;
    // Records every committed change for shipping; replaced at each ship.
    let mut session = crate::ship::new_session(&conn);
    while let Ok(first) = msgs.recv() {
        let mut ships = Vec::new();
        let mut batch = Vec::new();
        match first {
            Msg::Job(job) => batch.push(job),
            Msg::Ship(cmd) => ships.push(cmd),
        }
        while !batch.is_empty() && batch.len() < MAX_BATCH {
            match msgs.try_recv() {
                Ok(Msg::Job(job)) => batch.push(job),
                Ok(Msg::Ship(cmd)) => {
                    ships.push(cmd);
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if let Some(code) = poisoned {
            // Never run a job after a failed commit: its caller hears why.
            for job in batch {
                if conn.execute_batch("BEGIN").is_ok() {
                    (job.run)(&conn)(Some(MetaError::Commit(code)));
                    let _ = conn.execute_batch("ROLLBACK");
                }
            }
        } else if !batch.is_empty() {
            let durable = batch.iter().any(|j| j.durable);
            if durable != full {
                let mode = if durable { "FULL" } else { "NORMAL" };
                if let Err(e) = conn.pragma_update(None, "synchronous", mode) {
                    error!(cause = %e, "cannot set synchronous mode");
                } else {
                    full = durable;
                }
            }
            if let Err(code) = commit_batch(&conn, batch, durable, &unsynced) {
                if code != ErrorCode::DiskFull {
                    error!(?code, "metadata commit failed; refusing further writes");
                    poisoned = Some(code);
                }
            }
        }
        for cmd in ships {
            crate::ship::serve(&conn, &mut session, cmd);
        }
    }
}

fn commit_batch(
    conn: &Connection,
    batch: Vec<Job>,
    durable: bool,
    unsynced: &AtomicBool,
) -> Result<(), ErrorCode> {
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        let code = e.sqlite_error_code().unwrap_or(ErrorCode::Unknown);
        for job in batch {
            (job.run)(conn)(Some(MetaError::Commit(code)));
        }
        return Err(code);
    }
    let completions: Vec<Completion> = batch
        .into_iter()
        .map(|job| {
            let run = job.run;
            match catch_unwind(AssertUnwindSafe(|| run(conn))) {
                Ok(done) => done,
                Err(_) => {
                    error!("a metadata job panicked; its changes are rolled back");
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                    Box::new(|_| {}) as Completion
                }
            }
        })
        .collect();
    // A durable batch always writes a frame, so its commit fsyncs the WAL
    // (and every earlier NORMAL commit in it) even if all its jobs failed.
    if durable {
        if let Err(e) = run_cached(
            conn,
            "UPDATE counters SET value = value + 1 WHERE name = 'commit_seq'",
        ) {
            error!(cause = %e, "cannot bump the commit counter");
        }
    }
    match run_cached(conn, "COMMIT") {
        Ok(()) => {
            // Before anyone hears of the commit, so a later sync sees it.
            unsynced.store(!durable, Ordering::SeqCst);
            for done in completions {
                done(None);
            }
            Ok(())
        }
        Err(e) => {
            let code = e.sqlite_error_code().unwrap_or(ErrorCode::Unknown);
            let _ = conn.execute_batch("ROLLBACK");
            for done in completions {
                done(Some(MetaError::Commit(code)));
            }
            Err(code)
        }
    }
}
