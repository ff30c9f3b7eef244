//! Garbage: the collector (chunks no slot needs go to the trash), the
//! compactor (sparse chunks are drained again) and emptying the trash
//! (objects deleted from their stores once the metadata no longer needs
//! them, shipped metadata included).

use cairn_metadata::{StoreId, Timestamp};
use tracing::debug;

use super::{Drainer, PENDING_GRACE, TRASH_DELAY};
use crate::core::FsError;
use crate::error::Error;
use crate::store::ObjectKey;

impl Drainer {
    /// Forgets chunks no slot needs any more and puts their objects in the
    /// trash, in one transaction after the commit that dropped their last
    /// block. [`Drainer::empty_trash`] deletes them once that is shipped.
    pub async fn collect(&self) -> Result<usize, Error> {
        let grace = i64::try_from(PENDING_GRACE.as_nanos()).unwrap_or(i64::MAX);
        let before = Timestamp(Timestamp::now().0.saturating_sub(grace));
        let dead = self.fs.dead_chunks(before).await?;
        let n = dead.len();
        for (chunk, layout, placements) in dead {
            let objects: Vec<(StoreId, String)> = placements
                .into_iter()
                .map(|(shard, store)| (store, ObjectKey::of(chunk, layout, shard).to_string()))
                .collect();
            self.fs.forget_chunk(chunk, objects).await?;
        }
        Ok(n)
    }

    /// Chunks whose live share fell under half (overwrites, deletes) have
    /// their live blocks drained again into new chunks; the collector then
    /// deletes the old ones. A few chunks per pass, so it never floods.
    pub async fn compact(&self) -> Result<usize, Error> {
        let sparse = self.fs.sparse_chunks(4).await?;
        let mut moved = 0;
        for chunk in sparse {
            for (inode, index, block) in self.fs.slots_in_chunk(chunk).await? {
                if self
                    .fs
                    .redrain(inode, index, block)
                    .await
                    .or_else(|e| match e {
                        FsError::Stale(_) => Ok(false),
                        other => Err(other),
                    })?
                {
                    moved += 1;
                }
            }
            debug!(chunk = %chunk, "compacting a sparse chunk");
        }
        Ok(moved)
    }

    /// Deletes objects that have been in the trash for [`TRASH_DELAY`] from
    /// their stores; one a store cannot delete now stays for the next pass.
    /// With metadata shipping on, an object also waits until the change
    /// that trashed it is shipped: until then a gateway rebuilt from the
    /// stores may still point at it.
    pub async fn empty_trash(&self) -> Result<usize, Error> {
        let delay = i64::try_from(TRASH_DELAY.as_nanos()).unwrap_or(i64::MAX);
        let mut due = Timestamp(Timestamp::now().0.saturating_sub(delay));
        if let Some(shipped) = &self.shipped {
            let until = shipped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .shipped_until
                .unwrap_or(Timestamp(0));
            due = due.min(until);
        }
        let items = self.fs.trash_due(due, 256).await?;
        let mut n = 0;
        for (store, key) in items {
            match self.stores.delete(store, &key).await {
                Ok(()) => {
                    self.fs.forget_trash(store, key).await?;
                    n += 1;
                }
                Err(e) => {
                    debug!(store = %self.stores.name(store), key, cause = %e, "cannot delete a trashed object yet")
                }
            }
        }
        Ok(n)
    }
}
