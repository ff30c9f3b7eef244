//! SMB users: a Unix account (created without a home or login shell when
//! missing, since smbd acts as that uid on the FUSE view), a member of the
//! [`SMB_GROUP`] that owns every share's folder, and a password in the
//! bridge's private tdbsam, set through `smbpasswd -c <our smb.conf>`.

use std::io::Write;
use std::process::{Command, Stdio};

use tracing::info;

use crate::{Layout, SmbError};

fn run(program: &'static str, cmd: &mut Command, input: Option<&str>) -> Result<(), SmbError> {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SmbError::Spawn { program, source })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|source| SmbError::Spawn { program, source })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| SmbError::Spawn { program, source })?;
    if out.status.success() {
        Ok(())
    } else {
        let mut output = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if output.is_empty() {
            output = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
        Err(SmbError::Command {
            program,
            status: out.status,
            output,
        })
    }
}

/// The Unix group of SMB users. Every share's folder belongs to it
/// (group-writable, setgid) and smbd forces it as the primary group on the
/// shares, so an SMB user can write where a share points and files made
/// over SMB stay the group's: the Samba way for a shared folder.
pub const SMB_GROUP: &str = "cairn-smb";

/// The gid of [`SMB_GROUP`], creating it (a system group) when missing.
pub fn ensure_group() -> Result<u32, SmbError> {
    if let Some(gid) = group_id(SMB_GROUP) {
        return Ok(gid);
    }
    let made = run(
        "groupadd",
        Command::new("groupadd").args(["--system", "--", SMB_GROUP]),
        None,
    );
    match (made, group_id(SMB_GROUP)) {
        (_, Some(gid)) => {
            info!(group = SMB_GROUP, gid, "created the SMB users' group");
            Ok(gid)
        }
        (Err(e), None) => Err(e),
        (Ok(()), None) => Err(SmbError::NoGroup { group: SMB_GROUP }),
    }
}

/// The gid of Unix group `name`, if it exists.
fn group_id(name: &str) -> Option<u32> {
    let out = Command::new("getent")
        .args(["group", "--", name])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout);
    line.split(':').nth(2)?.trim().parse().ok()
}

fn unix_user_exists(name: &str) -> bool {
    Command::new("id")
        .args(["-u", "--", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Adds (or re-passwords) SMB user `name`. The smb.conf at
/// `layout.conf()` must exist. Refuses a bad name or password before
/// changing anything.
pub fn add_user(layout: &Layout, name: &str, password: &str) -> Result<(), SmbError> {
    if let Some(why) = cairn_config::user_name_problem(name) {
        return Err(SmbError::BadUser {
            name: name.to_owned(),
            why,
        });
    }
    if password.is_empty() {
        return Err(SmbError::EmptyPassword);
    }
    if password.contains(['\n', '\r', '\0']) {
        return Err(SmbError::BadPassword);
    }
    if !unix_user_exists(name) {
        let made = run(
            "useradd",
            Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", "--", name]),
            None,
        );
        match made {
            Ok(()) => info!(user = name, "created the Unix account for an SMB user"),
            // Another caller created it meanwhile: that is what we wanted.
            Err(_) if unix_user_exists(name) => {}
            Err(e) => return Err(e),
        }
    }
    ensure_group()?;
    run(
        "usermod",
        Command::new("usermod").args(["--append", "--groups", SMB_GROUP, "--", name]),
        None,
    )?;
    run(
        "smbpasswd",
        Command::new("smbpasswd")
            .arg("-c")
            .arg(layout.conf())
            .args(["-s", "-a", name]),
        Some(&format!("{password}\n{password}\n")),
    )?;
    info!(user = name, "SMB password set");
    Ok(())
}
