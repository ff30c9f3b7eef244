//! The admin commands about the tree and its data: `cairn mount|umount`,
//! `cairn cache drop`, `cairn fsck --deep`, `cairn smb share add`.

use std::path::Path;

use cairn_metadata::StoreId;

use super::proto::{AdminError, CacheDropped, FsckDeep, Mounted, ShareAdded, Unmounted};
use super::Admin;

/// A failed `cairn mount|umount DIR`, with the mounts' reason.
fn mount_failed(dir: &Path) -> impl FnOnce(crate::mounts::MountError) -> AdminError + '_ {
    move |e| AdminError::Mount {
        dir: dir.to_owned(),
        why: e.to_string(),
    }
}

impl Admin {
    /// `cairn mount DIR`.
    pub(super) async fn mount(&self, dir: &Path) -> Result<Mounted, AdminError> {
        self.mounts
            .mount(self.fs.clone(), dir)
            .await
            .map_err(mount_failed(dir))?;
        Ok(Mounted {
            mounted: dir.display().to_string(),
        })
    }

    /// `cairn umount DIR`.
    pub(super) async fn unmount(&self, dir: &Path) -> Result<Unmounted, AdminError> {
        self.mounts.unmount(dir).await.map_err(mount_failed(dir))?;
        Ok(Unmounted {
            unmounted: dir.display().to_string(),
        })
    }

    /// `cairn smb share add NAME PATH`.
    pub(super) async fn smb_share_add(
        &self,
        name: &str,
        path: &str,
    ) -> Result<ShareAdded, AdminError> {
        let bridge = self.smb.as_ref().ok_or(AdminError::SmbOff)?;
        bridge
            .add_share(&self.fs, name, path)
            .await
            .map_err(|e| AdminError::Share {
                name: name.to_owned(),
                why: e.to_string(),
            })?;
        Ok(ShareAdded {
            share: name.to_owned(),
            path: path.to_owned(),
        })
    }

    /// `cairn fsck --deep [--repair]`: with `repair`, every bad object on
    /// a store that answered goes to the repairer.
    pub(super) async fn fsck_deep(&self, repair: bool) -> Result<FsckDeep, AdminError> {
        let stores = self.stores.as_ref().ok_or(AdminError::NothingToCheck)?;
        let (checked, problems) = crate::fsck::deep_check(&self.fs, stores).await?;
        let mut queued = 0;
        if let (true, Some(condemned)) = (repair, &self.condemned) {
            let mut set = condemned.lock().unwrap_or_else(|e| e.into_inner());
            for p in problems.iter().filter(|p| !p.offline) {
                set.insert((StoreId(p.store_id), p.key.clone()));
                queued += 1;
            }
        }
        Ok(FsckDeep {
            checked,
            problems,
            queued_for_repair: queued,
        })
    }

    /// `cairn cache drop`: evicts every drained slot from the cache.
    pub(super) async fn cache_drop(&self) -> Result<CacheDropped, AdminError> {
        let done = self.fs.evict(None).await?;
        if let Some(stores) = &self.stores {
            stores.drop_hot();
        }
        self.fs.forget_read_ahead();
        let left = self.fs.backlog().await?;
        Ok(CacheDropped {
            evicted_bytes: done.bytes,
            evicted_slots: done.slots,
            undrained_bytes: left.bytes,
        })
    }
}
