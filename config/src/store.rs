//! [`StoreConfig`]: the TOML config of one chunk-store daemon (`cairn chunkstore
//! --config store.toml`), its defaults, loading and [`StoreConfig::validate`],
//! which reports every problem at once. Unknown keys are rejected; see
//! `config/examples/store.toml` for every key.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{ConfigError, Problem};
use crate::gateway::LogConfig;
use crate::size::ByteSize;

/// `reserve` when the key is absent.
pub const DEFAULT_STORE_RESERVE: ByteSize = ByteSize::gib(1);

const LISTEN_EXPECTED: &str =
    "expected ADDRESS:PORT such as 0.0.0.0:7480 or [::]:7480, port 0-65535";

/// The whole chunk-store config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// TCP address the gateway connects to. Port 0 picks a free port (tests).
    #[serde(deserialize_with = "deserialize_store_listen")]
    pub listen: SocketAddr,
    /// The drive's folder. Must already exist (an unmounted drive is refused).
    pub data_dir: PathBuf,
    /// Failure domain: one provider or site.
    pub zone: String,
    /// Failure domain: one physical server or VPS.
    pub host: String,
    /// Labels that storage classes match (`hdd`, `ssd`, ...), each `[a-z0-9_-]+`.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Free space a put may never eat into.
    #[serde(default = "default_reserve")]
    pub reserve: ByteSize,
    /// The most this store holds, for a store sharing its disk; none: the
    /// whole file system. Fill ratios (placement, rebalance) are taken
    /// against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<ByteSize>,
    /// File holding the cluster secret (at least 32 bytes, mode 0600).
    pub secret_file: PathBuf,
    /// The store's name; `None` means `host`. See [`StoreConfig::store_name`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub scrub: ScrubConfig,
}

/// `[scrub]`: re-reading every shard to find bit rot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrubConfig {
    /// A full pass over the shards starts this long after the last one
    /// started; "0s" turns scrubbing off.
    pub every: crate::Duration,
    /// Bytes per second a pass reads at most.
    pub bandwidth: ByteSize,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        Self {
            every: crate::Duration::secs(7 * 86_400),
            bandwidth: ByteSize::mib(16),
        }
    }
}

fn default_reserve() -> ByteSize {
    DEFAULT_STORE_RESERVE
}

impl StoreConfig {
    /// A config with every default, for `cairn up` and tests.
    pub fn with_defaults(
        listen: SocketAddr,
        data_dir: PathBuf,
        zone: &str,
        host: &str,
        secret_file: PathBuf,
    ) -> Self {
        Self {
            listen,
            data_dir,
            zone: zone.to_owned(),
            host: host.to_owned(),
            labels: Vec::new(),
            reserve: DEFAULT_STORE_RESERVE,
            capacity: None,
            secret_file,
            name: None,
            log: LogConfig::default(),
            scrub: ScrubConfig::default(),
        }
    }

    /// The store's name: `name`, or `host` when unset.
    pub fn store_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.host)
    }

    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        crate::error::load_file(path, Self::parse, Self::validate)
    }

    /// Parses config text without validating it. `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        crate::error::parse_all(text, path, fix_hint, Self::validate)
    }

    /// Checks every value; returns [`ConfigError::Invalid`] (with `path: None`)
    /// listing all problems found, in file order. Only looks at the filesystem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut report = |field: &str, value: String, reason: String, fix: &str| {
            problems.push(Problem {
                field: field.to_owned(),
                value,
                reason,
                fix: fix.to_owned(),
            });
        };

        match std::fs::metadata(&self.data_dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => report(
                "data_dir",
                quoted(&self.data_dir.display()),
                "is not a directory".to_owned(),
                "point data_dir at the drive's folder, or mount the drive that holds it",
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => report(
                "data_dir",
                quoted(&self.data_dir.display()),
                "does not exist".to_owned(),
                "mount the drive or create the folder (mkdir -p); cairn never creates data_dir",
            ),
            Err(err) => report(
                "data_dir",
                quoted(&self.data_dir.display()),
                format!("cannot be checked: {err}"),
                "make it readable by the user cairn runs as",
            ),
        }
        for (field, value, example) in [
            ("zone", &self.zone, "zone = \"hetzner-fsn1\""),
            ("host", &self.host, "host = \"vps1\""),
        ] {
            if let Some(reason) = bad_name(value) {
                report(
                    field,
                    quoted(value),
                    reason,
                    &format!("write a short name, e.g. {example}"),
                );
            }
        }
        for (i, label) in self.labels.iter().enumerate() {
            if !is_label(label) {
                report(
                    &format!("labels[{i}]"),
                    quoted(label),
                    "is not a label: use only a-z, 0-9, '_' and '-', at least one character"
                        .to_owned(),
                    "write it in lowercase, e.g. labels = [\"hdd\", \"eu_west\"]",
                );
            } else if self.labels[..i].contains(label) {
                report(
                    &format!("labels[{i}]"),
                    quoted(label),
                    "is listed twice".to_owned(),
                    "remove the duplicate",
                );
            }
        }
        match std::fs::metadata(&self.secret_file) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => report(
                "secret_file",
                quoted(&self.secret_file.display()),
                "is not a regular file".to_owned(),
                "point secret_file at the cluster secret file (the gateway's cluster.secret)",
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => report(
                "secret_file",
                quoted(&self.secret_file.display()),
                "does not exist".to_owned(),
                "copy the gateway's cluster.secret here and chmod 600 it",
            ),
            Err(err) => report(
                "secret_file",
                quoted(&self.secret_file.display()),
                format!("cannot be checked: {err}"),
                "make it readable by the user cairn runs as (mode 0600)",
            ),
        }
        if let Some(name) = &self.name {
            if let Some(reason) = bad_name(name) {
                report(
                    "name",
                    quoted(name),
                    reason,
                    "write a short name such as \"vps1-disk2\", or remove the key to use host",
                );
            }
        }

        ConfigError::from_problems(problems)
    }
}

/// Why `value` cannot be a zone, host or store name.
fn bad_name(value: &str) -> Option<String> {
    if value.trim().is_empty() {
        Some("must not be empty".to_owned())
    } else if value.len() > 64 {
        Some(format!("is {} bytes long, the limit is 64", value.len()))
    } else if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("must not contain spaces or control characters".to_owned())
    } else {
        None
    }
}

/// `[a-z0-9_-]+`.
pub(crate) fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn quoted(value: &impl fmt::Display) -> String {
    format!("{:?}", value.to_string())
}

/// `listen`: a string `ADDRESS:PORT`, with an error that names the key.
fn deserialize_store_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    struct ListenVisitor;

    impl Visitor<'_> for ListenVisitor {
        type Value = SocketAddr;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "listen as a string: {LISTEN_EXPECTED}")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<SocketAddr, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("listen = {v:?}: {LISTEN_EXPECTED}")))
        }
    }

    d.deserialize_str(ListenVisitor)
}

/// A one-line `fix:` for a toml error, chosen from its message.
fn fix_hint(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "fix: remove the key or correct its spelling or section; config/examples/store.toml lists every key"
    } else if message.contains("missing field") {
        "fix: add the key above the first [section] header; listen, data_dir, zone, host and secret_file are required"
    } else if message.contains("listen") {
        "fix: write the address in quotes, e.g. listen = \"0.0.0.0:7480\""
    } else if message.contains("invalid size") {
        "fix: write the size in quotes with a unit, e.g. reserve = \"1 GiB\""
    } else if message.contains("unknown variant") {
        "fix: use one of the quoted lowercase values the message lists"
    } else {
        "fix: correct the value on the line shown; config/examples/store.toml lists every key"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogLevel;

    const EXAMPLE: &str = include_str!("../examples/store.toml");

    /// A valid config text for `dir`, with a secret file in it.
    fn minimal(dir: &Path) -> String {
        let secret = dir.join("cluster.secret");
        std::fs::write(&secret, "ab".repeat(32)).unwrap();
        format!(
            "listen = \"127.0.0.1:7480\"\ndata_dir = {:?}\nzone = \"z1\"\nhost = \"h1\"\nsecret_file = {:?}\n",
            dir.display().to_string(),
            secret.display().to_string()
        )
    }

    fn load(dir: &Path, text: &str) -> Result<StoreConfig, ConfigError> {
        let path = dir.join("store.toml");
        std::fs::write(&path, text).unwrap();
        StoreConfig::load(&path)
    }

    #[test]
    fn shipped_example_parses_and_validates() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("cluster.secret");
        std::fs::write(&secret, "ab".repeat(32)).unwrap();
        let text = EXAMPLE
            .replace("/srv/cairn/disk1", &tmp.path().display().to_string())
            .replace("/etc/cairn/cluster.secret", &secret.display().to_string());
        let config = load(tmp.path(), &text).unwrap();
        assert_eq!(config.listen, "0.0.0.0:7480".parse().unwrap());
        assert_eq!(config.zone, "hetzner-fsn1");
        assert_eq!(config.host, "vps1");
        assert_eq!(config.labels, ["hdd"]);
        assert_eq!(config.reserve, ByteSize::gib(1));
        assert_eq!(config.store_name(), "vps1-disk1");
        assert_eq!(config.log.level, LogLevel::Info);
    }

    #[test]
    fn defaults_apply() {
        let tmp = tempfile::tempdir().unwrap();
        let config = load(tmp.path(), &minimal(tmp.path())).unwrap();
        assert!(config.labels.is_empty());
        assert_eq!(config.reserve, DEFAULT_STORE_RESERVE);
        assert_eq!(config.store_name(), "h1");
    }

    #[test]
    fn unknown_and_missing_keys_are_parse_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let err = load(tmp.path(), &format!("{}lables = []\n", minimal(tmp.path()))).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{message}");
        assert!(
            message.contains("lables") && message.contains("fix:"),
            "{message}"
        );

        let text = minimal(tmp.path()).replace("zone = \"z1\"\n", "");
        let message = load(tmp.path(), &text).unwrap_err().to_string();
        assert!(
            message.contains("zone") && message.contains("fix:"),
            "{message}"
        );

        let text = minimal(tmp.path()).replace("127.0.0.1:7480", "localhost");
        let message = load(tmp.path(), &text).unwrap_err().to_string();
        assert!(message.contains("listen = \"localhost\""), "{message}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nzone = \"\"\nhost = \" \"\n\
             labels = [\"HDD\", \"ssd\", \"ssd\", \"\"]\nsecret_file = \"/nonexistent-cairn/secret\"\n\
             name = \"a b\"\n",
            tmp.path().join("missing").display().to_string()
        );
        let err = load(tmp.path(), &text).unwrap_err();
        let message = err.to_string();
        let ConfigError::Invalid { problems, .. } = &err else {
            panic!("{message}")
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "data_dir",
                "zone",
                "host",
                "labels[0]",
                "labels[2]",
                "labels[3]",
                "secret_file",
                "name"
            ],
            "{message}"
        );
        assert!(message.contains("has 8 problems:"), "{message}");
        assert!(message.contains("mount the drive"), "{message}");
        for problem in problems {
            assert!(problem.to_string().contains("; fix: "), "{problem}");
        }
    }

    #[test]
    fn reserve_accepts_units() {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!("{}reserve = \"20 GiB\"\n", minimal(tmp.path()));
        assert_eq!(load(tmp.path(), &text).unwrap().reserve, ByteSize::gib(20));
        let text = format!("{}reserve = \"lots\"\n", minimal(tmp.path()));
        let message = load(tmp.path(), &text).unwrap_err().to_string();
        assert!(message.contains("reserve"), "{message}");
    }
}
