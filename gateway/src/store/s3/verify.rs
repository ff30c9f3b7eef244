//! Checking a bucket object's bytes: the scrub and `cairn fsck --deep`
//! read it whole, in ranged gets, and compare its crc32c with the one
//! stored with it.

use super::{Pacer, S3Store, ShardStat, Status, StoreError};

/// A verification reads an object in ranged gets of this many bytes.
const VERIFY_PIECE: u64 = 4 << 20;

impl S3Store {
    /// Reads `key` whole in ranged gets of [`VERIFY_PIECE`] (each once
    /// `pacer` allows) and compares its crc32c with the one stored with it.
    pub(super) async fn verify_now(
        &self,
        key: &str,
        pacer: Option<&dyn Pacer>,
    ) -> Result<ShardStat, StoreError> {
        let stat = self.head(key).await?;
        let mut crc = 0u32;
        let mut at = 0;
        while at < stat.len {
            let n = VERIFY_PIECE.min(stat.len - at);
            if let Some(p) = pacer {
                p.wait(n).await;
            }
            // Boxed: get_now calls this for a len-0 get.
            let piece = Box::pin(self.get_now(key, at, n, None)).await?;
            crc = crc32c::crc32c_append(crc, &piece);
            at += n;
        }
        if crc != stat.crc {
            return Err(StoreError::Remote {
                addr: self.address.clone(),
                op: "verify",
                key: key.to_owned(),
                status: Status::Corrupt,
                detail: format!(
                    "{key}: its bytes have crc32c {crc:08x}, it was stored with {:08x}",
                    stat.crc
                ),
            });
        }
        Ok(stat)
    }
}
