//! `cairn smb share add` and `cairn smb user add`. Names are checked here
//! first, so a bad one is refused with the rule it breaks (exit 2) before
//! anything is asked of the gateway or of Samba.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use cairn_smb_bridge::Layout;

use crate::admin::proto::{Request, ShareAdded};
use crate::cli::{admin_call, config_error, ShareCmd, SmbCmd, UserCmd};

pub(crate) fn smb(action: SmbCmd) -> ExitCode {
    match action {
        SmbCmd::Share {
            action: ShareCmd::Add { name, path, target },
        } => {
            if let Some(why) = cairn_config::share_name_problem(&name) {
                eprintln!("cairn smb share add: bad share name {name:?}: {why}");
                return ExitCode::from(2);
            }
            if let Some(why) = cairn_config::share_path_problem(&path) {
                eprintln!("cairn smb share add: bad share path {path:?}: {why}");
                return ExitCode::from(2);
            }
            admin_call(
                &target,
                Request::SmbShareAdd { name, path },
                false,
                |v: &ShareAdded| println!("share {} added for {}", v.share, v.path),
            )
        }
        SmbCmd::User {
            action: UserCmd::Add { name, target },
        } => {
            if let Some(why) = cairn_config::user_name_problem(&name) {
                eprintln!("cairn smb user add: bad user name {name:?}: {why}");
                return ExitCode::from(2);
            }
            let config = match target.config() {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            let Some(listen) = config.smb.listen else {
                eprintln!(
                    "cairn smb user add: the SMB bridge is off for this gateway (no [smb] listen in its config); \
                     start it with `cairn up --smb ADDR:PORT` or set [smb] listen, then add users. No account was made."
                );
                return ExitCode::from(2);
            };
            let dir = config.data_dir;
            let password = match read_password(&name) {
                Ok(p) => p,
                Err(why) => {
                    eprintln!("cairn smb user add: {why}");
                    return ExitCode::from(2);
                }
            };
            let password = password.as_str();
            let layout = match Layout::new(&dir) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("cairn smb user add: {e}");
                    return ExitCode::from(2);
                }
            };
            if !layout.conf().exists() {
                // The gateway has not run the bridge yet: a config without
                // shares is enough for the password database.
                if let Err(e) = cairn_smb_bridge::write_conf(&layout, listen, &[]) {
                    eprintln!("cairn smb user add: {e}");
                    return ExitCode::from(1);
                }
            }
            match cairn_smb_bridge::add_user(&layout, &name, password) {
                Ok(()) => {
                    println!("SMB user {name} added");
                    ExitCode::SUCCESS
                }
                Err(
                    e @ (cairn_smb_bridge::SmbError::EmptyPassword
                    | cairn_smb_bridge::SmbError::BadPassword
                    | cairn_smb_bridge::SmbError::BadUser { .. }),
                ) => {
                    eprintln!("cairn smb user add: {e}");
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("cairn smb user add: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Why no password was read.
#[derive(Debug, thiserror::Error)]
enum PasswordError {
    #[error("cannot read the password: {0}")]
    Read(#[from] std::io::Error),
    #[error("the two passwords differ; nothing changed")]
    Differ,
}

/// The password: asked twice without echo on a terminal, else the first
/// line of standard input.
fn read_password(user: &str) -> Result<String, PasswordError> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("SMB password for {user}: "))?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            return Err(PasswordError::Differ);
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
