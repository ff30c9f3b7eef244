//! Open files, for front ends that have open and close (the FUSE view, and
//! so SMB). A file whose last name goes while some handle has it open lives
//! on unnamed (nlink 0, reachable by no name) and keeps serving reads,
//! writes and stats through its handles, as POSIX says; the last release
//! frees it with its data. Orphans a stop left behind (no process holds a
//! handle across a restart) are freed when the core opens. NFSv3 has no
//! open or close: a file removed over NFS and open nowhere goes at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cairn_metadata::{FileKind, InodeId, Metadata};
use tracing::{debug, info};

use super::{Fs, FsError};

/// What dropping a link left to do once its transaction commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Unlinked {
    /// Nothing: other links remain, or it was not a file.
    #[default]
    Nothing,
    /// The file is gone: drop its cached data.
    Freed(InodeId),
    /// The file lost its last name while open: it lives on until the last
    /// release, which may have come while the transaction waited to commit.
    KeptOpen(InodeId),
}

/// How many handles each inode has open. Shared with the metadata jobs that
/// drop links, which read it inside their transaction.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpenCounts(Arc<Mutex<HashMap<InodeId, u32>>>);

impl OpenCounts {
    pub(crate) fn is_open(&self, id: InodeId) -> bool {
        self.lock().contains_key(&id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InodeId, u32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, id: InodeId) {
        *self.lock().entry(id).or_default() += 1;
    }

    /// Counts one handle less; true when that was the last.
    fn remove(&self, id: InodeId) -> bool {
        let mut map = self.lock();
        match map.get_mut(&id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                map.remove(&id);
                true
            }
            None => false,
        }
    }
}

/// Frees every file left with no name (nlink 0) by an earlier run: nothing
/// can hold one open across a restart. Returns how many went. Run before
/// the cache is recovered, so their cache files go with them.
pub(crate) fn free_orphans(meta: &Metadata) -> Result<usize, FsError> {
    let orphans = meta.read(|v| v.orphans())?;
    if orphans.is_empty() {
        return Ok(0);
    }
    let n = orphans.len();
    // Called from inside the runtime at start: wait for the writer on a
    // thread of its own, where blocking is allowed.
    std::thread::scope(|s| {
        s.spawn(|| {
            meta.write_blocking(true, move |tx| {
                for id in orphans {
                    tx.delete_inode(id)?;
                }
                Ok::<_, FsError>(())
            })
        })
        .join()
        .unwrap_or(Err(FsError::Invalid("freeing orphans panicked")))
    })?;
    info!(
        files = n,
        "freed files that were deleted while open when the gateway stopped"
    );
    Ok(n)
}

impl Fs {
    /// A front end opened a handle on `id`. Fails with `Stale` if the file
    /// is already gone (its last name and handle went before this open).
    pub async fn open_handle(&self, id: InodeId) -> Result<(), FsError> {
        // Counted before the look, so a remove racing this open either
        // sees the count or has already freed the inode this look misses.
        self.open.add(id);
        match self.getattr(id).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.open.remove(id);
                Err(e)
            }
        }
    }

    /// A front end released a handle on `id`; the last release of a file
    /// that has no name any more frees it and its data.
    pub async fn release_handle(&self, id: InodeId) -> Result<(), FsError> {
        if !self.open.remove(id) {
            return Ok(());
        }
        // Most closes are of named files: a read settles those. A remove
        // whose step ran before the count went, but that commits after this
        // read, frees the file itself once committed (`settle_unlink`).
        let named = self.meta.read(|v| v.inode(id))?.is_none_or(|i| i.nlink > 0);
        if named {
            return Ok(());
        }
        self.free_if_closed(id).await
    }

    /// After a remove or rename committed: drops a freed file's data, and
    /// frees a file kept for its open handles if the last one was released
    /// while the transaction waited to commit (that release read the file
    /// still named, so it left the freeing to this).
    pub(super) async fn settle_unlink(&self, unlinked: Unlinked) -> Result<(), FsError> {
        match unlinked {
            Unlinked::Nothing => Ok(()),
            Unlinked::Freed(id) => self.drop_data(Some(id)).await,
            Unlinked::KeptOpen(id) if !self.open.is_open(id) => self.free_if_closed(id).await,
            Unlinked::KeptOpen(_) => Ok(()),
        }
    }

    /// Frees file `id` if it has no name and no open handle, with its data.
    async fn free_if_closed(&self, id: InodeId) -> Result<(), FsError> {
        let open = self.open.clone();
        let freed = self
            .meta
            .write(true, move |tx| {
                let Some(inode) = tx.inode(id)? else {
                    return Ok(None);
                };
                // Opened again meanwhile (through /proc/self/fd): it stays.
                if inode.nlink > 0 || inode.kind != FileKind::File || open.is_open(id) {
                    return Ok(None);
                }
                tx.delete_inode(id)?;
                Ok::<_, FsError>(Some(id))
            })
            .await?;
        if freed.is_some() {
            debug!(inode = %id, "freed a deleted file at its last close");
        }
        self.drop_data(freed).await
    }
}
