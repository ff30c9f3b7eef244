//! POSIX permission checks for a caller. Root (uid 0) passes every check
//! except execute on a file with no execute bit; the front end has already
//! squashed root if the export says so.

use cairn_metadata::Inode;

use crate::core::{Credentials, FsError};

pub const READ: u32 = 4;
pub const WRITE: u32 = 2;
pub const EXEC: u32 = 1;

/// The rwx bits (`0..=7`) that apply to `cred` for `inode`.
pub fn bits_for(cred: &Credentials, inode: &Inode) -> u32 {
    let mode = inode.mode;
    if cred.uid == 0 {
        let any_exec = mode & 0o111 != 0 || inode.kind == cairn_metadata::FileKind::Dir;
        return READ | WRITE | if any_exec { EXEC } else { 0 };
    }
    if cred.uid == inode.uid {
        (mode >> 6) & 7
    } else if cred.in_group(inode.gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    }
}

/// Fails with `Access` unless `cred` has every bit of `want` on `inode`.
pub fn check(cred: &Credentials, inode: &Inode, want: u32) -> Result<(), FsError> {
    if bits_for(cred, inode) & want == want {
        Ok(())
    } else {
        Err(FsError::Access)
    }
}

/// Like [`check`], but the owner may always read and write their own file,
/// as NFS servers allow so that a file created read-only can still be
/// filled by the process that created it.
pub fn check_data(cred: &Credentials, inode: &Inode, want: u32) -> Result<(), FsError> {
    if cred.uid == inode.uid {
        return Ok(());
    }
    check(cred, inode, want)
}

/// Only the owner or root may change mode, times to arbitrary values, etc.
pub fn check_owner(cred: &Credentials, inode: &Inode) -> Result<(), FsError> {
    if cred.uid == 0 || cred.uid == inode.uid {
        Ok(())
    } else {
        Err(FsError::NotOwner)
    }
}

/// Removing or renaming an entry out of a sticky directory needs ownership
/// of the entry or the directory.
pub fn check_sticky(cred: &Credentials, dir: &Inode, victim: &Inode) -> Result<(), FsError> {
    if dir.mode & 0o1000 == 0 || cred.uid == 0 || cred.uid == dir.uid || cred.uid == victim.uid {
        Ok(())
    } else {
        Err(FsError::Access)
    }
}
