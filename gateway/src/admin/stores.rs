//! `cairn store drain|undrain|remove` and `cairn store chunks`: a store's
//! life in the cluster, and where every chunk's copies or shards are.

use cairn_metadata::{ChunkLayout, StoreId, StoreState};

use super::proto::{AdminError, ChunkRow, Chunks, ShardRow, StoreLife, StoreLifeState};
use super::Admin;
use crate::store::ObjectKey;

/// What `cairn store drain|undrain|remove` asks of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    Drain,
    Undrain,
    Remove,
}

impl Admin {
    /// `cairn store drain|undrain|remove NAME`.
    pub(super) async fn store_life(&self, name: &str, life: Life) -> Result<StoreLife, AdminError> {
        let stores = self.stores.as_ref().ok_or(AdminError::NoStores)?;
        let known = self.fs.stores()?.into_iter().find(|(_, n, _)| n == name);
        let Some((id, _, _)) = known else {
            return Err(AdminError::NoStore {
                name: name.to_owned(),
            });
        };
        let state = match life {
            Life::Drain => StoreState::Draining,
            Life::Undrain => StoreState::Active,
            Life::Remove => {
                let held = self.fs.placements_on(id)?;
                if held > 0 {
                    return Err(AdminError::StoreHolds {
                        name: name.to_owned(),
                        held,
                    });
                }
                StoreState::Removed
            }
        };
        self.fs.set_store_state(name, state).await?;
        stores.set_life(id, state);
        let held = self.fs.placements_on(id)?;
        Ok(StoreLife {
            store: name.to_owned(),
            state: match state {
                StoreState::Active => StoreLifeState::Active,
                StoreState::Draining => StoreLifeState::Draining,
                StoreState::Removed => StoreLifeState::Removed,
            },
            holds: held,
        })
    }

    /// `cairn store chunks`.
    pub(super) async fn chunks(&self) -> Result<Chunks, AdminError> {
        let classes = self.fs.classes().snapshot()?;
        let chunks = self.fs.chunks().await?;
        let name = |s: StoreId| {
            self.stores
                .as_ref()
                .map_or_else(|| s.to_string(), |st| st.name(s))
        };
        let chunks = chunks
            .into_iter()
            .map(|c| ChunkRow {
                key: ObjectKey::Chunk(c.id).to_string(),
                class: classes
                    .get(c.class)
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                layout: layout_name(c.layout),
                size: c.size,
                logical_bytes: c.logical,
                stored_bytes: c.stored_bytes(),
                stores: c.placements.iter().map(|&(_, s)| name(s)).collect(),
                shards: c
                    .placements
                    .iter()
                    .map(|&(shard, s)| ShardRow {
                        shard,
                        store: name(s),
                        key: ObjectKey::of(c.id, c.layout, shard).to_string(),
                    })
                    .collect(),
            })
            .collect();
        Ok(Chunks { chunks })
    }
}

/// `replicas` or `ec K+M`.
fn layout_name(layout: ChunkLayout) -> String {
    match layout {
        ChunkLayout::Replicas => "replicas".to_owned(),
        ChunkLayout::Ec { k, m, .. } => format!("ec {k}+{m}"),
    }
}
