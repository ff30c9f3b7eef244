//! What the control plane (`cairn status`, `store`, `cache`, `fsck --deep`)
//! and the gateway's start and stop read and change in the metadata, as
//! named operations of the core, so no caller outside the core touches
//! SQLite directly. Reads that scan a table run on the blocking pool (see
//! the rule in the module doc of `core`).

use cairn_metadata::{Backlog, ChunkInfo, MetaError, PlacementCheck, StoreId, StoreState, View};

use super::{Fs, FsError};

impl Fs {
    /// Runs a large read (a table scan) on the blocking pool, off the
    /// runtime threads.
    pub(super) async fn read_large<R: Send + 'static>(
        &self,
        f: impl FnOnce(&View<'_>) -> Result<R, MetaError> + Send + 'static,
    ) -> Result<R, FsError> {
        let meta = self.meta.clone();
        Ok(tokio::task::spawn_blocking(move || meta.read(f)).await??)
    }

    /// Bytes, slots and files waiting for the drain, and the oldest wait.
    pub async fn backlog(&self) -> Result<Backlog, FsError> {
        self.read_large(|v| v.backlog()).await
    }

    /// (inodes, logical bytes) in the filesystem.
    pub async fn usage(&self) -> Result<(u64, u64), FsError> {
        self.read_large(|v| v.usage()).await
    }

    /// Every chunk with its placements.
    pub async fn chunks(&self) -> Result<Vec<ChunkInfo>, FsError> {
        self.read_large(|v| v.chunks()).await
    }

    /// Every placement with the length and crc the metadata recorded, for
    /// `fsck --deep`.
    pub async fn placement_checks(&self) -> Result<Vec<PlacementCheck>, FsError> {
        self.read_large(|v| v.placement_checks()).await
    }

    /// The known stores: (id, name, state).
    pub fn stores(&self) -> Result<Vec<(StoreId, String, String)>, FsError> {
        Ok(self.meta.read(|v| v.stores())?)
    }

    /// How many copies or shards the metadata keeps on `store`.
    pub fn placements_on(&self, store: StoreId) -> Result<u64, FsError> {
        Ok(self.meta.read(|v| v.placements_on(store))?)
    }

    /// Sets the life-cycle state of the store named `name` (durable when it
    /// returns); `None` if no store has that name.
    pub async fn set_store_state(
        &self,
        name: &str,
        state: StoreState,
    ) -> Result<Option<StoreId>, FsError> {
        let name = name.to_owned();
        self.meta
            .write(true, move |tx| tx.set_store_state(&name, state))
            .await
            .map_err(FsError::from)
    }

    /// Records a configured store (durable when it returns) and returns its
    /// id; a known name keeps its id and takes the new address.
    pub async fn register_store(&self, name: &str, address: &str) -> Result<StoreId, FsError> {
        let (name, address) = (name.to_owned(), address.to_owned());
        self.meta
            .write(true, move |tx| tx.upsert_store(&name, &address, "", "", ""))
            .await
            .map_err(FsError::from)
    }

    /// The life-cycle state of every known store.
    pub fn store_states(&self) -> Result<Vec<(StoreId, StoreState)>, FsError> {
        Ok(self.meta.read(|v| v.store_states())?)
    }

    /// Forgets chunks a stopped drain left half-stored (no block points at
    /// them); returns how many.
    pub async fn forget_pending_chunks(&self) -> Result<usize, FsError> {
        self.meta
            .write(true, |tx| tx.forget_pending_chunks())
            .await
            .map_err(FsError::from)
    }

    /// Stores a gateway setting (durable when it returns).
    pub async fn save_setting(&self, name: &'static str, value: String) -> Result<(), FsError> {
        self.meta
            .write(true, move |tx| tx.set_setting(name, &value))
            .await
            .map_err(FsError::from)
    }

    /// Stops recording changes for the metadata backup (backup disabled).
    pub fn stop_recording(&self) -> Result<(), FsError> {
        Ok(self.meta.stop_recording()?)
    }

    /// Closes the metadata: the writer finishes its queue and stops.
    pub fn close_metadata(&self) {
        self.meta.close();
    }
}
