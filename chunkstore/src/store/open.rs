//! The shards read lately, kept open with their decoded headers, so a small
//! ranged get costs one positioned read of its check blocks: no path
//! lookup, no open and no header read (each a disk read once the kernel's
//! caches have let them go). A shard file is never changed in place by the
//! store: a put replaces it by a rename, a delete or a quarantine removes
//! it, and each of them forgets the key here first thing after.

use std::fs::File;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::layout::ShardHeader;

/// Shards kept open at most (well within a process's default 1024 files).
const OPEN_SHARDS: usize = 128;

/// An open shard and its header.
#[derive(Debug)]
pub(crate) struct OpenShard {
    pub file: File,
    pub header: ShardHeader,
}

/// The open shards, least recently read first to go.
#[derive(Debug)]
pub(crate) struct OpenShards(Mutex<Table>);

#[derive(Debug)]
struct Table {
    shards: lru::LruCache<String, Arc<OpenShard>>,
    /// Counts forgets: a shard opened before one may be the replaced file,
    /// so it is not kept (see [`OpenShards::keep`]).
    epoch: u64,
}

impl Default for OpenShards {
    fn default() -> Self {
        OpenShards(Mutex::new(Table {
            shards: lru::LruCache::new(NonZeroUsize::new(OPEN_SHARDS).expect("non-zero")),
            epoch: 0,
        }))
    }
}

impl OpenShards {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Arc<OpenShard>> {
        self.lock().shards.get(key).cloned()
    }

    /// Call before opening a shard to keep; pass the result to `keep`.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Keeps `shard`, opened after [`OpenShards::epoch`] said `epoch`,
    /// unless a key was forgotten since: then it may be a file a put has
    /// just replaced, and is used for this read only.
    pub fn keep(&self, key: &str, shard: Arc<OpenShard>, epoch: u64) {
        let mut table = self.lock();
        if table.epoch == epoch {
            table.shards.put(key.to_owned(), shard);
        }
    }

    /// The key's file was replaced or removed.
    pub fn forget(&self, key: &str) {
        let mut table = self.lock();
        table.epoch += 1;
        table.shards.pop(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard() -> Arc<OpenShard> {
        Arc::new(OpenShard {
            file: tempfile::tempfile().unwrap(),
            header: ShardHeader {
                len: 0,
                crc: 0,
                check_block: crate::layout::MIN_CHECK_BLOCK,
                block_crcs: vec![],
            },
        })
    }

    #[test]
    fn a_shard_opened_before_a_forget_is_not_kept() {
        let open = OpenShards::default();
        let before = open.epoch();
        open.forget("k");
        open.keep("k", shard(), before);
        assert!(open.get("k").is_none(), "a possibly replaced file was kept");
        open.keep("k", shard(), open.epoch());
        assert!(open.get("k").is_some());
        open.forget("k");
        assert!(open.get("k").is_none());
    }
}
