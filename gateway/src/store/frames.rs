//! Block format v2: a sealed block is a run of self-contained frames, so any
//! plain range of it is one contiguous range of stored bytes, fetched with
//! one ranged get and opened without the rest of the block.
//!
//! Layout: plain bytes are cut into frames of [`FRAME`] bytes (the last one
//! shorter; an empty block is one empty frame). Frame `i` is stored at
//! `i × (FRAME + 28)` as `nonce (12) ‖ ciphertext ‖ tag (16)` (AES-256-GCM),
//! so a block of `P` plain bytes in `n = max(1, ⌈P / FRAME⌉)` frames stores
//! `P + 28·n` bytes. A 4 KiB read touches at most two frames: at most
//! 2 × 16,412 bytes leave a store for it.
//!
//! Nonces: each block draws a fresh random 96-bit base; frame `i` uses
//! `base + i` (mod 2^96), so no nonce repeats within a block. Two blocks
//! collide only if their nonce runs overlap: over `B` blocks of at most
//! `n = 256` frames the chance is below `B² · n / 2^96`, which stays under
//! 2^-32 up to 2^28 blocks (1 PiB sealed under one cluster key), the same
//! bound per frame sealed as the random nonces of format v1.
//!
//! Every frame is authenticated with its place: the AAD is
//! `"cairn:v2" ‖ chunk (u64 LE) ‖ block offset (u64 LE) ‖ frame index
//! (u64 LE) ‖ last (1 byte, 1 on the block's last frame)`, so frames cannot
//! be moved to another block or position, swapped, reordered, or dropped
//! off the end.
//!
//! Format v1 (blocks drained before v2): one AEAD over the whole block,
//! `P + 28` stored bytes, AAD [`block_aad`]. The metadata's stored and plain
//! lengths tell the formats apart except for a block of at most one frame,
//! where both are `P + 28` bytes: there the v2 frame is tried first and v1
//! second, and authentication decides (the two AADs differ in length and
//! tag, so no block opens under both).

use cairn_metadata::ChunkId;

use super::crypto::{block_aad, BlockKey, CryptoError, OVERHEAD};

/// Plain bytes per frame.
pub const FRAME: u64 = 16 * 1024;
/// Stored bytes per full frame.
const SEALED_FRAME: u64 = FRAME + OVERHEAD as u64;
const TAG: &[u8; 8] = b"cairn:v2";

/// Frames of a block of `plain_len` bytes.
pub fn count(plain_len: u64) -> u64 {
    plain_len.div_ceil(FRAME).max(1)
}

/// Stored bytes of a v2 block of `plain_len` bytes.
pub fn sealed_len(plain_len: u64) -> u64 {
    plain_len + count(plain_len) * OVERHEAD as u64
}

/// How a block was sealed, from its recorded lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Format v1: one AEAD over the whole block.
    Whole,
    /// Format v2 with more than one frame.
    Framed,
    /// One frame's length: v2 or v1, authentication decides.
    OneFrame,
}

/// The format of a block of `stored` bytes holding `plain` bytes.
pub fn format(stored: u64, plain: u64) -> Result<Format, CryptoError> {
    let v1 = plain + OVERHEAD as u64 == stored;
    let v2 = sealed_len(plain) == stored;
    match (v1, v2) {
        (true, true) => Ok(Format::OneFrame),
        (true, false) => Ok(Format::Whole),
        (false, true) => Ok(Format::Framed),
        (false, false) => Err(CryptoError::Layout { stored, plain }),
    }
}

/// The frames that cover a plain range of a block, and where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The first frame's index, and how many.
    pub first: u64,
    pub count: u64,
    /// Their stored bytes within the block: `start..start + len`.
    pub start: u64,
    pub len: u64,
    /// Plain bytes of the opened frames to drop, then to keep.
    pub skip: u64,
    pub take: u64,
}

/// The frames covering plain bytes `from..from + len` of a v2 block of
/// `plain_len` bytes (the range clamped to the block; an empty range
/// covers no frame).
pub fn span(plain_len: u64, from: u64, len: u64) -> Span {
    let from = from.min(plain_len);
    let end = from.saturating_add(len).min(plain_len);
    if end == from {
        return Span {
            first: 0,
            count: 0,
            start: 0,
            len: 0,
            skip: 0,
            take: 0,
        };
    }
    let (first, last) = (from / FRAME, (end - 1) / FRAME);
    let start = first * SEALED_FRAME;
    let stop = ((last + 1) * FRAME).min(plain_len) + (last + 1) * OVERHEAD as u64;
    Span {
        first,
        count: last - first + 1,
        start,
        len: stop - start,
        skip: from - first * FRAME,
        take: end - from,
    }
}

/// The authenticated data of frame `index` of the block at `offset` of
/// `chunk`.
fn aad(chunk: ChunkId, offset: u64, index: u64, last: bool) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[..8].copy_from_slice(TAG);
    aad[8..16].copy_from_slice(&chunk.0.to_le_bytes());
    aad[16..24].copy_from_slice(&offset.to_le_bytes());
    aad[24..32].copy_from_slice(&index.to_le_bytes());
    aad[32] = u8::from(last);
    aad
}

/// `base + i` as 96-bit big-endian numbers, wrapping.
fn nonce_at(base: [u8; 12], i: u64) -> [u8; 12] {
    let mut wide = [0u8; 16];
    wide[4..].copy_from_slice(&base);
    let n = u128::from_be_bytes(wide).wrapping_add(u128::from(i)) & ((1u128 << 96) - 1);
    let mut out = [0u8; 12];
    out.copy_from_slice(&n.to_be_bytes()[4..]);
    out
}

/// Seals a block (format v2): the block at `offset` of `chunk`.
pub fn seal(
    key: &BlockKey,
    plain: &[u8],
    chunk: ChunkId,
    offset: u64,
) -> Result<Vec<u8>, CryptoError> {
    let n = count(plain.len() as u64);
    let base = key.random_nonce()?;
    let mut out = Vec::with_capacity(sealed_len(plain.len() as u64) as usize);
    for i in 0..n {
        let from = (i * FRAME) as usize;
        let to = ((i + 1) * FRAME).min(plain.len() as u64) as usize;
        let aad = aad(chunk, offset, i, i + 1 == n);
        key.seal_append(nonce_at(base, i), &plain[from..to], &aad, &mut out)?;
    }
    Ok(out)
}

/// Opens the stored bytes of frames `first..first + n` of a v2 block of
/// `plain_len` bytes at `offset` of `chunk`; fails unless `sealed` is
/// exactly those frames, each authentic.
pub fn open(
    key: &BlockKey,
    sealed: &[u8],
    chunk: ChunkId,
    offset: u64,
    plain_len: u64,
    first: u64,
    n: u64,
) -> Result<Vec<u8>, CryptoError> {
    let total = count(plain_len);
    let mut out = Vec::with_capacity(sealed.len());
    let mut pos = 0usize;
    for i in first..first.saturating_add(n) {
        let plain = ((i + 1) * FRAME).min(plain_len).saturating_sub(i * FRAME);
        let end = pos + plain as usize + OVERHEAD;
        let frame = sealed.get(pos..end).ok_or(CryptoError::Forged)?;
        key.open_append(frame, &aad(chunk, offset, i, i + 1 == total), &mut out)?;
        pos = end;
    }
    if pos != sealed.len() {
        return Err(CryptoError::Forged);
    }
    Ok(out)
}

/// Opens a whole stored block in either format (see the module doc).
pub fn open_block(
    key: &BlockKey,
    sealed: &[u8],
    chunk: ChunkId,
    offset: u64,
    plain_len: u64,
) -> Result<Vec<u8>, CryptoError> {
    let v1 = || key.open(sealed, &block_aad(chunk, offset));
    let v2 = || open(key, sealed, chunk, offset, plain_len, 0, count(plain_len));
    match format(sealed.len() as u64, plain_len)? {
        Format::Whole => v1(),
        Format::Framed => v2(),
        Format::OneFrame => v2().or_else(|_| v1()),
    }
}

#[cfg(test)]
#[path = "frames_tests.rs"]
mod tests;
