//! Draining a clean slot again: the bytes come back into the cache (fetched
//! from the stores if they were evicted) and the slot turns dirty, so the
//! drainer stores it in a new chunk under the file's current class. Used to
//! compact sparse chunks and to re-lay files whose class changed. The old
//! block loses its reference only when the new one is attached.

use cairn_metadata::{BlockId, ClassId, InodeId, Timestamp, SLOT_SIZE};

use super::{Fs, FsError};

impl Fs {
    /// Sets `class` on the one inode `id` (durable when it returns); data
    /// already drained keeps its layout until it is drained again (see
    /// [`Fs::set_class_tree`]). [`FsError::Stale`] if `id` is gone.
    pub async fn set_class(&self, id: InodeId, class: ClassId) -> Result<(), FsError> {
        self.meta
            .write(true, move |tx| {
                let mut i = tx.inode(id)?.ok_or(FsError::Stale(id))?;
                i.class = Some(class);
                tx.update_inode(&i)?;
                Ok::<_, FsError>(())
            })
            .await
    }

    /// Sends slot `index` of `id` back through the drain if it still holds
    /// `block`. Returns whether it did.
    pub async fn redrain(&self, id: InodeId, index: u64, block: BlockId) -> Result<bool, FsError> {
        let _guard = self.data_lock(id).lock().await;
        if self.writes_in_flight(id) {
            return Ok(false);
        }
        let Some(slot) = self
            .meta
            .read(|v| v.slots(id, index, index))?
            .into_iter()
            .next()
        else {
            return Ok(false);
        };
        if slot.block != Some(block) || slot.dirty || slot.lost {
            return Ok(false);
        }
        if !slot.cached {
            let bytes = self.slot_bytes(&slot).await?;
            let cache = self.cache.clone();
            tokio::task::spawn_blocking(move || cache.write(id, index * SLOT_SIZE, &bytes))
                .await??;
        }
        self.meta
            .write(false, move |tx| {
                tx.redirty(id, index, block, Timestamp::now())
            })
            .await
            .map_err(FsError::from)
    }
}

/// What [`Fs::set_class_tree`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relaid {
    pub inodes: u64,
    pub slots: u64,
}

impl Fs {
    /// Sets `class` on `root` and everything below it, and sends every
    /// drained slot stored under another class back through the drain, so
    /// existing files move to the new layout in the background.
    pub async fn set_class_tree(&self, root: InodeId, class: ClassId) -> Result<Relaid, FsError> {
        let mut done = Relaid::default();
        let mut queue = vec![root];
        while let Some(dir_or_file) = queue.pop() {
            let inode = match self.getattr(dir_or_file).await {
                Ok(i) => i,
                Err(FsError::Stale(_)) => continue,
                Err(e) => return Err(e),
            };
            if inode.class != Some(class) {
                match self.set_class(inode.id, class).await {
                    Ok(()) | Err(FsError::Stale(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            done.inodes += 1;
            match inode.kind {
                cairn_metadata::FileKind::Dir => {
                    let mut after = 0;
                    loop {
                        let page = self.meta.read(|v| v.list(inode.id, after, 1024))?;
                        let Some(last) = page.last() else { break };
                        after = last.cookie;
                        queue.extend(page.iter().map(|e| e.child));
                    }
                }
                cairn_metadata::FileKind::File => {
                    for (index, block) in self.meta.read(|v| v.slots_off_class(inode.id, class))? {
                        if self.redrain(inode.id, index, block).await? {
                            done.slots += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(done)
    }
}
