//! The audit: compares each answering store's listing with the metadata.
//! A referenced object a store does not list counts as lost; an object no
//! chunk references goes to the trash once unreferenced for `orphan_delay`.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use cairn_metadata::StoreId;
use tracing::{info, warn};

use super::Repairer;
use crate::error::Error;
use crate::store::ObjectKey;

impl Repairer {
    /// Compares every answering store's listing with the metadata.
    pub async fn audit(&mut self) -> Result<(), Error> {
        // The metadata first: anything referenced now was stored before.
        let (chunks, pending) = self.fs.chunks_and_pending().await?;
        let pending: HashSet<u64> = pending.into_iter().map(|c| c.0).collect();
        let mut referenced: HashSet<(StoreId, String)> = HashSet::new();
        for c in &chunks {
            for &(shard, store) in &c.placements {
                referenced.insert((store, ObjectKey::of(c.id, c.layout, shard).to_string()));
            }
        }
        let mut missing = HashSet::new();
        let mut seen_unreferenced = HashMap::new();
        for view in self.stores.views() {
            let store = view.id;
            if !view.online {
                continue;
            }
            // A store whose listing is billed (a bucket) is listed at most
            // every `list_every`; in between, its unreferenced objects keep
            // their clocks (what its last listing found missing was handed
            // to the repair pass that followed it).
            let every = self.stores.list_every(store);
            if self
                .listed
                .get(&store)
                .is_some_and(|at| at.elapsed() < every)
            {
                seen_unreferenced.extend(
                    self.unreferenced
                        .iter()
                        .filter(|((s, _), _)| *s == store)
                        .map(|(id, since)| (id.clone(), *since)),
                );
                continue;
            }
            let Ok(listed) = self.stores.list_keys(store, None).await else {
                continue;
            };
            self.listed.insert(store, Instant::now());
            for key in &listed {
                // Only chunk objects: metadata backups (`m…`) have their own
                // pruning (ship.rs).
                let Some(chunk) = key.parse::<ObjectKey>().ok().and_then(|k| k.chunk()) else {
                    continue;
                };
                let id = (store, key.clone());
                if !referenced.contains(&id) && !pending.contains(&chunk.0) {
                    let since = self
                        .unreferenced
                        .get(&id)
                        .copied()
                        .unwrap_or_else(Instant::now);
                    seen_unreferenced.insert(id, since);
                }
            }
            let listed: HashSet<&String> = listed.iter().collect();
            for (s, key) in referenced.iter().filter(|(s, _)| *s == store) {
                if !listed.contains(key) {
                    warn!(store = %self.stores.name(*s), key, "a referenced object is missing from its store; it will be rebuilt");
                    missing.insert((*s, key.clone()));
                }
            }
        }
        self.missing = missing;
        let delay = self.cfg.orphan_delay.get();
        let due: Vec<(StoreId, String)> = seen_unreferenced
            .iter()
            .filter(|(_, since)| since.elapsed() >= delay)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            seen_unreferenced.remove(id);
        }
        self.unreferenced = seen_unreferenced;
        if !due.is_empty() {
            info!(objects = due.len(), "deleting objects no chunk references");
            let n = due.len() as u64;
            self.fs.trash(due).await?;
            self.with_progress(|p| p.orphans_trashed += n);
        }
        self.with_progress(|p| p.last_audit = Some(Instant::now()));
        Ok(())
    }
}
