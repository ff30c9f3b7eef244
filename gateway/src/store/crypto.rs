//! Encryption of what leaves the gateway: AES-256-GCM under a key derived
//! from the cluster secret with HKDF-SHA256 (salt and info name cairn and
//! the purpose), so neither a chunk store's disk nor the wire shows file
//! content.
//!
//! [`BlockKey::seal`] makes format v1, one AEAD over a whole object:
//! `nonce (12) ‖ ciphertext ‖ tag (16)` under a fresh random 96-bit nonce.
//! Metadata backups use it, and blocks drained before format v2 are in it
//! (v1 blocks bind [`block_aad`]). Blocks are now sealed as frames
//! (`frames.rs`, format v2), each frame a v1-shaped unit made with
//! [`BlockKey::seal_append`]. Random nonces, unlike counters, cannot repeat
//! after a metadata restore; `frames.rs` gives the collision bound.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes a sealed block has beyond its plain text.
pub const OVERHEAD: usize = NONCE_LEN + 16;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the system random generator failed")]
    Random,
    #[error(
        "a block failed authentication: it was corrupted, or sealed under another cluster's key"
    )]
    Forged,
    #[error("a block is recorded as {stored} stored bytes for {plain} plain bytes, which no block format gives")]
    Layout { stored: u64, plain: u64 },
}

/// Authenticated data bound to a sealed block: its chunk and offset, so a
/// block cannot be swapped for another.
pub fn block_aad(chunk: cairn_metadata::ChunkId, offset: u64) -> [u8; 16] {
    let mut aad = [0u8; 16];
    aad[..8].copy_from_slice(&chunk.0.to_le_bytes());
    aad[8..].copy_from_slice(&offset.to_le_bytes());
    aad
}

/// The key that seals blocks.
pub struct BlockKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for BlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockKey(..)")
    }
}

struct KeyLen;

impl ring::hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl BlockKey {
    /// Derives the block key from the cluster secret.
    pub fn derive(secret: &[u8]) -> Self {
        let prk = Salt::new(HKDF_SHA256, b"cairn cluster key v1").extract(secret);
        let mut bytes = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit, so neither step can fail.
        if let Ok(okm) = prk.expand(&[b"cairn block encryption v1"], KeyLen) {
            let _ = okm.fill(&mut bytes);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).unwrap_or_else(|_| unreachable_key());
        BlockKey {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// A key from 32 bytes already derived from the cluster secret.
    pub fn from_key(bytes: &[u8; 32]) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).unwrap_or_else(|_| unreachable_key());
        BlockKey {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// A fresh random 96-bit nonce.
    pub fn random_nonce(&self) -> Result<[u8; NONCE_LEN], CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        Ok(nonce)
    }

    /// Seals `plain` (format v1) under a fresh random nonce; `aad` binds it
    /// to its context (not secret).
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = self.random_nonce()?;
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        self.seal_append(nonce, plain, aad, &mut out)?;
        Ok(out)
    }

    /// Appends `nonce ‖ ciphertext ‖ tag` of `plain` to `out`. The caller
    /// promises `nonce` is never used twice under this key.
    pub fn seal_append(
        &self,
        nonce: [u8; NONCE_LEN],
        plain: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        out.extend_from_slice(&nonce);
        let body = out.len();
        out.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[body..],
            )
            .map_err(|_| CryptoError::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens a sealed object (format v1, or one frame), failing on any
    /// change to it or its `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(sealed.len().saturating_sub(OVERHEAD));
        self.open_append(sealed, aad, &mut out)?;
        Ok(out)
    }

    /// Opens `sealed` as [`BlockKey::open`] does and appends the plain bytes
    /// to `out`; on failure `out` is as it was.
    pub fn open_append(
        &self,
        sealed: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        if sealed.len() < OVERHEAD {
            return Err(CryptoError::Forged);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Forged)?;
        let start = out.len();
        out.extend_from_slice(body);
        match self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut out[start..])
        {
            Ok(plain) => {
                let len = plain.len();
                out.truncate(start + len);
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(CryptoError::Forged)
            }
        }
    }
}

fn unreachable_key() -> UnboundKey {
    // AES_256_GCM takes exactly 32 bytes, which `derive` always supplies.
    panic!("AES-256-GCM rejected a 32-byte key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper_detection() {
        let key = BlockKey::derive(b"0123456789abcdef0123456789abcdef");
        let plain = b"the quick brown fox".repeat(100);
        let a = key.seal(&plain, b"aad").unwrap();
        let b = key.seal(&plain, b"aad").unwrap();
        assert_ne!(a, b, "two seals must use different nonces");
        assert!(
            !a.windows(19).any(|w| w == b"the quick brown fox"),
            "plain text visible"
        );
        assert_eq!(key.open(&a, b"aad").unwrap(), plain);
        let mut bad = a.clone();
        bad[40] ^= 1;
        assert!(key.open(&bad, b"aad").is_err());
        assert!(key.open(&a, b"other").is_err());
        let other = BlockKey::derive(b"another secret, another cluster!");
        assert!(other.open(&a, b"aad").is_err());
    }
}
