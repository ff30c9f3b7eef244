//! The core's operations for the drainer: what it reads in bulk (dirty
//! slots, dead and sparse chunks, the trash, chunks due for archiving) runs
//! off the runtime, and what it changes (a new chunk, attaching it, the
//! trash, a re-layout) is one named metadata commit each. And the request
//! channel by which a stable write asks for remote durability.

use cairn_metadata::{
    ChunkId, ChunkInfo, ChunkLayout, ClassId, DirtySlot, InodeId, MetaError, NewBlock, StoreId,
    Timestamp,
};
use tokio::sync::{mpsc, oneshot};

use super::{Fs, FsError};

/// `(store, object key)` of a stored object.
pub type Object = (StoreId, String);
/// `(shard, store, crc32c LE)` of a stored object.
pub type Checksum = (u32, StoreId, Vec<u8>);

/// A stable write's request to make a file remote-durable, and where the
/// answer goes.
#[derive(Debug)]
pub struct PersistRequest {
    pub inode: InodeId,
    pub reply: oneshot::Sender<Result<(), FsError>>,
}

/// The core's end of the remote-durability channel.
#[derive(Debug, Clone)]
pub struct Persistence(mpsc::Sender<PersistRequest>);

impl Persistence {
    /// A channel: the handle for the core, the requests for whoever serves
    /// them (see `work::drain::persist`).
    pub fn channel() -> (Persistence, mpsc::Receiver<PersistRequest>) {
        let (tx, rx) = mpsc::channel(64);
        (Persistence(tx), rx)
    }

    /// Asks for `inode` to be made remote-durable and waits for the answer.
    pub(crate) async fn persist(&self, inode: InodeId) -> Result<(), FsError> {
        let stopping = || FsError::Unavailable {
            chunk: None,
            why: "the gateway is stopping".into(),
        };
        let (reply, answer) = oneshot::channel();
        self.0
            .send(PersistRequest { inode, reply })
            .await
            .map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }
}

impl Fs {
    /// Makes `inode` remote-durable through `persistence` (see
    /// [`Persistence`]); without it, a remote-durable class fails.
    pub fn with_persistence(mut self, persistence: Persistence) -> Self {
        self.persist = Some(persistence);
        self
    }

    /// Runs a metadata read off the runtime.
    async fn read_off<T: Send + 'static>(
        &self,
        f: impl FnOnce(&cairn_metadata::View<'_>) -> Result<T, MetaError> + Send + 'static,
    ) -> Result<T, FsError> {
        let meta = self.meta.clone();
        Ok(tokio::task::spawn_blocking(move || meta.read(f)).await??)
    }

    /// Dirty slots quiet since `before`, at most `limit`.
    pub async fn dirty_slots(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<DirtySlot>, FsError> {
        self.read_off(move |v| v.dirty_slots(before, limit)).await
    }

    /// Every dirty slot of one file.
    pub async fn dirty_slots_of(&self, inode: InodeId) -> Result<Vec<DirtySlot>, FsError> {
        self.read_off(move |v| v.dirty_slots_of(inode)).await
    }

    /// Records a chunk about to be stored (pending until attached).
    pub async fn new_chunk(&self, class: ClassId, estimate: u64) -> Result<ChunkId, FsError> {
        Ok(self
            .meta
            .write(true, move |tx| {
                tx.new_chunk(class, estimate, Timestamp::now())
            })
            .await?)
    }

    /// Attaches a stored chunk's blocks to their slots, with the checksums
    /// of its objects. Returns the slots attached.
    pub async fn attach_chunk(
        &self,
        chunk: ChunkId,
        layout: ChunkLayout,
        placements: Vec<(u32, StoreId)>,
        blocks: Vec<NewBlock>,
        checksums: Vec<Checksum>,
    ) -> Result<usize, FsError> {
        Ok(self
            .meta
            .write(true, move |tx| {
                let n = tx.attach_chunk(chunk, layout, &placements, &[], &blocks)?;
                for (shard, store, crc) in &checksums {
                    tx.set_checksum(chunk, *shard, *store, crc)?;
                }
                Ok::<_, MetaError>(n)
            })
            .await?)
    }

    /// Forgets a chunk nothing points at and trashes its objects.
    pub async fn forget_chunk(&self, chunk: ChunkId, objects: Vec<Object>) -> Result<(), FsError> {
        Ok(self
            .meta
            .write(true, move |tx| {
                tx.put_in_trash(&objects, Timestamp::now())?;
                tx.forget_chunk(chunk)
            })
            .await?)
    }

    /// Puts objects in the trash.
    pub async fn trash(&self, objects: Vec<Object>) -> Result<(), FsError> {
        Ok(self
            .meta
            .write(true, move |tx| tx.put_in_trash(&objects, Timestamp::now()))
            .await?)
    }

    /// Chunks no slot needs (pending ones only once older than `before`).
    pub async fn dead_chunks(
        &self,
        before: Timestamp,
    ) -> Result<Vec<(ChunkId, ChunkLayout, Vec<(u32, StoreId)>)>, FsError> {
        self.read_off(move |v| v.dead_chunks(before)).await
    }

    /// Up to `limit` chunks whose live share fell under half.
    pub async fn sparse_chunks(&self, limit: usize) -> Result<Vec<ChunkId>, FsError> {
        self.read_off(move |v| v.sparse_chunks(limit)).await
    }

    /// The slots whose blocks live in `chunk`.
    pub async fn slots_in_chunk(
        &self,
        chunk: ChunkId,
    ) -> Result<Vec<(InodeId, u64, cairn_metadata::BlockId)>, FsError> {
        self.read_off(move |v| v.slots_in_chunk(chunk)).await
    }

    /// Up to `limit` trashed objects put there before `due`.
    pub async fn trash_due(&self, due: Timestamp, limit: usize) -> Result<Vec<Object>, FsError> {
        self.read_off(move |v| v.trash(due, limit)).await
    }

    /// Forgets a trashed object its store deleted.
    pub async fn forget_trash(&self, store: StoreId, key: String) -> Result<(), FsError> {
        Ok(self
            .meta
            .write(false, move |tx| tx.forget_trash(store, &key))
            .await?)
    }

    /// Up to `limit` replica chunks of `class` stored before `before`.
    pub async fn replica_chunks_before(
        &self,
        class: ClassId,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<ChunkId>, FsError> {
        self.read_off(move |v| v.replica_chunks_before(class, before, limit))
            .await
    }

    /// A chunk's layout, size and placements.
    pub async fn chunk(&self, chunk: ChunkId) -> Result<Option<ChunkInfo>, FsError> {
        self.read_off(move |v| v.chunk(chunk)).await
    }

    /// Switches a replica chunk to its new `placements` and trashes the
    /// `old` replicas; when the chunk changed meanwhile, trashes the `new`
    /// objects instead. Returns whether it switched.
    pub async fn relayout_chunk(
        &self,
        chunk: ChunkId,
        layout: ChunkLayout,
        placements: Vec<(u32, StoreId)>,
        old: Vec<Object>,
        new: Vec<Object>,
        checksums: Vec<Checksum>,
    ) -> Result<bool, FsError> {
        Ok(self
            .meta
            .write(true, move |tx| {
                let now = Timestamp::now();
                let switched = tx.relayout_chunk(chunk, layout, &placements, &old, now)?;
                if !switched {
                    tx.put_in_trash(&new, now)?;
                }
                for (shard, store, crc) in &checksums {
                    tx.set_checksum(chunk, *shard, *store, crc)?;
                }
                Ok::<_, MetaError>(switched)
            })
            .await?)
    }
}
