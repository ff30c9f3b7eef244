//! [`init`]: `cairn chunkstore init` — turns an empty folder into a chunk-store
//! folder of this cluster by writing its marker (and the shard folders).
//! Refuses a non-empty folder without a marker and another cluster's folder;
//! running it again on its own folder changes nothing.

use std::path::PathBuf;

use cairn_config::StoreConfig;

use crate::error::StoreError;
use crate::layout::{self, Marker, StoreLock, LOCK_FILE, MARKER_FILE};
use crate::secret::Secret;
use crate::store::create_dirs;

/// What [`init`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    pub data_dir: PathBuf,
    pub store_uuid: String,
    pub cluster_id: String,
    /// `false` when the folder already carried this cluster's marker.
    pub created: bool,
}

impl std::fmt::Display for InitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.created {
            "initialised chunk-store folder"
        } else {
            "already initialised for this cluster:"
        };
        write!(
            f,
            "{what} {} (store uuid {}, cluster id {})",
            self.data_dir.display(),
            self.store_uuid,
            self.cluster_id
        )
    }
}

/// Writes `<data_dir>/cairn-store.marker` for the cluster of `cfg.secret_file`.
pub fn init(cfg: &StoreConfig) -> Result<InitReport, StoreError> {
    cfg.validate()?;
    let secret = Secret::load(&cfg.secret_file)?;
    let data_dir = cfg.data_dir.clone();
    if Marker::read(&data_dir)?.is_some() {
        let marker = Marker::check(&data_dir, &secret)?;
        return Ok(InitReport {
            data_dir,
            store_uuid: marker.store_uuid,
            cluster_id: marker.cluster_id,
            created: false,
        });
    }
    let entries = std::fs::read_dir(&data_dir).map_err(|e| StoreError::io("list", &data_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", &data_dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // A fresh filesystem's lost+found, and what an interrupted init leaves.
        let leftover = name == "lost+found"
            || name == LOCK_FILE
            || (layout::is_temp_name(&name) && name.starts_with(&format!(".{MARKER_FILE}.")));
        if !leftover {
            return Err(StoreError::NotEmpty { data_dir });
        }
    }
    let _lock = StoreLock::acquire(&data_dir)?;
    let marker = Marker {
        cluster_id: secret.cluster_id_hex(),
        store_uuid: layout::new_uuid(),
    };
    layout::write_durable(&data_dir, MARKER_FILE, marker.render().as_bytes())
        .map_err(|failed| failed.0)?;
    create_dirs(&data_dir)?;
    tracing::info!(data_dir = %data_dir.display(), store_uuid = %marker.store_uuid,
        "initialised chunk-store folder");
    Ok(InitReport {
        data_dir,
        store_uuid: marker.store_uuid,
        cluster_id: marker.cluster_id,
        created: true,
    })
}
