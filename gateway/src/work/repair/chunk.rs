//! Repairing one chunk: reads a surviving replica (or rebuilds shards from
//! `k` others), stores the missing objects where the class allows, and only
//! then commits the new placements in one transaction.

use std::collections::HashSet;
use std::sync::Arc;

use cairn_metadata::{ChunkId, ChunkInfo, ChunkLayout, StoreId};
use tracing::{debug, info};

use super::{per_object, what, Need, Repairer};
use crate::class::{ClassSpec, Layout};
use crate::core::Repaired;
use crate::error::Error;
use crate::store::ec;
use crate::store::placement::place;
use crate::store::{ObjectKey, Purpose, Reach};

impl Repairer {
    /// Makes the missing copies or shards of one chunk and commits them.
    pub(super) async fn repair(&self, need: Need) -> Result<u64, Error> {
        let size = per_object(&need.info);
        let targets = self.targets(&need.spec, &need.info, &need.keep, &need.make, size)?;
        self.repair_to(need, targets, Purpose::Repair).await
    }

    /// As [`Repairer::repair`], onto the given `(index, store)` targets,
    /// paced by each store's cap for `purpose`.
    pub(super) async fn repair_to(
        &self,
        need: Need,
        targets: Vec<(u32, StoreId)>,
        purpose: Purpose,
    ) -> Result<u64, Error> {
        let Need {
            info, spec, drop, ..
        } = need;
        let chunk = info.id;
        if targets.is_empty() {
            return Err(Error::NoTarget {
                class: spec.name.clone(),
                why: format!(
                    "chunk {chunk}: no store can take its missing {} ({})",
                    what(&info),
                    spec.describe()
                ),
            });
        }
        // The bytes of each object to make.
        let sources: Vec<(u32, StoreId)> = info
            .placements
            .iter()
            .copied()
            .filter(|&(shard, store)| {
                let missing =
                    self.is_bad(&(store, ObjectKey::of(chunk, info.layout, shard).to_string()));
                !missing && self.stores.health(store, self.cfg.grace.get()).0 != Reach::Offline
            })
            .collect();
        let objects: Vec<(u32, StoreId, Arc<Vec<u8>>)> = match info.layout {
            ChunkLayout::Replicas => {
                let body = self.read_replica(&info, &sources).await?;
                let body = Arc::new(body);
                targets.iter().map(|&(i, s)| (i, s, body.clone())).collect()
            }
            ChunkLayout::Ec { k, m, shard_len } => {
                let all = self
                    .rebuild_shards(chunk, k as usize, m as usize, shard_len, &sources)
                    .await?;
                targets
                    .iter()
                    .map(|&(i, s)| (i, s, Arc::new(all[i as usize].clone())))
                    .collect()
            }
        };
        let mut written = 0u64;
        let mut tried = Vec::new();
        for (shard, store, bytes) in &objects {
            let key = ObjectKey::of(chunk, info.layout, *shard).to_string();
            tried.push((*store, key.clone()));
            if let Err(e) = self
                .stores
                .put_for(*store, &key, bytes.clone(), purpose)
                .await
            {
                self.fs.trash(tried).await?;
                return Err(Error::Store {
                    store: self.stores.name(*store),
                    op: "put",
                    key,
                    source: Box::new(e),
                });
            }
            written += bytes.len() as u64;
        }
        // Placements to give up: the dropped ones whose index was remade.
        let made: HashSet<u32> = targets.iter().map(|t| t.0).collect();
        let removed: Vec<(u32, StoreId)> = drop
            .iter()
            .copied()
            .filter(|(i, _)| made.contains(i))
            .collect();
        let trash: Vec<(StoreId, String)> = removed
            .iter()
            .map(|&(shard, store)| (store, ObjectKey::of(chunk, info.layout, shard).to_string()))
            .collect();
        let added = targets.clone();
        let given_up = trash.clone();
        let layout = info.layout;
        let (r, a) = (removed.clone(), added.clone());
        let checksums: Vec<(u32, StoreId, Vec<u8>)> = objects
            .iter()
            .map(|(i, s, bytes)| (*i, *s, crc32c::crc32c(bytes).to_le_bytes().to_vec()))
            .collect();
        let committed = self
            .fs
            .commit_repair(Repaired {
                chunk,
                layout,
                removed: r,
                added: a,
                trash,
                tried,
                checksums,
            })
            .await?;
        if committed {
            // The bad objects given up are in the trash: no longer condemned
            // (a later copy under the same key on that store is a new one).
            let mut condemned = self.condemned.lock().unwrap_or_else(|p| p.into_inner());
            for id in &given_up {
                condemned.remove(id);
            }
            std::mem::drop(condemned);
            let names = |v: &[(u32, StoreId)]| {
                v.iter()
                    .map(|&(i, s)| format!("{i}@{}", self.stores.name(s)))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            info!(chunk = %chunk, made = %names(&added), dropped = %names(&removed), bytes = written, "repaired a chunk");
        } else {
            debug!(chunk = %chunk, "chunk changed during its repair; the new copies are trashed");
        }
        Ok(written)
    }

    /// Stores for the indices in `make`: online, active, labels of that
    /// index's rule, not holding the chunk, and (when possible, always for a
    /// strict class) outside the spread domains the kept copies use.
    pub(super) fn targets(
        &self,
        spec: &ClassSpec,
        info: &ChunkInfo,
        keep: &[(u32, StoreId)],
        make: &[u32],
        size: u64,
    ) -> Result<Vec<(u32, StoreId)>, Error> {
        let views = self.stores.placeable();
        let mut holders: Vec<StoreId> = info.placements.iter().map(|p| p.1).collect();
        // Nor a store whose trash still holds one of the objects to make: the
        // collector may already be deleting it (the placement commit takes it
        // out of the trash, but not out of a deletion in flight).
        for &i in make {
            let key = ObjectKey::of(info.id, info.layout, i).to_string();
            holders.extend(self.fs.trashed_on(&key)?);
        }
        let kept_domains: Vec<String> = keep
            .iter()
            .filter_map(|&(_, s)| views.iter().find(|v| v.id == s))
            .map(|v| format!("{:?}", v.domain(spec.spread)))
            .collect();
        let same_domain: Vec<StoreId> = views
            .iter()
            .filter(|v| kept_domains.contains(&format!("{:?}", v.domain(spec.spread))))
            .map(|v| v.id)
            .collect();
        let sub = ClassSpec {
            name: spec.name.clone(),
            layout: Layout::Replicas {
                n: make.len().min(usize::from(u8::MAX)) as u8,
            },
            labels: make
                .iter()
                .map(|&i| spec.rule(i as usize).clone())
                .collect(),
            spread: spec.spread,
            strict: spec.strict,
            archive: None,
            durability: crate::class::Durability::Local,
        };
        let wide: Vec<StoreId> = holders.iter().chain(&same_domain).copied().collect();
        let mut placement = place(&sub, &views, size, &wide);
        if !spec.strict && placement.targets.iter().any(Option::is_none) {
            let narrow = place(&sub, &views, size, &holders);
            if narrow.targets.iter().flatten().count() > placement.targets.iter().flatten().count()
            {
                placement = narrow;
            }
        }
        Ok(placement
            .targets
            .iter()
            .zip(make)
            .filter_map(|(t, &i)| t.map(|s| (i, s)))
            .collect())
    }

    async fn read_replica(
        &self,
        info: &ChunkInfo,
        sources: &[(u32, StoreId)],
    ) -> Result<Vec<u8>, Error> {
        let key = ObjectKey::of(info.id, info.layout, 0).to_string();
        let mut why = String::from("no readable replica");
        for &(_, store) in sources {
            match self.stores.get(store, &key, 0, info.size).await {
                Ok(body) => return Ok(body),
                Err(e) => why = format!("{}: {e}", self.stores.name(store)),
            }
        }
        Err(Error::Unreadable {
            chunk: info.id,
            why,
        })
    }

    /// Reads `k` whole shards and rebuilds all `k + m`.
    async fn rebuild_shards(
        &self,
        chunk: ChunkId,
        k: usize,
        m: usize,
        shard_len: u64,
        sources: &[(u32, StoreId)],
    ) -> Result<Vec<Vec<u8>>, Error> {
        let mut range: Vec<Option<Vec<u8>>> = vec![None; k + m];
        let mut have = 0;
        let mut failures = Vec::new();
        for &(shard, store) in sources {
            if have == k || shard as usize >= k + m {
                continue;
            }
            match self
                .stores
                .get(
                    store,
                    &crate::store::ObjectKey::Shard { chunk, shard }.to_string(),
                    0,
                    shard_len,
                )
                .await
            {
                Ok(bytes) => {
                    range[shard as usize] = Some(bytes);
                    have += 1;
                }
                Err(e) => {
                    failures.push(format!("shard {shard} on {}: {e}", self.stores.name(store)))
                }
            }
        }
        ec::rebuild(k, m, range).map_err(|e| Error::Unreadable {
            chunk,
            why: format!("{e} ({})", failures.join("; ")),
        })
    }
}
