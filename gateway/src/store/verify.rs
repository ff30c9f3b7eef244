//! What the gateway's bucket scrub asks of the pool: which stores it must
//! scrub itself ([`ChunkStore::gateway_scrub`]) and a paced, judged
//! [`ChunkStore::verify`] of one object.

use std::time::Duration;

use cairn_metadata::StoreId;

use super::{Pacer, StoreError, Stores};

impl Stores {
    /// The stores the gateway scrubs, each with its period and bytes per
    /// second.
    pub fn gateway_scrubs(&self) -> Vec<(StoreId, Duration, u64)> {
        self.views()
            .into_iter()
            .filter_map(|v| {
                let (every, rate) = self.store(v.id).ok()?.gateway_scrub()?;
                Some((v.id, every, rate))
            })
            .collect()
    }

    /// Reads object `key` of store `id` whole, paced by `pacer`, and checks
    /// its crc32c; an unreachable store is marked as not answering.
    pub async fn verify(
        &self,
        id: StoreId,
        key: &str,
        pacer: &dyn Pacer,
    ) -> Result<(), StoreError> {
        self.with(id, |s| async move { s.verify(key, pacer).await })
            .await
    }
}
