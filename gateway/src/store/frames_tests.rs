//! Format v2 on its own: round trips, every tampering refused, v1 blocks
//! still open, and spans that keep a 4 KiB read small.

use super::*;

fn key() -> BlockKey {
    BlockKey::derive(b"0123456789abcdef0123456789abcdef")
}

fn plain(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

const CHUNK: ChunkId = ChunkId(9);
const SIZES: [u64; 7] = [0, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME + 5, 4 << 20];

#[test]
fn v2_round_trips_at_every_size_and_any_range() {
    let key = key();
    for len in SIZES {
        let p = plain(len as usize);
        let sealed = seal(&key, &p, CHUNK, 4096).unwrap();
        assert_eq!(sealed.len() as u64, sealed_len(len), "len {len}");
        assert_eq!(open_block(&key, &sealed, CHUNK, 4096, len).unwrap(), p);
        for (from, want) in [(0, 4096), (FRAME - 100, 4096), (len / 2, 1), (0, len)] {
            let s = span(len, from, want);
            let bytes = &sealed[s.start as usize..(s.start + s.len) as usize];
            let opened = open(&key, bytes, CHUNK, 4096, len, s.first, s.count).unwrap();
            let got = &opened[s.skip as usize..(s.skip + s.take) as usize];
            let (a, b) = (from.min(len) as usize, (from + want).min(len) as usize);
            assert_eq!(got, &p[a..b], "len {len} range {from}+{want}");
        }
    }
}

#[test]
fn a_4k_read_spans_at_most_two_frames() {
    for from in [
        0,
        4096,
        FRAME - 4096,
        FRAME - 1,
        FRAME - 2048,
        (4 << 20) - 4096,
    ] {
        let s = span(4 << 20, from, 4096);
        assert!(s.count <= 2, "{s:?}");
        assert!(s.len <= 64 * 1024, "{s:?}");
    }
    assert_eq!(span(4 << 20, FRAME - 2048, 4096).count, 2);
    assert_eq!(span(10, 20, 5).count, 0, "past the end: nothing");
}

#[test]
fn any_change_to_a_v2_block_is_refused() {
    let key = key();
    let len = 3 * FRAME + 5;
    let p = plain(len as usize);
    let sealed = seal(&key, &p, CHUNK, 0).unwrap();
    for at in [0, 11, 12, 500, FRAME as usize + 30, sealed.len() - 1] {
        let mut bad = sealed.clone();
        bad[at] ^= 0x40;
        assert!(open_block(&key, &bad, CHUNK, 0, len).is_err(), "byte {at}");
    }
    // Frames 0 and 1 swapped.
    let f = SEALED_FRAME as usize;
    let mut swapped = sealed.clone();
    swapped[..2 * f].copy_from_slice(&[&sealed[f..2 * f], &sealed[..f]].concat());
    assert!(open_block(&key, &swapped, CHUNK, 0, len).is_err());
    // The last frame dropped: the rest read as a shorter block fails.
    let short = &sealed[..3 * f];
    assert!(open(&key, short, CHUNK, 0, 3 * FRAME, 0, 3).is_err());
    assert!(open_block(&key, short, CHUNK, 0, 3 * FRAME).is_err());
    // Another chunk, another offset, another frame index.
    assert!(open_block(&key, &sealed, ChunkId(10), 0, len).is_err());
    assert!(open_block(&key, &sealed, CHUNK, 8, len).is_err());
    assert!(open(&key, &sealed[f..2 * f], CHUNK, 0, len, 2, 1).is_err());
    assert!(open(&key, &sealed[f..2 * f], CHUNK, 0, len, 1, 1).is_ok());
    // A length no format gives.
    assert!(matches!(
        open_block(&key, &sealed[..sealed.len() - 1], CHUNK, 0, len),
        Err(CryptoError::Layout { .. })
    ));
}

#[test]
fn v1_blocks_still_open_and_one_frame_is_decided_by_authentication() {
    let key = key();
    for len in [0u64, 1, FRAME, FRAME + 1, 4 << 20] {
        let p = plain(len as usize);
        let v1 = key.seal(&p, &block_aad(CHUNK, 64)).unwrap();
        let expect = if len <= FRAME {
            Format::OneFrame
        } else {
            Format::Whole
        };
        assert_eq!(format(v1.len() as u64, len).unwrap(), expect);
        assert_eq!(open_block(&key, &v1, CHUNK, 64, len).unwrap(), p, "{len}");
        assert!(open_block(&key, &v1, CHUNK, 0, len).is_err());
    }
}

#[test]
fn nonces_step_through_96_bits() {
    let base = [0xff; 12];
    assert_eq!(nonce_at(base, 1), [0; 12], "wraps at 2^96");
    let mut b = [0u8; 12];
    b[11] = 0xff;
    let mut want = [0u8; 12];
    want[10] = 1;
    assert_eq!(nonce_at(b, 1), want, "carries");
    // Frames of one block under distinct nonces.
    let sealed = seal(&key(), &plain(3 * FRAME as usize), CHUNK, 0).unwrap();
    let f = SEALED_FRAME as usize;
    let nonces: Vec<&[u8]> = (0..3).map(|i| &sealed[i * f..i * f + 12]).collect();
    assert!(nonces[0] != nonces[1] && nonces[1] != nonces[2]);
}
