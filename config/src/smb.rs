//! `[smb]`: the SMB bridge (Samba's smbd over the gateway's FUSE view), and
//! the naming rules for shares and users that the config, the CLI and the
//! bridge all apply.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[smb]`. Absent `listen` leaves the bridge off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmbConfig {
    /// Where smbd listens, ADDRESS:PORT (445 is SMB's standard port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The shares, one `[[smb.shares]]` table each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<SmbShare>,
}

impl SmbConfig {
    pub fn is_off(&self) -> bool {
        self.listen.is_none() && self.shares.is_empty()
    }
}

/// One share: a name clients see and a folder of the cairn tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmbShare {
    /// What clients open as `\\gateway\NAME`.
    pub name: String,
    /// An existing folder inside the cairn tree, from its root: "/" or "/media".
    pub path: String,
}

/// Names Samba keeps for itself.
const RESERVED_SHARES: &[&str] = &["global", "homes", "printers", "print$", "ipc$"];

/// Why `name` cannot be a share name, or `None` if it can: 1-80 characters
/// from letters, digits, `_`, `-` and `.`, starting with a letter or digit,
/// and not one of Samba's own section names.
pub fn share_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 80 {
        return Some("must be 1 to 80 characters long".to_owned());
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("must start with a letter or a digit".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Some(format!(
            "holds {c:?}; only letters, digits, '_', '-' and '.' are allowed"
        ));
    }
    if RESERVED_SHARES.contains(&name.to_ascii_lowercase().as_str()) {
        return Some("is a name Samba reserves".to_owned());
    }
    None
}

/// Why `name` cannot be an SMB user (and Unix account) name, or `None`:
/// 1-32 characters, lowercase letters, digits, `_` and `-`, starting with a
/// lowercase letter or `_`, as Debian's `useradd` accepts by default.
pub fn user_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 32 {
        return Some("must be 1 to 32 characters long".to_owned());
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
        return Some("must start with a lowercase letter or '_'".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')))
    {
        return Some(format!(
            "holds {c:?}; only lowercase letters, digits, '_' and '-' are allowed"
        ));
    }
    None
}

/// Why `path` cannot be a share path inside the tree, or `None`: absolute
/// ("/" is the whole tree), no "." or ".." parts, no NUL or newline.
pub fn share_path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some("must start with '/' (the root of the cairn tree)".to_owned());
    }
    if path.contains(['\0', '\n', '\r']) {
        return Some("holds a NUL or line break".to_owned());
    }
    if path.split('/').any(|p| p == "." || p == "..") {
        return Some("may not hold \".\" or \"..\" parts".to_owned());
    }
    None
}
