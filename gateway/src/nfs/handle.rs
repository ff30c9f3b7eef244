//! NFSv3 file handles. Layout (20 bytes, little-endian):
//!
//! | offset | size | field                                   |
//! |--------|------|-----------------------------------------|
//! | 0      | 2    | magic `b"cN"`                           |
//! | 2      | 1    | version, 1                              |
//! | 3      | 1    | reserved, 0                             |
//! | 4      | 8    | inode id                                |
//! | 12     | 8    | inode generation (random at creation)   |
//!
//! Nothing in a handle depends on the gateway's process, so handles stay
//! valid across restarts; a deleted inode (or one whose generation differs)
//! answers STALE, anything that is not a cairn handle BADHANDLE.

use cairn_metadata::{Inode, InodeId};
use nfs3_types::nfs3::nfs_fh3;
use nfs3_types::xdr_codec::Opaque;

const MAGIC: [u8; 2] = *b"cN";
const VERSION: u8 = 1;
pub const LEN: usize = 20;

pub fn encode(inode: &Inode) -> nfs_fh3 {
    let mut b = Vec::with_capacity(LEN);
    b.extend_from_slice(&MAGIC);
    b.push(VERSION);
    b.push(0);
    b.extend_from_slice(&inode.id.0.to_le_bytes());
    b.extend_from_slice(&inode.generation.to_le_bytes());
    nfs_fh3 {
        data: Opaque::owned(b),
    }
}

/// The inode id and generation a handle names, or `None` if it is not ours.
pub fn decode(fh: &nfs_fh3) -> Option<(InodeId, u64)> {
    let b: &[u8] = fh.data.as_ref();
    if b.len() != LEN || b[0..2] != MAGIC || b[2] != VERSION || b[3] != 0 {
        return None;
    }
    let id = u64::from_le_bytes(b[4..12].try_into().ok()?);
    let generation = u64::from_le_bytes(b[12..20].try_into().ok()?);
    Some((InodeId(id), generation))
}
