//! Attributes: SETATTR's rules (who may change what) and ACCESS's answer.

use cairn_metadata::{FileKind, FileTime, Inode, InodeId, Tx};

use super::perm::{self, WRITE};
use super::{Credentials, Fs, FsError, SetAttr, SetTime, MAX_FILE_SIZE};

/// Applies `attrs` to `inode` inside `tx` under POSIX rules and stores it.
/// The caller shrinks the cache file after the commit if the size fell.
pub(crate) fn apply_setattr(
    tx: &Tx<'_>,
    cred: &Credentials,
    mut inode: Inode,
    attrs: &SetAttr,
    now: FileTime,
) -> Result<Inode, FsError> {
    let mut changed = false;
    if let Some(mode) = attrs.mode {
        perm::check_owner(cred, &inode)?;
        let mut mode = mode & 0o7777;
        // A non-root owner outside the file's group cannot make it setgid.
        if cred.uid != 0 && !cred.in_group(inode.gid) && inode.kind != FileKind::Dir {
            mode &= !0o2000;
        }
        inode.mode = mode;
        changed = true;
    }
    // chown(2): only root gives a file away; the owner (and nobody else,
    // even to the values the file already has) may name itself as owner
    // and pick its group among its current one and those it is in.
    if let Some(uid) = attrs.uid {
        if cred.uid != 0 && !(cred.uid == inode.uid && uid == inode.uid) {
            return Err(FsError::NotOwner);
        }
        inode.uid = uid;
        changed = true;
    }
    if let Some(gid) = attrs.gid {
        if cred.uid != 0 && !(cred.uid == inode.uid && (gid == inode.gid || cred.in_group(gid))) {
            return Err(FsError::NotOwner);
        }
        inode.gid = gid;
        changed = true;
    }
    if (attrs.uid.is_some() || attrs.gid.is_some()) && cred.uid != 0 && inode.kind != FileKind::Dir
    {
        inode.mode &= !0o6000;
    }
    if let Some(size) = attrs.size {
        match inode.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(FsError::IsDir),
            _ => return Err(FsError::Invalid("only regular files have a size to set")),
        }
        if size > MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        perm::check_data(cred, &inode, WRITE)?;
        if size != inode.size {
            if let Some(mut blob) = tx.inline_data(inode.id)? {
                if blob.len() as u64 > size {
                    blob.truncate(size as usize);
                    tx.set_inline(inode.id, &blob)?;
                }
            }
            if size < inode.size {
                tx.truncate_slots(inode.id, size)?;
            }
            inode.size = size;
            inode.mtime = now;
        }
        changed = true;
    }
    for (how, slot) in [
        (attrs.atime, &mut inode.atime),
        (attrs.mtime, &mut inode.mtime),
    ] {
        match how {
            SetTime::Keep => {}
            SetTime::ServerNow => {
                if cred.uid != 0 && cred.uid != inode.uid {
                    perm::check(
                        cred,
                        &tx.inode(inode.id)?.ok_or(FsError::Stale(inode.id))?,
                        WRITE,
                    )?;
                }
                *slot = now;
                changed = true;
            }
            SetTime::Client(t) => {
                if cred.uid != 0 && cred.uid != inode.uid {
                    return Err(FsError::NotOwner);
                }
                *slot = t;
                changed = true;
            }
        }
    }
    if changed {
        inode.ctime = now;
        tx.update_inode(&inode)?;
    }
    Ok(inode)
}

impl Fs {
    /// Changes attributes. With `guard`, fails with `GuardMismatch` unless
    /// the inode's ctime still equals it (NFSv3's sattrguard3).
    pub async fn setattr(
        &self,
        cred: &Credentials,
        id: InodeId,
        attrs: SetAttr,
        guard: Option<FileTime>,
    ) -> Result<Inode, FsError> {
        let cred = cred.clone();
        let shrinking = attrs.size.is_some();
        let _guard = if shrinking {
            Some(self.data_lock(id).lock().await)
        } else {
            None
        };
        let (inode, cut) = self
            .meta
            .write(true, move |tx| {
                let inode = tx.inode(id)?.ok_or(FsError::Stale(id))?;
                if let Some(ctime) = guard {
                    if ctime != inode.ctime {
                        return Err(FsError::GuardMismatch);
                    }
                }
                let old_size = inode.size;
                let inode = apply_setattr(tx, &cred, inode, &attrs, FileTime::now())?;
                let cut = (inode.size < old_size).then_some(inode.size);
                Ok((inode, cut))
            })
            .await?;
        if let Some(len) = cut {
            self.trim_data(id, len).await?;
        }
        Ok(inode)
    }

    /// The inode and the rwx bits (`0..=7`) the caller holds on it.
    pub async fn permissions(
        &self,
        cred: &Credentials,
        id: InodeId,
    ) -> Result<(Inode, u32), FsError> {
        let inode = self.getattr(id).await?;
        let bits = perm::bits_for(cred, &inode);
        Ok((inode, bits))
    }
}
