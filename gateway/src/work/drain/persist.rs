//! Remote durability: makes a file of a `--durability remote` class
//! durable off the gateway before a stable write is acknowledged. The core
//! asks over a channel ([`crate::core::Persistence`]); [`serve`] answers
//! each request in its own task and ends on shutdown, after the requests
//! in progress are answered.

use std::sync::Arc;

use cairn_metadata::InodeId;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::upload::Upload;
use super::{class_of, gone};
use crate::core::{Fs, FsError, PersistRequest};
use crate::store::Stores;
use crate::work::ship::Shipper;

/// Makes a file of a `--durability remote` class durable off the gateway:
/// its dirty slots are stored as a chunk now (no quiet period, no packing),
/// then the metadata that points at them is shipped.
#[derive(Clone)]
pub struct Persister {
    fs: Arc<Fs>,
    stores: Arc<Stores>,
    shipper: Arc<Shipper>,
}

impl Persister {
    pub fn new(fs: Arc<Fs>, stores: Arc<Stores>, shipper: Arc<Shipper>) -> Self {
        Persister {
            fs,
            stores,
            shipper,
        }
    }

    async fn persist(&self, id: InodeId) -> Result<(), FsError> {
        let fs = &self.fs;
        let unavailable = |why: String| FsError::Unavailable { chunk: None, why };
        // A concurrent write may leave a slot dirty again: a few rounds.
        for _ in 0..4 {
            let dirty = fs.dirty_slots_of(id).await?;
            if dirty.is_empty() {
                break;
            }
            let default = fs.classes().default_id().await?;
            let class = dirty[0].class.unwrap_or(default);
            let (name, spec) = class_of(fs.classes(), class)?;
            let mut items = Vec::new();
            for slot in dirty {
                if let Some(bytes) = fs
                    .slot_content(slot.inode, slot.index)
                    .await
                    .or_else(gone)?
                {
                    items.push((slot, bytes));
                }
            }
            if items.is_empty() {
                break;
            }
            let job = Upload {
                fs: fs.clone(),
                stores: self.stores.clone(),
                class,
                name,
                spec,
                items,
            };
            job.run().await.map_err(|e| unavailable(e.to_string()))?;
        }
        if !fs.dirty_slots_of(id).await?.is_empty() {
            return Err(unavailable(
                "the file kept changing while it was stored remotely".into(),
            ));
        }
        self.shipper
            .ship_now()
            .await
            .map_err(|e| unavailable(e.to_string()))
    }
}

/// Answers persistence requests until `stop` is set, each in its own task;
/// then waits for the ones in progress.
pub async fn serve(
    persister: Persister,
    mut requests: mpsc::Receiver<PersistRequest>,
    mut stop: watch::Receiver<bool>,
) {
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(PersistRequest { inode, reply }) = request else { break };
                let persister = persister.clone();
                running.spawn(async move {
                    let _ = reply.send(persister.persist(inode).await);
                });
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    // Callers still waiting hear that the gateway is stopping.
    drop(requests);
    while running.join_next().await.is_some() {}
}
