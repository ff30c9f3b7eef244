//! The archive transition: replica chunks of a class with an archive rule
//! are re-laid, one at a time and paced by `archive_bandwidth`, as
//! erasure-coded shards; until the switching commit the replicas are the
//! chunk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_metadata::{ChunkId, ChunkLayout, StoreId, Timestamp};
use tracing::info;

use super::upload::{lay_out, put_objects};
use super::Drainer;
use crate::class::ClassSpec;
use crate::error::Error;
use crate::store::ObjectKey;

impl Drainer {
    /// How long to wait after re-laying `bytes`, to keep the archive
    /// transition under `archive_bandwidth`.
    pub(super) fn archive_pause(&self, bytes: u64) -> Duration {
        let rate = self.cfg.archive_bandwidth.bytes();
        match (bytes, rate) {
            (0, _) => Duration::from_secs(1),
            (_, 0) => Duration::ZERO,
            (b, r) => Duration::from_secs_f64(b as f64 / r as f64),
        }
    }

    /// The archive transition, one chunk per call: the oldest replica chunk
    /// of a class with an archive rule whose age passed it is re-laid as
    /// erasure-coded shards. Returns the bytes read (0: nothing to do).
    pub async fn archive_one(&self) -> Result<u64, Error> {
        let catalog = self.fs.classes().snapshot()?;
        for class in catalog.list() {
            // A class that cannot be read is left as it is (see `catalog`).
            let (Ok(spec), Some(archived)) = (&class.spec, class.archived()) else {
                continue;
            };
            let Some(rule) = &spec.archive else {
                continue;
            };
            let age = i64::try_from(rule.after.get().as_nanos()).unwrap_or(i64::MAX);
            let before = Timestamp(Timestamp::now().0.saturating_sub(age));
            let due = self.fs.replica_chunks_before(class.id, before, 1).await?;
            if let Some(&chunk) = due.first() {
                return self.relayout(chunk, &class.name, archived.clone()).await;
            }
        }
        Ok(0)
    }

    /// Re-lays one replica chunk as `spec` says: reads its body from a
    /// replica, encodes and stores the shards, then one metadata commit
    /// switches the chunk to them and puts the old replicas in the trash.
    /// Until that commit the replicas are the chunk; if it never comes, the
    /// new shards are trashed instead.
    async fn relayout(
        &self,
        chunk: ChunkId,
        name: &str,
        spec: Arc<ClassSpec>,
    ) -> Result<u64, Error> {
        let Some(info) = self.fs.chunk(chunk).await? else {
            return Ok(0);
        };
        if info.layout != ChunkLayout::Replicas {
            return Ok(0);
        }
        let key = ObjectKey::Chunk(chunk).to_string();
        let mut body = None;
        let mut why = String::from("no replica is recorded");
        for (_, store) in &info.placements {
            match self.stores.get(*store, &key, 0, info.size).await {
                Ok(bytes) => {
                    body = Some(bytes);
                    break;
                }
                Err(e) => why = format!("{}: {e}", self.stores.name(*store)),
            }
        }
        let body = body.ok_or(Error::Unreadable { chunk, why })?;
        let started = Instant::now();
        let laid = lay_out(&spec, name, &self.stores, chunk, body).await?;
        if let Err((e, tried)) = put_objects(&self.stores, chunk, &laid).await {
            self.fs.trash(tried).await?;
            return Err(e);
        }
        let placements = laid.placements();
        let new: Vec<(StoreId, String)> = placements
            .iter()
            .map(|&(shard, store)| (store, ObjectKey::of(chunk, laid.layout, shard).to_string()))
            .collect();
        let old: Vec<(StoreId, String)> = info
            .placements
            .iter()
            .map(|&(_, store)| (store, key.clone()))
            .collect();
        let layout = laid.layout;
        let checksums = laid.checksums();
        let switched = self
            .fs
            .relayout_chunk(chunk, layout, placements, old, new, checksums)
            .await?;
        if switched {
            info!(chunk = %chunk, class = name, bytes = info.size, ?layout, elapsed = ?started.elapsed(), "archived a chunk as erasure-coded shards");
        }
        Ok(info.size)
    }
}
