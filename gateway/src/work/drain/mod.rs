//! The drainer: moves quiet, dirty slots from the ingest cache to the chunk
//! stores, and keeps what it stored tidy. Its work is split into runner
//! jobs (see [`jobs`]): the drain pass with cache eviction ([`pass`]), the
//! trash and the collector ([`gc`]), the archive re-layout ([`archive`])
//! and the store probe; a chunk's way to the stores is [`upload`], and a
//! `--durability remote` file's is [`persist`]. Nothing is marked clean
//! until every copy of its chunk is stored.

mod archive;
mod gc;
pub mod jobs;
mod pass;
pub mod persist;
#[cfg(test)]
mod tests;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use cairn_config::DrainConfig;
use cairn_metadata::ClassId;

use crate::catalog::{CatalogError, Classes};
use crate::class::ClassSpec;
use crate::core::{Fs, FsError};
use crate::store::Stores;
use crate::work::ship::ShipState;

pub use jobs::spawn;
pub use persist::Persister;

/// Dirty slots looked at per pass.
const PASS: usize = 4096;
/// How long past the quiet period less than a chunk's worth of a class may
/// wait for more, so small files share chunks.
const PACK_WAIT: Duration = Duration::from_secs(2);
/// Chunks left pending this long (a drain that died) are collected.
const PENDING_GRACE: Duration = Duration::from_secs(600);
/// Objects wait this long in the trash before they are deleted from their
/// store, so a read that looked up the old layout just before a re-layout
/// still finds its bytes.
const TRASH_DELAY: Duration = Duration::from_secs(5);

/// What every drain job works on: the core, the stores, the drain config
/// and, when shipping is on, the metadata shipper's progress.
#[derive(Clone)]
pub struct Drainer {
    fs: Arc<Fs>,
    stores: Arc<Stores>,
    cfg: DrainConfig,
    /// The metadata shipper's progress, when shipping is on.
    shipped: Option<Arc<std::sync::Mutex<ShipState>>>,
}

impl Drainer {
    pub fn new(fs: Arc<Fs>, stores: Arc<Stores>, cfg: DrainConfig) -> Self {
        Drainer {
            fs,
            stores,
            cfg,
            shipped: None,
        }
    }

    /// Deletes from the stores only what the shipped metadata no longer
    /// needs (see [`Drainer::empty_trash`]).
    pub fn with_shipping(mut self, state: Arc<std::sync::Mutex<ShipState>>) -> Self {
        self.shipped = Some(state);
        self
    }
}

/// A class's name and spec; an error for one that cannot be read.
fn class_of(classes: &Classes, class: ClassId) -> Result<(String, Arc<ClassSpec>), CatalogError> {
    let catalog = classes.snapshot()?;
    let found = catalog.get(class)?;
    Ok((found.name.clone(), found.spec()?))
}

/// A file deleted between the listing and the read simply drops out.
fn gone(e: FsError) -> Result<Option<Vec<u8>>, FsError> {
    match e {
        FsError::Stale(_) => Ok(None),
        other => Err(other),
    }
}
