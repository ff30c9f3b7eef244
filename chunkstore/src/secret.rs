//! The cluster secret: loaded from a private file (≥ 32 bytes, mode 0600), never
//! logged or printed, and only ever used through HKDF-SHA256 derivations with
//! distinct labels: the Noise PSK that authenticates every store link, a
//! `cluster_id` that is safe to write to disk, and keys for callers' own labels.

use std::fmt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::hkdf;

use crate::error::StoreError;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// HKDF salt: names the scheme, so a secret reused elsewhere derives other keys.
const SALT: &[u8] = b"cairn cluster secret v1";
/// HKDF label of the Noise pre-shared key.
const PSK_LABEL: &[u8] = b"cairn chunkstore noise psk v1";
/// HKDF label of the cluster id written to every store's marker.
const CLUSTER_ID_LABEL: &[u8] = b"cairn cluster id v1";

/// The cluster secret, reduced to its HKDF pseudo-random key. `Debug` shows
/// only the cluster id.
#[derive(Clone)]
pub struct Secret {
    prk: hkdf::Prk,
    psk: [u8; 32],
    cluster_id: [u8; 16],
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("cluster_id", &self.cluster_id_hex())
            .finish_non_exhaustive()
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl Secret {
    /// Reads the secret file: refuses a file readable or writable by group or
    /// others, and fewer than [`MIN_SECRET_LEN`] bytes (surrounding whitespace
    /// is ignored, so a hex line with a newline is fine).
    pub fn load(path: &Path) -> Result<Secret, StoreError> {
        let read_err = |source| StoreError::SecretRead {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::SecretPermissions {
                path: path.to_owned(),
                mode,
            });
        }
        let bytes = std::fs::read(path).map_err(read_err)?;
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_SECRET_LEN {
            return Err(StoreError::SecretTooShort {
                path: path.to_owned(),
                len: trimmed.len(),
            });
        }
        Ok(Secret::from_bytes(trimmed))
    }

    /// A secret from raw key material (callers check the length; tests use this).
    pub fn from_bytes(material: &[u8]) -> Secret {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(material);
        let mut psk = [0; 32];
        let mut cluster_id = [0; 16];
        expand(&prk, PSK_LABEL, &mut psk);
        expand(&prk, CLUSTER_ID_LABEL, &mut cluster_id);
        Secret {
            prk,
            psk,
            cluster_id,
        }
    }

    /// Writes a new random secret (64 hex characters and a newline) to `path`
    /// with mode 0600, refusing to overwrite an existing file. For `cairn up`.
    pub fn generate_file(path: &Path) -> Result<Secret, StoreError> {
        let mut raw = [0u8; 32];
        crate::layout::random_bytes(&mut raw);
        let text = format!("{}\n", crate::layout::hex(&raw));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::io("create secret file", path, e))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::io("write secret file", path, e))?;
        // Its name too must survive a crash (no temp and rename here: an
        // existing secret is never replaced).
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        crate::layout::sync_dir(dir)?;
        Ok(Secret::from_bytes(text.trim_ascii().as_bytes()))
    }

    /// The Noise PSK for chunk-store links.
    pub(crate) fn noise_psk(&self) -> &[u8; 32] {
        &self.psk
    }

    /// An id of the cluster, derived one-way from the secret: safe to store and show.
    pub fn cluster_id(&self) -> [u8; 16] {
        self.cluster_id
    }

    /// [`Secret::cluster_id`] as 32 lowercase hex characters.
    pub fn cluster_id_hex(&self) -> String {
        crate::layout::hex(&self.cluster_id)
    }

    /// Fills `out` with key material for `label` (HKDF-SHA256 expand). Each
    /// use needs its own label, e.g. `b"cairn block key v1"`; labels must not
    /// start with `cairn chunkstore` or `cairn cluster id` (taken here).
    pub fn derive(&self, label: &[u8], out: &mut [u8]) {
        expand(&self.prk, label, out);
    }
}

fn expand(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) {
    let info = [label];
    // Fails only for outputs over 255 × 32 bytes, a programming error.
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("HKDF output length within 255 blocks");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join("cluster.secret");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn labels_give_distinct_keys_and_load_ignores_whitespace() {
        let tmp = tempfile::tempdir().unwrap();
        let hex = "0f".repeat(32);
        let a = Secret::load(&write(tmp.path(), &format!("{hex}\n"), 0o600)).unwrap();
        let b = Secret::from_bytes(hex.as_bytes());
        assert_eq!(a.noise_psk(), b.noise_psk());
        assert_eq!(a.cluster_id(), b.cluster_id());
        assert_ne!(a.noise_psk()[..16], a.cluster_id());
        let other = Secret::from_bytes("f0".repeat(32).as_bytes());
        assert_ne!(other.cluster_id(), a.cluster_id());
        let mut k1 = [0; 32];
        let mut k2 = [0; 32];
        a.derive(b"test label one", &mut k1);
        a.derive(b"test label two", &mut k2);
        assert_ne!(k1, k2);
        assert!(!format!("{a:?}").contains(&hex));
    }

    #[test]
    fn readable_by_others_or_short_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write(tmp.path(), &"ab".repeat(32), 0o644);
        let err = Secret::load(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        let path = write(tmp.path(), "short", 0o600);
        let err = Secret::load(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::SecretTooShort { len: 5, .. }),
            "{err}"
        );
    }

    #[test]
    fn generated_file_loads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cluster.secret");
        let made = Secret::generate_file(&path).unwrap();
        let loaded = Secret::load(&path).unwrap();
        assert_eq!(made.cluster_id(), loaded.cluster_id());
        assert!(Secret::generate_file(&path).is_err(), "never overwrites");
    }
}
