//! The FUSE operations: each request is answered from a task on the
//! gateway's tokio runtime, so a slow call never holds up the others; the
//! kernel's request thread only copies the arguments and the caller's
//! credentials. Attribute and entry timeouts are short ([`TTL`]) so a change
//! made over NFS shows here within a second.

use std::ffi::OsStr;
use std::future::Future;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cairn_metadata::FileKind;
use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::convert::{
    attr, credentials, file_type, id, masked, reply_empty, reply_entry, set_time, BLOCK,
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, SEEK_DATA, SEEK_HOLE,
};
use super::errno::errno;
use super::handles::Handles;
use crate::core::{Allocate, CreateHow, Credentials, Fs, FsError, SetAttr, Stability, XattrSet};

/// How long the kernel may trust an entry or attributes it was given.
pub const TTL: Duration = Duration::from_millis(500);
/// The largest write the kernel sends in one request.
pub const MAX_WRITE: u32 = 1 << 20;
/// Directory entries fetched from the core per readdir call.
const DIR_BATCH: usize = 512;

/// The FUSE filesystem over the core.
pub struct View {
    pub(super) fs: Arc<Fs>,
    pub(super) rt: tokio::runtime::Handle,
    /// The handles this mount has open, released if the mount goes first.
    pub(super) handles: Handles,
}

impl View {
    /// Runs `f` on the runtime with the core and the caller's credentials.
    fn run<F, Fut>(&self, req: &Request, f: F)
    where
        F: FnOnce(Arc<Fs>, Credentials) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f(self.fs.clone(), credentials(req)));
    }
}

impl Drop for View {
    fn drop(&mut self) {
        self.handles.release_all(self.fs.clone(), &self.rt);
    }
}

impl Filesystem for View {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.as_bytes().to_vec();
        self.run(req, move |fs, cred| async move {
            reply_entry(&fs, reply, fs.lookup(&cred, id(parent), &name).await)
        });
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.run(req, move |fs, _| async move {
            match fs.getattr(id(ino)).await {
                Ok(i) => reply.attr(&TTL, &attr(&fs, &i)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let attrs = SetAttr {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: set_time(atime),
            mtime: set_time(mtime),
        };
        self.run(req, move |fs, cred| async move {
            match fs.setattr(&cred, id(ino), attrs, None).await {
                Ok(i) => reply.attr(&TTL, &attr(&fs, &i)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        self.run(req, move |fs, cred| async move {
            match fs.readlink(&cred, id(ino)).await {
                Ok((_, target)) => reply.data(&target),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        use rustix::fs::FileType as T;
        let kind = match T::from_raw_mode(mode) {
            T::RegularFile => FileKind::File,
            T::Fifo => FileKind::Fifo,
            T::Socket => FileKind::Socket,
            T::CharacterDevice => FileKind::CharDev,
            T::BlockDevice => FileKind::BlockDev,
            _ => return reply.error(Errno::EINVAL),
        };
        let name = name.as_bytes().to_vec();
        self.run(req, move |fs, cred| async move {
            let attrs = masked(mode, umask);
            let r = if kind == FileKind::File {
                fs.create(&cred, id(parent), &name, CreateHow::Guarded(attrs))
                    .await
            } else {
                fs.mknod(&cred, id(parent), &name, kind, u64::from(rdev), attrs)
                    .await
            };
            reply_entry(&fs, reply, r)
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let name = name.as_bytes().to_vec();
        self.run(req, move |fs, cred| async move {
            let r = fs
                .mkdir(&cred, id(parent), &name, masked(mode, umask))
                .await;
            reply_entry(&fs, reply, r)
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.as_bytes().to_vec();
        self.run(req, move |fs, cred| async move {
            reply_empty(reply, fs.remove(&cred, id(parent), &name).await)
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.as_bytes().to_vec();
        self.run(req, move |fs, cred| async move {
            reply_empty(reply, fs.rmdir(&cred, id(parent), &name).await)
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let name = link_name.as_bytes().to_vec();
        let target = target.as_os_str().as_bytes().to_vec();
        self.run(req, move |fs, cred| async move {
            let r = fs
                .symlink(&cred, id(parent), &name, &target, SetAttr::default())
                .await;
            reply_entry(&fs, reply, r)
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let (name, newname) = (name.as_bytes().to_vec(), newname.as_bytes().to_vec());
        self.run(req, move |fs, cred| async move {
            if no_replace {
                match fs.lookup(&cred, id(newparent), &newname).await {
                    Ok(_) => return reply.error(Errno::EEXIST),
                    Err(FsError::NotFound) => {}
                    Err(e) => return reply.error(errno(&e)),
                }
            }
            let r = fs
                .rename(&cred, id(parent), &name, id(newparent), &newname)
                .await;
            reply_empty(reply, r)
        });
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let name = newname.as_bytes().to_vec();
        self.run(req, move |fs, cred| async move {
            reply_entry(
                &fs,
                reply,
                fs.link(&cred, id(ino), id(newparent), &name).await,
            )
        });
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.run(req, move |fs, cred| async move {
            match fs.read(&cred, id(ino), offset, size).await {
                Ok((data, _, _)) => reply.data(&data),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = data.to_vec();
        let len = data.len() as u32;
        self.run(req, move |fs, cred| async move {
            match fs
                .write(&cred, id(ino), offset, data, Stability::Unstable)
                .await
            {
                Ok(_) => reply.written(len),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let handles = self.handles.clone();
        self.run(req, move |fs, _| async move {
            match fs.open_handle(id(ino)).await {
                Ok(()) => {
                    handles.opened(id(ino));
                    reply.opened(FileHandle(0), FopenFlags::empty())
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let handles = self.handles.clone();
        self.run(req, move |fs, _| async move {
            handles.released(id(ino));
            reply_empty(reply, fs.release_handle(id(ino)).await)
        });
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let how = match mode {
            0 => Allocate::Extend,
            FALLOC_FL_KEEP_SIZE => Allocate::KeepSize,
            m if m == FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE => Allocate::PunchHole,
            _ => return reply.error(Errno::EOPNOTSUPP),
        };
        self.run(req, move |fs, cred| async move {
            let r = fs.allocate(&cred, id(ino), offset, length, how).await;
            reply_empty(reply, r.map(drop))
        });
    }

    fn lseek(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let hole = match whence {
            SEEK_DATA => false,
            SEEK_HOLE => true,
            _ => return reply.error(Errno::EINVAL),
        };
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(Errno::ENXIO);
        };
        self.run(req, move |fs, _| async move {
            match fs.seek(id(ino), offset, hole).await {
                Ok(Some(at)) => reply.offset(at as i64),
                Ok(None) => reply.error(Errno::ENXIO),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // The kernel then copies through read and write (and stops asking).
        reply.error(Errno::ENOSYS);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) does not promise durability; fsync does.
        reply.ok();
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.run(req, move |fs, _| async move {
            reply_empty(reply, fs.commit(id(ino)).await.map(drop))
        });
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.run(req, move |fs, cred| async move {
            match fs.readdir(&cred, id(ino), offset, DIR_BATCH, true).await {
                Ok((items, _)) => {
                    for item in items {
                        let kind = item
                            .attr
                            .as_ref()
                            .map_or(FileType::RegularFile, |a| file_type(a.kind));
                        let name = OsStr::from_bytes(&item.name);
                        if reply.add(INodeNo(item.id.0), item.cookie, kind, name) {
                            break;
                        }
                    }
                    reply.ok()
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.run(req, move |fs, _| async move {
            reply_empty(reply, fs.commit(id(ino)).await.map(drop))
        });
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.run(req, move |fs, _| async move {
            match fs.statfs().await {
                Ok(st) => reply.statfs(
                    st.total_bytes / BLOCK,
                    st.free_bytes / BLOCK,
                    st.avail_bytes / BLOCK,
                    st.total_files,
                    st.free_files,
                    BLOCK as u32,
                    crate::core::MAX_NAME as u32,
                    BLOCK as u32,
                ),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        // XATTR_CREATE = 1, XATTR_REPLACE = 2 (linux/xattr.h).
        let how = match flags & 3 {
            0 => XattrSet::Either,
            1 => XattrSet::Create,
            2 => XattrSet::Replace,
            _ => return reply.error(Errno::EINVAL),
        };
        let (name, value) = (name.as_bytes().to_vec(), value.to_vec());
        self.run(req, move |fs, cred| async move {
            reply_empty(reply, fs.setxattr(&cred, id(ino), &name, &value, how).await)
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name.as_bytes().to_vec();
        self.run(req, move |fs, cred| async move {
            match fs.getxattr(&cred, id(ino), &name).await {
                Ok(v) => reply_sized(reply, size, &v),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.run(req, move |fs, cred| async move {
            match fs.listxattr(&cred, id(ino)).await {
                Ok(names) => {
                    let mut list = Vec::new();
                    for n in names {
                        list.extend_from_slice(&n);
                        list.push(0);
                    }
                    reply_sized(reply, size, &list)
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.as_bytes().to_vec();
        self.run(req, move |fs, cred| async move {
            reply_empty(reply, fs.removexattr(&cred, id(ino), &name).await)
        });
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Mounted with default_permissions: the kernel has checked already.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let exclusive = flags & rustix::fs::OFlags::EXCL.bits() as i32 != 0;
        let name = name.as_bytes().to_vec();
        let handles = self.handles.clone();
        self.run(req, move |fs, cred| async move {
            let dir = id(parent);
            let attrs = masked(mode, umask);
            let r = match fs
                .create(&cred, dir, &name, CreateHow::Guarded(attrs))
                .await
            {
                // Lost a race with another creator: open theirs, as open(2) would.
                Err(FsError::Exists) if !exclusive => fs.lookup(&cred, dir, &name).await,
                r => r,
            };
            match r {
                Ok(i) => match fs.open_handle(i.id).await {
                    Ok(()) => {
                        handles.opened(i.id);
                        reply.created(
                            &TTL,
                            &attr(&fs, &i),
                            Generation(i.generation),
                            FileHandle(0),
                            FopenFlags::empty(),
                        )
                    }
                    Err(e) => reply.error(errno(&e)),
                },
                Err(e) => reply.error(errno(&e)),
            }
        });
    }
}

/// Answers a size probe (`size` 0) with the length, a too-small buffer with
/// ERANGE, else the bytes.
fn reply_sized(reply: ReplyXattr, size: u32, bytes: &[u8]) {
    if size == 0 {
        reply.size(bytes.len() as u32)
    } else if bytes.len() > size as usize {
        reply.error(Errno::ERANGE)
    } else {
        reply.data(bytes)
    }
}
