//! `cairn fsck`: checks the metadata (entries, link counts, parents) and how
//! the ingest cache lines up with it. Safe to run while the gateway runs
//! (SQLite WAL readers see one committed state). `--deep` ([`deep_check`])
//! checks the metadata against the stores, through the running gateway.

use std::collections::HashMap;

use cairn_metadata::{ChunkLayout, Inconsistency, InodeId, Metadata};

use crate::core::cache::IngestCache;
use crate::core::{Fs, FsError};
use crate::store::{ObjectKey, Stores};
use serde::{Deserialize, Serialize};

/// One copy or shard that `fsck --deep` found bad (or could not check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepProblem {
    pub chunk: u64,
    pub shard: u32,
    pub store: String,
    pub store_id: u64,
    pub key: String,
    pub problem: String,
    /// The store was offline, so the object was not checked (and is not
    /// handed to the repair).
    #[serde(default)]
    pub offline: bool,
}

/// What fsck found.
#[derive(Debug, Default)]
pub struct Report {
    pub inodes: u64,
    pub problems: Vec<Inconsistency>,
    /// Cache files longer than their file (bytes of writes never
    /// acknowledged); trimmed at the next gateway start.
    pub cache_tails: Vec<InodeId>,
    /// Cache files of deleted inodes (or of files whose bytes are inline);
    /// removed at the next gateway start.
    pub cache_orphans: Vec<InodeId>,
    /// Files with ranges lost with a cache that is gone (reads of them
    /// fail), by path (`None`: no entry names the inode).
    pub lost: Vec<(InodeId, Option<String>)>,
}

impl Report {
    pub fn consistent(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks `meta` and how `cache` lines up with it; changes nothing.
pub fn check(meta: &Metadata, cache: &IngestCache) -> Result<Report, crate::core::FsError> {
    let problems = meta.check()?;
    let (inodes, _) = meta.read(|v| v.usage())?;
    let mut sizes: HashMap<InodeId, u64> = meta.read(|v| v.file_sizes())?.into_iter().collect();
    // A cache file beside inline bytes is a leftover of an unfinished spill.
    for id in meta.read(|v| v.inline_inodes())? {
        sizes.remove(&id);
    }
    let mut report = Report {
        inodes,
        problems,
        ..Report::default()
    };
    for (id, len) in cache.lengths()? {
        match sizes.get(&id) {
            None => report.cache_orphans.push(id),
            Some(&size) if len > size => report.cache_tails.push(id),
            Some(_) => {}
        }
    }
    for id in meta.read(|v| v.lost_inodes())? {
        let path = meta.read(|v| v.path_of(id))?;
        report.lost.push((id, path));
    }
    report.cache_orphans.sort();
    report.cache_tails.sort();
    Ok(report)
}

/// `cairn fsck --deep`: every placement's object is read whole by its store
/// (which checks every block's crc) and its crc32c compared with the one the
/// metadata recorded. Returns (placements checked, problems found).
pub async fn deep_check(fs: &Fs, stores: &Stores) -> Result<(u64, Vec<DeepProblem>), FsError> {
    let checks = fs.placement_checks().await?;
    let mut problems = Vec::new();
    let mut checked = 0;
    for pc in checks {
        let key = ObjectKey::of(pc.chunk, pc.layout, pc.shard).to_string();
        let name = stores.name(pc.store);
        let problem = if !stores.is_online(pc.store) {
            Some("its store is offline: not checked".to_owned())
        } else {
            checked += 1;
            let want_len = match pc.layout {
                ChunkLayout::Replicas => pc.size,
                ChunkLayout::Ec { shard_len, .. } => shard_len,
            };
            match stores.get(pc.store, &key, 0, 0).await {
                Err(e) if e.status() == cairn_chunkstore::Status::NotFound => {
                    Some("missing".to_owned())
                }
                Err(e) if e.status() == cairn_chunkstore::Status::Corrupt => {
                    Some("corrupt: the store's crc check failed (quarantined)".to_owned())
                }
                Err(e) => Some(format!("unreadable: {e}")),
                Ok(_) => match stores.stat(pc.store, &key).await {
                    Err(e) => Some(format!("unreadable: {e}")),
                    Ok(st) if st.len != want_len => {
                        Some(format!("{} bytes, the metadata expects {want_len}", st.len))
                    }
                    Ok(st) if !pc.checksum.is_empty() && pc.checksum != st.crc.to_le_bytes() => {
                        Some(
                            "its crc32c differs from the one recorded when it was stored"
                                .to_owned(),
                        )
                    }
                    Ok(_) => None,
                },
            }
        };
        if let Some(problem) = problem {
            problems.push(DeepProblem {
                chunk: pc.chunk.0,
                shard: pc.shard,
                store: name,
                store_id: pc.store.0,
                key,
                problem,
                offline: !stores.is_online(pc.store),
            });
        }
    }
    Ok((checked, problems))
}
