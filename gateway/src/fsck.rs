//! `cairn fsck`: checks the metadata (entries, link counts, parents) and how
//! the ingest cache lines up with it. Safe to run while the gateway runs
//! (SQLite WAL readers see one committed state).

use std::collections::HashMap;

use cairn_metadata::{Inconsistency, InodeId, Metadata};

use crate::cache::IngestCache;

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
    report.cache_orphans.sort();
    report.cache_tails.sort();
    Ok(report)
}
