//! [`Partials`]: the uploads a store is receiving, and those whose connection
//! dropped, kept so that a Resume continues them instead of starting over.
//! A kept upload holds only whole [`SHARD_BLOCK`]s in its temp file, with
//! their crcs and the running crc of the payload, under the upload's
//! identity (key, length, crc32c of the whole payload): a Resume continues it
//! only when all three match, so two payloads never mix. Kept uploads are
//! bounded in count and in the bytes they promise (their whole lengths; the
//! oldest goes first) and in age; a dropped
//! one's temp file is removed (and the store removes every temp file at
//! start). An upload still being received is registered too: a Resume of
//! the same identity waits for it, and any newer put of the key displaces it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::layout::{TempFile, SHARD_BLOCK, SHARD_PAYLOAD_OFFSET};

/// Most dropped uploads a store keeps at once; past it the oldest goes.
pub const MAX_PARTIALS: usize = 64;
/// Most bytes the kept uploads promise together (their whole lengths: the
/// space they keep from other puts); past it the oldest goes.
pub const MAX_PARTIAL_BYTES: u64 = 1 << 30;

/// What the client promises about an upload's whole payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub len: u64,
    pub crc: u32,
}

/// The bytes of a put received so far, in its temp file.
#[derive(Debug)]
pub struct Received {
    pub key: String,
    pub temp: TempFile,
    /// The payload's announced length.
    pub expected: u64,
    pub written: u64,
    /// crc32c of the first `written` bytes.
    pub crc: u32,
    /// The payload's check block ([`check_block_for`] its length).
    ///
    /// [`check_block_for`]: crate::layout::check_block_for
    pub check_block: u64,
    /// crc32c of each whole check block, and of the one being filled.
    pub block_crcs: Vec<u32>,
    pub block_crc: u32,
    /// crc32c of the whole [`SHARD_BLOCK`]s only (the first
    /// `written / SHARD_BLOCK` of them).
    pub crc_of_blocks: u32,
}

impl Received {
    /// Forgets the bytes past the last whole [`SHARD_BLOCK`] (a connection
    /// broke in the middle of it) and trims the temp file to match.
    pub fn cut_to_block(&mut self) -> std::io::Result<()> {
        let whole = self.written / SHARD_BLOCK * SHARD_BLOCK;
        if whole != self.written {
            self.written = whole;
            self.crc = self.crc_of_blocks;
            self.block_crcs
                .truncate((whole / self.check_block) as usize);
            self.block_crc = 0;
            self.temp.file().set_len(SHARD_PAYLOAD_OFFSET + whole)?;
        }
        Ok(())
    }
}

enum Slot {
    /// Being received on a connection, which holds `ticket`.
    Receiving { id: Identity, ticket: u64 },
    /// Its connection dropped at `since`.
    Kept {
        id: Identity,
        received: Received,
        since: Instant,
    },
}

/// What a Resume gets.
pub enum Claim {
    /// The kept upload, now receiving under `ticket`.
    Resumed(u64, Received),
    /// Nothing to continue: start over under `ticket`; the dropped upload of
    /// the key (another identity), if any, is for the caller to discard.
    Fresh(u64, Option<Received>),
    /// The same upload is being received on another connection.
    InProgress,
}

/// The table of uploads in progress and kept, by key.
pub struct Partials {
    max: usize,
    max_bytes: u64,
    ttl: Duration,
    table: Mutex<Table>,
    /// Signalled whenever an upload stops receiving (kept or ended).
    stopped: Notify,
}

#[derive(Default)]
struct Table {
    slots: HashMap<String, Slot>,
    next_ticket: u64,
}

impl std::fmt::Debug for Partials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (count, bytes) = self.kept();
        f.debug_struct("Partials")
            .field("kept", &count)
            .field("bytes", &bytes)
            .finish()
    }
}

impl Table {
    fn ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    /// Registers `key` as receiving `id`; returns the ticket and the kept
    /// upload it displaced.
    fn receive(&mut self, key: &str, id: Identity) -> (u64, Option<Received>) {
        let ticket = self.ticket();
        let old = self
            .slots
            .insert(key.to_owned(), Slot::Receiving { id, ticket });
        let dropped = match old {
            Some(Slot::Kept { received, .. }) => Some(received),
            _ => None,
        };
        (ticket, dropped)
    }
}

impl Partials {
    /// Keeps at most `max` uploads holding `max_bytes`, each for `ttl`.
    pub fn new(max: usize, max_bytes: u64, ttl: Duration) -> Partials {
        Partials {
            max,
            max_bytes,
            ttl,
            table: Mutex::new(Table::default()),
            stopped: Notify::new(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh upload of `key`: returns its ticket and what was kept for
    /// the key (to discard).
    pub fn start(&self, key: &str, id: Identity) -> (u64, Option<Received>) {
        self.table().receive(key, id)
    }

    /// A Resume of `key` with `id`.
    pub fn claim(&self, key: &str, id: Identity) -> Claim {
        let mut table = self.table();
        match table.slots.get(key) {
            Some(Slot::Receiving { id: other, .. }) if *other == id => return Claim::InProgress,
            Some(Slot::Kept { id: other, .. }) if *other == id => {
                let ticket = table.ticket();
                let slot = table
                    .slots
                    .insert(key.to_owned(), Slot::Receiving { id, ticket });
                let Some(Slot::Kept { received, .. }) = slot else {
                    unreachable!("matched a kept slot above")
                };
                return Claim::Resumed(ticket, received);
            }
            _ => {}
        }
        let (ticket, dropped) = table.receive(key, id);
        Claim::Fresh(ticket, dropped)
    }

    /// The connection receiving `key` under `ticket` dropped: keeps
    /// `received` (cut to whole blocks) unless it holds nothing or a newer
    /// put of the key took its place. Returns what must be discarded: it, or
    /// the oldest kept uploads past the bounds.
    pub fn keep(&self, ticket: u64, received: Received, now: Instant) -> Vec<Received> {
        let mut table = self.table();
        let id = match table.slots.get(&received.key) {
            Some(Slot::Receiving { id, ticket: t }) if *t == ticket => Some(*id),
            _ => None,
        };
        let mut dropped = Vec::new();
        match id {
            Some(id) if received.written > 0 => {
                let key = received.key.clone();
                let since = now;
                table.slots.insert(
                    key,
                    Slot::Kept {
                        id,
                        received,
                        since,
                    },
                );
                dropped.extend(self.over_bounds(&mut table));
            }
            Some(_) => {
                table.slots.remove(&received.key);
                dropped.push(received);
            }
            None => dropped.push(received),
        }
        drop(table);
        self.stopped.notify_waiters();
        dropped
    }

    /// Removes the oldest kept uploads until the bounds hold.
    fn over_bounds(&self, table: &mut Table) -> Vec<Received> {
        let mut dropped = Vec::new();
        loop {
            let kept = table.slots.iter().filter_map(|(key, slot)| match slot {
                Slot::Kept {
                    received, since, ..
                } => Some((key, received.expected, *since)),
                Slot::Receiving { .. } => None,
            });
            let (mut count, mut bytes, mut oldest) = (0usize, 0u64, None);
            for (key, promised, since) in kept {
                count += 1;
                bytes += promised;
                if oldest.as_ref().is_none_or(|(_, t)| since < *t) {
                    oldest = Some((key.clone(), since));
                }
            }
            if count <= self.max && bytes <= self.max_bytes {
                return dropped;
            }
            let Some((key, _)) = oldest else {
                return dropped;
            };
            if let Some(Slot::Kept { received, .. }) = table.slots.remove(&key) {
                dropped.push(received);
            }
        }
    }

    /// The upload of `key` under `ticket` ended (stored or refused).
    pub fn end(&self, key: &str, ticket: u64) {
        let mut table = self.table();
        if matches!(table.slots.get(key), Some(Slot::Receiving { ticket: t, .. }) if *t == ticket) {
            table.slots.remove(key);
        }
        drop(table);
        self.stopped.notify_waiters();
    }

    /// Removes the uploads kept longer than the ttl at `now`.
    pub fn expire(&self, now: Instant) -> Vec<Received> {
        let mut table = self.table();
        let old: Vec<String> = table
            .slots
            .iter()
            .filter(|(_, slot)| {
                matches!(slot, Slot::Kept { since, .. } if now.saturating_duration_since(*since) >= self.ttl)
            })
            .map(|(key, _)| key.clone())
            .collect();
        old.iter()
            .filter_map(|key| match table.slots.remove(key) {
                Some(Slot::Kept { received, .. }) => Some(received),
                _ => None,
            })
            .collect()
    }

    /// Kept uploads and the payload bytes they hold.
    pub fn kept(&self) -> (usize, u64) {
        let table = self.table();
        table
            .slots
            .values()
            .fold((0, 0), |(count, bytes), slot| match slot {
                Slot::Kept { received, .. } => (count + 1, bytes + received.written),
                Slot::Receiving { .. } => (count, bytes),
            })
    }

    /// Completes the next time an upload stops receiving; create it before
    /// checking, then await.
    pub fn stopped(&self) -> Notified<'_> {
        self.stopped.notified()
    }
}
