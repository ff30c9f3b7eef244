//! The file handles one mount has open, so that a mount that goes away
//! (unmounted, or its kernel side aborted) releases them: the core frees a
//! deleted file at its last release, and a dead mount sends none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cairn_metadata::InodeId;

use crate::core::Fs;

/// Open handles per inode, for one mount.
#[derive(Clone, Debug, Default)]
pub struct Handles(Arc<Mutex<HashMap<InodeId, u32>>>);

impl Handles {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InodeId, u32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn opened(&self, id: InodeId) {
        *self.lock().entry(id).or_default() += 1;
    }

    pub fn released(&self, id: InodeId) {
        let mut map = self.lock();
        if let Some(n) = map.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                map.remove(&id);
            }
        }
    }

    /// Releases every handle still open through the core (the mount is gone).
    pub fn release_all(&self, fs: Arc<Fs>, rt: &tokio::runtime::Handle) {
        let open: Vec<(InodeId, u32)> = self.lock().drain().collect();
        if open.is_empty() {
            return;
        }
        rt.spawn(async move {
            for (id, n) in open {
                for _ in 0..n {
                    if let Err(e) = fs.release_handle(id).await {
                        tracing::warn!(inode = %id, cause = %e, "releasing a handle of a gone mount failed");
                    }
                }
            }
        });
    }
}
