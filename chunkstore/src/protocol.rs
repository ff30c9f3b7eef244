//! The chunk-store wire protocol, version 1: limits, timeouts, and the binary
//! encoding of requests and responses. Decoding is total: any byte string
//! gives a value or a [`DecodeError`], never a panic or an unbounded allocation.
//!
//! **Transport** (see `transport.rs`): TCP, then a Noise
//! `Noise_NNpsk0_25519_AESGCM_BLAKE2s` handshake (psk = HKDF of the cluster
//! secret, prologue `cairn-chunkstore/1`, so another version fails the
//! handshake). Every Noise message, handshake or transport, travels as a
//! u16 big-endian length and that many bytes (≤ 65535). Without the secret
//! the handshake fails and the store sends nothing more. A store that has
//! no room for the connection (every slot taken, or the handshake pushed out
//! of the pending table by newer connections) answers the handshake with an
//! empty message (length 0) and closes: the client reports the store busy,
//! not a wrong secret.
//!
//! **Frames**: the decrypted transport messages form one byte stream per
//! direction (a frame may span messages). In it, every request and response is
//! a frame: u32 LE body length (≤ [`MAX_FRAME`]) then the body, whose first
//! byte is the kind. A put's data and a get's data follow their frame in the
//! stream as exactly the announced number of raw bytes. Integers are
//! little-endian; a `key` is a u8 length then that many bytes
//! (1..=128 of `[A-Za-z0-9._-]`, not starting with `.`); a `str` is a u16
//! length then UTF-8.
//!
//! ```text
//! requests                                    responses
//! 0x01 Put      key, len u64, then len bytes  0x81 Put      len u64, crc u32
//! 0x02 Get      key, offset u64, len u64      0x82 Get      len u64, then len bytes
//! 0x03 Delete   key                           0x83 Delete   existed u8
//! 0x04 Stat     key                           0x84 Stat     len u64, crc u32
//! 0x05 List     has_after u8, [key], limit u32  0x85 List   count u32, count × (key, len u64)
//! 0x06 Capacity                               0x86 Capacity total, free, used, stored,
//!                                                  shards, reserve (u64 each), zone str,
//!                                                  host str, name str, uuid str,
//!                                                  labels u16 count × str
//! 0x07 Health                                 0x87 Health
//! 0x10 Upload   key, len u64, crc u32,        0x81 Put      len u64, crc u32
//!               then len bytes
//! 0x11 Resume   key, len u64, crc u32         0x91 Resume   from u64, then the client
//!                                                  sends len − from bytes → 0x81 Put
//!                                             0x80 Error    status u16, detail str
//! ```
//! A connection serves one request at a time, in order. The store answers a
//! failed put only after reading all its data, so the stream stays in step; a
//! frame it cannot decode gets an Error (BadRequest) and the connection closes.
//! A list page shorter than its limit is the last.
//!
//! **Resumable uploads** (0x10, 0x11; added within version 1, so a store of
//! an older build answers them "unknown request kind": gateway and stores
//! run the same release). An upload names its payload by (key, len, crc32c
//! of the whole payload). When its connection drops, the store keeps the
//! whole [`SHARD_BLOCK`](crate::layout::SHARD_BLOCK)s it received, for
//! [`PARTIAL_TTL`]. A Resume of the same (key, len, crc) is answered with how
//! many bytes the store holds (a multiple of the block size, ≤ len), and the
//! client sends the rest; any other identity, or nothing held, answers 0 and
//! the upload starts over. An upload whose bytes do not hash to its crc is
//! refused and nothing is stored. A Resume refused up front (bad key, no
//! space, the same upload still being received on another connection) gets
//! an Error instead of 0x91, and no data follows. Upload 0x10 always starts
//! over, dropping what the store held for the key.

use std::time::Duration;

use crate::error::{Status, StoreError};

/// Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_AESGCM_BLAKE2s";
/// Noise prologue: the protocol and its version.
pub const PROLOGUE: &[u8] = b"cairn-chunkstore/1";
/// Largest Noise message (its u16 length prefix).
pub const MAX_NOISE_MESSAGE: usize = 65535;
/// Largest plaintext in one transport message (the AEAD tag takes 16 bytes).
pub const MAX_PLAINTEXT: usize = MAX_NOISE_MESSAGE - 16;
/// Largest frame body (a full list page fits).
pub const MAX_FRAME: u32 = 2 << 20;
/// Longest key in bytes.
pub const MAX_KEY_LEN: usize = 128;
/// Largest shard payload.
pub const MAX_PAYLOAD: u64 = 64 << 20;
/// Most entries in one list page.
pub const MAX_LIST: u32 = 10_000;
/// Longest error detail sent.
pub const MAX_DETAIL: usize = 1024;

/// Whole handshake, including the TCP connect on the client.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the store waits for a new connection's handshake; past it the
/// connection is dropped (a stranger's idle connection holds nothing long).
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest first handshake message the store reads (NNpsk0's is 48 bytes).
pub const MAX_HANDSHAKE_MESSAGE: usize = 1024;
/// Wait for the next request on an idle connection.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Wait for any one Noise message, read or written, within a request.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a store keeps the received blocks of an upload whose connection
/// dropped, waiting for a Resume.
pub const PARTIAL_TTL: Duration = Duration::from_secs(600);
/// How long a Resume waits for the same upload, still being received on
/// another connection (whose drop the store has not seen yet), to stop.
pub const RESUME_WAIT: Duration = Duration::from_secs(5);

/// A request from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Put {
        key: String,
        len: u64,
    },
    Get {
        key: String,
        offset: u64,
        len: u64,
    },
    Delete {
        key: String,
    },
    Stat {
        key: String,
    },
    List {
        after: Option<String>,
        limit: u32,
    },
    Capacity,
    Health,
    /// A resumable put: `len` bytes whose crc32c is `crc` follow.
    Upload {
        key: String,
        len: u64,
        crc: u32,
    },
    /// Continue the upload (key, len, crc); the store answers how much it holds.
    Resume {
        key: String,
        len: u64,
        crc: u32,
    },
}

/// A store's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Error {
        status: Status,
        detail: String,
    },
    Put(ShardStat),
    Get {
        len: u64,
    },
    Delete {
        existed: bool,
    },
    Stat(ShardStat),
    List(Vec<ListEntry>),
    Capacity(Capacity),
    Health,
    /// The store holds the first `from` bytes of the upload; send the rest.
    Resume {
        from: u64,
    },
}

/// A stored shard's payload length and crc32c.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardStat {
    pub len: u64,
    pub crc: u32,
}

/// One entry of a list page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub key: String,
    pub len: u64,
}

/// What a store reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// Size of the drive's filesystem.
    pub total: u64,
    /// Bytes available to the store (before the reserve is taken off).
    pub free: u64,
    /// Bytes in use on the filesystem, by anything.
    pub used: u64,
    /// Payload bytes of the shards this store holds.
    pub stored: u64,
    /// Number of shards.
    pub shards: u64,
    /// Free space puts never eat into.
    pub reserve: u64,
    pub zone: String,
    pub host: String,
    pub name: String,
    pub store_uuid: String,
    pub labels: Vec<String>,
}

impl Request {
    /// The operation's name, for errors and logs.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Put { .. } => "put",
            Request::Get { .. } => "get",
            Request::Delete { .. } => "delete",
            Request::Stat { .. } => "stat",
            Request::List { .. } => "list",
            Request::Capacity => "capacity",
            Request::Health => "health",
            Request::Upload { .. } => "upload",
            Request::Resume { .. } => "resume",
        }
    }

    /// The key the request is about ("" if none).
    pub fn key(&self) -> &str {
        match self {
            Request::Put { key, .. }
            | Request::Get { key, .. }
            | Request::Delete { key }
            | Request::Stat { key }
            | Request::Upload { key, .. }
            | Request::Resume { key, .. } => key,
            Request::List { after, .. } => after.as_deref().unwrap_or(""),
            Request::Capacity | Request::Health => "",
        }
    }
}

/// Checks a key: 1..=128 bytes of `[A-Za-z0-9._-]`, not starting with `.`.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let reason = if key.is_empty() {
        "is empty"
    } else if key.len() > MAX_KEY_LEN {
        "is longer than 128 bytes"
    } else if key.starts_with('.') {
        "starts with '.'"
    } else if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "has a character outside [A-Za-z0-9._-]"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidKey {
        key: key.chars().take(MAX_KEY_LEN).collect(),
        reason,
    })
}

/// Checks a payload length against [`MAX_PAYLOAD`].
pub fn check_len(key: &str, len: u64) -> Result<(), StoreError> {
    if len > MAX_PAYLOAD {
        return Err(StoreError::TooLarge {
            key: key.to_owned(),
            len,
            max: MAX_PAYLOAD,
        });
    }
    Ok(())
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed frame: {0}")]
pub struct DecodeError(pub &'static str);

/// A little-endian reader over one frame body.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn key(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u8()?);
        let key =
            std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError("key is not UTF-8"))?;
        check_key(key).map_err(|_| DecodeError("invalid key"))?;
        Ok(key.to_owned())
    }

    fn str(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u16()?);
        let s =
            std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError("string is not UTF-8"))?;
        Ok(s.to_owned())
    }

    fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
}

fn put_key(out: &mut Vec<u8>, key: &str) {
    debug_assert!(key.len() <= MAX_KEY_LEN);
    out.push(key.len() as u8);
    out.extend_from_slice(key.as_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Strings we send are short (names, labels, details); cut at a char boundary.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

/// Encodes a request's frame body. Keys must have passed [`check_key`].
pub fn encode_request(req: &Request) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + MAX_KEY_LEN);
    match req {
        Request::Put { key, len } => {
            out.push(0x01);
            put_key(&mut out, key);
            out.extend_from_slice(&len.to_le_bytes());
        }
        Request::Get { key, offset, len } => {
            out.push(0x02);
            put_key(&mut out, key);
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        Request::Delete { key } => {
            out.push(0x03);
            put_key(&mut out, key);
        }
        Request::Stat { key } => {
            out.push(0x04);
            put_key(&mut out, key);
        }
        Request::List { after, limit } => {
            out.push(0x05);
            match after {
                Some(key) => {
                    out.push(1);
                    put_key(&mut out, key);
                }
                None => out.push(0),
            }
            out.extend_from_slice(&limit.to_le_bytes());
        }
        Request::Capacity => out.push(0x06),
        Request::Health => out.push(0x07),
        Request::Upload { key, len, crc } | Request::Resume { key, len, crc } => {
            out.push(if matches!(req, Request::Upload { .. }) {
                0x10
            } else {
                0x11
            });
            put_key(&mut out, key);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&crc.to_le_bytes());
        }
    }
    out
}

/// Decodes a request frame body, checking every key and bound.
pub fn decode_request(body: &[u8]) -> Result<Request, DecodeError> {
    let mut r = Reader { buf: body };
    let req = match r.u8()? {
        0x01 => {
            let key = r.key()?;
            let len = payload_len(r.u64()?)?;
            Request::Put { key, len }
        }
        kind @ (0x10 | 0x11) => {
            let (key, len, crc) = (r.key()?, payload_len(r.u64()?)?, r.u32()?);
            if kind == 0x10 {
                Request::Upload { key, len, crc }
            } else {
                Request::Resume { key, len, crc }
            }
        }
        0x02 => Request::Get {
            key: r.key()?,
            offset: r.u64()?,
            len: r.u64()?,
        },
        0x03 => Request::Delete { key: r.key()? },
        0x04 => Request::Stat { key: r.key()? },
        0x05 => {
            let after = match r.u8()? {
                0 => None,
                1 => Some(r.key()?),
                _ => return Err(DecodeError("list has_after is not 0 or 1")),
            };
            let limit = r.u32()?;
            if limit == 0 || limit > MAX_LIST {
                return Err(DecodeError("list limit not in 1..=10000"));
            }
            Request::List { after, limit }
        }
        0x06 => Request::Capacity,
        0x07 => Request::Health,
        _ => return Err(DecodeError("unknown request kind")),
    };
    r.finish()?;
    Ok(req)
}

/// A put's length, checked against [`MAX_PAYLOAD`].
fn payload_len(len: u64) -> Result<u64, DecodeError> {
    if len > MAX_PAYLOAD {
        Err(DecodeError("put length over 64 MiB"))
    } else {
        Ok(len)
    }
}

/// Encodes a response's frame body.
pub fn encode_response(resp: &Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    match resp {
        Response::Error { status, detail } => {
            out.push(0x80);
            out.extend_from_slice(&status.code().to_le_bytes());
            let mut end = detail.len().min(MAX_DETAIL);
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            put_str(&mut out, &detail[..end]);
        }
        Response::Put(stat) => {
            out.push(0x81);
            out.extend_from_slice(&stat.len.to_le_bytes());
            out.extend_from_slice(&stat.crc.to_le_bytes());
        }
        Response::Get { len } => {
            out.push(0x82);
            out.extend_from_slice(&len.to_le_bytes());
        }
        Response::Delete { existed } => {
            out.push(0x83);
            out.push(u8::from(*existed));
        }
        Response::Stat(stat) => {
            out.push(0x84);
            out.extend_from_slice(&stat.len.to_le_bytes());
            out.extend_from_slice(&stat.crc.to_le_bytes());
        }
        Response::List(entries) => {
            out.reserve(entries.len() * 24);
            out.push(0x85);
            out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
            for entry in entries {
                put_key(&mut out, &entry.key);
                out.extend_from_slice(&entry.len.to_le_bytes());
            }
        }
        Response::Capacity(c) => {
            out.push(0x86);
            for n in [c.total, c.free, c.used, c.stored, c.shards, c.reserve] {
                out.extend_from_slice(&n.to_le_bytes());
            }
            for s in [&c.zone, &c.host, &c.name, &c.store_uuid] {
                put_str(&mut out, s);
            }
            out.extend_from_slice(&(c.labels.len().min(u16::MAX as usize) as u16).to_le_bytes());
            for label in c.labels.iter().take(u16::MAX as usize) {
                put_str(&mut out, label);
            }
        }
        Response::Health => out.push(0x87),
        Response::Resume { from } => {
            out.push(0x91);
            out.extend_from_slice(&from.to_le_bytes());
        }
    }
    out
}

/// Decodes a response frame body.
pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    let mut r = Reader { buf: body };
    let resp = match r.u8()? {
        0x80 => Response::Error {
            status: Status::from_code(r.u16()?),
            detail: r.str()?,
        },
        0x81 => Response::Put(ShardStat {
            len: r.u64()?,
            crc: r.u32()?,
        }),
        0x82 => Response::Get { len: r.u64()? },
        0x83 => Response::Delete {
            existed: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError("delete existed is not 0 or 1")),
            },
        },
        0x84 => Response::Stat(ShardStat {
            len: r.u64()?,
            crc: r.u32()?,
        }),
        0x85 => {
            let count = r.u32()?;
            if count > MAX_LIST {
                return Err(DecodeError("list page over 10000 entries"));
            }
            let mut entries = Vec::with_capacity(count as usize);
            for _ in 0..count {
                entries.push(ListEntry {
                    key: r.key()?,
                    len: r.u64()?,
                });
            }
            Response::List(entries)
        }
        0x86 => {
            let mut n = [0u64; 6];
            for slot in &mut n {
                *slot = r.u64()?;
            }
            let [total, free, used, stored, shards, reserve] = n;
            let zone = r.str()?;
            let host = r.str()?;
            let name = r.str()?;
            let store_uuid = r.str()?;
            let count = r.u16()?;
            let mut labels = Vec::new();
            for _ in 0..count {
                labels.push(r.str()?);
            }
            Response::Capacity(Capacity {
                total,
                free,
                used,
                stored,
                shards,
                reserve,
                zone,
                host,
                name,
                store_uuid,
                labels,
            })
        }
        0x87 => Response::Health,
        0x91 => Response::Resume { from: r.u64()? },
        _ => return Err(DecodeError("unknown response kind")),
    };
    r.finish()?;
    Ok(resp)
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
