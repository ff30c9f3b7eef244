//! The generated smb.conf: a standalone server on the configured address
//! only, every Samba folder under the bridge's [`Layout`], users from the
//! private tdbsam, DOS attributes and streams in `user.*` extended
//! attributes, and one section per share whose `root preexec` refuses the
//! connection unless the FUSE view is mounted (otherwise clients would see
//! the empty folder beneath it).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use crate::{Layout, SmbError};

/// A share as smb.conf sees it: a name and a folder inside the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub name: String,
    /// From the tree's root: "/" or "/media".
    pub path: String,
}

/// The whole smb.conf for `listen` and `shares`.
pub fn render(layout: &Layout, listen: SocketAddr, shares: &[Share]) -> String {
    let base = layout.base().display().to_string();
    let view = layout.view();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by cairn at every start and share change; edits are lost."
    );
    let _ = writeln!(t, "[global]");
    let lines: &[(&str, String)] = &[
        ("server role", "standalone server".into()),
        ("smb ports", listen.port().to_string()),
        ("interfaces", listen.ip().to_string()),
        ("bind interfaces only", "yes".into()),
        ("disable netbios", "yes".into()),
        ("private dir", format!("{base}/private")),
        ("lock directory", format!("{base}/lock")),
        ("state directory", format!("{base}/state")),
        ("cache directory", format!("{base}/cache")),
        ("pid directory", format!("{base}/pid")),
        ("ncalrpc dir", format!("{base}/ncalrpc")),
        (
            "passdb backend",
            format!("tdbsam:{}", layout.passdb().display()),
        ),
        ("log file", format!("{base}/log/log.%m")),
        ("max log size", "1000".into()),
        ("load printers", "no".into()),
        ("printing", "bsd".into()),
        ("printcap name", "/dev/null".into()),
        ("disable spoolss", "yes".into()),
        ("security", "user".into()),
        ("map to guest", "never".into()),
        ("idmap config * : backend", "tdb".into()),
        ("idmap config * : range", "3000-7999".into()),
        // DOS attributes (hidden, read-only, ...) and alternate data streams
        // live in user.* extended attributes of the FUSE view.
        ("store dos attributes", "yes".into()),
        ("ea support", "yes".into()),
        ("vfs objects", "streams_xattr".into()),
        // The FUSE view has no kernel oplocks or leases of its own.
        ("kernel oplocks", "no".into()),
        ("kernel share modes", "no".into()),
        // Reads go from the view's page cache to the socket without a copy
        // through smbd (the FUSE view is cached, not direct I/O).
        ("use sendfile", "yes".into()),
    ];
    for (k, v) in lines {
        let _ = writeln!(t, "    {k} = {v}");
    }
    for share in shares {
        let dir = share_dir(&view, &share.path);
        let _ = writeln!(t, "\n[{}]", share.name);
        let _ = writeln!(t, "    path = {}", dir.display());
        let _ = writeln!(t, "    read only = no");
        let _ = writeln!(t, "    browseable = yes");
        // The share's folder belongs to the SMB users' group (setgid,
        // group-writable): acting as that group, every SMB user can write
        // there, and what they make stays the group's and group-writable.
        let _ = writeln!(t, "    force group = {}", crate::SMB_GROUP);
        let _ = writeln!(t, "    create mask = 0774");
        let _ = writeln!(t, "    force create mode = 0660");
        let _ = writeln!(t, "    directory mask = 2775");
        let _ = writeln!(t, "    force directory mode = 2770");
        // smbd splits this command line itself (no shell), so the test
        // runs in an explicit one; Layout refuses paths with quotes.
        let _ = writeln!(
            t,
            "    root preexec = /bin/sh -c 'mountpoint -q \"{}\" && test -d \"{}\"'",
            view.display(),
            dir.display()
        );
        let _ = writeln!(t, "    root preexec close = yes");
    }
    t
}

/// The share's folder inside the mounted view.
fn share_dir(view: &Path, path: &str) -> std::path::PathBuf {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        view.to_owned()
    } else {
        view.join(rel)
    }
}

/// Writes the config for `listen` and `shares` durably (temp file, fsync,
/// rename, fsync the folder), so smbd never reads half of it.
pub fn write_conf(layout: &Layout, listen: SocketAddr, shares: &[Share]) -> Result<(), SmbError> {
    layout.create_dirs()?;
    let text = render(layout, listen, shares);
    Ok(cairn_config::write_durable(
        &layout.conf(),
        text.as_bytes(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_point_into_the_view_and_are_guarded() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path()).unwrap();
        let text = render(
            &layout,
            "127.0.0.1:4445".parse().unwrap(),
            &[
                Share {
                    name: "cairn".into(),
                    path: "/".into(),
                },
                Share {
                    name: "media".into(),
                    path: "/media/tv".into(),
                },
            ],
        );
        let view = layout.view().display().to_string();
        assert!(text.contains("smb ports = 4445"), "{text}");
        assert!(text.contains("interfaces = 127.0.0.1"), "{text}");
        assert!(
            text.contains(&format!("[cairn]\n    path = {view}\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("path = {view}/media/tv\n")),
            "{text}"
        );
        assert_eq!(
            text.matches("root preexec = /bin/sh -c 'mountpoint -q")
                .count(),
            2
        );
        assert!(text.contains(&format!(
            "tdbsam:{}/smb/private/passdb.tdb",
            dir.path().canonicalize().unwrap().display()
        )));
    }

    #[test]
    fn a_long_data_folder_is_refused() {
        let long = Path::new("/tmp").join("x".repeat(80));
        assert!(matches!(
            Layout::new(&long),
            Err(SmbError::PathTooLong { .. })
        ));
    }
}
