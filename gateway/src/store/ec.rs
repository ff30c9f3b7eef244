//! Erasure coding of chunk bodies: a body of `L` bytes is cut into `k`
//! consecutive data shards of `shard_len = ceil(L / k)` bytes (the last one
//! zero-padded) and `m` parity shards of the same length (Reed–Solomon over
//! GF(2^8)). The code is systematic, so a byte range of the body is read from
//! the data shards that hold it; and because every byte position is coded on
//! its own, the same range of any `k` shards rebuilds that range of the
//! others. The promise: [`rebuild`] returns the original bytes or an error,
//! never other bytes.

use reed_solomon_erasure::galois_8::ReedSolomon;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EcError {
    #[error("{have} of the {want} shards needed to rebuild are readable")]
    TooFewShards { have: usize, want: usize },
    #[error("erasure code {k}+{m}: {cause}")]
    Codec { k: usize, m: usize, cause: String },
}

fn codec(k: usize, m: usize) -> Result<ReedSolomon, EcError> {
    ReedSolomon::new(k, m).map_err(|e| EcError::Codec {
        k,
        m,
        cause: format!("{e:?}"),
    })
}

/// The length of each shard of a body of `len` bytes cut in `k`.
pub fn shard_len(len: u64, k: usize) -> u64 {
    len.div_ceil(k as u64).max(1)
}

/// Cuts `body` into `k` data shards and computes `m` parity shards.
pub fn encode(body: &[u8], k: usize, m: usize) -> Result<Vec<Vec<u8>>, EcError> {
    let rs = codec(k, m)?;
    let each = shard_len(body.len() as u64, k) as usize;
    let mut shards: Vec<Vec<u8>> = (0..k + m)
        .map(|i| {
            let mut shard = vec![0u8; each];
            if i < k {
                let start = (i * each).min(body.len());
                let end = ((i + 1) * each).min(body.len());
                shard[..end - start].copy_from_slice(&body[start..end]);
            }
            shard
        })
        .collect();
    rs.encode(&mut shards).map_err(|e| EcError::Codec {
        k,
        m,
        cause: format!("{e:?}"),
    })?;
    Ok(shards)
}

/// One piece of a body range: data shard `shard`, bytes `start..end` of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub shard: usize,
    pub start: u64,
    pub end: u64,
}

/// The data-shard pieces that hold bytes `offset..offset + len` of the body,
/// in order.
pub fn pieces(offset: u64, len: u64, shard_len: u64) -> Vec<Piece> {
    let mut out = Vec::new();
    let (mut pos, end) = (offset, offset + len);
    while pos < end {
        let shard = pos / shard_len;
        let start = pos % shard_len;
        let take = (shard_len - start).min(end - pos);
        out.push(Piece {
            shard: shard as usize,
            start,
            end: start + take,
        });
        pos += take;
    }
    out
}

/// Rebuilds one byte range across all shards: `range[i]` is that range of
/// shard `i` where it could be read. With at least `k` present, returns the
/// range of every shard; with fewer, [`EcError::TooFewShards`].
pub fn rebuild(
    k: usize,
    m: usize,
    mut range: Vec<Option<Vec<u8>>>,
) -> Result<Vec<Vec<u8>>, EcError> {
    let have = range.iter().flatten().count();
    if have < k {
        return Err(EcError::TooFewShards { have, want: k });
    }
    codec(k, m)?
        .reconstruct(&mut range)
        .map_err(|e| EcError::Codec {
            k,
            m,
            cause: format!("{e:?}"),
        })?;
    Ok(range.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    #[test]
    fn data_shards_are_the_body_in_order() {
        let b = body(10, 1);
        let shards = encode(&b, 4, 2).unwrap();
        assert_eq!(shards.len(), 6);
        assert!(shards.iter().all(|s| s.len() == 3));
        let data: Vec<u8> = shards[..4].concat();
        assert_eq!(&data[..10], &b[..]);
        assert_eq!(&data[10..], &[0, 0], "the last data shard is zero-padded");
    }

    #[test]
    fn pieces_split_a_range_at_shard_edges() {
        assert_eq!(
            pieces(5, 10, 8),
            vec![
                Piece {
                    shard: 0,
                    start: 5,
                    end: 8
                },
                Piece {
                    shard: 1,
                    start: 0,
                    end: 7
                }
            ]
        );
        assert!(pieces(3, 0, 8).is_empty());
    }

    #[test]
    fn too_few_shards_is_an_error_not_bytes() {
        let shards = encode(&body(100, 2), 4, 1).unwrap();
        let mut range: Vec<Option<Vec<u8>>> = shards.into_iter().map(Some).collect();
        range[0] = None;
        range[3] = None;
        assert_eq!(
            rebuild(4, 1, range),
            Err(EcError::TooFewShards { have: 3, want: 4 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Encode, erase any M shards, rebuild any byte range: the original bytes.
        #[test]
        fn any_m_erasures_rebuild_any_range(
            k in 2usize..=12,
            m in 1usize..=4,
            len in 1usize..20_000,
            seed in any::<u8>(),
            erase_seed in any::<u64>(),
            range_seed in any::<(u64, u64)>(),
        ) {
            let b = body(len, seed);
            let shards = encode(&b, k, m).unwrap();
            let each = shard_len(len as u64, k);
            // Erase m distinct shards chosen by erase_seed.
            let mut order: Vec<usize> = (0..k + m).collect();
            let mut s = erase_seed;
            for i in (1..order.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (s >> 33) as usize % (i + 1));
            }
            let erased = &order[..m];
            // A random range of the body, read through pieces and rebuilt ranges.
            let offset = range_seed.0 % len as u64;
            let rlen = 1 + range_seed.1 % (len as u64 - offset);
            let mut got = Vec::new();
            for p in pieces(offset, rlen, each) {
                let range: Vec<Option<Vec<u8>>> = shards
                    .iter()
                    .enumerate()
                    .map(|(i, sh)| (!erased.contains(&i)).then(|| sh[p.start as usize..p.end as usize].to_vec()))
                    .collect();
                let all = rebuild(k, m, range).unwrap();
                got.extend_from_slice(&all[p.shard]);
            }
            prop_assert_eq!(&got[..], &b[offset as usize..(offset + rlen) as usize]);
        }
    }
}
