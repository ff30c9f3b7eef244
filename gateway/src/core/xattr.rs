//! Extended attributes in the `user.*` namespace, as Linux keeps them: set
//! on files and directories only, read with read permission, changed with
//! write permission (root passes), at most 255-byte names and 64 KiB values.
//! Other namespaces (`security.*`, `system.*`, `trusted.*`) are refused as
//! not supported, so callers fall back as they would on a filesystem
//! without them. A change stamps the inode's ctime and is durable on return.

use cairn_metadata::{FileKind, FileTime, Inode, InodeId};

use super::perm::{self, READ, WRITE};
use super::{Credentials, Fs, FsError};

/// The longest attribute name, in bytes (Linux's XATTR_NAME_MAX).
pub const MAX_XATTR_NAME: usize = 255;
/// The largest attribute value, in bytes (Linux's XATTR_SIZE_MAX).
pub const MAX_XATTR_VALUE: usize = 64 * 1024;

/// How [`Fs::setxattr`] treats an existing or missing attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrSet {
    /// Create or replace.
    Either,
    /// Fail with `Exists` if it is set (XATTR_CREATE).
    Create,
    /// Fail with `NoXattr` unless it is set (XATTR_REPLACE).
    Replace,
}

fn check_xattr_name(name: &[u8]) -> Result<(), FsError> {
    if name.len() > MAX_XATTR_NAME {
        return Err(FsError::NameTooLong);
    }
    match name.strip_prefix(b"user.") {
        Some(rest) if !rest.is_empty() && !rest.contains(&0) => Ok(()),
        Some(_) => Err(FsError::Invalid(
            "an attribute name needs a name after \"user.\"",
        )),
        None => Err(FsError::NotSupported(
            "only user.* extended attributes are kept",
        )),
    }
}

/// `user.*` attributes live on files and directories only.
fn check_kind(inode: &Inode) -> Result<(), FsError> {
    match inode.kind {
        FileKind::File | FileKind::Dir => Ok(()),
        _ => Err(FsError::NotOwner),
    }
}

impl Fs {
    /// The value of attribute `name` on `id`.
    pub async fn getxattr(
        &self,
        cred: &Credentials,
        id: InodeId,
        name: &[u8],
    ) -> Result<Vec<u8>, FsError> {
        check_xattr_name(name)?;
        let inode = self.getattr(id).await?;
        perm::check(cred, &inode, READ)?;
        self.meta
            .read(|v| v.xattr(id, name))?
            .ok_or(FsError::NoXattr)
    }

    /// The names of every attribute set on `id`.
    pub async fn listxattr(
        &self,
        _cred: &Credentials,
        id: InodeId,
    ) -> Result<Vec<Vec<u8>>, FsError> {
        self.getattr(id).await?;
        Ok(self.meta.read(|v| v.xattr_names(id))?)
    }

    /// Sets attribute `name` on `id` to `value`.
    pub async fn setxattr(
        &self,
        cred: &Credentials,
        id: InodeId,
        name: &[u8],
        value: &[u8],
        how: XattrSet,
    ) -> Result<(), FsError> {
        check_xattr_name(name)?;
        if value.len() > MAX_XATTR_VALUE {
            return Err(FsError::Invalid(
                "an attribute value may hold at most 64 KiB",
            ));
        }
        let (cred, name, value) = (cred.clone(), name.to_vec(), value.to_vec());
        self.meta
            .write(true, move |tx| {
                let mut inode = tx.inode(id)?.ok_or(FsError::Stale(id))?;
                check_kind(&inode)?;
                perm::check(&cred, &inode, WRITE)?;
                let exists = tx.xattr(id, &name)?.is_some();
                match how {
                    XattrSet::Create if exists => return Err(FsError::Exists),
                    XattrSet::Replace if !exists => return Err(FsError::NoXattr),
                    _ => {}
                }
                tx.set_xattr(id, &name, &value)?;
                inode.ctime = FileTime::now();
                tx.update_inode(&inode)?;
                Ok(())
            })
            .await
    }

    /// Removes attribute `name` from `id`.
    pub async fn removexattr(
        &self,
        cred: &Credentials,
        id: InodeId,
        name: &[u8],
    ) -> Result<(), FsError> {
        check_xattr_name(name)?;
        let (cred, name) = (cred.clone(), name.to_vec());
        self.meta
            .write(true, move |tx| {
                let mut inode = tx.inode(id)?.ok_or(FsError::Stale(id))?;
                check_kind(&inode)?;
                perm::check(&cred, &inode, WRITE)?;
                if !tx.remove_xattr(id, &name)? {
                    return Err(FsError::NoXattr);
                }
                inode.ctime = FileTime::now();
                tx.update_inode(&inode)?;
                Ok(())
            })
            .await
    }
}
