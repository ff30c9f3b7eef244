//! Storage classes: how a directory's chunks are protected.
//!
//! A [`ClassSpec`] is parsed from the `cairn class create` flags, validated
//! once, and stored as JSON in the metadata `classes.spec` column. The promise:
//! every `ClassSpec` that leaves [`ClassSpec::parse`] or [`ClassSpec::from_json`]
//! is valid (name, layout bounds, one label rule or one per copy), and every
//! rejection names the flag, the value and the fix.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Most copies a replica class keeps.
pub const MAX_REPLICAS: u8 = 8;
/// Most shards (`k + m`) an erasure-coded class spreads a chunk over.
pub const MAX_SHARDS: u8 = 32;
/// Longest class name.
pub const MAX_NAME_LEN: usize = 32;
/// Longest store label a rule may name.
pub const MAX_LABEL_LEN: usize = 32;

/// A storage class: layout, per-copy label rules, spread domain and strictness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    pub name: String,
    pub layout: Layout,
    /// One rule for every copy, or exactly one rule per copy/shard (in order).
    pub labels: Vec<LabelRule>,
    pub spread: Spread,
    /// Strict: never two copies in one spread domain, even if that leaves a
    /// chunk undergoal. Loose: reuse domains when they run out, report at risk.
    pub strict: bool,
    /// The archive transition: chunks older than this are re-laid as
    /// erasure-coded shards (replica classes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<Archive>,
    /// When a stable write to a file of this class is acknowledged.
    #[serde(default, skip_serializing_if = "Durability::is_local")]
    pub durability: Durability,
}

/// `--durability local|remote`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Stable once in the gateway's ingest cache (fsync'd); drained later.
    #[default]
    Local,
    /// Stable only once the data is on a chunk store and the metadata that
    /// points at it is shipped: a lost gateway loses nothing acknowledged.
    Remote,
}

impl Durability {
    fn is_local(&self) -> bool {
        *self == Durability::Local
    }
}

/// `--archive-after AGE --archive-ec K+M [--archive-spread S] [--archive-labels EXPR]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// A chunk is re-laid once it was stored this long ago. It was stored a
    /// quiet period after its files' last write, so this is their age too.
    pub after: cairn_config::Duration,
    /// Always [`Layout::ErasureCoded`].
    pub layout: Layout,
    pub labels: Vec<LabelRule>,
    pub spread: Spread,
}

/// How a chunk is made redundant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Layout {
    /// `n` whole copies (1..=8).
    Replicas { n: u8 },
    /// `k` data shards plus `m` parity shards (Reed–Solomon).
    ErasureCoded { k: u8, m: u8 },
}

/// The failure domain that copies or shards of one chunk must not share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spread {
    /// One drive.
    Store,
    /// One physical server or VPS.
    Host,
    /// One provider or site.
    Zone,
}

/// Which stores may hold one copy or shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum LabelRule {
    /// `*`: any store.
    Any,
    /// Only stores that carry this label.
    Label(String),
}

/// Why a class definition was refused. Each message names the flag, the
/// value and what to pass instead.
#[derive(Debug, thiserror::Error)]
pub enum ClassError {
    #[error("class name {name:?} is not valid: use 1 to {MAX_NAME_LEN} characters from a-z, 0-9, '_' and '-'")]
    BadName { name: String },
    #[error("--replicas {value}: a replica class keeps 1 to {MAX_REPLICAS} copies; pass --replicas 1..{MAX_REPLICAS}, or --ec K+M for wider layouts")]
    ReplicasOutOfRange { value: u8 },
    #[error("--replicas {replicas} and --ec {ec} were both given: a class is either replicated or erasure-coded; pass only one of them")]
    ReplicasAndEc { replicas: u8, ec: String },
    #[error(
        "--ec {value:?} is not of the form K+M: pass e.g. --ec 4+1 (4 data shards, 1 parity shard)"
    )]
    BadEc { value: String },
    #[error("--ec {value}: needs K >= 2 data shards, M >= 1 parity shards and K+M <= {MAX_SHARDS}; pass e.g. --ec 4+1 or --ec 8+3")]
    EcOutOfRange { value: String, k: u32, m: u32 },
    #[error("--labels {value:?}: rule {index} ({rule:?}) is not a label: use '*' or 1 to {MAX_LABEL_LEN} characters from letters, digits, '_', '-' and '.', separated by commas (e.g. --labels ssd,hdd)")]
    BadLabel {
        value: String,
        index: usize,
        rule: String,
    },
    #[error("--labels {value:?} gives {rules} rules but the class has {copies} {unit}: give one rule for all of them (e.g. --labels hdd) or exactly {copies}")]
    LabelCount {
        value: String,
        rules: usize,
        copies: usize,
        unit: &'static str,
    },
    #[error("--spread {value:?} is not a spread domain: pass --spread store, --spread host or --spread zone")]
    BadSpread { value: String },
    #[error("--strict and --loose were both given: pass one of them (loose is the default)")]
    StrictAndLoose,
    #[error("{given} needs {missing} too: an archive transition is --archive-after AGE --archive-ec K+M (e.g. --archive-after 30d --archive-ec 4+1)")]
    ArchiveIncomplete {
        given: &'static str,
        missing: &'static str,
    },
    #[error("--archive-after {value:?}: {cause}")]
    BadArchiveAge { value: String, cause: String },
    #[error("--durability {value:?}: pass --durability local (acknowledged once in the gateway's cache, the default) or --durability remote (acknowledged once on a chunk store)")]
    BadDurability { value: String },
    #[error("--archive-ec applies to replica classes; class {name:?} is already erasure-coded ({layout})")]
    ArchiveOfEc { name: String, layout: String },
    #[error("stored class spec is not valid JSON for a class: {source}")]
    Json {
        #[from]
        source: serde_json::Error,
    },
}

impl ClassSpec {
    /// Builds a class from the `cairn class create` flags.
    ///
    /// Defaults: 2 replicas, labels `*`, spread host, loose.
    pub fn parse(
        name: &str,
        replicas: Option<u8>,
        ec: Option<&str>,
        labels: Option<&str>,
        spread: Option<&str>,
        strict: bool,
        loose: bool,
    ) -> Result<ClassSpec, ClassError> {
        check_name(name)?;
        let layout = match (replicas, ec) {
            (Some(r), Some(e)) => {
                return Err(ClassError::ReplicasAndEc {
                    replicas: r,
                    ec: e.to_owned(),
                })
            }
            (None, Some(e)) => parse_ec(e)?,
            (r, None) => {
                let n = r.unwrap_or(2);
                if !(1..=MAX_REPLICAS).contains(&n) {
                    return Err(ClassError::ReplicasOutOfRange { value: n });
                }
                Layout::Replicas { n }
            }
        };
        let labels = match labels {
            Some(expr) => parse_labels(expr, &layout)?,
            None => vec![LabelRule::Any],
        };
        let spread = match spread {
            Some(s) => s.parse()?,
            None => Spread::Host,
        };
        if strict && loose {
            return Err(ClassError::StrictAndLoose);
        }
        Ok(ClassSpec {
            name: name.to_owned(),
            layout,
            labels,
            spread,
            strict,
            archive: None,
            durability: Durability::Local,
        })
    }

    /// Adds the archive transition from the `--archive-*` flags (all `None`:
    /// none). The archive's spread defaults to the class's, its labels to the
    /// class's single rule (or `*` when the class has one rule per copy).
    pub fn with_archive(
        mut self,
        after: Option<&str>,
        ec: Option<&str>,
        spread: Option<&str>,
        labels: Option<&str>,
    ) -> Result<ClassSpec, ClassError> {
        let (after, ec) = match (after, ec) {
            (None, None) => {
                let given = match (spread, labels) {
                    (Some(_), _) => "--archive-spread",
                    (None, Some(_)) => "--archive-labels",
                    (None, None) => return Ok(self),
                };
                return Err(ClassError::ArchiveIncomplete {
                    given,
                    missing: "--archive-after and --archive-ec",
                });
            }
            (Some(_), None) => {
                return Err(ClassError::ArchiveIncomplete {
                    given: "--archive-after",
                    missing: "--archive-ec",
                })
            }
            (None, Some(_)) => {
                return Err(ClassError::ArchiveIncomplete {
                    given: "--archive-ec",
                    missing: "--archive-after",
                })
            }
            (Some(a), Some(e)) => (a, e),
        };
        if let Layout::ErasureCoded { k, m } = self.layout {
            return Err(ClassError::ArchiveOfEc {
                name: self.name,
                layout: format!("ec {k}+{m}"),
            });
        }
        let age: cairn_config::Duration =
            after
                .parse()
                .map_err(
                    |e: cairn_config::ParseDurationError| ClassError::BadArchiveAge {
                        value: after.to_owned(),
                        cause: e.to_string(),
                    },
                )?;
        let layout = parse_ec(ec)?;
        let labels = match labels {
            Some(expr) => parse_labels(expr, &layout)?,
            None if self.labels.len() == 1 => self.labels.clone(),
            None => vec![LabelRule::Any],
        };
        let spread = match spread {
            Some(s) => s.parse()?,
            None => self.spread,
        };
        self.archive = Some(Archive {
            after: age,
            layout,
            labels,
            spread,
        });
        Ok(self)
    }

    /// Sets `--durability`.
    pub fn with_durability(mut self, value: Option<&str>) -> Result<ClassSpec, ClassError> {
        self.durability = match value.map(str::trim) {
            None | Some("local") => Durability::Local,
            Some("remote") => Durability::Remote,
            Some(other) => {
                return Err(ClassError::BadDurability {
                    value: other.to_owned(),
                })
            }
        };
        Ok(self)
    }

    /// The class its archived chunks follow: the archive's layout, labels
    /// and spread, this class's name and strictness.
    pub fn archived(&self) -> Option<ClassSpec> {
        self.archive.as_ref().map(|a| ClassSpec {
            name: self.name.clone(),
            layout: a.layout,
            labels: a.labels.clone(),
            spread: a.spread,
            strict: self.strict,
            archive: None,
            durability: Durability::Local,
        })
    }

    /// The built-in class: 2 replicas on any stores, spread host, loose.
    pub fn default_class() -> ClassSpec {
        ClassSpec {
            name: "default".to_owned(),
            layout: Layout::Replicas { n: 2 },
            labels: vec![LabelRule::Any],
            spread: Spread::Host,
            strict: false,
            archive: None,
            durability: Durability::Local,
        }
    }

    /// Number of copies (replicas) or shards (`k + m`) a chunk of this class has.
    pub fn copies(&self) -> usize {
        self.layout.copies()
    }

    /// Distinct spread domains needed to give every copy or shard its own.
    pub fn domains_needed(&self) -> usize {
        self.copies()
    }

    /// The label rule for copy or shard `index` (`index < copies()`).
    pub fn rule(&self, index: usize) -> &LabelRule {
        if self.labels.len() == 1 {
            &self.labels[0]
        } else {
            &self.labels[index]
        }
    }

    /// One line for the CLI, e.g. `2 replicas (hdd,*), spread host, loose`.
    pub fn describe(&self) -> String {
        let layout = match self.layout {
            Layout::Replicas { n: 1 } => "1 replica".to_owned(),
            Layout::Replicas { n } => format!("{n} replicas"),
            Layout::ErasureCoded { k, m } => format!("ec {k}+{m}"),
        };
        let mode = if self.strict { "strict" } else { "loose" };
        let mut out = format!(
            "{layout} ({}), spread {}, {mode}",
            labels_expr(&self.labels),
            self.spread
        );
        if self.durability == Durability::Remote {
            out.push_str(", durability remote");
        }
        if let (Some(a), Some(archived)) = (&self.archive, self.archived()) {
            out.push_str(&format!("; after {}: {}", a.after, archived.describe()));
        }
        out
    }

    /// Checks a spec that did not come through [`ClassSpec::parse`].
    pub fn validate(&self) -> Result<(), ClassError> {
        check_name(&self.name)?;
        match self.layout {
            Layout::Replicas { n } if !(1..=MAX_REPLICAS).contains(&n) => {
                return Err(ClassError::ReplicasOutOfRange { value: n })
            }
            Layout::ErasureCoded { k, m } => check_ec(&format!("{k}+{m}"), k.into(), m.into())?,
            Layout::Replicas { .. } => {}
        }
        // Re-parse the rules from their text so stored specs obey the same rules.
        let expr = labels_expr(&self.labels);
        let parsed = parse_labels(&expr, &self.layout)?;
        if let Some(i) = parsed.iter().zip(&self.labels).position(|(p, l)| p != l) {
            return Err(ClassError::BadLabel {
                value: expr,
                index: i + 1,
                rule: self.labels[i].to_string(),
            });
        }
        match self.archived() {
            Some(archived) if !matches!(archived.layout, Layout::ErasureCoded { .. }) => {
                Err(ClassError::BadEc {
                    value: format!("{:?}", archived.layout),
                })
            }
            Some(archived) => archived.validate(),
            None => Ok(()),
        }
    }

    /// The JSON stored in `classes.spec`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a ClassSpec always serialises")
    }

    /// Reads and validates a spec from `classes.spec`.
    pub fn from_json(json: &str) -> Result<ClassSpec, ClassError> {
        let spec: ClassSpec = serde_json::from_str(json)?;
        spec.validate()?;
        Ok(spec)
    }
}

impl Layout {
    /// Copies or shards per chunk.
    pub fn copies(&self) -> usize {
        match *self {
            Layout::Replicas { n } => n.into(),
            Layout::ErasureCoded { k, m } => usize::from(k) + usize::from(m),
        }
    }

    fn unit(&self) -> &'static str {
        match self {
            Layout::Replicas { .. } => "copies",
            Layout::ErasureCoded { .. } => "shards",
        }
    }
}

impl LabelRule {
    /// Whether a store with these labels may hold a copy under this rule.
    pub fn matches<S: AsRef<str>>(&self, store_labels: &[S]) -> bool {
        match self {
            LabelRule::Any => true,
            LabelRule::Label(l) => store_labels.iter().any(|s| s.as_ref() == l),
        }
    }
}

impl fmt::Display for LabelRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelRule::Any => f.write_str("*"),
            LabelRule::Label(l) => f.write_str(l),
        }
    }
}

impl From<LabelRule> for String {
    fn from(rule: LabelRule) -> String {
        rule.to_string()
    }
}

impl TryFrom<String> for LabelRule {
    type Error = ClassError;
    fn try_from(s: String) -> Result<LabelRule, ClassError> {
        parse_rule(&s, &s, 1)
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Spread::Store => "store",
            Spread::Host => "host",
            Spread::Zone => "zone",
        })
    }
}

impl FromStr for Spread {
    type Err = ClassError;
    fn from_str(s: &str) -> Result<Spread, ClassError> {
        match s.trim() {
            "store" => Ok(Spread::Store),
            "host" => Ok(Spread::Host),
            "zone" => Ok(Spread::Zone),
            _ => Err(ClassError::BadSpread {
                value: s.to_owned(),
            }),
        }
    }
}

fn check_name(name: &str) -> Result<(), ClassError> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ClassError::BadName {
            name: name.to_owned(),
        })
    }
}

fn parse_ec(value: &str) -> Result<Layout, ClassError> {
    let bad = || ClassError::BadEc {
        value: value.to_owned(),
    };
    let (k, m) = value.trim().split_once('+').ok_or_else(bad)?;
    let k: u32 = k.trim().parse().map_err(|_| bad())?;
    let m: u32 = m.trim().parse().map_err(|_| bad())?;
    check_ec(value, k, m)?;
    // check_ec bounds both by MAX_SHARDS, so they fit in u8.
    Ok(Layout::ErasureCoded {
        k: k as u8,
        m: m as u8,
    })
}

fn check_ec(value: &str, k: u32, m: u32) -> Result<(), ClassError> {
    if k >= 2 && m >= 1 && k + m <= u32::from(MAX_SHARDS) {
        Ok(())
    } else {
        Err(ClassError::EcOutOfRange {
            value: value.to_owned(),
            k,
            m,
        })
    }
}

fn parse_labels(expr: &str, layout: &Layout) -> Result<Vec<LabelRule>, ClassError> {
    let rules = expr
        .split(',')
        .enumerate()
        .map(|(i, r)| parse_rule(expr, r, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let copies = layout.copies();
    if rules.len() != 1 && rules.len() != copies {
        return Err(ClassError::LabelCount {
            value: expr.to_owned(),
            rules: rules.len(),
            copies,
            unit: layout.unit(),
        });
    }
    Ok(rules)
}

fn parse_rule(expr: &str, rule: &str, index: usize) -> Result<LabelRule, ClassError> {
    let r = rule.trim();
    if r == "*" {
        return Ok(LabelRule::Any);
    }
    let ok = (1..=MAX_LABEL_LEN).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(LabelRule::Label(r.to_owned()))
    } else {
        Err(ClassError::BadLabel {
            value: expr.to_owned(),
            index,
            rule: rule.to_owned(),
        })
    }
}

fn labels_expr(labels: &[LabelRule]) -> String {
    labels
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;
