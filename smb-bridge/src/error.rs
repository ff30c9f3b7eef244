//! The bridge's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SmbError {
    #[error("the SMB state folder {path} is {len} bytes long; Samba's sockets under it must fit in 108 bytes, so keep the gateway's data folder under {max} bytes")]
    PathTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    #[error("the SMB state folder {path} holds a quote, '\\', '$', '`', '%' or a line break, which smb.conf cannot carry; move the gateway's data folder")]
    PathChars { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Durable(#[from] cairn_config::DurableError),
    #[error("cannot run {program}: {source}; install Samba (apt-get install samba smbclient)")]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {output}")]
    Command {
        program: &'static str,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("group {group} is still unknown after groupadd created it (is /etc/group managed elsewhere?)")]
    NoGroup { group: &'static str },
    #[error("bad user name {name:?}: {why}")]
    BadUser { name: String, why: String },
    #[error("the password is empty; give one on standard input")]
    EmptyPassword,
    #[error("the password may not hold a line break or NUL")]
    BadPassword,
}
