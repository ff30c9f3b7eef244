//! [`NoiseStream`]: a TCP connection after the Noise NNpsk0 handshake, as a
//! byte stream in each direction carried in length-prefixed Noise messages
//! (u16 BE length + ciphertext). Every network await has a timeout; a message
//! that fails to decrypt ends the connection.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use crate::protocol::{
    ACCEPT_TIMEOUT, HANDSHAKE_TIMEOUT, MAX_FRAME, MAX_HANDSHAKE_MESSAGE, MAX_NOISE_MESSAGE,
    MAX_PLAINTEXT, MESSAGE_TIMEOUT, NOISE_PARAMS, PROLOGUE,
};
use crate::secret::Secret;

/// An authenticated, encrypted connection.
pub struct NoiseStream {
    tcp: TcpStream,
    noise: snow::TransportState,
    /// When the peer was last heard, shared by every connection to it.
    heard: Option<Arc<Heard>>,
    /// Bytes received and not yet decrypted: `inbuf[ipos..iend]`. The
    /// socket is read in large pieces, so a message usually takes one read.
    inbuf: Box<[u8]>,
    ipos: usize,
    iend: usize,
    /// Decrypted bytes not yet consumed: `rbuf[rpos..rlen]`.
    rbuf: Box<[u8]>,
    rpos: usize,
    rlen: usize,
    /// Plaintext waiting to be sent.
    wbuf: Vec<u8>,
    /// The message being sent: its length prefix, then its ciphertext.
    cbuf: Box<[u8]>,
}

/// Room for two whole messages with their length prefixes: a read that
/// ends inside the second still fits it after the first moves out.
const INBUF: usize = 2 * (2 + MAX_NOISE_MESSAGE);

/// Why the store side of a handshake did not let a peer in.
#[derive(Debug)]
pub enum Refusal {
    /// The peer holds the secret, but every connection slot is taken; it
    /// was told the store is busy.
    Busy,
    /// Newer connections took this handshake's place in the pending table;
    /// the peer was told the store is busy.
    Evicted,
    /// No handshake within [`ACCEPT_TIMEOUT`].
    TimedOut,
    /// The peer closed before sending anything.
    Closed,
    /// The first message did not prove the secret (or the link failed).
    Failed(io::Error),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Busy => f.write_str("every connection slot is taken"),
            Refusal::Evicted => {
                f.write_str("dropped for newer connections (too many handshakes from this peer or in all)")
            }
            Refusal::TimedOut => write!(f, "no handshake within {ACCEPT_TIMEOUT:?}"),
            Refusal::Closed => f.write_str("closed before the handshake"),
            Refusal::Failed(e) => write!(
                f,
                "{e} (the peer does not hold this cluster's secret or speaks another protocol version)"
            ),
        }
    }
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

fn noise_builder(psk: &[u8; 32]) -> Result<snow::Builder<'_>, snow::Error> {
    let params = NOISE_PARAMS.parse().expect("valid Noise protocol name");
    snow::Builder::new(params).psk(0, psk)?.prologue(PROLOGUE)
}

fn noise_err(err: snow::Error) -> io::Error {
    // snow's errors say which step failed, never key material.
    io::Error::new(io::ErrorKind::PermissionDenied, err.to_string())
}

/// Reads one Noise message of at most `max` bytes; `false` at a clean end of
/// stream before its first byte.
async fn read_noise_message(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<bool> {
    let mut len = [0u8; 2];
    match tcp.read_exact(&mut len[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    tcp.read_exact(&mut len[1..]).await?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > max {
        return Err(invalid("handshake message too long"));
    }
    buf.resize(len, 0);
    tcp.read_exact(buf).await?;
    Ok(true)
}

/// Tells a peer, in place of the handshake's answer, that the store has no
/// room for it: an empty Noise message (a real answer never is). Best effort:
/// a fresh socket's send buffer always takes two bytes.
fn send_busy(tcp: &TcpStream) {
    let _ = tcp.try_write(&[0, 0]);
}

async fn write_noise_message(tcp: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    debug_assert!(msg.len() <= MAX_NOISE_MESSAGE);
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    tcp.write_all(&out).await
}

/// When a peer last sent a message on any of the connections that share
/// it: a wait for one connection's next message is no stall while the peer
/// keeps sending on the others (a busy link delivers their bytes first).
#[derive(Debug)]
pub struct Heard {
    base: Instant,
    /// Nanoseconds from `base` to the last message, plus one (0: never).
    last: AtomicU64,
}

impl Default for Heard {
    fn default() -> Self {
        Heard {
            base: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Heard {
    fn note(&self) {
        let nanos = self.base.elapsed().as_nanos() as u64;
        self.last.fetch_max(nanos + 1, Ordering::Relaxed);
    }

    /// When the peer was last heard on any connection, if ever.
    pub fn last(&self) -> Option<Instant> {
        match self.last.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n - 1)),
        }
    }

    /// Whether the peer was heard within `within` of now.
    pub fn within(&self, within: Duration) -> bool {
        self.last().is_some_and(|t| t.elapsed() < within)
    }
}

async fn with_timeout<T>(
    after: Duration,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    timeout(after, fut)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

impl NoiseStream {
    /// The client side of the handshake, within [`HANDSHAKE_TIMEOUT`].
    pub async fn initiate(mut tcp: TcpStream, secret: &Secret) -> io::Result<NoiseStream> {
        let mut hs = noise_builder(secret.noise_psk())
            .and_then(|b| b.build_initiator())
            .map_err(noise_err)?;
        with_timeout(HANDSHAKE_TIMEOUT, async move {
            let mut msg = vec![0u8; MAX_NOISE_MESSAGE];
            let n = hs.write_message(&[], &mut msg).map_err(noise_err)?;
            write_noise_message(&mut tcp, &msg[..n]).await?;
            let mut reply = Vec::new();
            if !read_noise_message(&mut tcp, &mut reply, MAX_NOISE_MESSAGE).await? {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the store closed the connection during the handshake",
                ));
            }
            if reply.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    "the store has no free connection slot",
                ));
            }
            hs.read_message(&reply, &mut msg).map_err(noise_err)?;
            let noise = hs.into_transport_mode().map_err(noise_err)?;
            Ok(NoiseStream::new(tcp, noise))
        })
        .await
    }

    /// The store side of the handshake, within [`ACCEPT_TIMEOUT`]. The peer
    /// is in only if it proved it holds the secret and `admit` gave it a slot;
    /// without a slot, or when `evicted` fires first, it is told the store is
    /// busy. The caller closes the connection on any [`Refusal`].
    pub async fn accept<T>(
        mut tcp: TcpStream,
        secret: &Secret,
        evicted: impl Future<Output = ()>,
        admit: impl FnOnce() -> Option<T>,
    ) -> Result<(NoiseStream, T), Refusal> {
        let mut hs = noise_builder(secret.noise_psk())
            .and_then(|b| b.build_responder())
            .map_err(|e| Refusal::Failed(noise_err(e)))?;
        let deadline = Instant::now() + ACCEPT_TIMEOUT;
        let mut first = Vec::new();
        let read = tokio::select! {
            read = timeout_at(deadline, read_noise_message(&mut tcp, &mut first, MAX_HANDSHAKE_MESSAGE)) => read,
            () = evicted => {
                send_busy(&tcp);
                return Err(Refusal::Evicted);
            }
        };
        match read {
            Err(_) => return Err(Refusal::TimedOut),
            Ok(Err(e)) => return Err(Refusal::Failed(e)),
            Ok(Ok(false)) => return Err(Refusal::Closed),
            Ok(Ok(true)) => {}
        }
        let mut msg = vec![0u8; MAX_NOISE_MESSAGE];
        hs.read_message(&first, &mut msg)
            .map_err(|e| Refusal::Failed(noise_err(e)))?;
        // The peer holds the secret: now it may take a slot.
        let Some(slot) = admit() else {
            send_busy(&tcp);
            return Err(Refusal::Busy);
        };
        let n = hs
            .write_message(&[], &mut msg)
            .map_err(|e| Refusal::Failed(noise_err(e)))?;
        match timeout_at(deadline, write_noise_message(&mut tcp, &msg[..n])).await {
            Err(_) => return Err(Refusal::TimedOut),
            Ok(Err(e)) => return Err(Refusal::Failed(e)),
            Ok(Ok(())) => {}
        }
        let noise = hs
            .into_transport_mode()
            .map_err(|e| Refusal::Failed(noise_err(e)))?;
        Ok((NoiseStream::new(tcp, noise), slot))
    }

    fn new(tcp: TcpStream, noise: snow::TransportState) -> NoiseStream {
        let _ = tcp.set_nodelay(true);
        NoiseStream {
            tcp,
            noise,
            heard: None,
            inbuf: vec![0; INBUF].into_boxed_slice(),
            ipos: 0,
            iend: 0,
            rbuf: vec![0; MAX_NOISE_MESSAGE].into_boxed_slice(),
            rpos: 0,
            rlen: 0,
            wbuf: Vec::new(),
            cbuf: vec![0; 2 + MAX_NOISE_MESSAGE].into_boxed_slice(),
        }
    }

    /// Reads until `inbuf` holds one whole message; returns its length
    /// (prefix excluded), or `None` on a clean end of stream before its
    /// first byte. Bytes read stay in `inbuf` if the wait is dropped.
    async fn fill_message(
        tcp: &mut TcpStream,
        inbuf: &mut [u8],
        ipos: &mut usize,
        iend: &mut usize,
    ) -> io::Result<Option<usize>> {
        let mut need = 2;
        loop {
            let have = *iend - *ipos;
            if have >= 2 {
                need = 2 + usize::from(u16::from_be_bytes([inbuf[*ipos], inbuf[*ipos + 1]]));
            }
            if have >= need {
                return Ok(Some(need - 2));
            }
            if inbuf.len() - *ipos < need {
                inbuf.copy_within(*ipos..*iend, 0);
                (*ipos, *iend) = (0, have);
            }
            match tcp.read(&mut inbuf[*iend..]).await? {
                0 if have == 0 => return Ok(None),
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed mid-message",
                    ))
                }
                n => *iend += n,
            }
        }
    }

    /// Receives and decrypts one message into the read buffer; `false` on a
    /// clean end of stream.
    async fn recv(&mut self, after: Duration) -> io::Result<bool> {
        let NoiseStream {
            tcp,
            noise,
            heard,
            inbuf,
            ipos,
            iend,
            rbuf,
            rpos,
            rlen,
            ..
        } = self;
        let read = Self::fill_message(tcp, inbuf, ipos, iend);
        let got = match heard {
            None => with_timeout(after, read).await?,
            Some(heard) => {
                // Silence is counted from the last message from the peer on
                // any shared connection, not from when this wait began.
                tokio::pin!(read);
                loop {
                    let since = heard.last().map_or(Duration::ZERO, |t| t.elapsed());
                    let left = after.saturating_sub(since).max(after / 4);
                    match timeout(left, &mut read).await {
                        Ok(got) => break got?,
                        Err(_) if heard.within(after) => continue,
                        Err(_) => return Err(timed_out()),
                    }
                }
            }
        };
        let Some(len) = got else {
            return Ok(false);
        };
        if let Some(heard) = heard {
            heard.note();
        }
        let msg = &inbuf[*ipos + 2..*ipos + 2 + len];
        *ipos += 2 + len;
        let n = noise
            .read_message(msg, rbuf)
            .map_err(|_| invalid("a message failed to decrypt"))?;
        (*rpos, *rlen) = (0, n);
        Ok(true)
    }

    /// Shares `heard` with the other connections to the same peer: from now
    /// on a wait for a message is no stall while the peer is heard on any.
    pub fn share_heard(&mut self, heard: Arc<Heard>) {
        self.heard = Some(heard);
    }

    /// Waits up to `idle` for the start of the next request; `false` if the
    /// peer closed the connection cleanly.
    pub async fn wait_readable(&mut self, idle: Duration) -> io::Result<bool> {
        while self.rpos == self.rlen {
            if !self.recv(idle).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Fills `out` from the stream; each message has [`MESSAGE_TIMEOUT`].
    pub async fn read_exact(&mut self, out: &mut [u8]) -> io::Result<()> {
        self.read_exact_within(out, MESSAGE_TIMEOUT).await
    }

    /// Fills `out` from the stream, failing with `TimedOut` when no message
    /// arrives for `stall`: a bound on a silent peer, not on a slow transfer
    /// (each message carries at most 64 KiB).
    pub async fn read_exact_within(
        &mut self,
        mut out: &mut [u8],
        stall: Duration,
    ) -> io::Result<()> {
        while !out.is_empty() {
            if self.rpos == self.rlen && !self.recv(stall).await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-message",
                ));
            }
            let n = out.len().min(self.rlen - self.rpos);
            out[..n].copy_from_slice(&self.rbuf[self.rpos..self.rpos + n]);
            self.rpos += n;
            out = &mut out[n..];
        }
        Ok(())
    }

    /// Reads one frame: u32 LE length (≤ [`MAX_FRAME`]) and the body.
    pub async fn read_frame(&mut self) -> io::Result<Vec<u8>> {
        self.read_frame_within(MESSAGE_TIMEOUT).await
    }

    /// [`read_frame`](Self::read_frame), with `stall` as the longest wait
    /// for each message.
    pub async fn read_frame_within(&mut self, stall: Duration) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.read_exact_within(&mut len, stall).await?;
        let len = u32::from_le_bytes(len);
        if len == 0 || len > MAX_FRAME {
            return Err(invalid("frame length out of bounds"));
        }
        let mut body = vec![0u8; len as usize];
        self.read_exact_within(&mut body, stall).await?;
        Ok(body)
    }

    /// Queues bytes, sending full messages as they fill.
    pub async fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(MAX_PLAINTEXT - self.wbuf.len());
            self.wbuf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.wbuf.len() == MAX_PLAINTEXT {
                self.send_buffered().await?;
            }
        }
        Ok(())
    }

    /// Queues one frame (u32 LE length + body).
    pub async fn write_frame(&mut self, body: &[u8]) -> io::Result<()> {
        self.write(&(body.len() as u32).to_le_bytes()).await?;
        self.write(body).await
    }

    /// Sends whatever is queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.send_buffered().await?;
        }
        Ok(())
    }

    async fn send_buffered(&mut self) -> io::Result<()> {
        let n = self
            .noise
            .write_message(&self.wbuf, &mut self.cbuf[2..])
            .map_err(noise_err)?;
        self.wbuf.clear();
        self.cbuf[..2].copy_from_slice(&(n as u16).to_be_bytes());
        let msg = &self.cbuf[..2 + n];
        with_timeout(MESSAGE_TIMEOUT, self.tcp.write_all(msg)).await
    }
}
