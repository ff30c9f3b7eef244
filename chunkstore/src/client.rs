//! [`StoreClient`]: the gateway's connection to one chunk store. Connecting
//! is cheap (one TCP connect and a two-message handshake), so a client whose
//! connection broke is simply replaced; every error names the store and the
//! operation. Requests on one client run one at a time. A put is an
//! [`Upload`]: when its connection drops, the next attempt (on a new
//! connection) resumes from the whole blocks the store kept.

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::error::StoreError;
use crate::layout::SHARD_BLOCK;
use crate::protocol::{
    check_key, check_len, decode_response, encode_request, Capacity, ListEntry, Request, Response,
    ShardStat, HANDSHAKE_TIMEOUT, MAX_LIST, MESSAGE_TIMEOUT,
};
use crate::secret::Secret;
use crate::transport::NoiseStream;

/// One payload's upload to one store, across connections: once an attempt
/// has started, the next one first asks the store how much it kept (a
/// Resume) and sends only the rest. A resume after the first must find the
/// store holding more than at the one before, else the upload has stalled
/// ([`StoreError::Stalled`]).
#[derive(Debug)]
pub struct Upload<'a> {
    key: &'a str,
    data: &'a [u8],
    crc: u32,
    /// Paces the payload piece by piece, when set.
    pacer: Option<&'a dyn Pacer>,
    /// The next attempt resumes.
    resume: bool,
    /// What the store held at the last resume.
    held: Option<u64>,
}

/// Bytes of a paced payload sent between two waits: small enough that a
/// cap holds within a fraction of a second at any rate above 64 KiB/s.
pub const PACE_PIECE: usize = 16 * 1024;

/// Decides when the next bytes of a payload may go: a bandwidth cap.
pub trait Pacer: Send + Sync + std::fmt::Debug {
    /// Returns once `bytes` more may be sent.
    fn wait(&self, bytes: u64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// A payload to send after a request frame, and what paces it.
struct Payload<'a> {
    data: &'a [u8],
    pacer: Option<&'a dyn Pacer>,
}

impl<'a> Upload<'a> {
    /// An upload whose first attempt starts over.
    pub fn new(key: &'a str, data: &'a [u8]) -> Self {
        Upload {
            key,
            data,
            crc: crc32c::crc32c(data),
            pacer: None,
            resume: false,
            held: None,
        }
    }

    /// Sends the payload no faster than `pacer` allows, one [`PACE_PIECE`]
    /// at a time, so a bandwidth cap holds within a transfer and not only
    /// on average over many.
    pub fn paced(mut self, pacer: &'a dyn Pacer) -> Self {
        self.pacer = Some(pacer);
        self
    }

    /// An upload whose first attempt resumes (an earlier one broke off).
    pub fn resuming(key: &'a str, data: &'a [u8]) -> Self {
        Upload {
            resume: true,
            ..Upload::new(key, data)
        }
    }

    /// Whether an attempt has started: the store may keep part of it.
    pub fn started(&self) -> bool {
        self.resume
    }

    /// What the store held at the last resume.
    pub fn held(&self) -> Option<u64> {
        self.held
    }
}

/// An authenticated connection to one chunk store.
pub struct StoreClient {
    /// `host:port` as given to [`StoreClient::connect`].
    addr: String,
    /// `None` after a transport error: the stream may be out of step.
    stream: Option<NoiseStream>,
}

impl std::fmt::Debug for StoreClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreClient")
            .field("addr", &self.addr)
            .field("connected", &self.stream.is_some())
            .finish()
    }
}

impl StoreClient {
    /// Connects to `addr` (`host:port` or a `SocketAddr`; names are resolved)
    /// and runs the handshake, all within 10 s.
    pub async fn connect(addr: impl Display, secret: &Secret) -> Result<StoreClient, StoreError> {
        let addr = addr.to_string();
        let attempt = async {
            let tcp =
                TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|source| StoreError::Connect {
                        addr: addr.clone(),
                        source,
                    })?;
            NoiseStream::initiate(tcp, secret)
                .await
                .map_err(|err| match err.kind() {
                    io::ErrorKind::TimedOut => StoreError::Timeout {
                        addr: addr.clone(),
                        op: "handshake",
                        after: HANDSHAKE_TIMEOUT,
                    },
                    io::ErrorKind::ResourceBusy => StoreError::Busy { addr: addr.clone() },
                    _ => StoreError::Handshake {
                        addr: addr.clone(),
                        reason: err.to_string(),
                    },
                })
        };
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt)
            .await
            .map_err(|_| StoreError::Timeout {
                addr: addr.clone(),
                op: "connect",
                after: HANDSHAKE_TIMEOUT,
            })??;
        Ok(StoreClient {
            addr,
            stream: Some(stream),
        })
    }

    /// The store's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection is still usable (no transport error so far).
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// Stores `data` under `key` (replacing any shard there); returns the
    /// length and crc32c the store verified and made durable.
    pub async fn put(&mut self, key: &str, data: &[u8]) -> Result<ShardStat, StoreError> {
        self.upload(&mut Upload::new(key, data)).await
    }

    /// One attempt of `up` on this connection: a fresh upload, or a resume
    /// that sends only what the store does not hold yet.
    pub async fn upload(&mut self, up: &mut Upload<'_>) -> Result<ShardStat, StoreError> {
        let (key, data, crc) = (up.key, up.data, up.crc);
        check_key(key)?;
        let len = data.len() as u64;
        check_len(key, len)?;
        let resp = if up.resume {
            let req = Request::Resume {
                key: key.to_owned(),
                len,
                crc,
            };
            let from = match self.call(&req, &[]).await? {
                Response::Resume { from } if from <= len && from.is_multiple_of(SHARD_BLOCK) => {
                    from
                }
                Response::Resume { from } => {
                    self.stream = None;
                    return Err(self.violation(
                        "resume",
                        format!("store holds {from} bytes of a {len}-byte upload"),
                    ));
                }
                other => return Err(self.unexpected("resume", key, other)),
            };
            if up.held.is_some_and(|held| from <= held) {
                // Closing mid-request: the store keeps what it holds.
                self.stream = None;
                return Err(StoreError::Stalled {
                    addr: self.addr.clone(),
                    key: key.to_owned(),
                    held: from,
                });
            }
            up.held = Some(from);
            let rest = Payload {
                data: &data[from as usize..],
                pacer: up.pacer,
            };
            self.send_and_read("resume", key, None, rest, MESSAGE_TIMEOUT)
                .await?
        } else {
            up.resume = true;
            let req = Request::Upload {
                key: key.to_owned(),
                len,
                crc,
            };
            let frame = encode_request(&req);
            let payload = Payload {
                data,
                pacer: up.pacer,
            };
            self.send_and_read(req.op(), key, Some(&frame), payload, MESSAGE_TIMEOUT)
                .await?
        };
        match resp {
            Response::Put(stat) if stat.len == len && stat.crc == crc => Ok(stat),
            Response::Put(stat) => Err(self.violation(
                "put",
                format!(
                    "store stored {} bytes with crc {:08x}, sent {len} with crc {crc:08x}",
                    stat.len, stat.crc,
                ),
            )),
            other => Err(self.unexpected("put", key, other)),
        }
    }

    /// Shares `heard` with the other clients of the same store: a get's wait
    /// is no stall while the store is heard on any of them (see
    /// [`Heard`](crate::transport::Heard)).
    pub fn share_heard(&mut self, heard: std::sync::Arc<crate::transport::Heard>) {
        if let Some(stream) = self.stream.as_mut() {
            stream.share_heard(heard);
        }
    }

    /// Reads `len` bytes at `offset` of a shard; the store verifies the whole
    /// shard's checksum first.
    pub async fn get(&mut self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        self.get_within(key, offset, len, MESSAGE_TIMEOUT).await
    }

    /// [`get`](Self::get), failing with [`StoreError::Timeout`] once the store
    /// sends nothing for `stall` (before its answer or between two messages
    /// of the data): a silent link is given up on quickly, while a slow one
    /// that keeps sending is never cut.
    pub async fn get_within(
        &mut self,
        key: &str,
        offset: u64,
        len: u64,
        stall: Duration,
    ) -> Result<Vec<u8>, StoreError> {
        check_key(key)?;
        check_len(key, len)?;
        let req = Request::Get {
            key: key.to_owned(),
            offset,
            len,
        };
        match self.call_within(&req, &[], stall).await? {
            Response::Get { len: got } if got == len => {
                let mut data = vec![0u8; len as usize];
                let stream = self.stream.as_mut().expect("connected after call");
                if let Err(err) = stream.read_exact_within(&mut data, stall).await {
                    return Err(self.broken("get", err, stall));
                }
                Ok(data)
            }
            Response::Get { len: got } => {
                // The stream now carries `got` bytes we did not ask for.
                self.stream = None;
                Err(self.violation("get", format!("asked for {len} bytes, store sends {got}")))
            }
            other => Err(self.unexpected("get", key, other)),
        }
    }

    /// Removes a shard; `false` if there was none.
    pub async fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let req = Request::Delete {
            key: key.to_owned(),
        };
        match self.call(&req, &[]).await? {
            Response::Delete { existed } => Ok(existed),
            other => Err(self.unexpected("delete", key, other)),
        }
    }

    /// A shard's length and crc32c.
    pub async fn stat(&mut self, key: &str) -> Result<ShardStat, StoreError> {
        check_key(key)?;
        let req = Request::Stat {
            key: key.to_owned(),
        };
        match self.call(&req, &[]).await? {
            Response::Stat(stat) => Ok(stat),
            other => Err(self.unexpected("stat", key, other)),
        }
    }

    /// Up to `limit` (1..=10,000) keys after `after`, sorted; a page shorter
    /// than `limit` is the last.
    pub async fn list(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ListEntry>, StoreError> {
        if let Some(key) = after {
            check_key(key)?;
        }
        let req = Request::List {
            after: after.map(str::to_owned),
            limit: limit.clamp(1, MAX_LIST),
        };
        match self.call(&req, &[]).await? {
            Response::List(entries) => Ok(entries),
            other => Err(self.unexpected("list", after.unwrap_or(""), other)),
        }
    }

    /// The store's space, identity and labels.
    pub async fn capacity(&mut self) -> Result<Capacity, StoreError> {
        match self.call(&Request::Capacity, &[]).await? {
            Response::Capacity(cap) => Ok(cap),
            other => Err(self.unexpected("capacity", "", other)),
        }
    }

    /// Succeeds if the store answers.
    pub async fn health(&mut self) -> Result<(), StoreError> {
        match self.call(&Request::Health, &[]).await? {
            Response::Health => Ok(()),
            other => Err(self.unexpected("health", "", other)),
        }
    }

    /// Sends a request (and a put's data) and reads the response frame.
    async fn call(&mut self, req: &Request, data: &[u8]) -> Result<Response, StoreError> {
        self.call_within(req, data, MESSAGE_TIMEOUT).await
    }

    /// [`call`](Self::call), waiting at most `stall` for each message of the
    /// response.
    async fn call_within(
        &mut self,
        req: &Request,
        data: &[u8],
        stall: Duration,
    ) -> Result<Response, StoreError> {
        let frame = encode_request(req);
        let payload = Payload { data, pacer: None };
        self.send_and_read(req.op(), req.key(), Some(&frame), payload, stall)
            .await
    }

    /// Sends a request frame (if any) and data, and reads the response
    /// frame, waiting at most `stall` for each of its messages.
    async fn send_and_read(
        &mut self,
        op: &'static str,
        key: &str,
        frame: Option<&[u8]>,
        payload: Payload<'_>,
        stall: Duration,
    ) -> Result<Response, StoreError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(StoreError::Transport {
                addr: self.addr.clone(),
                op,
                source: io::Error::new(
                    io::ErrorKind::NotConnected,
                    "an earlier request broke this connection; reconnect",
                ),
            });
        };
        let sent = async {
            if let Some(frame) = frame {
                stream.write_frame(frame).await?;
            }
            match payload.pacer {
                None => stream.write(payload.data).await?,
                Some(pacer) => {
                    for piece in payload.data.chunks(PACE_PIECE) {
                        pacer.wait(piece.len() as u64).await;
                        stream.write(piece).await?;
                        stream.flush().await?;
                    }
                }
            }
            stream.flush().await?;
            stream.read_frame_within(stall).await
        }
        .await;
        let body = match sent {
            Ok(body) => body,
            Err(err) => return Err(self.broken(op, err, stall)),
        };
        match decode_response(&body) {
            Ok(Response::Error { status, detail }) => Err(StoreError::Remote {
                addr: self.addr.clone(),
                op,
                key: key.to_owned(),
                status,
                detail,
            }),
            Ok(resp) => Ok(resp),
            Err(err) => {
                self.stream = None;
                Err(self.violation(op, err.to_string()))
            }
        }
    }

    /// A transport error (`stall` was the wait for each message): the
    /// connection is dropped.
    fn broken(&mut self, op: &'static str, err: io::Error, stall: Duration) -> StoreError {
        self.stream = None;
        match err.kind() {
            io::ErrorKind::TimedOut => StoreError::Timeout {
                addr: self.addr.clone(),
                op,
                after: stall,
            },
            _ => StoreError::Transport {
                addr: self.addr.clone(),
                op,
                source: err,
            },
        }
    }

    fn violation(&self, op: &'static str, what: String) -> StoreError {
        StoreError::Protocol {
            addr: self.addr.clone(),
            op,
            what,
        }
    }

    fn unexpected(&mut self, op: &'static str, key: &str, resp: Response) -> StoreError {
        self.stream = None;
        self.violation(
            op,
            format!("unexpected response {resp:?} for {key:?}")
                .chars()
                .take(200)
                .collect(),
        )
    }
}
