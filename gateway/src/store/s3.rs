//! [`S3Store`]: a chunk store that is a prefix of an S3-compatible bucket
//! (Garage, MinIO, Ceph RGW, AWS S3, B2, Wasabi…), through `object_store`'s
//! S3 client. It keeps the [`conformance`](super::conformance) contract of a
//! `cairn chunkstore` daemon:
//!
//! - An object `key` lives at `<prefix>/o/<key>`; the store's identity is the
//!   marker object `<prefix>/marker` (its uuid and the cluster it belongs
//!   to), written on first use of an empty prefix. A prefix that holds
//!   another cluster's marker is refused, so one bucket can hold several
//!   clusters (or other data) safely.
//! - A put sends an object of up to 16 MiB in one PUT, a larger one (a
//!   32 MiB chunk) as a multipart upload of 8 MiB parts, each retried on
//!   its own; its crc32c goes as user metadata, which `stat` reads back
//!   with a HEAD.
//! - A bucket has no "free space": the capacity is a configured quota, and
//!   the bytes stored are the gateway's own count, taken from a full listing
//!   at the first capacity asked and kept up to date by puts and deletes
//!   (and a new listing every [`RECOUNT_EVERY`]). A put is one request.
//! - Errors: 5xx and throttling (503 SlowDown) are retried with back-off by
//!   the client up to [`RETRIES`] times, then surface as retryable; a
//!   missing bucket, refused credentials or a wrong region are not, and say
//!   what to fix.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};
use tokio::time::Instant;

use cairn_chunkstore::protocol::{check_key, check_len, MAX_LIST};

use super::{Capacity, ChunkStore, ListEntry, Pacer, ShardStat, Status, StoreError, StoreFuture};

mod config;
mod errors;
mod marker;
mod verify;
pub use config::cluster_id;
use errors::is_range;

/// Retries of one request on 5xx, throttling and network errors.
pub const RETRIES: usize = 4;
/// The bytes stored are counted again from a listing this often (a listing
/// costs one request per 1,000 objects).
pub const RECOUNT_EVERY: Duration = Duration::from_secs(6 * 3600);
/// The audit lists a bucket at most this often: a listing costs one
/// request per 1,000 objects, so a minutely audit of 1M objects would send
/// 1.4M billed requests a day.
pub const LIST_EVERY: Duration = Duration::from_secs(3600);
/// Objects larger than this go up as a multipart upload of [`PART`]-byte
/// parts (a 32 MiB chunk: 4 parts, 6 requests).
const MULTIPART_ABOVE: u64 = 16 << 20;
const PART: usize = 8 << 20;
/// How long one request may take in all (a 64 MiB object over a slow link
/// included); a get with a stall limit gives up sooner when nothing comes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The user-metadata field holding an object's crc32c (hex).
const CRC_FIELD: &str = "cairn-crc32c";
/// Keys per listing request (S3's own maximum).
const LIST_PAGE: usize = 1000;

/// Where a bucket store is and who it says it is.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The store's name in the gateway's config.
    pub name: String,
    /// `http(s)://host:port` of the S3 API.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Keys go under this prefix (no leading or trailing `/`).
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Path-style requests (`endpoint/bucket/key`), as Garage and MinIO
    /// want; else virtual-hosted (`bucket.endpoint/key`).
    pub path_style: bool,
    pub zone: String,
    pub host: String,
    pub labels: Vec<String>,
    /// The quota: bytes cairn may keep in the bucket under this prefix.
    pub capacity: u64,
    /// Part of the quota puts never eat into.
    pub reserve: u64,
    /// Who owns the prefix: a value derived from the cluster secret, kept
    /// in the marker.
    pub cluster_id: String,
    /// The gateway re-reads every object once per this period (zero: never).
    pub scrub_every: Duration,
    /// Bytes per second a scrub reads at most.
    pub scrub_bandwidth: u64,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret key.
        f.debug_struct("S3Settings")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The bytes and objects under the prefix, as last counted.
#[derive(Debug, Clone, Copy)]
struct Usage {
    bytes: u64,
    objects: u64,
    counted: Instant,
}

/// A chunk store in a bucket.
pub struct S3Store {
    settings: S3Settings,
    address: String,
    client: AmazonS3,
    /// The store's uuid, once the marker was read or written.
    uuid: tokio::sync::OnceCell<String>,
    usage: Mutex<Option<Usage>>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Store({})", self.address)
    }
}

impl S3Store {
    /// A client for the bucket; nothing is sent until the first request.
    pub fn new(settings: S3Settings) -> Result<S3Store, StoreError> {
        let address = format!(
            "s3 {}/{}/{}",
            settings.endpoint.trim_end_matches('/'),
            settings.bucket,
            settings.prefix
        );
        let options = ClientOptions::new()
            .with_allow_http(true)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: RETRIES,
            retry_timeout: Duration::from_secs(60),
        };
        let client = AmazonS3Builder::new()
            .with_endpoint(&settings.endpoint)
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key)
            .with_virtual_hosted_style_request(!settings.path_style)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| StoreError::Protocol {
                addr: address.clone(),
                op: "configure",
                what: e.to_string(),
            })?;
        Ok(S3Store {
            settings,
            address,
            client,
            uuid: tokio::sync::OnceCell::new(),
            usage: Mutex::new(None),
        })
    }

    fn object_path(&self, key: &str) -> Path {
        Path::from(format!("{}/o/{key}", self.settings.prefix))
    }

    fn objects_prefix(&self) -> Path {
        Path::from(format!("{}/o", self.settings.prefix))
    }

    fn marker_path(&self) -> Path {
        Path::from(format!("{}/marker", self.settings.prefix))
    }

    /// The bytes and objects under the prefix, from a full listing.
    async fn count(&self) -> Result<Usage, StoreError> {
        let mut listing = self.client.list(Some(&self.objects_prefix()));
        let (mut bytes, mut objects) = (0u64, 0u64);
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.error("list", "", e))?;
            bytes += meta.size;
            objects += 1;
        }
        Ok(Usage {
            bytes,
            objects,
            counted: Instant::now(),
        })
    }

    async fn usage(&self) -> Result<Usage, StoreError> {
        let known = *self.usage.lock().unwrap_or_else(|p| p.into_inner());
        match known {
            Some(u) if u.counted.elapsed() < RECOUNT_EVERY => Ok(u),
            _ => {
                let u = self.count().await?;
                *self.usage.lock().unwrap_or_else(|p| p.into_inner()) = Some(u);
                Ok(u)
            }
        }
    }

    /// Counts a put (`added` bytes) or a delete (`removed` bytes).
    fn account(&self, added: Option<u64>, removed: Option<u64>) {
        if let Some(u) = self
            .usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            if let Some(n) = removed {
                u.bytes = u.bytes.saturating_sub(n);
                u.objects = u.objects.saturating_sub(1);
            }
            if let Some(n) = added {
                u.bytes += n;
                u.objects += 1;
            }
        }
    }

    /// An object's size and crc32c (from its metadata), by a HEAD.
    async fn head(&self, key: &str) -> Result<ShardStat, StoreError> {
        let opts = GetOptions {
            head: true,
            ..Default::default()
        };
        let got = self
            .client
            .get_opts(&self.object_path(key), opts)
            .await
            .map_err(|e| self.error("stat", key, e))?;
        let crc = got
            .attributes
            .get(&Attribute::Metadata(CRC_FIELD.into()))
            .and_then(|v| u32::from_str_radix(v.as_ref(), 16).ok())
            .ok_or_else(|| StoreError::Protocol {
                addr: self.address.clone(),
                op: "stat",
                what: format!("object {key:?} has no {CRC_FIELD} metadata: not written by cairn"),
            })?;
        Ok(ShardStat {
            len: got.meta.size,
            crc,
        })
    }

    async fn put_now(&self, key: &str, data: &[u8]) -> Result<ShardStat, StoreError> {
        check_key(key)?;
        let len = data.len() as u64;
        check_len(key, len)?;
        self.uuid().await?;
        let usage = self.usage().await?;
        let free = self.settings.capacity.saturating_sub(usage.bytes);
        if free < len.saturating_add(self.settings.reserve) {
            return Err(StoreError::NoSpace {
                key: key.to_owned(),
                len,
                free,
                reserve: self.settings.reserve,
            });
        }
        let crc = crc32c::crc32c(data);
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(CRC_FIELD.into()),
            format!("{crc:08x}").into(),
        );
        if len > MULTIPART_ABOVE {
            self.put_parts(key, data, attributes).await?;
        } else {
            self.client
                .put_opts(
                    &self.object_path(key),
                    PutPayload::from(bytes::Bytes::copy_from_slice(data)),
                    PutOptions {
                        attributes,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| self.error("put", key, e))?;
        }
        // No HEAD before a put (providers bill per request): an overwrite,
        // rare as keys name content, counts twice until the next recount.
        self.account(Some(len), None);
        Ok(ShardStat { len, crc })
    }

    /// A multipart upload of [`PART`]-byte parts, one after the other: a
    /// connection dropped mid-way costs a retry of one part, not of the
    /// whole object. An upload that fails is aborted (its parts freed).
    async fn put_parts(
        &self,
        key: &str,
        data: &[u8],
        attributes: Attributes,
    ) -> Result<(), StoreError> {
        let path = self.object_path(key);
        let options = PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let mut upload = self
            .client
            .put_multipart_opts(&path, options)
            .await
            .map_err(|e| self.error("put", key, e))?;
        for part in data.chunks(PART) {
            let sent = upload
                .put_part(PutPayload::from(bytes::Bytes::copy_from_slice(part)))
                .await;
            if let Err(e) = sent {
                let _ = upload.abort().await;
                return Err(self.error("put", key, e));
            }
        }
        if let Err(e) = upload.complete().await {
            let _ = upload.abort().await;
            return Err(self.error("put", key, e));
        }
        Ok(())
    }

    async fn get_now(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        stall: Option<Duration>,
    ) -> Result<Vec<u8>, StoreError> {
        check_key(key)?;
        let past = |shard_len: u64| StoreError::InvalidRange {
            key: key.to_owned(),
            offset,
            len,
            shard_len,
        };
        let end = offset.checked_add(len);
        if len == 0 || end.is_none() {
            // Nothing to fetch, after checking the whole object; it must
            // hold the range.
            let stat = self.verify_now(key, None).await?;
            return match end.filter(|&e| e <= stat.len) {
                Some(_) => Ok(Vec::new()),
                None => Err(past(stat.len)),
            };
        }
        let end = end.unwrap_or(u64::MAX);
        let opts = GetOptions {
            range: Some(GetRange::Bounded(offset..end)),
            ..Default::default()
        };
        let silent = |op: &'static str, after: Duration| StoreError::Timeout {
            addr: self.address.clone(),
            op,
            after,
        };
        let path = self.object_path(key);
        let request = self.client.get_opts(&path, opts);
        let answer = match stall {
            Some(after) => tokio::time::timeout(after, request)
                .await
                .map_err(|_| silent("get", after))?,
            None => request.await,
        };
        let answer = match answer {
            Ok(a) => a,
            // 416, or a range the server cut short: past the end?
            Err(e) if !matches!(e, object_store::Error::NotFound { .. }) && is_range(&e) => {
                let size = self.head(key).await?.len;
                if end > size {
                    return Err(past(size));
                }
                return Err(self.error("get", key, e));
            }
            Err(e) => return Err(self.error("get", key, e)),
        };
        let mut body = answer.into_stream();
        let mut out = Vec::with_capacity(len as usize);
        loop {
            let next = match stall {
                Some(after) => tokio::time::timeout(after, body.next())
                    .await
                    .map_err(|_| silent("get", after))?,
                None => body.next().await,
            };
            match next {
                Some(Ok(piece)) => out.extend_from_slice(&piece),
                Some(Err(e)) => return Err(self.error("get", key, e)),
                None => break,
            }
        }
        if out.len() as u64 != len {
            // S3 cuts a range that runs past the end short.
            let size = self.head(key).await?.len;
            if end > size {
                return Err(past(size));
            }
            return Err(StoreError::Protocol {
                addr: self.address.clone(),
                op: "get",
                what: format!(
                    "asked for {len} bytes of {key:?}, the bucket sent {}",
                    out.len()
                ),
            });
        }
        Ok(out)
    }

    async fn delete_now(&self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let old = match self.head(key).await {
            Ok(stat) => stat.len,
            Err(StoreError::NotFound { .. }) => return Ok(false),
            // An object cairn did not write still goes.
            Err(StoreError::Protocol { .. }) => 0,
            Err(e) => return Err(e),
        };
        self.client
            .delete(&self.object_path(key))
            .await
            .map_err(|e| self.error("delete", key, e))?;
        self.account(None, Some(old));
        Ok(true)
    }

    async fn list_now(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ListEntry>, StoreError> {
        if let Some(key) = after {
            check_key(key)?;
        }
        let limit = limit.clamp(1, MAX_LIST) as usize;
        let prefix = self.objects_prefix();
        let mut listing = match after {
            Some(key) => self
                .client
                .list_with_offset(Some(&prefix), &self.object_path(key)),
            None => self.client.list(Some(&prefix)),
        };
        let strip = format!("{}/", prefix.as_ref());
        let mut entries = Vec::with_capacity(limit.min(LIST_PAGE));
        while entries.len() < limit {
            let Some(meta) = listing.next().await else {
                break;
            };
            let meta = meta.map_err(|e| self.error("list", after.unwrap_or(""), e))?;
            if let Some(key) = meta.location.as_ref().strip_prefix(&strip) {
                entries.push(ListEntry {
                    key: key.to_owned(),
                    len: meta.size,
                });
            }
        }
        // S3 lists in key order; the contract says so, whatever the server.
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    async fn capacity_now(&self) -> Result<Capacity, StoreError> {
        let store_uuid = self.uuid().await?.to_owned();
        let usage = self.usage().await?;
        let s = &self.settings;
        Ok(Capacity {
            total: s.capacity,
            free: s.capacity.saturating_sub(usage.bytes),
            used: usage.bytes,
            stored: usage.bytes,
            shards: usage.objects,
            reserve: s.reserve,
            zone: s.zone.clone(),
            host: s.host.clone(),
            name: s.name.clone(),
            store_uuid,
            labels: s.labels.clone(),
        })
    }
}

impl ChunkStore for S3Store {
    fn address(&self) -> &str {
        &self.address
    }

    fn put<'a>(&'a self, key: &'a str, data: &'a [u8]) -> StoreFuture<'a, ShardStat> {
        Box::pin(self.put_now(key, data))
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
        stall: Option<Duration>,
    ) -> StoreFuture<'a, Vec<u8>> {
        Box::pin(self.get_now(key, offset, len, stall))
    }

    fn stat<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ShardStat> {
        Box::pin(async move {
            check_key(key)?;
            self.head(key).await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.delete_now(key))
    }

    fn list<'a>(&'a self, after: Option<&'a str>, limit: u32) -> StoreFuture<'a, Vec<ListEntry>> {
        Box::pin(self.list_now(after, limit))
    }

    fn capacity(&self) -> StoreFuture<'_, Capacity> {
        Box::pin(self.capacity_now())
    }

    fn list_every(&self) -> Duration {
        LIST_EVERY
    }

    fn verify<'a>(&'a self, key: &'a str, pacer: &'a dyn Pacer) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.verify_now(key, Some(pacer)).await.map(drop) })
    }

    fn gateway_scrub(&self) -> Option<(Duration, u64)> {
        let s = &self.settings;
        (!s.scrub_every.is_zero()).then_some((s.scrub_every, s.scrub_bandwidth))
    }

    /// The capacity comes from memory once counted: a probe also asks the
    /// bucket for the marker's head (one request), so a bucket that stopped
    /// answering is seen as such.
    fn probe(&self) -> StoreFuture<'_, Capacity> {
        Box::pin(async move {
            if self.uuid.initialized() {
                self.client
                    .head(&self.marker_path())
                    .await
                    .map_err(|e| self.error("probe", "marker", e))?;
            }
            self.capacity_now().await
        })
    }
}
