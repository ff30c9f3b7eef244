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

use std::sync::atomic::Ordering::Relaxed;

use cairn_metadata::{FileKind, FileTime, Inode, InodeId, Slot, Timestamp, SLOT_SIZE};

use super::perm::{self, READ, WRITE};
use super::{Credentials, Fs, FsError, Stability, MAX_FILE_SIZE};

/// The largest READ or WRITE the core serves in one call.
pub const MAX_IO: u32 = 1 << 20;
/// Files whose bytes end below this offset keep them inline in the metadata.
pub const INLINE_MAX: u64 = 64 * 1024;

/// A file as a front end names it: its inode, and for a handle that
/// carries one (NFS), the generation the inode must still have.
#[derive(Debug, Clone, Copy)]
pub struct FileRef {
    pub id: InodeId,
    pub generation: Option<u64>,
}

impl From<InodeId> for FileRef {
    fn from(id: InodeId) -> Self {
        FileRef {
            id,
            generation: None,
        }
    }
}

/// What every write does to the inode: size, times, and losing setuid and
/// setgid when someone other than the owner writes.
fn stamp_write(inode: &mut Inode, end: u64, by_owner: bool) {
    let now = FileTime::now();
    inode.size = inode.size.max(end);
    inode.mtime = now;
    inode.ctime = now;
    if !by_owner {
        inode.mode &= !0o6000;
    }
}

/// Data calls take regular files only.
pub(super) fn check_file(inode: &Inode) -> Result<(), FsError> {
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
    ///
    /// `file` names the file; a handle's generation in it must match the
    /// inode's (else [`FsError::Stale`]), so a front end need not look the
    /// inode up first.
    pub async fn read_into<H>(
        &self,
        cred: &Credentials,
        file: impl Into<FileRef>,
        offset: u64,
        count: u32,
        mut out: Vec<u8>,
        header: H,
    ) -> Result<Vec<u8>, FsError>
    where
        H: FnOnce(&Inode, usize, bool, &mut Vec<u8>),
    {
        let FileRef { id, generation } = file.into();
        // The inode, the slots the read covers, any inline bytes and where
        // the blocks of evicted slots are, in one look at the metadata (one
        // read transaction: a small read is short).
        let end_hint = offset.saturating_add(u64::from(count.min(MAX_IO)).max(1));
        let (first, last) = (offset / SLOT_SIZE, (end_hint - 1) / SLOT_SIZE);
        let (inode, slots, inline, mut located) = self
            .meta
            .read(|v| {
                let Some(inode) = v.inode(id)? else {
                    return Ok(None);
                };
                if generation.is_some_and(|g| g != inode.generation) {
                    return Ok(None);
                }
                // Inline bytes never reach past INLINE_MAX: reads beyond need no look.
                let inline = if offset < INLINE_MAX {
                    v.inline_data(id)?
                } else {
                    None
                };
                let slots = v.slots(id, first, last)?;
                let mut located = Vec::new();
                for slot in slots.iter().filter(|s| !s.cached && !s.lost) {
                    if let Some(block) = slot.block {
                        if let Some(loc) = v.block_location(block)? {
                            located.push((block, loc));
                        }
                    }
                }
                Ok(Some((inode, slots, inline, located)))
            })?
            .ok_or(FsError::Stale(id))?;
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
        let end = offset + n as u64;
        let last = last.min((end - 1) / SLOT_SIZE);
        self.counters.read_bytes.fetch_add(n as u64, Relaxed);
        self.touch(id, first, last);
        self.read_ahead(id, offset, n as u64, inode.size);
        let evicted: Vec<Slot> = slots
            .into_iter()
            .filter(|s| s.index <= last && !s.cached)
            .collect();
        // Every slot the read covers was already evicted: nothing of it is in
        // the cache, and no eviction can race this read.
        let all_evicted = evicted.len() as u64 == last - first + 1;
        if all_evicted {
            out.resize(start + n, 0);
        } else if let Some(blob) = inline {
            out.resize(start + n, 0);
            let from = (offset.min(blob.len() as u64)) as usize;
            let to = (offset + n as u64).min(blob.len() as u64) as usize;
            out[start..start + (to - from)].copy_from_slice(&blob[from..to]);
        } else {
            // A page-cache read is short: run it on this worker thread (told
            // to block) rather than hop to the blocking pool and back.
            let mut read = || self.cache.read_append(id, offset, n, &mut out);
            match tokio::runtime::Handle::current().runtime_flavor() {
                tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(read)?,
                _ => read()?,
            }
        }
        // Slots whose cache copy was evicted come from their blocks; so do
        // slots evicted while this read ran (their block holds the same
        // bytes the cache did), so a racing eviction never shows zeros.
        let mut evicted = evicted;
        if !all_evicted {
            let seen: std::collections::HashSet<u64> = evicted.iter().map(|s| s.index).collect();
            evicted.extend(
                self.meta
                    .read(|v| v.slots(id, first, last))?
                    .into_iter()
                    .filter(|s| !s.cached && !seen.contains(&s.index)),
            );
        }
        for slot in evicted {
            let slot_start = slot.index * SLOT_SIZE;
            let from = offset.max(slot_start);
            let to = end.min(slot_start + SLOT_SIZE);
            let dst = &mut out[start + (from - offset) as usize..start + (to - offset) as usize];
            dst.fill(0);
            let a = from - slot_start;
            let at = located.iter().position(|(b, _)| Some(*b) == slot.block);
            let loc = at.map(|i| located.swap_remove(i).1);
            let bytes = self.evicted_range(&slot, a, to - from, loc).await?;
            self.counters.store_read_bytes.fetch_add(to - from, Relaxed);
            let have = bytes.len().min(dst.len());
            dst[..have].copy_from_slice(&bytes[..have]);
        }
        Ok(out)
    }

    /// The current bytes of an evicted slot, from its block (at most
    /// `valid_len` of them; the rest of the slot reads as zeros).
    pub(crate) async fn slot_bytes(&self, slot: &Slot) -> Result<Vec<u8>, FsError> {
        let Some((loc, source)) = self.slot_block(slot, None)? else {
            return Ok(Vec::new());
        };
        let mut bytes = source.fetch(&loc).await?;
        bytes.truncate(slot.valid_len as usize);
        Ok(bytes)
    }

    /// Bytes `from..from + len` of an evicted slot's current bytes (cut
    /// short at `valid_len`), fetching only what covers them.
    /// `known` is the block's location when the caller already looked it up.
    pub(super) async fn slot_range(
        &self,
        slot: &Slot,
        from: u64,
        len: u64,
        known: Option<cairn_metadata::BlockLocation>,
    ) -> Result<Vec<u8>, FsError> {
        let Some((loc, source)) = self.slot_block(slot, known)? else {
            return Ok(Vec::new());
        };
        let len = len.min(slot.valid_len.saturating_sub(from));
        if len == 0 {
            return Ok(Vec::new());
        }
        source.fetch_range(&loc, from, len).await
    }

    /// Where an evicted slot's block is (`None` for a slot with no block),
    /// and what reads it; `known` is the location when already looked up.
    fn slot_block(
        &self,
        slot: &Slot,
        known: Option<cairn_metadata::BlockLocation>,
    ) -> Result<Option<(cairn_metadata::BlockLocation, &dyn super::BlockSource)>, FsError> {
        if slot.lost {
            return Err(FsError::DataLost {
                inode: slot.inode,
                slot: slot.index,
            });
        }
        let Some(block) = slot.block else {
            return Ok(None);
        };
        let source = self.blocks.as_ref().ok_or(FsError::NoStores)?;
        let loc = match known {
            Some(loc) => loc,
            None => self
                .meta
                .read(|v| v.block_location(block))?
                .ok_or(FsError::BlockLost(block))?,
        };
        Ok(Some((loc, source.as_ref())))
    }

    /// Writes `data` at `offset`. Returns the new attributes and how stable
    /// the data is now. A stable write to a file of a remote-durable class
    /// returns once the data is on a chunk store.
    pub async fn write(
        &self,
        cred: &Credentials,
        id: InodeId,
        offset: u64,
        data: Vec<u8>,
        stability: Stability,
    ) -> Result<(Inode, Stability), FsError> {
        let (inode, done) = self.write_local(cred, id, offset, data, stability).await?;
        if done != Stability::Unstable {
            // After the write stopped counting as in flight, so the drain
            // may attach its bytes.
            self.persist_if_remote(&inode).await?;
        }
        Ok((inode, done))
    }

    async fn write_local(
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
        if len == 0 {
            // Nothing to write: a zero-length WRITE changes neither size nor data.
            return Ok((
                inode,
                if stability == Stability::Unstable {
                    Stability::Unstable
                } else {
                    Stability::FileSync
                },
            ));
        }
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
        let (first, last) = (offset / SLOT_SIZE, end.saturating_sub(1) / SLOT_SIZE);
        let _in_flight = self.write_started(id);
        self.touch(id, first, last);
        let guard = self.data_lock(id).lock().await;
        // Slots whose cache copy was evicted are fetched back first, so the
        // bytes around this write are the file's, not zeros.
        let mut refetched = Vec::new();
        // A lost slot is not fetched: this write gives it new bytes, and the
        // rest of it reads as zeros from now on.
        for slot in self.meta.read(|v| v.slots(id, first, last))? {
            if !slot.cached && slot.block.is_some() && !slot.lost {
                refetched.push((slot.index, self.slot_bytes(&slot).await?));
            }
        }
        let cache = self.cache.clone();
        // A stat (or a look in the open-file table): too short to hop threads for.
        let has_file = cache.exists(id)?;
        // Inline only while the whole file is small: a file grown by SETATTR
        // or refetched from a large block goes to the cache.
        let base_len = refetched
            .iter()
            .find(|(i, _)| *i == 0)
            .map_or(0, |(_, b)| b.len() as u64);
        if end <= INLINE_MAX && !has_file && inode.size <= INLINE_MAX && base_len <= INLINE_MAX {
            // The lock stays held until the commit, so the choice between
            // inline and cache cannot change under this write.
            let base = refetched.into_iter().find(|(i, _)| *i == 0).map(|(_, b)| b);
            let inode = self
                .meta
                .write(stable, move |tx| {
                    let mut inode = tx.inode(id)?.ok_or(FsError::Stale(id))?;
                    let mut blob = match tx.inline_data(id)? {
                        Some(b) => b,
                        None => base.unwrap_or_default(),
                    };
                    let (start, stop) = (offset as usize, end as usize);
                    if blob.len() < stop {
                        blob.resize(stop, 0);
                    }
                    blob[start..stop].copy_from_slice(&data);
                    tx.set_inline(id, &blob)?;
                    stamp_write(&mut inode, end, by_owner);
                    tx.update_inode(&inode)?;
                    tx.mark_written(id, first, last, Timestamp::now())?;
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
        // Bytes brought back into the cache (a spill of inline bytes, or
        // evicted slots fetched from their blocks) are only marked cached by
        // this write's commit: hold the lock until then, so no other write,
        // eviction or redrain acts on the stale marks meanwhile.
        let hold = spill.is_some() || !refetched.is_empty();
        let need = len
            + spill.as_ref().map_or(0, |b| b.len() as u64)
            + refetched.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        self.make_room(need).await?;
        {
            let cache = self.cache.clone();
            let spilling = spill.is_some();
            let written = tokio::task::spawn_blocking(move || {
                if let Some(blob) = spill {
                    cache.write(id, 0, &blob)?;
                }
                for (index, bytes) in &refetched {
                    cache.write(id, index * SLOT_SIZE, bytes)?;
                }
                cache.write(id, offset, &data)
            })
            .await?;
            if let Err(e) = written {
                if spilling {
                    // A half-written spill must not pass for the file's bytes.
                    let cache = self.cache.clone();
                    tokio::task::spawn_blocking(move || cache.remove(id)).await?;
                }
                return Err(e);
            }
        }
        // Handed to the writer before the lock goes: every later job (a
        // truncate, an eviction) commits after this one.
        let update = self.meta.begin_write(stable, move |tx| {
            let mut inode = tx.inode(id)?.ok_or(FsError::Stale(id))?;
            tx.remove_inline(id)?;
            stamp_write(&mut inode, end, by_owner);
            tx.update_inode(&inode)?;
            tx.mark_written(id, first, last, Timestamp::now())?;
            Ok::<_, FsError>(inode)
        })?;
        let guard = if hold {
            Some(guard)
        } else {
            drop(guard);
            None
        };
        let inode = if stable {
            // The data fsync and the metadata commit overlap: the reply
            // waits for both, and the filesystem's journal merges them.
            let (synced, inode) = tokio::join!(self.sync_data(id), update);
            synced?;
            inode?
        } else {
            update.await?
        };
        drop(guard);
        Ok((inode, done))
    }

    /// Makes every earlier write to `id` durable (NFSv3 COMMIT).
    pub async fn commit(&self, id: InodeId) -> Result<Inode, FsError> {
        let inode = self.getattr(id).await?;
        if inode.kind == FileKind::File {
            let (data, meta) = tokio::join!(self.sync_data(id), self.meta.sync());
            data?;
            meta?;
            self.persist_if_remote(&inode).await?;
        } else {
            self.meta.sync().await?;
        }
        self.getattr(id).await
    }

    /// Fsyncs the inode's cache file and any new cache file names at once.
    async fn sync_data(&self, id: InodeId) -> Result<(), FsError> {
        // Inline files have no cache file: nothing to fsync but the metadata.
        if !self.cache.exists(id)? && !self.cache.dirs_pending() {
            return Ok(());
        }
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

impl Fs {
    /// The current bytes of a cached slot, for the drainer: from the inline
    /// row or the cache file, as long as the file is now (shorter at its
    /// end). `None` when the slot lies past the end of the file.
    pub async fn slot_content(&self, id: InodeId, index: u64) -> Result<Option<Vec<u8>>, FsError> {
        let inode = self.getattr(id).await?;
        let start = index * SLOT_SIZE;
        if start >= inode.size {
            return Ok(None);
        }
        let len = (inode.size - start).min(SLOT_SIZE) as usize;
        let mut buf = vec![0u8; len];
        if start < INLINE_MAX {
            if let Some(blob) = self.meta.read(|v| v.inline_data(id))? {
                let to = blob.len().min(len);
                buf[..to].copy_from_slice(&blob[..to]);
                return Ok(Some(buf));
            }
        }
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || cache.read(id, start, &mut buf).map(|()| Some(buf)))
            .await?
    }
}
