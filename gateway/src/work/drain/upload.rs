//! One chunk's way to the stores: seal its blocks, lay the body out as the
//! class says (replicas or erasure shards), put every object, and only then
//! attach the blocks to their slots in one metadata commit. A failure
//! forgets the chunk and trashes whatever reached a store.

use std::sync::Arc;
use std::time::Instant;

use cairn_metadata::{ChunkId, ChunkLayout, ClassId, DirtySlot, NewBlock, StoreId};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::class::{ClassSpec, Layout};
use crate::core::{Fs, FsError};
use crate::error::Error;
use crate::store::frames;
use crate::store::placement::{place, PlacementHealth};
use crate::store::{ObjectKey, Stores};

/// One chunk on its way to the stores.
pub(super) struct Upload {
    pub(super) fs: Arc<Fs>,
    pub(super) stores: Arc<Stores>,
    pub(super) class: ClassId,
    pub(super) name: String,
    pub(super) spec: Arc<ClassSpec>,
    pub(super) items: Vec<(DirtySlot, Vec<u8>)>,
}

impl Upload {
    pub(super) async fn run(self) -> Result<usize, Error> {
        let Upload {
            fs,
            stores,
            class,
            name,
            spec,
            items,
        } = self;
        let estimate: u64 = items
            .iter()
            .map(|(_, b)| frames::sealed_len(b.len() as u64))
            .sum();
        let chunk = fs.new_chunk(class, estimate).await?;
        let mut body = Vec::with_capacity(estimate as usize);
        let mut blocks = Vec::with_capacity(items.len());
        for (slot, plain) in &items {
            let offset = body.len() as u64;
            let sealed = frames::seal(stores.key(), plain, chunk, offset).map_err(|e| {
                FsError::Invalid(if matches!(e, crate::store::crypto::CryptoError::Random) {
                    "random"
                } else {
                    "seal"
                })
            })?;
            blocks.push(NewBlock {
                inode: slot.inode,
                index: slot.index,
                version: slot.version,
                offset,
                stored_len: sealed.len() as u64,
                plain_len: plain.len() as u64,
                checksum: Vec::new(),
            });
            body.extend_from_slice(&sealed);
        }
        drop(items);
        let bytes = body.len();
        let started = Instant::now();
        let stored = match lay_out(&spec, &name, &stores, chunk, body).await {
            Ok(laid) => put_objects(&stores, chunk, &laid).await.map(|()| laid),
            Err(e) => Err((e, Vec::new())),
        };
        let laid = match stored {
            Ok(laid) => laid,
            Err((e, tried)) => {
                // Nothing points at the chunk: forget it, and trash whatever
                // reached a store.
                fs.forget_chunk(chunk, tried).await?;
                return Err(e);
            }
        };
        // A write that raced the snapshot keeps its slot dirty: give its
        // block a version that cannot match.
        for b in &mut blocks {
            if fs.writes_in_flight(b.inode) {
                b.version = 0;
            }
        }
        let placements = laid.placements();
        let checksums = laid.checksums();
        let (layout, copies) = (laid.layout, placements.len());
        let attached = fs
            .attach_chunk(chunk, layout, placements, blocks, checksums)
            .await?;
        debug!(chunk = %chunk, bytes, ?layout, copies, attached, elapsed = ?started.elapsed(), "chunk stored");
        Ok(attached)
    }
}

/// A chunk body cut for its class: the objects to put and where.
pub(super) struct Laid {
    pub(super) layout: ChunkLayout,
    /// `(shard, store, bytes)`: for replicas every entry shares the body.
    objects: Vec<(u32, StoreId, Arc<Vec<u8>>)>,
}

impl Laid {
    pub(super) fn placements(&self) -> Vec<(u32, StoreId)> {
        self.objects.iter().map(|(i, s, _)| (*i, *s)).collect()
    }

    /// `(shard, store, crc32c LE)` of every object, for the metadata.
    pub(super) fn checksums(&self) -> Vec<(u32, StoreId, Vec<u8>)> {
        self.objects
            .iter()
            .map(|(i, s, bytes)| (*i, *s, crc32c::crc32c(bytes).to_le_bytes().to_vec()))
            .collect()
    }
}

/// Cuts a chunk body as `spec` says (whole replicas, or `k + m` erasure
/// shards) and places the pieces. Fails when too few can be placed for the
/// data to be readable: no store for a replica, fewer than `k` for shards.
pub(super) async fn lay_out(
    spec: &Arc<ClassSpec>,
    name: &str,
    stores: &Stores,
    chunk: ChunkId,
    body: Vec<u8>,
) -> Result<Laid, Error> {
    let (layout, parts, need) = match spec.layout {
        Layout::Replicas { .. } => (ChunkLayout::Replicas, vec![Arc::new(body)], 1),
        Layout::ErasureCoded { k, m } => {
            let (k, m) = (usize::from(k), usize::from(m));
            let shards = tokio::task::spawn_blocking(move || crate::store::ec::encode(&body, k, m))
                .await
                .map_err(FsError::from)?
                .map_err(|source| Error::Encode { chunk, source })?;
            let layout = ChunkLayout::Ec {
                k: k as u32,
                m: m as u32,
                shard_len: shards[0].len() as u64,
            };
            (layout, shards.into_iter().map(Arc::new).collect(), k)
        }
    };
    let mut placement = place(spec, &stores.placeable(), parts[0].len() as u64, &[]);
    if matches!(layout, ChunkLayout::Ec { .. }) && spec.labels.len() == 1 {
        // One rule for all shards: rotate which store gets which shard from
        // chunk to chunk, so parity (never read while all is well) and the
        // data shards (read every time) spread over all the stores.
        let n = placement.targets.len();
        placement.targets.rotate_left((chunk.0 % n as u64) as usize);
    }
    let placed = placement.targets.iter().flatten().count();
    if let Some(why) = crate::outlook::refusal(spec, &placement.health) {
        return Err(Error::NoTarget {
            class: name.to_owned(),
            why: format!("{why}; {}", crate::outlook::PINNED),
        });
    }
    if let PlacementHealth::Undergoal {
        placed,
        wanted,
        why,
    } = &placement.health
    {
        warn!(class = name, placed, wanted, why = %why, "chunk stored undergoal");
    }
    debug_assert!(placed >= need);
    let objects = placement
        .targets
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let part = parts.get(i).unwrap_or(&parts[0]).clone();
            t.map(|store| (i as u32, store, part))
        })
        .collect();
    Ok(Laid { layout, objects })
}

/// Puts every object of a laid-out chunk, all at once. On failure, returns
/// the error and every `(store, key)` tried, for the trash.
pub(super) async fn put_objects(
    stores: &Arc<Stores>,
    chunk: ChunkId,
    laid: &Laid,
) -> Result<(), (Error, Vec<(StoreId, String)>)> {
    let tried: Vec<(StoreId, String)> = laid
        .objects
        .iter()
        .map(|(shard, store, _)| {
            (
                *store,
                ObjectKey::of(chunk, laid.layout, *shard).to_string(),
            )
        })
        .collect();
    let mut puts = JoinSet::new();
    for ((_, store, bytes), (_, key)) in laid.objects.iter().zip(&tried) {
        let (stores, store, key, bytes) = (stores.clone(), *store, key.clone(), bytes.clone());
        puts.spawn(async move {
            let done = stores.put(store, &key, bytes).await;
            (store, key, done)
        });
    }
    while let Some(done) = puts.join_next().await {
        let failure = match done {
            Ok((_, _, Ok(()))) => continue,
            Ok((store, key, Err(source))) => Error::Store {
                store: stores.name(store),
                op: "put",
                key,
                source: Box::new(source),
            },
            Err(e) => Error::Fs(FsError::from(e)),
        };
        return Err((failure, tried));
    }
    Ok(())
}
