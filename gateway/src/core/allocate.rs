//! Space: fallocate's modes, what a file has allocated (st_blocks), and
//! where its data and holes are (SEEK_DATA / SEEK_HOLE). Allocation is kept
//! per 4 MiB slot (see `cairn_metadata`'s `alloc`): a reserved slot reads
//! as zeros and costs nothing on the chunk stores until written.

use cairn_metadata::{FileKind, FileTime, Inode, InodeId, SLOT_SIZE};

use super::data::{check_file, MAX_IO};
use super::perm::{self, WRITE};
use super::{Credentials, Fs, FsError, Stability, MAX_FILE_SIZE};

/// The unit st_blocks is rounded to within a file's last slot.
const GRANULE: u64 = 4096;

/// What a fallocate asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocate {
    /// Reserve the range; the file grows to its end if shorter (mode 0).
    Extend,
    /// Reserve the range; the size stays (FALLOC_FL_KEEP_SIZE).
    KeepSize,
    /// Make the range a hole that reads as zeros; the size stays
    /// (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE).
    PunchHole,
}

impl Fs {
    /// Bytes `inode` has allocated, for st_blocks: what its written and
    /// reserved slots cover (a sparse file counts only its data).
    pub fn allocated(&self, inode: &Inode) -> Result<u64, FsError> {
        if inode.kind != FileKind::File {
            return Ok(inode.size.div_ceil(512) * 512);
        }
        Ok(self
            .meta
            .read(|v| v.allocated_bytes(inode.id, inode.size, GRANULE))?)
    }

    /// fallocate(2) on `id` for `len` bytes at `offset`.
    pub async fn allocate(
        &self,
        cred: &Credentials,
        id: InodeId,
        offset: u64,
        len: u64,
        how: Allocate,
    ) -> Result<Inode, FsError> {
        if len == 0 {
            return Err(FsError::Invalid("fallocate of zero bytes"));
        }
        let end = offset.checked_add(len).ok_or(FsError::FileTooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        let inode = self.getattr(id).await?;
        check_file(&inode)?;
        perm::check_data(cred, &inode, WRITE)?;
        match how {
            Allocate::PunchHole => self.punch_hole(cred, inode, offset, end).await,
            Allocate::Extend | Allocate::KeepSize => {
                let extend = how == Allocate::Extend;
                let _guard = self.data_lock(id).lock().await;
                let (first, last) = (offset / SLOT_SIZE, (end - 1) / SLOT_SIZE);
                self.meta
                    .write(false, move |tx| {
                        let mut inode = tx.inode(id)?.ok_or(FsError::Stale(id))?;
                        tx.reserve_slots(id, first, last)?;
                        let now = FileTime::now();
                        if extend && end > inode.size {
                            inode.size = end;
                            inode.mtime = now;
                        }
                        inode.ctime = now;
                        tx.update_inode(&inode)?;
                        Ok::<_, FsError>(inode)
                    })
                    .await
            }
        }
    }

    /// Zeros `offset..end` (cut at the end of the file): slots wholly inside
    /// become holes; the parts of slots at either edge are written zeros.
    async fn punch_hole(
        &self,
        cred: &Credentials,
        inode: Inode,
        offset: u64,
        end: u64,
    ) -> Result<Inode, FsError> {
        let id = inode.id;
        let end = end.min(inode.size);
        if offset >= end {
            return Ok(inode);
        }
        // Whole slots inside the range; the slot holding the end of the
        // file counts as whole when the range runs to that end.
        let first_whole = offset.div_ceil(SLOT_SIZE);
        let end_whole = if end == inode.size {
            end.div_ceil(SLOT_SIZE)
        } else {
            end / SLOT_SIZE
        };
        let (head_end, tail_start) = if first_whole < end_whole {
            (first_whole * SLOT_SIZE, (end_whole * SLOT_SIZE).min(end))
        } else {
            (end, end)
        };
        for (from, to) in [(offset, head_end), (tail_start, end)] {
            // Each edge lies in one slot; a slot with no row is a hole already.
            let slot = from / SLOT_SIZE;
            if from >= to || self.meta.read(|v| v.slots(id, slot, slot))?.is_empty() {
                continue;
            }
            let mut at = from;
            while at < to {
                let n = (to - at).min(u64::from(MAX_IO));
                self.write(cred, id, at, vec![0; n as usize], Stability::Unstable)
                    .await?;
                at += n;
            }
        }
        if first_whole < end_whole {
            let _guard = self.data_lock(id).lock().await;
            let (first, last) = (first_whole, end_whole - 1);
            let inode = self
                .meta
                .write(false, move |tx| {
                    let mut inode = tx.inode(id)?.ok_or(FsError::Stale(id))?;
                    tx.punch_slots(id, first, last)?;
                    // Inline bytes all lie in slot 0.
                    if first == 0 && tx.inline_data(id)?.is_some() {
                        tx.set_inline(id, &[])?;
                    }
                    let now = FileTime::now();
                    inode.mtime = now;
                    inode.ctime = now;
                    tx.update_inode(&inode)?;
                    Ok::<_, FsError>(inode)
                })
                .await?;
            let cache = self.cache.clone();
            let (at, n) = (first * SLOT_SIZE, (last + 1 - first) * SLOT_SIZE);
            tokio::task::spawn_blocking(move || cache.punch(id, at, n)).await??;
            return Ok(inode);
        }
        self.getattr(id).await
    }

    /// lseek's SEEK_DATA (`hole` false) or SEEK_HOLE (`hole` true) from
    /// `offset`, at slot granularity; `None` past the end of the file
    /// (ENXIO). The end of the file counts as a hole.
    pub async fn seek(&self, id: InodeId, offset: u64, hole: bool) -> Result<Option<u64>, FsError> {
        let inode = self.getattr(id).await?;
        check_file(&inode)?;
        if offset >= inode.size {
            return Ok(None);
        }
        let last = (inode.size - 1) / SLOT_SIZE;
        let found = self
            .meta
            .read(|v| v.next_slot(id, offset / SLOT_SIZE, last, !hole))?;
        Ok(match (found, hole) {
            (Some(slot), _) => Some((slot * SLOT_SIZE).max(offset).min(inode.size)),
            (None, true) => Some(inode.size),
            (None, false) => None,
        })
    }
}
