//! Private data folders: what a cairn daemon keeps on disk (metadata, cache
//! files, shards, configs, logs) is for its own user only. Folders are
//! created 0700 and files 0600 whatever the process's umask, and
//! [`secure_tree`] checks an existing folder at start, taking group and
//! world access away from whatever has it and saying what it changed.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of every folder a daemon creates.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file a daemon creates.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits that let other users in.
const OTHERS: u32 = 0o077;

/// One path whose group or world access [`secure_tree`] took away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    pub path: PathBuf,
    /// The permission bits it had.
    pub was: u32,
    /// The permission bits it has now.
    pub now: u32,
}

/// Creates `path` and any missing parents as 0700 folders (an existing
/// `path` is made 0700 too; existing parents are left alone).
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    // The umask may have taken owner bits away: set the mode exactly.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(DIR_MODE))
}

/// Opens options that create a file 0600 (read and write; add the rest).
pub fn file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Which paths [`secure_tree`] treats differently.
#[derive(Debug, Clone, Default)]
pub struct Exceptions {
    /// Folders other users must be able to pass through (to reach a mount
    /// point below): they may keep, and get, search (x) access for group and
    /// others, never read or write.
    pub traverse: Vec<PathBuf>,
    /// Paths left alone with everything below them (a folder another
    /// program manages).
    pub skip: Vec<PathBuf>,
}

/// Takes group and world access away from `root` and everything below it
/// on the same filesystem (symbolic links and mount points below are
/// neither followed nor changed). Returns what it changed; a missing `root`
/// changes nothing, and an entry below it that cannot be looked at (a dead
/// mount) is passed over with a warning.
pub fn secure_tree(root: &Path, except: &Exceptions) -> io::Result<Vec<Fixed>> {
    let mut fixed = Vec::new();
    let root_meta = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(fixed),
        Err(e) => return Err(e),
    };
    let mut todo = vec![(root.to_owned(), root_meta)];
    while let Some((path, meta)) = todo.pop() {
        if meta.file_type().is_symlink() {
            continue;
        }
        let was = meta.mode() & 0o7777;
        let (banned, allowed) = if except.traverse.contains(&path) {
            (0o066, 0o711)
        } else {
            (OTHERS, 0o700)
        };
        if was & banned != 0 {
            let now = was & allowed;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(now))?;
            fixed.push(Fixed {
                path: path.clone(),
                was,
                now,
            });
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                let child = entry?.path();
                if except.skip.contains(&child) {
                    continue;
                }
                match std::fs::symlink_metadata(&child) {
                    Ok(m) if m.dev() == meta.dev() => todo.push((child, m)),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(path = %child.display(), cause = %e, "cannot look at this path to make it private; passed over");
                    }
                }
            }
        }
    }
    Ok(fixed)
}

/// Makes `paths` (and what lies below those that are folders) private and
/// logs each change, the first `shown` one by one and the rest as a count.
pub fn secure_and_log(paths: &[&Path], except: &Exceptions) -> io::Result<usize> {
    const SHOWN: usize = 20;
    let mut total = 0;
    for root in paths {
        let fixed = secure_tree(root, except)?;
        for f in fixed.iter().take(SHOWN) {
            tracing::warn!(
                path = %f.path.display(),
                was = %format!("{:04o}", f.was),
                now = %format!("{:04o}", f.now),
                "other users could read or enter this cairn data; took their access away"
            );
        }
        if fixed.len() > SHOWN {
            tracing::warn!(
                root = %root.display(),
                more = fixed.len() - SHOWN,
                "took other users' access away from more cairn data below this folder"
            );
        }
        total += fixed.len();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_tree_takes_group_and_world_bits_away() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = root.join("meta.db");
        std::fs::write(&db, b"x").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let ok = root.join("ok");
        cairn_config::write_durable(&ok, b"y").unwrap();
        let fixed = secure_tree(&root, &Exceptions::default()).unwrap();
        let mut paths: Vec<_> = fixed
            .iter()
            .map(|f| (f.path.clone(), f.was, f.now))
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            vec![(root.clone(), 0o755, 0o700), (db.clone(), 0o644, 0o600)]
        );
        assert!(
            secure_tree(&root, &Exceptions::default())
                .unwrap()
                .is_empty(),
            "a second pass changes nothing"
        );
    }

    #[test]
    fn traverse_folders_keep_search_access_and_skipped_ones_are_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        let smb = root.join("smb");
        std::fs::create_dir_all(&smb).unwrap();
        for p in [&root, &smb] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let except = Exceptions {
            traverse: vec![root.clone()],
            skip: vec![smb.clone()],
        };
        let fixed = secure_tree(&root, &except).unwrap();
        assert_eq!(
            fixed,
            vec![Fixed {
                path: root.clone(),
                was: 0o755,
                now: 0o711
            }]
        );
        assert!(secure_tree(&root, &except).unwrap().is_empty());
        assert_eq!(std::fs::metadata(&smb).unwrap().mode() & 0o777, 0o755);
    }

    #[test]
    fn created_folders_and_files_are_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        cairn_config::write_durable(&file, b"z").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&dir), DIR_MODE);
        assert_eq!(mode(&tmp.path().join("a")), DIR_MODE);
        assert_eq!(mode(&file), FILE_MODE);
    }
}
