//! The crate's errors: [`ConfigError`] for loading a config (always naming the
//! file) and [`Problem`], one invalid field with its value and the fix.

use std::fmt;
use std::path::PathBuf;

/// Why a gateway config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read config file {}: {source}; fix: check that the path exists and is readable",
        .path.display()
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown or missing key, or a value of
    /// the wrong shape. `message` is toml's own (it names the key and line)
    /// followed by a line starting `fix:`.
    #[error("cannot parse config file {}:\n{message}", .path.display())]
    Parse { path: PathBuf, message: String },
    /// The file parsed but some values cannot work; every one is listed.
    /// `path` is `None` when the config did not come from a file.
    #[error("{}", render_invalid(.path, .problems))]
    Invalid {
        path: Option<PathBuf>,
        problems: Vec<Problem>,
    },
}

/// One field of a config that cannot work, shown as
/// `<field> = <value>: <reason>; fix: <fix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `nfs.listen`.
    pub field: String,
    /// The value as written in TOML, e.g. `"127.0.0.1:0"`.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
    /// What the operator should do.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}: {}; fix: {}",
            self.field, self.value, self.reason, self.fix
        )
    }
}

fn render_invalid(path: &Option<PathBuf>, problems: &[Problem]) -> String {
    let count = match problems.len() {
        1 => "1 problem".to_owned(),
        n => format!("{n} problems"),
    };
    let mut out = match path {
        Some(path) => format!("config file {} has {count}:", path.display()),
        None => format!("config has {count}:"),
    };
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    out
}

/// A size string that is not a number with a known unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid size {input:?}: {reason}; expected a number and a unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB) such as \"64 GiB\", \"1.5 GiB\", \"100 MB\" or \"4096\""
)]
pub struct ParseByteSizeError {
    input: String,
    reason: &'static str,
}

impl ParseByteSizeError {
    pub(crate) fn new(input: &str, reason: &'static str) -> Self {
        Self {
            input: input.to_owned(),
            reason,
        }
    }
}

/// Reads the file at `path`, parses it with `parse` and checks it with
/// `validate`; every error names the file.
pub(crate) fn load_file<T>(
    path: &std::path::Path,
    parse: impl FnOnce(&str, &std::path::Path) -> Result<T, ConfigError>,
    validate: impl FnOnce(&T) -> Result<(), ConfigError>,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config = parse(&text, path)?;
    validate(&config).map_err(|err| match err {
        ConfigError::Invalid { problems, .. } => ConfigError::Invalid {
            path: Some(path.to_owned()),
            problems,
        },
        other => other,
    })?;
    Ok(config)
}

impl ConfigError {
    /// `Ok` when nothing was found wrong, else every problem at once.
    pub(crate) fn from_problems(problems: Vec<Problem>) -> Result<(), ConfigError> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                path: None,
                problems,
            })
        }
    }
}
