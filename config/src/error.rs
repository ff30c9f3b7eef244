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

/// At most this many parse errors are reported from one file.
const MOST_PARSE_ERRORS: usize = 30;

/// Parses `text` as a `T`, reporting every parse error at once: after each
/// error, the line it points at (a whole `[section]` when it points at a
/// header) is blanked and the text parsed again, so a value of the wrong
/// type or an unknown key does not hide the next one. Each error keeps
/// toml's own message (line, column, the line itself) and gets a `fix:`
/// from `hint`. When the rest parses, `validate`'s problems with it are
/// listed too.
pub(crate) fn parse_all<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &std::path::Path,
    hint: fn(&str) -> &'static str,
    validate: fn(&T) -> Result<(), ConfigError>,
) -> Result<T, ConfigError> {
    let mut text = text.to_owned();
    // (where in the file, the error with its fix), sorted by place below.
    let mut errors: Vec<(usize, String)> = Vec::new();
    let rest = loop {
        match toml::from_str::<T>(&text) {
            Ok(config) => break Some(config),
            Err(err) => {
                let at = err.span().map(|s| s.start);
                errors.push((
                    at.unwrap_or(usize::MAX),
                    format!("{}\n{}", err.to_string().trim_end(), hint(err.message())),
                ));
                let blanked = at.is_some_and(|at| blank_at(&mut text, at));
                if !blanked || errors.len() >= MOST_PARSE_ERRORS {
                    break None;
                }
            }
        }
    };
    if errors.is_empty() {
        if let Some(config) = rest {
            return Ok(config);
        }
    }
    errors.sort_by_key(|(at, _)| *at);
    let mut message = match errors.len() {
        1 => String::new(),
        n => format!("{n} errors, each with its fix:\n\n"),
    };
    let texts: Vec<String> = errors.into_iter().map(|(_, m)| m).collect();
    message.push_str(&texts.join("\n\n"));
    if let Some(Err(ConfigError::Invalid { problems, .. })) = rest.as_ref().map(validate) {
        message.push_str("\n\nand with the rest of the file:");
        for p in problems {
            message.push_str(&format!("\n  {p}"));
        }
    }
    Err(ConfigError::Parse {
        path: path.to_owned(),
        message,
    })
}

/// Blanks the line of `text` holding byte `at` (and, for a `[table]`
/// header, every line up to the next header), keeping line numbers; false
/// when that changes nothing.
fn blank_at(text: &mut String, at: usize) -> bool {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let header = text[start..line_end].trim_start().starts_with('[');
    let mut end = line_end;
    if header {
        // Up to the next header line.
        let mut pos = line_end;
        while pos < text.len() {
            let next = text[pos + 1..]
                .find('\n')
                .map_or(text.len(), |i| pos + 1 + i);
            if text[(pos + 1).min(text.len())..next]
                .trim_start()
                .starts_with('[')
            {
                break;
            }
            end = next;
            pos = next;
        }
    }
    if text[start..end].trim().is_empty() {
        return false;
    }
    let blank: String = text[start..end].chars().filter(|&c| c == '\n').collect();
    text.replace_range(start..end, &blank);
    true
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
