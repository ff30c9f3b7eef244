//! Where the bridge keeps its files: `<gateway data>/smb/` holds smb.conf,
//! Samba's private, lock, state, cache, pid and ncalrpc folders, the logs,
//! and `view/`, the FUSE view's mount point. The base path is kept short:
//! Samba puts Unix sockets below it and a socket path must fit in 108 bytes.

use std::path::{Path, PathBuf};

use crate::SmbError;

/// The longest base path accepted: Samba's deepest socket adds about 45
/// bytes (`/lock/msg.sock/<pid>` and `/ncalrpc/np/...`).
pub const MAX_BASE: usize = 60;

#[derive(Debug, Clone)]
pub struct Layout {
    base: PathBuf,
}

impl Layout {
    /// The layout under `data_dir` (the gateway's data folder, made absolute).
    pub fn new(data_dir: &Path) -> Result<Layout, SmbError> {
        let data = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        let base = data.join("smb");
        let len = base.as_os_str().len();
        if len > MAX_BASE {
            return Err(SmbError::PathTooLong {
                path: base,
                len,
                max: MAX_BASE - 4,
            });
        }
        if base
            .to_str()
            .is_none_or(|b| b.contains(['\'', '"', '\\', '$', '`', '%', '\n']))
        {
            return Err(SmbError::PathChars { path: base });
        }
        Ok(Layout { base })
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn conf(&self) -> PathBuf {
        self.base.join("smb.conf")
    }

    /// Where the gateway mounts its FUSE view for smbd.
    pub fn view(&self) -> PathBuf {
        self.base.join("view")
    }

    pub fn private(&self) -> PathBuf {
        self.base.join("private")
    }

    pub fn passdb(&self) -> PathBuf {
        self.private().join("passdb.tdb")
    }

    pub fn pid_dir(&self) -> PathBuf {
        self.base.join("pid")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.base.join("log")
    }

    /// smbd's own output (run with `--debug-stdout`).
    pub fn smbd_log(&self) -> PathBuf {
        self.log_dir().join("smbd.log")
    }

    /// Samba's folders, each created if missing (private is mode 0700).
    pub fn create_dirs(&self) -> Result<(), SmbError> {
        for sub in ["private", "lock", "state", "cache", "pid", "ncalrpc", "log"] {
            let path = self.base.join(sub);
            std::fs::create_dir_all(&path).map_err(|source| SmbError::Write {
                path: path.clone(),
                source,
            })?;
        }
        use std::os::unix::fs::PermissionsExt;
        let private = self.private();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| SmbError::Write {
                path: private,
                source,
            },
        )
    }
}
