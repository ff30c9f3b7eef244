//! Puts into a [`Store`]: the space promise, the temp file, the running
//! crcs, and for a resumable upload its place in the [`Partials`] table
//! (kept when the connection drops, continued by a Resume, checked against
//! its announced crc before the durable rename).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::Store;
use crate::error::StoreError;
use crate::layout::{self, ShardHeader, TempFile, SHARD_BLOCK, SHARD_PAYLOAD_OFFSET};
use crate::partial::{Claim, Identity, Partials, Received};
use crate::protocol::{check_key, ShardStat, MAX_PAYLOAD};

/// A put in progress: a temp file, the running crc, the bytes still expected.
#[derive(Debug)]
pub struct PutWriter {
    store: Arc<Store>,
    /// `None` once committed or kept.
    received: Option<Received>,
    /// A resumable upload's identity and its ticket in the partials table.
    upload: Option<(Identity, u64)>,
    /// Bytes the store held already when this writer resumed an upload.
    resumed: u64,
}

impl Store {
    /// Starts a put of `len` bytes: checks the key, the size, and that the
    /// store keeps its reserve afterwards. Not resumable: its temp file goes
    /// when its connection drops.
    pub fn begin_put(self: &Arc<Self>, key: &str, len: u64) -> Result<PutWriter, StoreError> {
        self.check_put(key, len)?;
        self.new_writer(key, len, None)
    }

    /// Starts a resumable upload of `len` bytes with crc32c `crc`, dropping
    /// whatever was kept for `key`.
    pub fn begin_upload(
        self: &Arc<Self>,
        key: &str,
        len: u64,
        crc: u32,
    ) -> Result<PutWriter, StoreError> {
        self.check_put(key, len)?;
        let id = Identity { len, crc };
        let (ticket, dropped) = self.partials.start(key, id);
        self.discard(dropped, "a new upload of the key replaced it");
        self.new_writer(key, len, Some((id, ticket)))
    }

    /// Continues the upload (`key`, `len`, `crc`) from what the store kept
    /// of it ([`PutWriter::resumed`] bytes), or starts it over when nothing
    /// of that identity is kept. [`StoreError::UploadInProgress`] while the
    /// same upload is still being received on another connection.
    pub fn resume_upload(
        self: &Arc<Self>,
        key: &str,
        len: u64,
        crc: u32,
    ) -> Result<PutWriter, StoreError> {
        self.check_put(key, len)?;
        self.expire_partials(Instant::now());
        let id = Identity { len, crc };
        match self.partials.claim(key, id) {
            Claim::InProgress => Err(StoreError::UploadInProgress {
                key: key.to_owned(),
            }),
            Claim::Resumed(ticket, received) => Ok(PutWriter {
                store: Arc::clone(self),
                resumed: received.written,
                received: Some(received),
                upload: Some((id, ticket)),
            }),
            Claim::Fresh(ticket, dropped) => {
                self.discard(dropped, "a resume of another payload replaced it");
                self.new_writer(key, len, Some((id, ticket)))
            }
        }
    }

    fn check_put(&self, key: &str, len: u64) -> Result<(), StoreError> {
        check_key(key)?;
        if len > MAX_PAYLOAD {
            return Err(StoreError::TooLarge {
                key: key.to_owned(),
                len,
                max: MAX_PAYLOAD,
            });
        }
        self.check_writable()
    }

    /// Reserves room for `len` bytes and opens the temp file; on failure the
    /// upload's ticket (if any) ends.
    fn new_writer(
        self: &Arc<Self>,
        key: &str,
        len: u64,
        upload: Option<(Identity, u64)>,
    ) -> Result<PutWriter, StoreError> {
        let opened = self.reserve(key, len).and_then(|()| {
            // The header block stays a hole until finish writes the header.
            TempFile::create_direct(&layout::shard_dir(&self.data_dir, key), key)
                .inspect_err(|_| self.release(len))
        });
        match opened {
            Ok(temp) => Ok(PutWriter {
                store: Arc::clone(self),
                received: Some(Received {
                    key: key.to_owned(),
                    temp,
                    expected: len,
                    written: 0,
                    crc: 0,
                    block_crcs: Vec::with_capacity(len.div_ceil(SHARD_BLOCK) as usize),
                    block_crc: 0,
                    crc_of_blocks: 0,
                }),
                upload,
                resumed: 0,
            }),
            Err(err) => {
                if let Some((_, ticket)) = upload {
                    self.partials.end(key, ticket);
                }
                Err(err)
            }
        }
    }

    /// Promises `len` bytes (and a header) to a put, if the store keeps its
    /// reserve afterwards.
    fn reserve(&self, key: &str, len: u64) -> Result<(), StoreError> {
        let need = len + SHARD_PAYLOAD_OFFSET;
        let (_, free, _) = self.fs_space()?;
        let pending = self.pending.fetch_add(need, Ordering::SeqCst);
        let available = free.saturating_sub(pending);
        if available < need.saturating_add(self.reserve) {
            self.pending.fetch_sub(need, Ordering::SeqCst);
            return Err(StoreError::NoSpace {
                key: key.to_owned(),
                len,
                free: available,
                reserve: self.reserve,
            });
        }
        Ok(())
    }

    /// Removes received bytes no put will finish, and their promise of space.
    fn discard(&self, dropped: impl IntoIterator<Item = Received>, why: &'static str) {
        for received in dropped {
            tracing::info!(
                key = received.key,
                held = received.written,
                len = received.expected,
                why,
                "dropped a kept partial upload"
            );
            self.release(received.expected);
        }
    }

    /// Drops the uploads kept past their time at `now`.
    pub fn expire_partials(&self, now: Instant) {
        self.discard(self.partials.expire(now), "kept past its time");
    }

    /// Uploads kept for a Resume, and the payload bytes they hold.
    pub fn partials(&self) -> &Partials {
        &self.partials
    }

    /// Gives back the space promised to a put of `len` bytes.
    fn release(&self, len: u64) {
        self.pending
            .fetch_sub(len + SHARD_PAYLOAD_OFFSET, Ordering::SeqCst);
    }
}

impl PutWriter {
    /// Bytes the store held already when this writer resumed an upload.
    pub fn resumed(&self) -> u64 {
        self.resumed
    }

    /// The shard key.
    pub fn key(&self) -> &str {
        self.received.as_ref().map_or("", |r| r.key.as_str())
    }

    /// Appends payload bytes; more than announced is an error.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let r = self.received.as_mut().expect("open until finish");
        if r.written + data.len() as u64 > r.expected {
            return Err(StoreError::LengthMismatch {
                key: r.key.clone(),
                expected: r.expected,
                got: r.written + data.len() as u64,
            });
        }
        r.temp
            .write_at(data, SHARD_PAYLOAD_OFFSET + r.written)
            .map_err(|e| StoreError::io("write", r.temp.temp_path(), e))?;
        let mut rest = data;
        while !rest.is_empty() {
            let room = (SHARD_BLOCK - r.written % SHARD_BLOCK) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            r.crc = crc32c::crc32c_append(r.crc, now);
            r.block_crc = crc32c::crc32c_append(r.block_crc, now);
            r.written += now.len() as u64;
            if r.written.is_multiple_of(SHARD_BLOCK) {
                r.block_crcs.push(std::mem::take(&mut r.block_crc));
                r.crc_of_blocks = r.crc;
            }
            rest = later;
        }
        Ok(())
    }

    /// The connection broke: a resumable upload keeps its whole blocks for
    /// a Resume; any other put's temp file is removed.
    pub fn keep(mut self) {
        let (Some(mut received), Some((_, ticket))) = (self.received.take(), self.upload) else {
            return;
        };
        let store = Arc::clone(&self.store);
        let dropped = match received.cut_to_block() {
            Ok(()) => store.partials.keep(ticket, received, Instant::now()),
            Err(err) => {
                tracing::warn!(key = received.key, cause = %err, "cannot trim a partial upload; dropping it");
                vec![received]
            }
        };
        store.discard(
            dropped,
            "nothing whole received, replaced, or over the bounds",
        );
    }

    /// Checks the length (and a resumable upload's crc), writes the header,
    /// and makes the shard durable.
    pub fn finish(mut self) -> Result<ShardStat, StoreError> {
        let r = self.received.as_mut().expect("open until finish");
        if r.written != r.expected {
            return Err(StoreError::LengthMismatch {
                key: r.key.clone(),
                expected: r.expected,
                got: r.written,
            });
        }
        if let Some((id, _)) = self.upload {
            if r.crc != id.crc {
                return Err(StoreError::CrcMismatch {
                    key: r.key.clone(),
                    announced: id.crc,
                    got: r.crc,
                });
            }
        }
        if !r.written.is_multiple_of(SHARD_BLOCK) {
            r.block_crcs.push(r.block_crc);
        }
        let header = ShardHeader {
            len: r.written,
            crc: r.crc,
            block_crcs: std::mem::take(&mut r.block_crcs),
        };
        let path = r.temp.temp_path().to_owned();
        r.temp
            .write_at(&header.encode(), 0)
            .and_then(|()| r.temp.file().set_len(SHARD_PAYLOAD_OFFSET + header.len))
            .map_err(|e| StoreError::io("write", path, e))?;
        let store = Arc::clone(&self.store);
        store.check_writable()?;
        let r = self.received.take().expect("open until finish");
        store.release(r.expected);
        if let Some((_, ticket)) = self.upload {
            store.partials.end(&r.key, ticket);
        }
        r.temp.commit().map_err(|failed| store.poison(failed))?;
        store.index().insert(r.key, header.len);
        Ok(ShardStat {
            len: header.len,
            crc: header.crc,
        })
    }
}

impl Drop for PutWriter {
    fn drop(&mut self) {
        if let Some(received) = self.received.take() {
            self.store.release(received.expected);
            if let Some((_, ticket)) = self.upload {
                self.store.partials.end(&received.key, ticket);
            }
        }
    }
}
