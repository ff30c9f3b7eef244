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
use crate::protocol::{check_key, check_len, ShardStat};

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
    /// store keeps its reserve afterwards. With the payload's `crc` it is a
    /// resumable upload (dropping whatever was kept for `key`); without, its
    /// temp file goes when its connection drops.
    pub fn begin_put(
        self: &Arc<Self>,
        key: &str,
        len: u64,
        crc: Option<u32>,
    ) -> Result<PutWriter, StoreError> {
        self.check_put(key, len)?;
        let upload = crc.map(|crc| {
            let id = Identity { len, crc };
            let (ticket, dropped) = self.partials.start(key, id);
            self.discard(dropped, "a new upload of the key replaced it");
            (id, ticket)
        });
        self.new_writer(key, len, upload)
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
        check_len(key, len)?;
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
            TempFile::create(&layout::shard_dir(&self.data_dir, key), key)
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
                    check_block: layout::check_block_for(len),
                    block_crcs: Vec::with_capacity(
                        len.div_ceil(layout::check_block_for(len)) as usize
                    ),
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
            let room = (r.check_block - r.written % r.check_block) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            r.crc = crc32c::crc32c_append(r.crc, now);
            r.block_crc = crc32c::crc32c_append(r.block_crc, now);
            r.written += now.len() as u64;
            if r.written.is_multiple_of(r.check_block) {
                r.block_crcs.push(std::mem::take(&mut r.block_crc));
            }
            if r.written.is_multiple_of(SHARD_BLOCK) {
                r.crc_of_blocks = r.crc;
            }
            rest = later;
        }
        Ok(())
    }

    /// The connection broke: a resumable upload keeps its whole blocks for
    /// a Resume; any other put's temp file is removed.
    pub fn keep(mut self) {
        // A plain put: dropping the writer removes its temp file.
        let Some((_, ticket)) = self.upload else {
            return;
        };
        let Some(mut received) = self.received.take() else {
            return;
        };
        let store = Arc::clone(&self.store);
        let dropped = match received.cut_to_block() {
            Ok(()) => {
                tracing::info!(
                    key = received.key,
                    held = received.written,
                    len = received.expected,
                    "upload interrupted; keeping its whole blocks for a resume"
                );
                store.partials.keep(ticket, received, Instant::now())
            }
            Err(err) => {
                tracing::warn!(key = received.key, cause = %err, "cannot trim a partial upload; dropping it");
                store.partials.end(&received.key, ticket);
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
        if !r.written.is_multiple_of(r.check_block) {
            r.block_crcs.push(r.block_crc);
        }
        let header = ShardHeader {
            len: r.written,
            crc: r.crc,
            check_block: r.check_block,
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
        store.open.forget(&r.key);
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::time::Duration;

    use cairn_config::StoreConfig;

    use super::*;
    use crate::protocol::PARTIAL_TTL;
    use crate::secret::Secret;

    fn open_store(tmp: &Path) -> Arc<Store> {
        let secret_file = tmp.join("cluster.secret");
        std::fs::write(&secret_file, format!("{}\n", "5a".repeat(32))).unwrap();
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let data = tmp.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let listen = "127.0.0.1:0".parse().unwrap();
        let cfg = StoreConfig::with_defaults(listen, data, "z", "h", secret_file);
        crate::init(&cfg).unwrap();
        let secret = Secret::load(&cfg.secret_file).unwrap();
        Arc::new(Store::open(&cfg, &secret).unwrap())
    }

    #[test]
    fn small_gets_skip_the_blocking_path_only_for_open_checked_shards() {
        use std::os::unix::fs::FileExt;
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let mut w = store.begin_put("k", data.len() as u64, None).unwrap();
        w.write(&data).unwrap();
        w.finish().unwrap();
        assert_eq!(store.get_nowait("k", 10, 100), None, "not open yet");
        assert_eq!(store.get("k", 10, 100).unwrap(), &data[10..110]);
        // Kept open, and its first check block is now in the page cache.
        assert_eq!(
            store.get_nowait("k", 10, 100).as_deref(),
            Some(&data[10..110])
        );
        assert_eq!(store.get_nowait("k", 10, 0), None, "a full check blocks");
        // A flipped byte is never served from here; the blocking get finds
        // it and quarantines the shard.
        let path = layout::shard_path(&store.data_dir, "k");
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_at(&[data[50] ^ 1], SHARD_PAYLOAD_OFFSET + 50)
            .unwrap();
        assert_eq!(store.get_nowait("k", 10, 100), None);
        let err = store.get("k", 10, 100).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert_eq!(store.get_nowait("k", 10, 100), None, "quarantined");
    }

    #[test]
    fn a_check_reads_in_check_blocks_and_hands_each_to_the_pacer() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        let data: Vec<u8> = (0..(3 << 20) + 7u32)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let mut w = store.begin_put("k", data.len() as u64, None).unwrap();
        w.write(&data).unwrap();
        w.finish().unwrap();
        let mut pieces = Vec::new();
        store.check("k", &mut |n| pieces.push(n)).unwrap();
        // Never a whole shard at once: one piece per check block.
        let block = layout::check_block_for(data.len() as u64);
        assert_eq!(pieces.len() as u64, (data.len() as u64).div_ceil(block));
        assert!(pieces.iter().all(|&n| n <= block), "{pieces:?}");
        assert_eq!(pieces.iter().sum::<u64>(), data.len() as u64);
        // A flipped byte in the last block is found and quarantined.
        use std::os::unix::fs::FileExt;
        let path = layout::shard_path(&store.data_dir, "k");
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_at(
            &[data[data.len() - 1] ^ 1],
            SHARD_PAYLOAD_OFFSET + data.len() as u64 - 1,
        )
        .unwrap();
        let err = store.check("k", &mut |_| {}).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(!path.exists());
    }

    fn temps(store: &Store) -> usize {
        let mut n = 0;
        layout::for_each_shard_file(&store.data_dir, |_, name, _| {
            n += usize::from(layout::is_temp_name(name));
            Ok(())
        })
        .unwrap();
        n
    }

    fn pending(store: &Store) -> u64 {
        store.pending.load(Ordering::SeqCst)
    }

    #[test]
    fn a_kept_upload_resumes_exactly_and_an_old_one_expires() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        let data: Vec<u8> = (0..3 * SHARD_BLOCK - 10).map(|i| (i * 7) as u8).collect();
        let (len, crc) = (data.len() as u64, crc32c::crc32c(&data));

        // The connection broke inside the third block: two blocks are kept,
        // and the whole put's space stays promised.
        let mut w = store.begin_put("k", len, Some(crc)).unwrap();
        w.write(&data[..(2 * SHARD_BLOCK + 100) as usize]).unwrap();
        w.keep();
        assert_eq!(store.partials().kept(), (1, 2 * SHARD_BLOCK));
        assert_eq!(pending(&store), len + SHARD_PAYLOAD_OFFSET);
        assert_eq!(temps(&store), 1);

        let mut w = store.resume_upload("k", len, crc).unwrap();
        assert_eq!(w.resumed(), 2 * SHARD_BLOCK);
        w.write(&data[2 * SHARD_BLOCK as usize..]).unwrap();
        let stat = w.finish().unwrap();
        assert_eq!((stat.len, stat.crc), (len, crc));
        assert_eq!(store.get("k", 0, len).unwrap(), data);
        assert_eq!(store.get("k", 0, 0).unwrap(), b"", "every block crc checks");
        assert_eq!((store.partials().kept(), pending(&store)), ((0, 0), 0));

        // Kept until its time is up, then removed with its promise of space.
        let mut w = store.begin_put("old", len, Some(crc)).unwrap();
        w.write(&data[..SHARD_BLOCK as usize + 5]).unwrap();
        w.keep();
        let now = Instant::now();
        store.expire_partials(now + PARTIAL_TTL - Duration::from_secs(1));
        assert_eq!(store.partials().kept(), (1, SHARD_BLOCK));
        store.expire_partials(now + PARTIAL_TTL);
        assert_eq!((store.partials().kept(), pending(&store)), ((0, 0), 0));
        assert_eq!(temps(&store), 0);
        let w = store.resume_upload("old", len, crc).unwrap();
        assert_eq!(w.resumed(), 0, "an expired upload starts over");
    }

    #[test]
    fn a_resume_of_another_identity_or_a_fresh_upload_starts_over() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        let data = vec![3u8; 2 * SHARD_BLOCK as usize];
        let (len, crc) = (data.len() as u64, crc32c::crc32c(&data));
        let keep_one_block = |store: &Arc<Store>| {
            let mut w = store.begin_put("k", len, Some(crc)).unwrap();
            w.write(&data[..SHARD_BLOCK as usize]).unwrap();
            w.keep();
        };
        keep_one_block(&store);
        for (other_len, other_crc) in [(len, crc ^ 1), (len - 1, crc)] {
            let w = store.resume_upload("k", other_len, other_crc).unwrap();
            assert_eq!(w.resumed(), 0);
            drop(w);
            assert_eq!(store.partials().kept(), (0, 0));
            keep_one_block(&store);
        }
        let w = store.begin_put("k", len, Some(crc)).unwrap();
        assert_eq!(w.resumed(), 0);
        drop(w);
        assert_eq!((store.partials().kept(), pending(&store)), ((0, 0), 0));
        assert_eq!(temps(&store), 0);

        // A plain put keeps nothing; nor does an upload with no whole block.
        let mut w = store.begin_put("p", len, None).unwrap();
        w.write(&data).unwrap();
        w.keep();
        let mut w = store.begin_put("q", len, Some(crc)).unwrap();
        w.write(&data[..100]).unwrap();
        w.keep();
        assert_eq!((store.partials().kept(), pending(&store)), ((0, 0), 0));
        assert_eq!(temps(&store), 0);
    }

    #[test]
    fn kept_uploads_are_bounded_oldest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let partials = Partials::new(2, 2 * SHARD_BLOCK, PARTIAL_TTL);
        let id = Identity { len: 8, crc: 0 };
        let start = Instant::now();
        let keep = |key: &str, blocks: usize, at: u64| {
            let (ticket, _) = partials.start(key, id);
            let received = Received {
                key: key.to_owned(),
                temp: TempFile::create(tmp.path(), key).unwrap(),
                expected: blocks as u64 * SHARD_BLOCK,
                written: blocks as u64 * SHARD_BLOCK,
                crc: 0,
                check_block: SHARD_BLOCK,
                block_crcs: vec![0; blocks],
                block_crc: 0,
                crc_of_blocks: 0,
            };
            let dropped = partials.keep(ticket, received, start + Duration::from_secs(at));
            dropped.into_iter().map(|r| r.key).collect::<Vec<_>>()
        };
        assert!(keep("a", 1, 0).is_empty());
        assert!(keep("b", 1, 1).is_empty());
        assert_eq!(keep("c", 1, 2), ["a"], "count bound");
        assert_eq!(keep("d", 2, 3), ["b", "c"], "byte bound");
        assert_eq!(partials.kept(), (1, 2 * SHARD_BLOCK));
        // A resume of a key still being received is told so.
        let (_ticket, _) = partials.start("e", id);
        assert!(matches!(partials.claim("e", id), Claim::InProgress));
    }
}
