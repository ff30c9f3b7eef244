//! File data: read, write and commit through the ingest cache.
//!
//! A file whose bytes all lie below [`INLINE_MAX`] keeps them inline in the
//! metadata: each write is one transaction (bytes, size and mtime together),
//! with no local file, inode or extra fsync. The first write past that moves
//! the bytes into a cache file ("spill") in the same transaction as the
//! write's own metadata.
//!
//! A write lands in the cache file first and then moves the inode's size and
//! mtime in one metadata job, so a crash between the two leaves bytes past
//! the recorded size, which recovery trims. A stable write fsyncs the cache
//! file before the job and commits the job durably; an unstable one does
//! neither until [`Fs::commit`].

use cairn_metadata::{FileKind, Inode, InodeId, Timestamp};

use super::perm::{self, READ, WRITE};
use super::{Credentials, Fs, FsError, Stability, MAX_FILE_SIZE};

/// The largest READ or WRITE the core serves in one call.
pub const MAX_IO: u32 = 1 << 20;
/// Files whose bytes end below this offset keep them inline in the metadata.
pub const INLINE_MAX: u64 = 64 * 1024;

/// What every write does to the inode: size, times, and losing setuid and
/// setgid when someone other than the owner writes.
fn stamp_write(inode: &mut Inode, end: u64, by_owner: bool) {
    let now = Timestamp::now();
    inode.size = inode.size.max(end);
    inode.mtime = now;
    inode.ctime = now;
    if !by_owner {
        inode.mode &= !0o6000;
    }
}

fn check_file(inode: &Inode) -> Result<(), FsError> {
    match inode.kind {
        FileKind::File => Ok(()),
        FileKind::Dir => Err(FsError::IsDir),
        _ => Err(FsError::Invalid("not a regular file")),
    }
}

impl Fs {
    /// Reads up to `count` bytes at `offset`. Returns the bytes, whether they
    /// reach the end of the file, and the attributes.
    pub async fn read(
        &self,
        cred: &Credentials,
        id: InodeId,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool, Inode), FsError> {
        let mut seen = None;
        let buf = self
            .read_into(cred, id, offset, count, Vec::new(), |inode, _, eof, _| {
                seen = Some((inode.clone(), eof));
            })
            .await?;
        let (inode, eof) = seen.ok_or(FsError::Invalid("read finished without attributes"))?;
        Ok((buf, eof, inode))
    }

    /// Appends up to `count` bytes at `offset` to `out`, so a front end can
    /// read straight into its reply. First `header` gets the attributes, the
    /// byte count and whether it reaches the end of the file, and writes what
    /// must come before the bytes.
    pub async fn read_into<H>(
        &self,
        cred: &Credentials,
        id: InodeId,
        offset: u64,
        count: u32,
        mut out: Vec<u8>,
        header: H,
    ) -> Result<Vec<u8>, FsError>
    where
        H: FnOnce(&Inode, usize, bool, &mut Vec<u8>),
    {
        let inode = self.getattr(id).await?;
        check_file(&inode)?;
        perm::check_data(cred, &inode, READ)?;
        let n = if offset >= inode.size {
            0
        } else {
            (inode.size - offset).min(u64::from(count.min(MAX_IO))) as usize
        };
        let eof = offset + n as u64 >= inode.size;
        header(&inode, n, eof, &mut out);
        if n == 0 {
            return Ok(out);
        }
        let start = out.len();
        out.resize(start + n, 0);
        // Inline bytes never reach past INLINE_MAX: reads beyond need no look.
        let inline = if offset < INLINE_MAX {
            self.meta.read(|v| v.inline_data(id))?
        } else {
            None
        };
        if let Some(blob) = inline {
            let from = (offset.min(blob.len() as u64)) as usize;
            let to = (offset + n as u64).min(blob.len() as u64) as usize;
            out[start..start + (to - from)].copy_from_slice(&blob[from..to]);
            return Ok(out);
        }
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || cache.read(id, offset, &mut out[start..]).map(|()| out))
            .await?
    }

    /// Writes `data` at `offset`. Returns the new attributes and how stable
    /// the data is now.
    pub async fn write(
        &self,
        cred: &Credentials,
        id: InodeId,
        offset: u64,
        data: Vec<u8>,
        stability: Stability,
    ) -> Result<(Inode, Stability), FsError> {
        let inode = self.getattr(id).await?;
        check_file(&inode)?;
        perm::check_data(cred, &inode, WRITE)?;
        let len = data.len() as u64;
        let end = offset.checked_add(len).ok_or(FsError::FileTooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        let stable = stability != Stability::Unstable;
        let done = if stable {
            Stability::FileSync
        } else {
            Stability::Unstable
        };
        let by_owner = cred.uid == inode.uid || cred.uid == 0;
        let guard = self.data_lock(id).lock().await;
        let cache = self.cache.clone();
        let has_file = tokio::task::spawn_blocking(move || cache.exists(id)).await??;
        if end <= INLINE_MAX && !has_file {
            // The lock stays held until the commit, so the choice between
            // inline and cache cannot change under this write.
            let inode = self
                .meta
                .write(stable, move |tx| {
                    let mut inode = tx.inode(id)?.ok_or(FsError::Stale(id))?;
                    let mut blob = tx.inline_data(id)?.unwrap_or_default();
                    let (start, stop) = (offset as usize, end as usize);
                    if blob.len() < stop {
                        blob.resize(stop, 0);
                    }
                    blob[start..stop].copy_from_slice(&data);
                    tx.set_inline(id, &blob)?;
                    stamp_write(&mut inode, end, by_owner);
                    tx.update_inode(&inode)?;
                    Ok::<_, FsError>(inode)
                })
                .await?;
            drop(guard);
            return Ok((inode, done));
        }
        let spill = if has_file {
            None
        } else {
            self.meta.read(|v| v.inline_data(id))?
        };
        {
            let cache = self.cache.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(blob) = spill {
                    cache.write(id, 0, &blob)?;
                }
                cache.write(id, offset, &data)
            })
            .await??;
        }
        drop(guard);
        let update = self.meta.write(stable, move |tx| {
            let mut inode = tx.inode(id)?.ok_or(FsError::Stale(id))?;
            tx.remove_inline(id)?;
            stamp_write(&mut inode, end, by_owner);
            tx.update_inode(&inode)?;
            Ok::<_, FsError>(inode)
        });
        let inode = if stable {
            // The data fsync and the metadata commit overlap: the reply
            // waits for both, and the filesystem's journal merges them.
            let (synced, inode) = tokio::join!(self.sync_data(id), update);
            synced?;
            inode?
        } else {
            update.await?
        };
        let done = if stable {
            Stability::FileSync
        } else {
            Stability::Unstable
        };
        Ok((inode, done))
    }

    /// Makes every earlier write to `id` durable (NFSv3 COMMIT).
    pub async fn commit(&self, id: InodeId) -> Result<Inode, FsError> {
        let inode = self.getattr(id).await?;
        if inode.kind == FileKind::File {
            let (data, meta) = tokio::join!(self.sync_data(id), self.meta.sync());
            data?;
            meta?;
        } else {
            self.meta.sync().await?;
        }
        self.getattr(id).await
    }

    /// Fsyncs the inode's cache file and any new cache file names at once.
    async fn sync_data(&self, id: InodeId) -> Result<(), FsError> {
        let (file_cache, dir_cache) = (self.cache.clone(), self.cache.clone());
        let (file, dirs) = tokio::join!(
            tokio::task::spawn_blocking(move || file_cache.sync_file(id)),
            tokio::task::spawn_blocking(move || dir_cache.sync_dirs()),
        );
        file??;
        dirs??;
        Ok(())
    }
}
