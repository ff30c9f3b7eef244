//! The marker of a bucket prefix: `<prefix>/marker` holds the store's uuid
//! and the cluster id; written on first use of an empty prefix, checked on
//! every start, so a prefix of another cluster (or holding other data) is
//! refused rather than mixed.

use futures_util::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{S3Store, Status, StoreError};

impl S3Store {
    /// The store's uuid from the marker, writing a new marker into an empty
    /// prefix; a prefix that belongs to another cluster is refused.
    pub(super) async fn uuid(&self) -> Result<&str, StoreError> {
        let uuid = self
            .uuid
            .get_or_try_init(|| async {
                let marker = self.marker_path();
                match self.client.get(&marker).await {
                    Ok(got) => {
                        let bytes = got
                            .bytes()
                            .await
                            .map_err(|e| self.error("read marker", "marker", e))?;
                        self.check_marker(&bytes)
                    }
                    Err(object_store::Error::NotFound { .. }) => self.write_marker().await,
                    Err(e) => Err(self.error("read marker", "marker", e)),
                }
            })
            .await?;
        Ok(uuid.as_str())
    }

    fn check_marker(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let text = String::from_utf8_lossy(bytes);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(" = "))
                .map(|v| v.trim_matches('"').to_owned())
        };
        let (Some(uuid), Some(cluster)) = (field("store_uuid"), field("cluster_id")) else {
            return Err(self.refused(format!(
                "{}/marker is not a cairn store marker; fix: point `prefix` at a prefix of its own",
                self.settings.prefix
            )));
        };
        if cluster != self.settings.cluster_id {
            return Err(self.refused(format!(
                "prefix {:?} of bucket {:?} belongs to another cairn cluster (marker cluster_id {cluster}, this secret's {}); fix: give this store a prefix of its own, or use that cluster's secret",
                self.settings.prefix, self.settings.bucket, self.settings.cluster_id
            )));
        }
        Ok(uuid)
    }

    async fn write_marker(&self) -> Result<String, StoreError> {
        // Objects already under the prefix without a marker are someone
        // else's: refuse rather than mix.
        let mut listing = self.client.list(Some(&self.objects_prefix()));
        if let Some(first) = listing.next().await {
            let what = match first {
                Ok(meta) => format!("it already holds {}", meta.location),
                Err(e) => return Err(self.error("list", "", e)),
            };
            return Err(self.refused(format!(
                "prefix {:?} of bucket {:?} has no cairn marker but is not empty ({what}); fix: give this store an empty prefix",
                self.settings.prefix, self.settings.bucket
            )));
        }
        let uuid = format!("{:032x}", rand::random::<u128>());
        let body = format!(
            "# cairn chunk store in a bucket: do not edit\nstore_uuid = \"{uuid}\"\ncluster_id = \"{}\"\n",
            self.settings.cluster_id
        );
        self.client
            .put(&self.marker_path(), PutPayload::from(body.into_bytes()))
            .await
            .map_err(|e| self.error("write marker", "marker", e))?;
        Ok(uuid)
    }

    pub(super) fn refused(&self, detail: String) -> StoreError {
        StoreError::Remote {
            addr: self.address.clone(),
            op: "open",
            key: String::new(),
            status: Status::BadRequest,
            detail,
        }
    }
}
