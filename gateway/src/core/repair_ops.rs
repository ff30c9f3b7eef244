//! What the repairer and the metadata shipper read and change in the
//! metadata, as named operations of the core: the audit's view of what is
//! referenced, the guarded commit of a repaired chunk, which stores' trash
//! still holds an object, and the snapshot and changes the shipper sends.
//! Scans and the snapshot run on the blocking pool (see `core`'s rule).

use std::path::PathBuf;

use cairn_metadata::{ChunkId, ChunkInfo, ChunkLayout, StoreId, Timestamp};

use super::drain_ops::Object;
use super::{Fs, FsError};

/// A repaired chunk's new placements, as one guarded commit.
#[derive(Debug, Clone)]
pub struct Repaired {
    pub chunk: ChunkId,
    pub layout: ChunkLayout,
    /// Placements given up and placements made.
    pub removed: Vec<(u32, StoreId)>,
    pub added: Vec<(u32, StoreId)>,
    /// Objects of the given-up placements, deleted once the change ships.
    pub trash: Vec<Object>,
    /// The objects written for this repair: trashed if the commit does not
    /// happen (the chunk changed meanwhile).
    pub tried: Vec<Object>,
    /// The crc32c of each new placement.
    pub checksums: Vec<(u32, StoreId, Vec<u8>)>,
}

impl Fs {
    /// Every chunk with its placements, and the chunks still pending (being
    /// stored by a drain), read together off the runtime threads.
    pub async fn chunks_and_pending(&self) -> Result<(Vec<ChunkInfo>, Vec<ChunkId>), FsError> {
        self.read_large(|v| Ok((v.chunks()?, v.pending_chunk_ids()?)))
            .await
    }

    /// Swaps a chunk's placements if they are still `removed` (a guarded
    /// commit); otherwise the objects tried go to the trash. Whether the
    /// swap happened.
    pub async fn commit_repair(&self, r: Repaired) -> Result<bool, FsError> {
        Ok(self
            .meta
            .write(true, move |tx| {
                let now = Timestamp::now();
                let done =
                    tx.repair_chunk(r.chunk, r.layout, &r.removed, &r.added, &r.trash, now)?;
                if !done {
                    tx.put_in_trash(&r.tried, now)?;
                }
                for (shard, store, crc) in r.checksums.iter().filter(|_| done) {
                    tx.set_checksum(r.chunk, *shard, *store, crc)?;
                }
                Ok::<_, cairn_metadata::MetaError>(done)
            })
            .await?)
    }

    /// The stores whose trash holds object `key`.
    pub fn trashed_on(&self, key: &str) -> Result<Vec<StoreId>, FsError> {
        Ok(self.meta.read(|v| v.trashed_on(key))?)
    }

    /// Writes a consistent copy of the whole metadata to `path` (for a
    /// shipped snapshot), off the runtime threads.
    pub async fn snapshot_metadata(&self, path: PathBuf) -> Result<(), FsError> {
        let meta = self.meta.clone();
        Ok(tokio::task::spawn_blocking(move || meta.snapshot_to(&path)).await??)
    }

    /// The changes recorded since the last call (for a shipped changeset),
    /// off the runtime threads.
    pub async fn take_changes(&self) -> Result<Vec<u8>, FsError> {
        let meta = self.meta.clone();
        Ok(tokio::task::spawn_blocking(move || meta.take_changes()).await??)
    }
}
