//! The one typed name of every object cairn keeps on a chunk store. Keys
//! print ([`Display`](fmt::Display)) and parse ([`FromStr`]) byte for byte as
//! they always have, so existing stores keep reading; a string parses only
//! if it is exactly what its key prints. Only ids cross the wire: nothing
//! about files.
//!
//! ```text
//! c<chunk: 16 hex>                                            chunk (replicas)
//! c<chunk: 16 hex>.s<shard: 2+ digits>                        erasure-coded shard
//! m<generation: 16 hex>-s<part: 3+ digits>-<parts: 3+ digits> metadata snapshot part
//! m<generation: 16 hex>-c<sequence: 8+ hex>                   metadata changes, from 1
//! ```
//! As strings, backup keys sort by generation, then kind, then part or sequence.

use std::fmt;
use std::str::FromStr;

use cairn_metadata::{object_name, ChunkId, ChunkLayout};

/// An object on a chunk store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKey {
    /// A whole chunk (one replica).
    Chunk(ChunkId),
    /// Shard `shard` of an erasure-coded chunk.
    Shard { chunk: ChunkId, shard: u32 },
    /// A metadata backup object (`ship.rs`).
    Backup(BackupObject),
}

/// A metadata backup object: a snapshot part or a changeset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackupObject {
    Part {
        generation: u64,
        part: usize,
        parts: usize,
    },
    Changes {
        generation: u64,
        seq: u64,
    },
}

impl BackupObject {
    pub fn generation(&self) -> u64 {
        match *self {
            BackupObject::Part { generation, .. } | BackupObject::Changes { generation, .. } => {
                generation
            }
        }
    }
}

/// A string that is no object key of cairn's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key:?} is not a cairn object key")]
pub struct NotAKey {
    pub key: String,
}

impl ObjectKey {
    /// The object holding placement `shard` of a chunk in `layout`.
    pub fn of(chunk: ChunkId, layout: ChunkLayout, shard: u32) -> ObjectKey {
        match layout {
            ChunkLayout::Replicas => ObjectKey::Chunk(chunk),
            ChunkLayout::Ec { .. } => ObjectKey::Shard { chunk, shard },
        }
    }

    /// Snapshot part `part` of `parts` of a metadata generation.
    pub fn snapshot(generation: u64, part: usize, parts: usize) -> ObjectKey {
        ObjectKey::Backup(BackupObject::Part {
            generation,
            part,
            parts,
        })
    }

    /// Changeset `seq` of a metadata generation.
    pub fn changes(generation: u64, seq: u64) -> ObjectKey {
        ObjectKey::Backup(BackupObject::Changes { generation, seq })
    }

    /// The chunk whose bytes the object holds (a chunk or one of its shards).
    pub fn chunk(&self) -> Option<ChunkId> {
        match *self {
            ObjectKey::Chunk(chunk) | ObjectKey::Shard { chunk, .. } => Some(chunk),
            ObjectKey::Backup(_) => None,
        }
    }

    /// The metadata backup object this key names.
    pub fn backup(&self) -> Option<BackupObject> {
        match *self {
            ObjectKey::Backup(b) => Some(b),
            ObjectKey::Chunk(_) | ObjectKey::Shard { .. } => None,
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ObjectKey::Chunk(chunk) => f.write_str(&object_name(chunk, None)),
            ObjectKey::Shard { chunk, shard } => f.write_str(&object_name(chunk, Some(shard))),
            ObjectKey::Backup(BackupObject::Part {
                generation,
                part,
                parts,
            }) => write!(f, "m{generation:016x}-s{part:03}-{parts:03}"),
            ObjectKey::Backup(BackupObject::Changes { generation, seq }) => {
                write!(f, "m{generation:016x}-c{seq:08x}")
            }
        }
    }
}

/// Parses the shape of a key, leniently about digit counts ([`FromStr`]
/// then insists on the exact printed form).
fn parse_shape(key: &str) -> Option<ObjectKey> {
    if let Some(rest) = key.strip_prefix('c') {
        let (hex, shard) = match rest.split_once(".s") {
            Some((hex, shard)) => (hex, Some(shard)),
            None => (rest, None),
        };
        let chunk = ChunkId(u64::from_str_radix(hex, 16).ok()?);
        return Some(match shard {
            None => ObjectKey::Chunk(chunk),
            Some(s) => ObjectKey::Shard {
                chunk,
                shard: s.parse().ok()?,
            },
        });
    }
    let rest = key.strip_prefix('m')?;
    let (generation, tail) = rest.split_once('-')?;
    let generation = u64::from_str_radix(generation, 16).ok()?;
    if let Some(part) = tail.strip_prefix('s') {
        let (part, parts) = part.split_once('-')?;
        return Some(ObjectKey::snapshot(
            generation,
            part.parse().ok()?,
            parts.parse().ok()?,
        ));
    }
    let seq = u64::from_str_radix(tail.strip_prefix('c')?, 16).ok()?;
    Some(ObjectKey::changes(generation, seq))
}

impl FromStr for ObjectKey {
    type Err = NotAKey;

    fn from_str(key: &str) -> Result<ObjectKey, NotAKey> {
        parse_shape(key)
            .filter(|k| k.to_string() == key)
            .ok_or_else(|| NotAKey {
                key: key.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_as_they_always_have() {
        let cases = [
            (ObjectKey::Chunk(ChunkId(0x2a)), "c000000000000002a"),
            (
                ObjectKey::Shard {
                    chunk: ChunkId(0x2a),
                    shard: 3,
                },
                "c000000000000002a.s03",
            ),
            (
                ObjectKey::Shard {
                    chunk: ChunkId(u64::MAX),
                    shard: 120,
                },
                "cffffffffffffffff.s120",
            ),
            (ObjectKey::snapshot(7, 1, 12), "m0000000000000007-s001-012"),
            (ObjectKey::changes(7, 0x1f), "m0000000000000007-c0000001f"),
            (
                ObjectKey::changes(1, 0x1_0000_0000),
                "m0000000000000001-c100000000",
            ),
        ];
        for (key, text) in cases {
            assert_eq!(key.to_string(), text);
            assert_eq!(text.parse::<ObjectKey>(), Ok(key), "{text}");
        }
    }

    #[test]
    fn layout_picks_chunk_or_shard() {
        let c = ChunkId(9);
        assert_eq!(
            ObjectKey::of(c, ChunkLayout::Replicas, 2),
            ObjectKey::Chunk(c)
        );
        let ec = ChunkLayout::Ec {
            k: 4,
            m: 1,
            shard_len: 10,
        };
        assert_eq!(
            ObjectKey::of(c, ec, 2),
            ObjectKey::Shard { chunk: c, shard: 2 }
        );
        assert_eq!(ObjectKey::of(c, ec, 2).chunk(), Some(c));
        assert_eq!(ObjectKey::snapshot(1, 0, 1).chunk(), None);
    }

    #[test]
    fn other_strings_are_no_keys() {
        for text in [
            "",
            "c",
            "c2a",
            "c000000000000002a.s3",
            "c000000000000002a.x03",
            "C000000000000002a",
            "m0000000000000007-s1-12",
            "m0000000000000007-x001",
            "m7-c00000001",
            "cache.marker",
            "c000000000000002a.s03junk",
        ] {
            assert!(text.parse::<ObjectKey>().is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn backup_generation() {
        let k = ObjectKey::changes(5, 1);
        assert_eq!(k.backup().map(|b| b.generation()), Some(5));
        assert_eq!(ObjectKey::Chunk(ChunkId(5)).backup(), None);
    }
}
