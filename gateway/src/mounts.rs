//! `cairn mount DIR`: FUSE views of the core that the gateway mounts on
//! request for local tools, kept until `cairn umount DIR` or the gateway
//! stops. The view runs inside the gateway because the core (its SQLite
//! writer and cache) lives there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::core::Fs;
use crate::fuse::{FuseError, FuseView};

/// Why a view was not mounted or unmounted.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{} is not an absolute path", dir.display())]
    NotAbsolute { dir: PathBuf },
    #[error("{} is mounted already", dir.display())]
    Mounted { dir: PathBuf },
    #[error(transparent)]
    Fuse(#[from] FuseError),
    #[error("no cairn view is mounted on {}", dir.display())]
    NotMounted { dir: PathBuf },
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
}

#[derive(Default)]
pub struct Mounts {
    views: Mutex<HashMap<PathBuf, FuseView>>,
}

impl Mounts {
    /// Mounts a view on `dir` (absolute; an empty folder).
    pub async fn mount(&self, fs: Arc<Fs>, dir: &Path) -> Result<(), MountError> {
        if !dir.is_absolute() {
            return Err(MountError::NotAbsolute {
                dir: dir.to_owned(),
            });
        }
        if self.lock().contains_key(dir) {
            return Err(MountError::Mounted {
                dir: dir.to_owned(),
            });
        }
        let view = FuseView::mount(fs, dir)?;
        self.lock().insert(dir.to_owned(), view);
        Ok(())
    }

    /// Unmounts the view on `dir`.
    pub async fn unmount(&self, dir: &Path) -> Result<(), MountError> {
        let view = self
            .lock()
            .remove(dir)
            .ok_or_else(|| MountError::NotMounted {
                dir: dir.to_owned(),
            })?;
        tokio::task::spawn_blocking(move || view.unmount()).await?;
        Ok(())
    }

    pub fn list(&self) -> Vec<String> {
        self.lock()
            .keys()
            .map(|p| p.display().to_string())
            .collect()
    }

    /// Unmounts every view (at shutdown).
    pub async fn unmount_all(&self) {
        let views: Vec<FuseView> = self.lock().drain().map(|(_, v)| v).collect();
        let _ = tokio::task::spawn_blocking(move || drop(views)).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, FuseView>> {
        self.views.lock().unwrap_or_else(|p| p.into_inner())
    }
}
