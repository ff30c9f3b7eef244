//! Reading drained blocks back for the core ([`BlockSource`]): whole
//! blocks, kept in a small cache of hot ones, or any plain range of one,
//! for which only the frames that cover it leave the stores (format v2, see
//! `frames.rs`; a v1 block is read whole). Replicas are read hedged and
//! spread by load (`hedge.rs`); an erasure-coded chunk from the data shards
//! that hold the range, a piece whose shard cannot be read rebuilt from the
//! same range of `k` others. Every byte is verified before it is returned;
//! the frames of recent ranged reads are kept too, so small reads in a row
//! fetch each frame once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cairn_metadata::{BlockLocation, ChunkLayout, StoreId};
use tracing::{debug, warn};

use super::crypto::CryptoError;
use super::ec;
use super::frames::{self, Format, Span};
use super::hedge::all;
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
        Box::pin(async move { Ok(self.whole(loc).await?.as_ref().clone()) })
    }

    fn fetch_range<'a>(
        &'a self,
        loc: &'a BlockLocation,
        from: u64,
        len: u64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, FsError>> + Send + 'a>> {
        Box::pin(async move {
            let span = frames::span(loc.plain_len, from, len);
            let hit = self.hot().get(&loc.block).cloned();
            let framed = frames::format(loc.stored_len, loc.plain_len)
                .map_err(|e| unreadable(loc, "metadata", &e))?
                == Format::Framed;
            if hit.is_some() || !framed || span.count == frames::count(loc.plain_len) {
                let plain = match hit {
                    Some(p) => p,
                    None => self.whole(loc).await?,
                };
                let a = from.min(plain.len() as u64) as usize;
                let b = from.saturating_add(len).min(plain.len() as u64) as usize;
                return Ok(plain[a..b].to_vec());
            }
            if span.count == 0 {
                return Ok(Vec::new());
            }
            let plain = match self.recent_frames(loc, span) {
                Some(plain) => plain,
                None => {
                    let plain = self.timed(loc, self.fetch_frames(loc, span)).await?;
                    self.keep_frames(loc, span, &plain);
                    plain
                }
            };
            Ok(plain[span.skip as usize..(span.skip + span.take) as usize].to_vec())
        })
    }
}

/// A block read that fetched bytes which do not open.
fn unreadable(loc: &BlockLocation, from: &str, e: &CryptoError) -> FsError {
    warn!(chunk = %loc.chunk, from = %from, cause = %e, "a block failed verification");
    FsError::Unavailable {
        chunk: Some(loc.chunk),
        why: format!("{from}: {e}"),
    }
}

impl Stores {
    /// A whole block's plain bytes, from the hot cache or the stores.
    async fn whole(&self, loc: &BlockLocation) -> Result<Arc<Vec<u8>>, FsError> {
        if let Some(hit) = self.hot().get(&loc.block) {
            return Ok(hit.clone());
        }
        let plain = Arc::new(self.timed(loc, self.fetch_remote(loc)).await?);
        self.hot().put(loc.block, plain.clone());
        Ok(plain)
    }

    /// `read` unless it takes longer than `[read] timeout`.
    async fn timed(
        &self,
        loc: &BlockLocation,
        read: impl Future<Output = Result<Vec<u8>, FsError>>,
    ) -> Result<Vec<u8>, FsError> {
        tokio::time::timeout(self.read_timeout, read)
            .await
            .unwrap_or_else(|_| {
                warn!(chunk = %loc.chunk, timeout = ?self.read_timeout, "no copy of a block could be read within [read] timeout");
                Err(FsError::Unavailable {
                    chunk: Some(loc.chunk),
                    why: format!("no copy answered within [read] timeout ({:?})", self.read_timeout),
                })
            })
    }

    /// A whole block's plain bytes from the stores.
    async fn fetch_remote(&self, loc: &BlockLocation) -> Result<Vec<u8>, FsError> {
        let format = frames::format(loc.stored_len, loc.plain_len)
            .map_err(|e| unreadable(loc, "metadata", &e))?;
        if format == Format::Framed {
            return self
                .fetch_frames(loc, frames::span(loc.plain_len, 0, loc.plain_len))
                .await;
        }
        let open = |sealed: &[u8]| {
            frames::open_block(&self.key, sealed, loc.chunk, loc.offset, loc.plain_len)
        };
        match loc.layout {
            ChunkLayout::Replicas => {
                let order = self.replica_order(loc, loc.stored_len);
                self.hedged(loc, order, loc.offset, loc.stored_len, open)
                    .await
            }
            ChunkLayout::Ec { k, m, shard_len } => {
                let code = (k as usize, m as usize, shard_len);
                let (sealed, from) = self
                    .read_shards(loc, code, loc.offset, loc.stored_len)
                    .await?;
                open(&sealed).map_err(|e| unreadable(loc, &from, &e))
            }
        }
    }

    /// The plain bytes of frames `span` of a v2 block (from its first frame).
    async fn fetch_frames(&self, loc: &BlockLocation, span: Span) -> Result<Vec<u8>, FsError> {
        match loc.layout {
            ChunkLayout::Replicas => self.replica_frames(loc, span).await,
            ChunkLayout::Ec { k, m, shard_len } => {
                let code = (k as usize, m as usize, shard_len);
                let start = loc.offset + span.start;
                let (sealed, from) = self.read_shards(loc, code, start, span.len).await?;
                frames::open(
                    &self.key,
                    &sealed,
                    loc.chunk,
                    loc.offset,
                    loc.plain_len,
                    span.first,
                    span.count,
                )
                .map_err(|e| unreadable(loc, &from, &e))
            }
        }
    }

    fn hot(
        &self,
    ) -> std::sync::MutexGuard<'_, lru::LruCache<cairn_metadata::BlockId, Arc<Vec<u8>>>> {
        self.hot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the blocks and frames kept in memory (`cairn cache drop`).
    pub fn drop_hot(&self) {
        self.hot().clear();
        self.frames_kept().clear();
    }

    fn frames_kept(&self) -> std::sync::MutexGuard<'_, super::pool::KeptFrames> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The plain frames of `span`, if every one was opened lately.
    fn recent_frames(&self, loc: &BlockLocation, span: Span) -> Option<Vec<u8>> {
        let mut kept = self.frames_kept();
        let mut plain = Vec::with_capacity((span.count * frames::FRAME) as usize);
        for i in span.first..span.first + span.count {
            plain.extend_from_slice(kept.get(&(loc.block, i))?);
        }
        Some(plain)
    }

    /// Keeps the frames of `span` just opened (`plain`) for the next reads.
    fn keep_frames(&self, loc: &BlockLocation, span: Span, plain: &[u8]) {
        let mut kept = self.frames_kept();
        for (n, frame) in plain.chunks(frames::FRAME as usize).enumerate() {
            kept.put((loc.block, span.first + n as u64), Arc::new(frame.to_vec()));
        }
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

    /// Sealed bytes `start..start + len` of an erasure-coded chunk body,
    /// from the data shards that hold them, all pieces at once; a piece
    /// whose shard cannot be read is rebuilt from the same range of `k`
    /// other shards. Also says where the bytes came from, for errors.
    async fn read_shards(
        &self,
        loc: &BlockLocation,
        (k, m, shard_len): (usize, usize, u64),
        start: u64,
        len: u64,
    ) -> Result<(Vec<u8>, String), FsError> {
        let reads: Vec<_> = ec::pieces(start, len, shard_len)
            .into_iter()
            .map(|piece| Box::pin(self.read_piece(loc, k, m, piece)))
            .collect();
        let mut sealed = Vec::with_capacity(len as usize);
        let mut rebuilt = 0;
        for piece in all(reads).await {
            let (bytes, was_rebuilt) = piece?;
            sealed.extend_from_slice(&bytes);
            rebuilt += usize::from(was_rebuilt);
        }
        let from = if rebuilt > 0 {
            format!("ec {k}+{m}, {rebuilt} piece(s) rebuilt")
        } else {
            format!("ec {k}+{m}")
        };
        Ok((sealed, from))
    }

    /// One piece of a data shard, read or rebuilt (then `true`).
    async fn read_piece(
        &self,
        loc: &BlockLocation,
        k: usize,
        m: usize,
        piece: ec::Piece,
    ) -> Result<(Vec<u8>, bool), FsError> {
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
            Ok(bytes) => Ok((bytes, false)),
            Err(why) => {
                let bytes = self.rebuild_piece(loc, k, m, piece).await.map_err(|e| {
                    FsError::Unavailable {
                        chunk: Some(loc.chunk),
                        why: format!("shard {} ({why}) cannot be rebuilt: {e}", piece.shard),
                    }
                })?;
                debug!(chunk = %loc.chunk, shard = piece.shard, why = %why, "read around a missing shard");
                Ok((bytes, true))
            }
        }
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
