//! [`StoreRef`]: one `[[stores]]` table of the gateway config, a
//! `cairn chunkstore` daemon (`kind = "cairn"`, the default) or a prefix of
//! an S3-compatible bucket (`kind = "s3"`), and the checks
//! [`GatewayConfig::validate`](crate::GatewayConfig::validate) runs on each.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::size::ByteSize;

/// `region` of a bucket store when the key is absent.
pub const DEFAULT_REGION: &str = "us-east-1";
/// `prefix` of a bucket store when the key is absent.
pub const DEFAULT_PREFIX: &str = "cairn";
/// The environment variables a bucket store without `credentials_file`
/// takes its keys from (the AWS tools' own).
pub const ACCESS_KEY_ENV: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_KEY_ENV: &str = "AWS_SECRET_ACCESS_KEY";

/// What a `[[stores]]` table names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A `cairn chunkstore` daemon at `address`.
    #[default]
    Cairn,
    /// A prefix of an S3-compatible bucket.
    S3,
}

impl StoreKind {
    fn is_cairn(&self) -> bool {
        *self == StoreKind::Cairn
    }
}

/// `[[stores]]`: one chunk store the gateway uses. A `cairn chunkstore`
/// daemon reports its own zone, host, labels and space; a bucket has none
/// of its own, so they are set here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreRef {
    /// A name unique in the cluster (its drive, e.g. "b1-sda").
    pub name: String,
    #[serde(default, skip_serializing_if = "StoreKind::is_cairn")]
    pub kind: StoreKind,
    /// kind "cairn": where it listens, as HOST:PORT.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// kind "s3": the S3 API, as `https://host[:port]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Default [`DEFAULT_REGION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Objects go under this prefix of the bucket; default [`DEFAULT_PREFIX`].
    /// One prefix holds one cluster's store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A file (mode 0600) with the access key id and secret key; without
    /// it, the [`ACCESS_KEY_ENV`] and [`SECRET_KEY_ENV`] variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// Path-style requests (`endpoint/bucket/key`, as Garage and MinIO
    /// want); default false: virtual-hosted (`bucket.endpoint/key`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_style: bool,
    /// Failure domain: one provider or site. Default: the endpoint's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Failure domain: what fails as one. Default: endpoint host/bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Labels that storage classes match, each `[a-z0-9_-]+`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The quota: the most cairn keeps in the bucket under the prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<ByteSize>,
    /// The gateway re-reads every object of the bucket once per this
    /// period, to find bit rot ("0s": never); default
    /// [`DEFAULT_BUCKET_SCRUB_EVERY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrub_every: Option<crate::Duration>,
    /// Bytes per second that scrub reads at most; default
    /// [`DEFAULT_BUCKET_SCRUB_BANDWIDTH`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrub_bandwidth: Option<ByteSize>,
}

/// `scrub_every` of a bucket store when the key is absent: a week.
pub const DEFAULT_BUCKET_SCRUB_EVERY: crate::Duration = crate::Duration::secs(7 * 86_400);
/// `scrub_bandwidth` of a bucket store when the key is absent.
pub const DEFAULT_BUCKET_SCRUB_BANDWIDTH: ByteSize = ByteSize::mib(16);

impl StoreRef {
    /// A `cairn chunkstore` daemon at `address`.
    pub fn cairn(name: &str, address: &str) -> StoreRef {
        StoreRef {
            name: name.to_owned(),
            kind: StoreKind::Cairn,
            address: address.to_owned(),
            endpoint: None,
            bucket: None,
            region: None,
            prefix: None,
            credentials_file: None,
            path_style: false,
            zone: None,
            host: None,
            labels: Vec::new(),
            capacity: None,
            scrub_every: None,
            scrub_bandwidth: None,
        }
    }

    /// The endpoint's host name (no scheme, port or path).
    fn endpoint_host(&self) -> &str {
        let e = self.endpoint.as_deref().unwrap_or_default();
        let rest = e.split_once("://").map_or(e, |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or_default();
        authority
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(authority, |(host, _)| host)
    }

    /// A bucket store's zone: `zone`, else the endpoint's host.
    pub fn bucket_zone(&self) -> String {
        self.zone
            .clone()
            .unwrap_or_else(|| self.endpoint_host().to_owned())
    }

    /// A bucket store's host: `host`, else `endpoint host/bucket` (every
    /// prefix of one bucket fails together).
    pub fn bucket_host(&self) -> String {
        self.host.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                self.endpoint_host(),
                self.bucket.as_deref().unwrap_or_default()
            )
        })
    }

    /// A bucket store's scrub period and bytes per second.
    pub fn bucket_scrub(&self) -> (std::time::Duration, u64) {
        (
            self.scrub_every.unwrap_or(DEFAULT_BUCKET_SCRUB_EVERY).get(),
            self.scrub_bandwidth
                .unwrap_or(DEFAULT_BUCKET_SCRUB_BANDWIDTH)
                .bytes(),
        )
    }

    pub fn bucket_region(&self) -> &str {
        self.region.as_deref().unwrap_or(DEFAULT_REGION)
    }

    pub fn bucket_prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(DEFAULT_PREFIX)
    }

    /// Where the store is, as shown and recorded: `HOST:PORT` for a daemon,
    /// `s3 ENDPOINT/BUCKET/PREFIX` for a bucket.
    pub fn location(&self) -> String {
        match self.kind {
            StoreKind::Cairn => self.address.clone(),
            StoreKind::S3 => format!(
                "s3 {}/{}/{}",
                self.endpoint
                    .as_deref()
                    .unwrap_or_default()
                    .trim_end_matches('/'),
                self.bucket.as_deref().unwrap_or_default(),
                self.bucket_prefix()
            ),
        }
    }

    /// Every problem with table `stores[i]`, in field order.
    pub fn problems(&self, i: usize) -> Vec<Problem> {
        let mut out = Vec::new();
        self.problems_into(i, &mut out);
        out
    }

    fn problems_into(&self, i: usize, out: &mut Vec<Problem>) {
        let mut report = |field: &str, value: String, reason: &str, fix: &str| {
            out.push(Problem {
                field: format!("stores[{i}].{field}"),
                value,
                reason: reason.to_owned(),
                fix: fix.to_owned(),
            })
        };
        match self.kind {
            StoreKind::Cairn => {
                if self
                    .address
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none_or(|p| p == 0)
                {
                    report(
                        "address",
                        format!("{:?}", self.address),
                        "is not HOST:PORT",
                        "write it as \"10.0.0.5:7070\"",
                    );
                }
                for (field, set) in [
                    ("endpoint", self.endpoint.is_some()),
                    ("bucket", self.bucket.is_some()),
                    ("region", self.region.is_some()),
                    ("prefix", self.prefix.is_some()),
                    ("credentials_file", self.credentials_file.is_some()),
                    ("path_style", self.path_style),
                    ("zone", self.zone.is_some()),
                    ("host", self.host.is_some()),
                    ("labels", !self.labels.is_empty()),
                    ("capacity", self.capacity.is_some()),
                    ("scrub_every", self.scrub_every.is_some()),
                    ("scrub_bandwidth", self.scrub_bandwidth.is_some()),
                ] {
                    if set {
                        report(
                            field,
                            "(set)".to_owned(),
                            "is for kind = \"s3\" only: a cairn chunkstore sets its own in its store.toml",
                            "remove it here (or add kind = \"s3\" if this store is a bucket)",
                        );
                    }
                }
            }
            StoreKind::S3 => {
                if !self.address.is_empty() {
                    report(
                        "address",
                        format!("{:?}", self.address),
                        "is for kind = \"cairn\" stores; a bucket is reached through endpoint",
                        "remove address and set endpoint = \"https://s3.example.com\"",
                    );
                }
                match self.endpoint.as_deref() {
                    None => report(
                        "endpoint",
                        "(missing)".to_owned(),
                        "is required for kind = \"s3\"",
                        "set the provider's S3 URL, e.g. endpoint = \"https://s3.eu-central-1.wasabisys.com\"",
                    ),
                    Some(e)
                        if !(e.starts_with("http://") || e.starts_with("https://"))
                            || self.endpoint_host().is_empty() =>
                    {
                        report(
                            "endpoint",
                            format!("{e:?}"),
                            "is not an http:// or https:// URL",
                            "write it with its scheme, e.g. \"https://s3.example.com\"",
                        )
                    }
                    Some(_) => {}
                }
                match self.bucket.as_deref() {
                    None => report(
                        "bucket",
                        "(missing)".to_owned(),
                        "is required for kind = \"s3\"",
                        "name the bucket, created beforehand with the provider's tools",
                    ),
                    Some(b) if !is_bucket_name(b) => report(
                        "bucket",
                        format!("{b:?}"),
                        "is not a bucket name (3 to 63 of a-z, 0-9, '.' and '-')",
                        "write the bucket's name alone; the folder inside it goes in prefix",
                    ),
                    Some(_) => {}
                }
                if let Some(p) = &self.prefix {
                    if !is_prefix(p) {
                        report(
                            "prefix",
                            format!("{p:?}"),
                            "is not a key prefix (A-Z, a-z, 0-9, '.', '_', '-' and inner '/', no leading or trailing '/')",
                            "write it like \"cairn/cluster1\"",
                        );
                    }
                }
                if let Some(path) = &self.credentials_file {
                    if let Some(reason) = credentials_problem(path) {
                        report(
                            "credentials_file",
                            format!("{:?}", path.display().to_string()),
                            &reason,
                            "put the keys there as access_key_id = \"…\" and secret_access_key = \"…\", then chmod 600",
                        );
                    }
                }
                match self.capacity {
                    None => report(
                        "capacity",
                        "(missing)".to_owned(),
                        "is required for kind = \"s3\": a bucket has no free space to read",
                        "set the most cairn may keep there, e.g. capacity = \"2 TiB\"",
                    ),
                    Some(c) if c.bytes() == 0 => report(
                        "capacity",
                        format!("{:?}", c.to_string()),
                        "must be more than 0",
                        "set the most cairn may keep there, e.g. capacity = \"2 TiB\"",
                    ),
                    Some(_) => {}
                }
                for (j, label) in self.labels.iter().enumerate() {
                    if !crate::store::is_label(label) || self.labels[..j].contains(label) {
                        report(
                            &format!("labels[{j}]"),
                            format!("{label:?}"),
                            "is not a label of its own (a-z, 0-9, '_' and '-', each once)",
                            "write it in lowercase, e.g. labels = [\"s3\", \"eu\"]",
                        );
                    }
                }
            }
        }
    }
}

fn is_bucket_name(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
}

fn is_prefix(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 256
        && !p.starts_with('/')
        && !p.ends_with('/')
        && !p.contains("//")
        && p.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/'))
}

/// Why a credentials file cannot be used: missing, not a file, or readable
/// by others than its owner.
fn credentials_problem(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Err(e) => Some(format!("cannot be read: {e}")),
        Ok(m) if !m.is_file() => Some("is not a regular file".to_owned()),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Some(format!(
            "has mode {:o}: others than its owner may read the keys",
            m.permissions().mode() & 0o777
        )),
        Ok(_) => None,
    }
}

/// Reads a credentials file: `access_key_id` and `secret_access_key`
/// (or the AWS tools' `aws_access_key_id`, `aws_secret_access_key`), one
/// `key = value` per line; `#` comments and one `[profile]` header are
/// allowed, so a copy of an `~/.aws/credentials` with one profile works.
pub fn read_credentials(path: &Path) -> Result<(String, String), String> {
    if let Some(why) = credentials_problem(path) {
        return Err(format!("{}: {why}", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut id, mut secret, mut sections) = (None, None, 0);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            sections += 1;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "{}: a line is not key = value (the keys are not shown)",
                path.display()
            ));
        };
        let value = value.trim().trim_matches('"').to_owned();
        match key.trim() {
            "access_key_id" | "aws_access_key_id" => id = Some(value),
            "secret_access_key" | "aws_secret_access_key" => secret = Some(value),
            _ => {}
        }
    }
    if sections > 1 {
        return Err(format!(
            "{}: holds {sections} profiles; keep only the one for this bucket",
            path.display()
        ));
    }
    match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok((id, secret)),
        _ => Err(format!(
            "{}: needs both access_key_id and secret_access_key",
            path.display()
        )),
    }
}
