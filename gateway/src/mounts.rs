//! `cairn mount DIR`: FUSE views of the core that the gateway mounts on
//! request for local tools, kept until `cairn umount DIR` or the gateway
//! stops. The view runs inside the gateway because the core (its SQLite
//! writer and cache) lives there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::core::Fs;
use crate::fuse::FuseView;

#[derive(Default)]
pub struct Mounts {
    views: Mutex<HashMap<PathBuf, FuseView>>,
}

impl Mounts {
    /// Mounts a view on `dir` (absolute; an empty folder).
    pub async fn mount(&self, fs: Arc<Fs>, dir: &Path) -> Result<(), String> {
        if !dir.is_absolute() {
            return Err(format!("{} is not an absolute path", dir.display()));
        }
        if self.lock().contains_key(dir) {
            return Err(format!("{} is mounted already", dir.display()));
        }
        let view = FuseView::mount(fs, dir).map_err(|e| e.to_string())?;
        self.lock().insert(dir.to_owned(), view);
        Ok(())
    }

    /// Unmounts the view on `dir`.
    pub async fn unmount(&self, dir: &Path) -> Result<(), String> {
        let view = self
            .lock()
            .remove(dir)
            .ok_or_else(|| format!("no cairn view is mounted on {}", dir.display()))?;
        tokio::task::spawn_blocking(move || view.unmount())
            .await
            .map_err(|e| e.to_string())?;
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
