//! Names: lookup, create, mkdir, symlink, mknod, link, remove, rmdir, rename,
//! readdir and readlink. Each change runs as one durable metadata job that
//! re-reads what it depends on, so concurrent callers cannot interleave
//! inside it.

use cairn_metadata::{FileKind, FileTime, Inode, InodeId, NewInode, Timestamp, Tx};

use super::attrs::apply_setattr;
use super::open::{OpenCounts, Unlinked};
use super::perm::{self, EXEC, READ, WRITE};
use super::{
    check_name, CreateHow, Credentials, DirItem, Fs, FsError, SetAttr, MAX_LINKS, MAX_PATH,
};

/// Loads `dir` for a change of its entries: it must exist, be a directory,
/// and grant the caller write and search.
fn dir_for_change(tx: &Tx<'_>, cred: &Credentials, dir: InodeId) -> Result<Inode, FsError> {
    let inode = tx.inode(dir)?.ok_or(FsError::Stale(dir))?;
    if inode.kind != FileKind::Dir {
        return Err(FsError::NotDir);
    }
    perm::check(cred, &inode, WRITE | EXEC)?;
    Ok(inode)
}

/// Adds `nlink_delta` to a directory's link count and stamps its mtime/ctime.
fn touch_dir(tx: &Tx<'_>, dir: InodeId, nlink_delta: i32, now: FileTime) -> Result<(), FsError> {
    let mut inode = tx.inode(dir)?.ok_or(FsError::Stale(dir))?;
    inode.nlink = inode.nlink.saturating_add_signed(nlink_delta);
    inode.mtime = now;
    inode.ctime = now;
    tx.update_inode(&inode)?;
    Ok(())
}

/// Drops one link of `victim` (already removed from its directory); deletes
/// the inode at zero, unless a handle has the file open: then it lives on
/// with no name until the last release (see `open`).
fn drop_link(
    tx: &Tx<'_>,
    mut victim: Inode,
    now: FileTime,
    open: &OpenCounts,
) -> Result<Unlinked, FsError> {
    if victim.kind == FileKind::File && victim.nlink <= 1 && open.is_open(victim.id) {
        victim.nlink = 0;
        victim.ctime = now;
        tx.update_inode(&victim)?;
        return Ok(Unlinked::KeptOpen(victim.id));
    }
    if victim.kind == FileKind::Dir || victim.nlink <= 1 {
        tx.delete_inode(victim.id)?;
        return Ok(match victim.kind {
            FileKind::File => Unlinked::Freed(victim.id),
            _ => Unlinked::Nothing,
        });
    }
    victim.nlink -= 1;
    victim.ctime = now;
    tx.update_inode(&victim)?;
    Ok(Unlinked::Nothing)
}

struct NewNode {
    kind: FileKind,
    mode: u32,
    rdev: u64,
    target: Option<Vec<u8>>,
    attrs: SetAttr,
    verifier: Option<[u8; 8]>,
}

/// Creates `name` in `dir` inside `tx`. The caller checked the name.
fn create_node(
    tx: &Tx<'_>,
    cred: &Credentials,
    dir: InodeId,
    name: &[u8],
    node: NewNode,
) -> Result<Inode, FsError> {
    let parent = dir_for_change(tx, cred, dir)?;
    if tx.lookup(dir, name)?.is_some() {
        return Err(FsError::Exists);
    }
    let stamp = Timestamp::now();
    let now = FileTime::from(stamp);
    let gid = if parent.mode & 0o2000 != 0 {
        parent.gid
    } else {
        cred.gid
    };
    let is_dir = node.kind == FileKind::Dir;
    let mut mode = node.attrs.mode.unwrap_or(node.mode) & 0o7777;
    if is_dir && parent.mode & 0o2000 != 0 {
        mode |= 0o2000;
    }
    let mut inode = tx.insert_inode(&NewInode {
        kind: node.kind,
        mode,
        uid: cred.uid,
        gid,
        rdev: node.rdev,
        symlink_target: node.target,
        class: parent.class,
        parent: is_dir.then_some(dir),
        create_verifier: node.verifier,
        now: stamp,
        generation: rand::random::<u64>() >> 1,
    })?;
    inode.nlink = if is_dir { 2 } else { 1 };
    tx.update_inode(&inode)?;
    tx.add_entry(dir, name, inode.id)?;
    touch_dir(tx, dir, i32::from(is_dir), now)?;
    // Ownership and times asked for at creation, under the usual rules.
    let rest = SetAttr {
        mode: None,
        size: None,
        ..node.attrs
    };
    if rest != SetAttr::default() {
        inode = apply_setattr(tx, cred, inode, &rest, now)?;
    }
    Ok(inode)
}

impl Fs {
    /// Finds `name` in `dir` ("." and ".." included).
    pub async fn lookup(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
    ) -> Result<Inode, FsError> {
        if name.len() > super::MAX_NAME {
            return Err(FsError::NameTooLong);
        }
        self.meta.read(|v| {
            let parent = v.inode(dir)?.ok_or(FsError::Stale(dir));
            let parent = match parent {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            if parent.kind != FileKind::Dir {
                return Ok(Err(FsError::NotDir));
            }
            if let Err(e) = perm::check(cred, &parent, EXEC) {
                return Ok(Err(e));
            }
            let child = match name {
                b"." => Some(dir),
                b".." => Some(parent.parent.unwrap_or(dir)),
                _ => v.lookup(dir, name)?,
            };
            Ok(match child {
                None => Err(FsError::NotFound),
                Some(id) => v.inode(id)?.ok_or(FsError::NotFound),
            })
        })?
    }

    /// Creates a regular file as NFSv3's CREATE does.
    pub async fn create(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        how: CreateHow,
    ) -> Result<Inode, FsError> {
        check_name(name)?;
        let cred = cred.clone();
        let name = name.to_vec();
        let (inode, truncated) = self
            .meta
            .write(true, move |tx| {
                let existing = tx.lookup(dir, &name)?;
                match (&how, existing) {
                    (CreateHow::Exclusive(verf), Some(id)) => {
                        let inode = tx.inode(id)?.ok_or(FsError::Stale(id))?;
                        if inode.kind == FileKind::File && inode.create_verifier == Some(*verf) {
                            return Ok((inode, None));
                        }
                        Err(FsError::Exists)
                    }
                    (CreateHow::Guarded(_), Some(_)) => Err(FsError::Exists),
                    (CreateHow::Unchecked(attrs), Some(id)) => {
                        let inode = tx.inode(id)?.ok_or(FsError::Stale(id))?;
                        match inode.kind {
                            FileKind::File => {}
                            FileKind::Dir => return Err(FsError::IsDir),
                            _ => return Err(FsError::Exists),
                        }
                        // An unchecked create of an existing file is an open
                        // that may truncate: only the size applies.
                        let only_size = SetAttr {
                            size: attrs.size,
                            ..SetAttr::default()
                        };
                        let old_size = inode.size;
                        let inode = apply_setattr(tx, &cred, inode, &only_size, FileTime::now())?;
                        let cut = (inode.size < old_size).then_some(inode.size);
                        Ok((inode, cut))
                    }
                    (how, None) => {
                        let (attrs, verifier) = match how {
                            CreateHow::Unchecked(a) | CreateHow::Guarded(a) => (a.clone(), None),
                            CreateHow::Exclusive(v) => (SetAttr::default(), Some(*v)),
                        };
                        let size = attrs.size;
                        let mut inode = create_node(
                            tx,
                            &cred,
                            dir,
                            &name,
                            NewNode {
                                kind: FileKind::File,
                                mode: 0o644,
                                rdev: 0,
                                target: None,
                                attrs,
                                verifier,
                            },
                        )?;
                        if let Some(size) = size.filter(|&s| s > 0) {
                            inode.size = size.min(super::MAX_FILE_SIZE);
                            tx.update_inode(&inode)?;
                        }
                        Ok((inode, None))
                    }
                }
            })
            .await?;
        if let Some(len) = truncated {
            let _guard = self.data_lock(inode.id).lock().await;
            self.trim_data(inode.id, len).await?;
        }
        Ok(inode)
    }

    pub async fn mkdir(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        attrs: SetAttr,
    ) -> Result<Inode, FsError> {
        self.make(cred, dir, name, FileKind::Dir, 0o755, 0, None, attrs)
            .await
    }

    pub async fn symlink(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        target: &[u8],
        attrs: SetAttr,
    ) -> Result<Inode, FsError> {
        if target.len() > MAX_PATH {
            return Err(FsError::NameTooLong);
        }
        if target.is_empty() {
            return Err(FsError::Invalid("a symlink target may not be empty"));
        }
        self.make(
            cred,
            dir,
            name,
            FileKind::Symlink,
            0o777,
            0,
            Some(target.to_vec()),
            attrs,
        )
        .await
    }

    /// Creates a device, socket or FIFO node.
    pub async fn mknod(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        kind: FileKind,
        rdev: u64,
        attrs: SetAttr,
    ) -> Result<Inode, FsError> {
        match kind {
            FileKind::BlockDev | FileKind::CharDev if cred.uid != 0 => {
                return Err(FsError::NotOwner)
            }
            FileKind::BlockDev | FileKind::CharDev | FileKind::Socket | FileKind::Fifo => {}
            _ => {
                return Err(FsError::Invalid(
                    "mknod makes only devices, sockets and FIFOs",
                ))
            }
        }
        self.make(cred, dir, name, kind, 0o644, rdev, None, attrs)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn make(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        kind: FileKind,
        mode: u32,
        rdev: u64,
        target: Option<Vec<u8>>,
        attrs: SetAttr,
    ) -> Result<Inode, FsError> {
        check_name(name)?;
        let cred = cred.clone();
        let name = name.to_vec();
        self.meta
            .write(true, move |tx| {
                let node = NewNode {
                    kind,
                    mode,
                    rdev,
                    target,
                    attrs: SetAttr {
                        size: None,
                        ..attrs
                    },
                    verifier: None,
                };
                create_node(tx, &cred, dir, &name, node)
            })
            .await
    }

    /// Adds another name for `file` in `dir`.
    pub async fn link(
        &self,
        cred: &Credentials,
        file: InodeId,
        dir: InodeId,
        name: &[u8],
    ) -> Result<Inode, FsError> {
        check_name(name)?;
        let cred = cred.clone();
        let name = name.to_vec();
        self.meta
            .write(true, move |tx| {
                let mut inode = tx.inode(file)?.ok_or(FsError::Stale(file))?;
                if inode.kind == FileKind::Dir {
                    return Err(FsError::IsDir);
                }
                dir_for_change(tx, &cred, dir)?;
                if tx.lookup(dir, &name)?.is_some() {
                    return Err(FsError::Exists);
                }
                if inode.nlink >= MAX_LINKS {
                    return Err(FsError::TooManyLinks);
                }
                let now = FileTime::now();
                tx.add_entry(dir, &name, file)?;
                inode.nlink += 1;
                inode.ctime = now;
                tx.update_inode(&inode)?;
                touch_dir(tx, dir, 0, now)?;
                Ok(inode)
            })
            .await
    }

    /// Removes a non-directory name; the file goes when its last link does.
    pub async fn remove(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
    ) -> Result<(), FsError> {
        self.unlink(cred, dir, name, false).await
    }

    /// Removes an empty directory.
    pub async fn rmdir(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
    ) -> Result<(), FsError> {
        self.unlink(cred, dir, name, true).await
    }

    async fn unlink(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        want_dir: bool,
    ) -> Result<(), FsError> {
        if name == b"." || name == b".." {
            return Err(if want_dir {
                FsError::Invalid("cannot remove \".\" or \"..\"")
            } else {
                FsError::IsDir
            });
        }
        check_name(name)?;
        let cred = cred.clone();
        let name = name.to_vec();
        let open = self.open.clone();
        let dropped = self
            .meta
            .write(true, move |tx| {
                let parent = dir_for_change(tx, &cred, dir)?;
                let id = tx.lookup(dir, &name)?.ok_or(FsError::NotFound)?;
                let victim = tx.inode(id)?.ok_or(FsError::NotFound)?;
                let is_dir = victim.kind == FileKind::Dir;
                match (want_dir, is_dir) {
                    (true, false) => return Err(FsError::NotDir),
                    (false, true) => return Err(FsError::IsDir),
                    _ => {}
                }
                if is_dir && !tx.is_empty_dir(id)? {
                    return Err(FsError::NotEmpty);
                }
                perm::check_sticky(&cred, &parent, &victim)?;
                let now = FileTime::now();
                tx.remove_entry(dir, &name)?;
                touch_dir(tx, dir, if is_dir { -1 } else { 0 }, now)?;
                drop_link(tx, victim, now, &open)
            })
            .await?;
        self.settle_unlink(dropped).await
    }

    /// Moves `from_dir/from` to `to_dir/to`, replacing a compatible target.
    pub async fn rename(
        &self,
        cred: &Credentials,
        from_dir: InodeId,
        from: &[u8],
        to_dir: InodeId,
        to: &[u8],
    ) -> Result<(), FsError> {
        check_name(from)?;
        check_name(to)?;
        let cred = cred.clone();
        let (from, to) = (from.to_vec(), to.to_vec());
        let open = self.open.clone();
        let dropped = self
            .meta
            .write(true, move |tx| {
                let src_parent = dir_for_change(tx, &cred, from_dir)?;
                let dst_parent = dir_for_change(tx, &cred, to_dir)?;
                let id = tx.lookup(from_dir, &from)?.ok_or(FsError::NotFound)?;
                let mut src = tx.inode(id)?.ok_or(FsError::NotFound)?;
                if from_dir == to_dir && from == to {
                    return Ok(Unlinked::Nothing);
                }
                perm::check_sticky(&cred, &src_parent, &src)?;
                let is_dir = src.kind == FileKind::Dir;
                if is_dir {
                    // Refuse moving a directory into itself or its subtree.
                    let mut at = to_dir;
                    loop {
                        if at == id {
                            return Err(FsError::Invalid(
                                "cannot move a directory into its own subtree",
                            ));
                        }
                        let node = tx.inode(at)?.ok_or(FsError::Stale(at))?;
                        match node.parent {
                            Some(p) if p != at => at = p,
                            _ => break,
                        }
                    }
                    if from_dir != to_dir {
                        perm::check(&cred, &src, WRITE)?;
                    }
                }
                let now = FileTime::now();
                let mut dropped = Unlinked::Nothing;
                if let Some(target_id) = tx.lookup(to_dir, &to)? {
                    if target_id == id {
                        // Two names of one file: POSIX says do nothing.
                        return Ok(Unlinked::Nothing);
                    }
                    let target = tx.inode(target_id)?.ok_or(FsError::NotFound)?;
                    let target_is_dir = target.kind == FileKind::Dir;
                    match (is_dir, target_is_dir) {
                        (true, false) => return Err(FsError::NotDir),
                        (false, true) => return Err(FsError::IsDir),
                        _ => {}
                    }
                    if target_is_dir && !tx.is_empty_dir(target_id)? {
                        return Err(FsError::NotEmpty);
                    }
                    perm::check_sticky(&cred, &dst_parent, &target)?;
                    tx.remove_entry(to_dir, &to)?;
                    if target_is_dir {
                        touch_dir(tx, to_dir, -1, now)?;
                    }
                    dropped = drop_link(tx, target, now, &open)?;
                }
                tx.remove_entry(from_dir, &from)?;
                tx.add_entry(to_dir, &to, id)?;
                let moved_dir = is_dir && from_dir != to_dir;
                touch_dir(tx, from_dir, if moved_dir { -1 } else { 0 }, now)?;
                if from_dir != to_dir {
                    touch_dir(tx, to_dir, i32::from(moved_dir), now)?;
                }
                src = tx.inode(id)?.ok_or(FsError::Stale(id))?;
                if is_dir {
                    src.parent = Some(to_dir);
                }
                src.ctime = now;
                tx.update_inode(&src)?;
                Ok(dropped)
            })
            .await?;
        self.settle_unlink(dropped).await
    }

    /// Lists `dir` after `cookie` (0 starts; 1 is ".", 2 is ".."), at most
    /// `max` entries, with attributes when `plus`. Returns the entries and
    /// whether the listing reached the end.
    pub async fn readdir(
        &self,
        cred: &Credentials,
        dir: InodeId,
        cookie: u64,
        max: usize,
        plus: bool,
    ) -> Result<(Vec<DirItem>, bool), FsError> {
        self.meta.read(|v| {
            let inode = match v.inode(dir)? {
                Some(i) => i,
                None => return Ok(Err(FsError::Stale(dir))),
            };
            if inode.kind != FileKind::Dir {
                return Ok(Err(FsError::NotDir));
            }
            if let Err(e) = perm::check(cred, &inode, READ) {
                return Ok(Err(e));
            }
            let mut items = Vec::new();
            let parent = inode.parent.unwrap_or(dir);
            for (c, name, id) in [(1u64, &b"."[..], dir), (2, &b".."[..], parent)] {
                if cookie < c && items.len() < max {
                    let attr = if plus { v.inode(id)? } else { None };
                    items.push(DirItem {
                        name: name.to_vec(),
                        id,
                        cookie: c,
                        attr,
                    });
                }
            }
            let after = cookie.saturating_sub(2);
            let want = max.saturating_sub(items.len());
            let entries = v.list(dir, after, want + 1)?;
            let eof = entries.len() <= want;
            for e in entries.into_iter().take(want) {
                let attr = if plus { v.inode(e.child)? } else { None };
                items.push(DirItem {
                    name: e.name,
                    id: e.child,
                    cookie: e.cookie + 2,
                    attr,
                });
            }
            Ok(Ok((items, eof)))
        })?
    }

    /// The target of a symlink.
    pub async fn readlink(
        &self,
        _cred: &Credentials,
        id: InodeId,
    ) -> Result<(Inode, Vec<u8>), FsError> {
        let inode = self.getattr(id).await?;
        if inode.kind != FileKind::Symlink {
            return Err(FsError::Invalid("not a symlink"));
        }
        let target = inode
            .symlink_target
            .clone()
            .ok_or(FsError::Invalid("symlink without a target"))?;
        Ok((inode, target))
    }
}
