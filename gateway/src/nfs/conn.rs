//! One NFS client connection: reads RPC records (record marking, RFC 5531
//! §11), runs up to [`IN_FLIGHT`] calls at once and writes their replies as
//! they finish. Its memory is bounded whatever the client does: a record's
//! buffer grows only with the bytes that actually arrived, the requests held
//! are capped at [`RECORD_BUDGET`] bytes and the replies built or waiting to
//! be sent at [`REPLY_BUDGET`] bytes. A client that stops reading its replies
//! stops being read: calls wait for budget, then the reader waits for calls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nfs3_types::rpc::auth_stat;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info};

use super::nfs3::Ctx;
use super::rpc::{self, CallError, Reply};
use super::server::Access;
use super::{mount, nfs3, portmap};
use crate::core::Fs;

/// The largest record accepted: a 1 MiB WRITE plus its headers.
pub const MAX_RECORD: usize = (1 << 20) + 64 * 1024;
/// Calls of one connection that may run at once.
const IN_FLIGHT: usize = 32;
/// Bytes of requests one connection may hold (read, not yet handled).
const RECORD_BUDGET: usize = 2 * MAX_RECORD;
/// Bytes of replies one connection may hold (being built or unsent): a few
/// 1 MiB READs.
pub const REPLY_BUDGET: usize = 4 << 20;
/// How long the rest of a record may take to arrive once it started.
const RECORD_TIMEOUT: Duration = Duration::from_secs(60);
/// A record's buffer grows by at most this much before the bytes are there.
const READ_STEP: usize = 4 * 1024;

/// The replies' share of a connection's memory.
#[derive(Clone)]
pub struct ReplyBudget(Arc<Semaphore>);

impl ReplyBudget {
    fn new() -> Self {
        ReplyBudget(Arc::new(Semaphore::new(REPLY_BUDGET)))
    }

    /// Waits until `bytes` (at most the whole budget) of reply may be built.
    pub async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let n = bytes.clamp(1, REPLY_BUDGET) as u32;
        Arc::clone(&self.0).acquire_many_owned(n).await.ok()
    }
}

/// Serves one connection until the client closes it or breaks the framing.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    port: u16,
    fs: Arc<Fs>,
    access: Arc<Access>,
) {
    debug!("connected");
    let (mut rd, wr) = stream.into_split();
    // Each call writes its own reply as soon as it is done; the lock keeps
    // records whole.
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let records = Arc::new(Semaphore::new(RECORD_BUDGET));
    let replies = ReplyBudget::new();
    loop {
        // Nothing more is read while the calls in flight are all busy.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (record, held) = match read_record(&mut rd, &records).await {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(why) => {
                info!(%peer, why, "closing connection");
                break;
            }
        };
        let (fs, access, wr, replies) = (fs.clone(), access.clone(), wr.clone(), replies.clone());
        tokio::spawn(async move {
            let reply = handle_record(&record, &fs, &access, port, &replies).await;
            drop((record, held));
            if let Some(mut reply) = reply {
                let hold = reply.hold.take();
                let bytes = reply.finish();
                let mut w = wr.lock().await;
                if w.write_all(&bytes).await.is_err() {
                    let _ = w.shutdown().await;
                }
                drop(hold);
            }
            drop(slot);
        });
    }
    // Let the calls still running finish their replies.
    let _ = slots.acquire_many(IN_FLIGHT as u32).await;
    debug!("disconnected");
}

/// Reads one record (all its fragments) and the share of the record budget
/// it holds. `Ok(None)` at a clean end of stream.
async fn read_record(
    rd: &mut (impl AsyncRead + Unpin),
    budget: &Arc<Semaphore>,
) -> Result<Option<(Vec<u8>, Option<OwnedSemaphorePermit>)>, &'static str> {
    let mut record = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut first = true;
    loop {
        let mut mark = [0u8; 4];
        if first {
            if rd.read_exact(&mut mark).await.is_err() {
                return Ok(None);
            }
            first = false;
        } else {
            tokio::time::timeout(RECORD_TIMEOUT, rd.read_exact(&mut mark))
                .await
                .map_err(|_| "record timed out")?
                .map_err(|_| "connection ended inside a record")?;
        }
        let mark = u32::from_be_bytes(mark);
        let len = (mark & 0x7fff_ffff) as usize;
        if record.len() + len > MAX_RECORD {
            return Err("record larger than the 1 MiB + 64 KiB limit");
        }
        if len > 0 {
            let permit = Arc::clone(budget)
                .acquire_many_owned(len as u32)
                .await
                .map_err(|_| "connection closing")?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
        }
        tokio::time::timeout(RECORD_TIMEOUT, read_growing(rd, &mut record, len))
            .await
            .map_err(|_| "record timed out")?
            .map_err(|_| "connection ended inside a record")?;
        if mark & 0x8000_0000 != 0 {
            return Ok(Some((record, held)));
        }
    }
}

/// Appends exactly `len` bytes from `rd` to `buf`, growing it by what came
/// in rather than by what the record mark promised: a full buffer grows by
/// at most [`READ_STEP`] (the vector's doubling makes later reads larger).
async fn read_growing(
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    len: usize,
) -> std::io::Result<()> {
    let end = buf.len() + len;
    while buf.len() < end {
        let remaining = end - buf.len();
        if buf.capacity() == buf.len() {
            buf.reserve(remaining.min(READ_STEP));
        }
        let room = (buf.capacity() - buf.len()).min(remaining);
        let n = rd.take(room as u64).read_buf(buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

async fn handle_record(
    record: &[u8],
    fs: &Fs,
    access: &Access,
    port: u16,
    replies: &ReplyBudget,
) -> Option<Reply> {
    let call = match rpc::parse_call(record) {
        Ok(c) => c,
        Err(CallError::Garbage { xid, garbage }) => {
            debug!(xid, %garbage, "undecodable call header");
            return Some(Reply::garbage_args(xid));
        }
        Err(CallError::BadCred { xid, garbage }) => {
            debug!(xid, %garbage, "credential refused");
            return Some(Reply::auth_error(xid, auth_stat::AUTH_BADCRED));
        }
        Err(CallError::Unanswerable(garbage)) => {
            debug!(%garbage, "dropped a record that is not an RPC call");
            return None;
        }
    };
    if call.rpcvers != 2 {
        return Some(Reply::rpc_mismatch(call.xid));
    }
    if call.prog == portmap::PROGRAM {
        if call.vers != portmap::VERSION {
            return Some(Reply::prog_mismatch(call.xid, 2, 2));
        }
        return Some(portmap::dispatch(call.xid, call.proc_, call.args, port));
    }
    let cred = match access.credentials(&call.auth) {
        Some(c) => c,
        None if call.proc_ == 0 => access.anon(),
        None => return Some(Reply::auth_error(call.xid, auth_stat::AUTH_TOOWEAK)),
    };
    let ctx = Ctx {
        fs,
        cred,
        xid: call.xid,
        replies,
    };
    let started = std::time::Instant::now();
    match (call.prog, call.vers) {
        (nfs3::PROGRAM, nfs3::VERSION) => {
            let reply = nfs3::dispatch(&ctx, call.proc_, call.args).await;
            access.ops.nfs3(call.proc_, started.elapsed());
            Some(reply)
        }
        (nfs3::PROGRAM, _) => Some(Reply::prog_mismatch(call.xid, 3, 3)),
        (mount::PROGRAM, mount::VERSION) => {
            let reply = mount::dispatch(&ctx, call.proc_, call.args).await;
            access.ops.mount(started.elapsed());
            Some(reply)
        }
        (mount::PROGRAM, _) => Some(Reply::prog_mismatch(call.xid, 3, 3)),
        _ => Some(Reply::prog_unavail(call.xid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_record_grows_with_its_bytes_and_holds_its_budget() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let budget = Arc::new(Semaphore::new(RECORD_BUDGET));
        let writer = tokio::spawn(async move {
            client.write_all(&(100u32).to_be_bytes()).await.unwrap();
            client.write_all(&[7u8; 100]).await.unwrap();
            client
                .write_all(&(0x8000_0000u32 | 28).to_be_bytes())
                .await
                .unwrap();
            client.write_all(&[9u8; 28]).await.unwrap();
            client
        });
        let (record, held) = read_record(&mut server, &budget).await.unwrap().unwrap();
        assert_eq!(record.len(), 128);
        assert!(record.capacity() < 4096, "capacity {}", record.capacity());
        assert_eq!(budget.available_permits(), RECORD_BUDGET - 128);
        drop(held);
        assert_eq!(budget.available_permits(), RECORD_BUDGET);
        drop(writer.await.unwrap());
    }
}
