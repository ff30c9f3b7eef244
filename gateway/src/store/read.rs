//! Reading drained blocks back for the core ([`BlockSource`]): a replica
//! from the first store whose copy verifies (online stores first), or the
//! data shards of an erasure-coded chunk, a piece whose shard cannot be read
//! rebuilt from the same range of `k` others; decrypted, verified, and kept
//! in a small cache of hot blocks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cairn_metadata::{BlockLocation, ChunkLayout, StoreId};
use tracing::{debug, warn};

use super::crypto::block_aad;
use super::ec;
use super::keys::ObjectKey;
use super::placement::StoreView;
use super::pool::Stores;
use crate::core::{BlockSource, FsError};

impl BlockSource for Stores {
    fn capacity(&self) -> Option<(u64, u64)> {
        let views: Vec<StoreView> = self
            .placeable()
            .into_iter()
            .filter(|v| v.capacity > 0)
            .collect();
        if views.is_empty() {
            return None;
        }
        let total = views
            .iter()
            .map(|v| v.capacity.saturating_sub(v.reserve))
            .sum();
        let free = views
            .iter()
            .map(|v| v.capacity.saturating_sub(v.used).saturating_sub(v.reserve))
            .sum();
        Some((total, free))
    }

    fn fetch<'a>(
        &'a self,
        loc: &'a BlockLocation,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, FsError>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(hit) = self.hot().get(&loc.block) {
                return Ok(hit.as_ref().clone());
            }
            let plain = tokio::time::timeout(self.read_timeout, self.fetch_remote(loc))
                .await
                .unwrap_or_else(|_| {
                    warn!(chunk = %loc.chunk, timeout = ?self.read_timeout, "no copy of a block could be read within [read] timeout");
                    Err(FsError::Unavailable {
                        chunk: Some(loc.chunk),
                        why: format!("no copy answered within [read] timeout ({:?})", self.read_timeout),
                    })
                })?;
            let plain = Arc::new(plain);
            self.hot().put(loc.block, plain.clone());
            Ok(plain.as_ref().clone())
        })
    }
}

impl Stores {
    /// A block's plain bytes from the stores: a replica, or the data shards
    /// (rebuilt from parity where one cannot be read).
    async fn fetch_remote(&self, loc: &BlockLocation) -> Result<Vec<u8>, FsError> {
        match loc.layout {
            ChunkLayout::Replicas => self.read_replica(loc).await,
            ChunkLayout::Ec { k, m, shard_len } => {
                let (sealed, from) = self
                    .read_shards(loc, k as usize, m as usize, shard_len)
                    .await?;
                self.key
                    .open(&sealed, &block_aad(loc.chunk, loc.offset))
                    .map_err(|e| {
                        warn!(chunk = %loc.chunk, from = %from, cause = %e, "a block failed verification");
                        FsError::Unavailable {
                            chunk: Some(loc.chunk),
                            why: format!("{from}: {e}"),
                        }
                    })
            }
        }
    }

    fn hot(
        &self,
    ) -> std::sync::MutexGuard<'_, lru::LruCache<cairn_metadata::BlockId, Arc<Vec<u8>>>> {
        self.hot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the blocks kept in memory (`cairn cache drop`).
    pub fn drop_hot(&self) {
        self.hot().clear();
    }

    /// `placements` with the stores that are online first.
    fn online_first(&self, placements: &[(u32, StoreId)]) -> Vec<(u32, StoreId)> {
        let views = self.views();
        let online = |id: StoreId| views.iter().any(|v| v.id == id && v.online);
        let mut order: Vec<(u32, StoreId)> =
            placements.iter().copied().filter(|p| online(p.1)).collect();
        order.extend(placements.iter().copied().filter(|p| !online(p.1)));
        order
    }

    /// A block's bytes from the first replica whose copy verifies.
    async fn read_replica(&self, loc: &BlockLocation) -> Result<Vec<u8>, FsError> {
        let key = ObjectKey::Chunk(loc.chunk).to_string();
        let aad = block_aad(loc.chunk, loc.offset);
        let mut why = String::from("no replica is recorded");
        for (_, store) in self.online_first(&loc.placements) {
            match self.get(store, &key, loc.offset, loc.stored_len).await {
                // A replica whose block does not verify is skipped for the next.
                Ok(sealed) => match self.key.open(&sealed, &aad) {
                    Ok(plain) => return Ok(plain),
                    Err(e) => {
                        warn!(store = %self.name(store), chunk = %loc.chunk, cause = %e, "a replica failed verification");
                        why = format!("{}: {e}", self.name(store));
                    }
                },
                Err(e) => {
                    warn!(store = %self.name(store), chunk = %loc.chunk, cause = %e, "a replica could not be read; trying the next");
                    why = format!("{}: {e}", self.name(store));
                }
            }
        }
        Err(FsError::Unavailable {
            chunk: Some(loc.chunk),
            why,
        })
    }

    /// A block's sealed bytes from the data shards that hold them; a piece
    /// whose shard cannot be read is rebuilt from the same range of `k`
    /// other shards.
    async fn read_shards(
        &self,
        loc: &BlockLocation,
        k: usize,
        m: usize,
        shard_len: u64,
    ) -> Result<(Vec<u8>, String), FsError> {
        let mut sealed = Vec::with_capacity(loc.stored_len as usize);
        let mut rebuilt = 0;
        for piece in ec::pieces(loc.offset, loc.stored_len, shard_len) {
            let holder = loc
                .placements
                .iter()
                .find(|(s, _)| *s as usize == piece.shard)
                .map(|&(_, store)| store);
            let direct = match holder {
                Some(store) if self.is_online(store) => self
                    .get(
                        store,
                        &ObjectKey::Shard {
                            chunk: loc.chunk,
                            shard: piece.shard as u32,
                        }
                        .to_string(),
                        piece.start,
                        piece.end - piece.start,
                    )
                    .await
                    .map_err(|e| format!("{}: {e}", self.name(store))),
                Some(store) => Err(format!("{} is offline", self.name(store))),
                None => Err("no store holds it".to_owned()),
            };
            match direct {
                Ok(bytes) => sealed.extend_from_slice(&bytes),
                Err(why) => {
                    let bytes = self.rebuild_piece(loc, k, m, piece).await.map_err(|e| {
                        FsError::Unavailable {
                            chunk: Some(loc.chunk),
                            why: format!("shard {} ({why}) cannot be rebuilt: {e}", piece.shard),
                        }
                    })?;
                    debug!(chunk = %loc.chunk, shard = piece.shard, why = %why, "read around a missing shard");
                    sealed.extend_from_slice(&bytes);
                    rebuilt += 1;
                }
            }
        }
        let from = if rebuilt > 0 {
            format!("ec {k}+{m}, {rebuilt} piece(s) rebuilt")
        } else {
            format!("ec {k}+{m}")
        };
        Ok((sealed, from))
    }

    /// Bytes `piece.start..piece.end` of shard `piece.shard`, rebuilt from
    /// that range of `k` other shards (online stores first).
    async fn rebuild_piece(
        &self,
        loc: &BlockLocation,
        k: usize,
        m: usize,
        piece: ec::Piece,
    ) -> Result<Vec<u8>, RebuildError> {
        let mut range: Vec<Option<Vec<u8>>> = vec![None; k + m];
        let mut have = 0;
        let mut failures = Vec::new();
        for (shard, store) in self.online_first(&loc.placements) {
            let shard = shard as usize;
            if shard == piece.shard || shard >= k + m || have == k {
                continue;
            }
            match self
                .get(
                    store,
                    &ObjectKey::Shard {
                        chunk: loc.chunk,
                        shard: shard as u32,
                    }
                    .to_string(),
                    piece.start,
                    piece.end - piece.start,
                )
                .await
            {
                Ok(bytes) => {
                    range[shard] = Some(bytes);
                    have += 1;
                }
                Err(e) => failures.push(format!("shard {shard} on {}: {e}", self.name(store))),
            }
        }
        match ec::rebuild(k, m, range) {
            Ok(mut all) => Ok(all.swap_remove(piece.shard)),
            Err(source) => Err(RebuildError { source, failures }),
        }
    }
}

/// Why a piece could not be rebuilt: the erasure code's refusal, and what
/// each shard read that failed said.
#[derive(Debug)]
struct RebuildError {
    source: ec::EcError,
    failures: Vec<String>,
}

impl std::fmt::Display for RebuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.source)?;
        if !self.failures.is_empty() {
            write!(f, " ({})", self.failures.join("; "))?;
        }
        Ok(())
    }
}

impl std::error::Error for RebuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
