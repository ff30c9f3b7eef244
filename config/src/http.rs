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

/// Why the token in `path` cannot be used, or the token: the file's first
/// line, at least 16 characters, in a file only its owner may read.
pub fn read_token(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "others may read it (mode {:o}); fix: chmod 600 {}",
            meta.permissions().mode() & 0o777,
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.len() < 16 || token.contains(char::is_whitespace) {
        return Err(
            "its first line must be a token of at least 16 characters without spaces; \
             fix: head -c 24 /dev/urandom | base64 > FILE"
                .to_owned(),
        );
    }
    Ok(token)
}
