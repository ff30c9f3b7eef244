//! `[http]`: the gateway's read-only HTTP endpoint (Prometheus `/metrics`,
//! the status page, `/status.json`). Off unless `listen` is set; beyond
//! loopback it needs a token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[http]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Where the endpoint listens, ADDRESS:PORT (e.g. "127.0.0.1:9470").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// A file holding the token every request must carry (`Authorization:
    /// Bearer TOKEN`, or `?token=TOKEN` for a browser). Required when
    /// `listen` is not a loopback address; mode 0600.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

impl HttpConfig {
    pub fn is_off(&self) -> bool {
        self.listen.is_none() && self.token_file.is_none()
    }
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    #[error("others may read it (mode {mode:o}); fix: chmod 600 {}", path.display())]
    OpenToOthers { mode: u32, path: PathBuf },
    #[error(
        "its first line must be a token of at least 16 characters without spaces; \
         fix: head -c 24 /dev/urandom | base64 > FILE"
    )]
    Weak,
}

/// The token in `path`: the file's first line, at least 16 characters, in
/// a file only its owner may read.
pub fn read_token(path: &Path) -> Result<String, TokenError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(TokenError::OpenToOthers {
            mode: mode & 0o777,
            path: path.to_owned(),
        });
    }
    let text = std::fs::read_to_string(path)?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.len() < 16 || token.contains(char::is_whitespace) {
        return Err(TokenError::Weak);
    }
    Ok(token)
}
