//! The chunk-store daemon: [`serve`] opens the data folder (marker, lock),
//! listens, authenticates every connection with the cluster secret, and
//! answers requests until SIGINT/SIGTERM. Each connection is served by its
//! own task, one request at a time; disk work runs on the blocking pool.
//! Logs carry the peer, op and key, never the secret or payload bytes.
//!
//! Connections still in their handshake are strangers: they wait in the
//! bounded [`Admission`] table (per peer and in all, the oldest making room
//! for newcomers) for at most [`ACCEPT_TIMEOUT`](crate::protocol::ACCEPT_TIMEOUT), and only a peer that proved
//! the secret takes one of the [`MAX_CONNECTIONS`] slots. What strangers can
//! repeat at will is logged at most once per [`REFUSAL_LOG_EVERY`], with the
//! count of the lines left out.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn_config::StoreConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::admission::{Admission, Ticket, MAX_PENDING, MAX_PENDING_PER_IP};
use crate::error::StoreError;
use crate::layout::SHARD_BLOCK;
use crate::log_limit::LogLimit;
use crate::protocol::{decode_request, encode_response, Request, Response, IDLE_TIMEOUT, MAX_LIST};
use crate::receive;
use crate::secret::Secret;
use crate::store::Store;
use crate::transport::{NoiseStream, Refusal};

/// Most authenticated connections served at once; a peer past it is told
/// the store is busy.
pub const MAX_CONNECTIONS: usize = 1024;
/// The refusal log lines come at most this often each.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Kept partial uploads are checked for expiry this often.
const EXPIRE_EVERY: Duration = Duration::from_secs(30);

/// Runs the daemon until SIGINT or SIGTERM. `ready` is called with the bound
/// address once the store accepts connections.
pub async fn serve(cfg: StoreConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), StoreError> {
    let signals = async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => info!(signal = "SIGINT", "shutting down"),
                    _ = term.recv() => info!(signal = "SIGTERM", "shutting down"),
                }
            }
            _ => {
                warn!("cannot install signal handlers; stopping on ctrl-c only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    serve_until(cfg, ready, signals).await
}

/// Runs the daemon until `shutdown` completes (tests, `cairn up`), then stops
/// accepting, lets requests in flight finish (up to 30 s), and releases the
/// folder's lock.
pub async fn serve_until(
    cfg: StoreConfig,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()>,
) -> Result<(), StoreError> {
    cfg.validate()?;
    let secret = Secret::load(&cfg.secret_file)?;
    let store = {
        let (cfg, secret) = (cfg.clone(), secret.clone());
        Arc::new(blocking(move || Store::open(&cfg, &secret)).await?)
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StoreError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StoreError::Bind {
        addr: cfg.listen,
        source,
    })?;
    info!(%addr, data_dir = %store.data_dir().display(), store_uuid = store.store_uuid(),
        zone = %cfg.zone, host = %cfg.host, name = cfg.store_name(), "chunk store serving");
    ready(addr);

    let scrubber = tokio::spawn(crate::scrub::run(Arc::clone(&store), cfg.scrub.clone()));
    let expirer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(EXPIRE_EVERY);
            loop {
                every.tick().await;
                let s = Arc::clone(&store);
                blocking(move || s.expire_partials(std::time::Instant::now())).await;
            }
        })
    };
    let secret = Arc::new(secret);
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Gate {
        slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        pending: Admission::new(MAX_PENDING, MAX_PENDING_PER_IP),
        refused: LogLimit::new(REFUSAL_LOG_EVERY),
        evicted: LogLimit::new(REFUSAL_LOG_EVERY),
        busy: LogLimit::new(REFUSAL_LOG_EVERY),
    });
    let accept_failed = LogLimit::new(REFUSAL_LOG_EVERY);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let (ticket, made_room) = gate.pending.admit(peer.ip());
                    if made_room {
                        if let Some(suppressed) = gate.evicted.allow() {
                            warn!(%peer, pending = gate.pending.pending(), max = MAX_PENDING,
                                per_peer = MAX_PENDING_PER_IP, suppressed,
                                "too many handshakes in progress; dropped the oldest of the busiest peer");
                        }
                    }
                    let (store, secret, gate, stop) =
                        (Arc::clone(&store), Arc::clone(&secret), Arc::clone(&gate), stop_rx.clone());
                    conns.spawn(async move {
                        connection(store, tcp, peer, ticket, &secret, &gate, stop).await;
                    });
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    if let Some(suppressed) = accept_failed.allow() {
                        warn!(cause = %err, suppressed, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    scrubber.abort();
    expirer.abort();
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open = conns.len(),
            "requests still running after the grace period; aborting them"
        );
        conns.shutdown().await;
    }
    info!(%addr, "chunk store stopped");
    Ok(())
}

/// Runs blocking disk work off the async threads; a panic there is re-raised.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// Runs short disk work (a ranged read of at most a megabyte, usually
/// from the page cache) on this worker thread, told to block, rather than
/// hopping to the blocking pool and back: a small random read's latency is
/// mostly such hops.
async fn short<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => blocking(f).await,
    }
}

/// Who gets in: the authenticated connections' slots, the pending-handshake
/// table, and the rate limits of the lines strangers can cause.
struct Gate {
    slots: Arc<Semaphore>,
    pending: Arc<Admission>,
    refused: LogLimit,
    evicted: LogLimit,
    busy: LogLimit,
}

impl Gate {
    fn log_refusal(&self, peer: SocketAddr, why: &Refusal) {
        match why {
            // Logged once per eviction burst at accept.
            Refusal::Evicted => {}
            Refusal::Busy => {
                if let Some(suppressed) = self.busy.allow() {
                    warn!(%peer, max = MAX_CONNECTIONS, suppressed,
                        "every connection slot is taken; told an authenticated peer the store is busy");
                }
            }
            Refusal::TimedOut | Refusal::Closed | Refusal::Failed(_) => {
                if let Some(suppressed) = self.refused.allow() {
                    warn!(%peer, cause = %why, suppressed, "handshake refused");
                }
            }
        }
    }
}

async fn connection(
    store: Arc<Store>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut ticket: Ticket,
    secret: &Secret,
    gate: &Gate,
    mut stop: watch::Receiver<bool>,
) {
    let evicted = async {
        let _ = (&mut ticket.evicted).await;
    };
    let admit = || Arc::clone(&gate.slots).try_acquire_owned().ok();
    let accepted = tokio::select! {
        accepted = NoiseStream::accept(tcp, secret, evicted, admit) => accepted,
        _ = stop.wait_for(|stopped| *stopped) => return,
    };
    // Out of the pending table, whatever the outcome.
    drop(ticket);
    let (mut stream, _slot) = match accepted {
        Ok(accepted) => accepted,
        Err(why) => return gate.log_refusal(peer, &why),
    };
    debug!(%peer, "connection authenticated");
    loop {
        let more = tokio::select! {
            more = stream.wait_readable(IDLE_TIMEOUT) => more,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match more {
            Ok(true) => {}
            Ok(false) => return debug!(%peer, "connection closed"),
            Err(err) => return debug!(%peer, cause = %err, "connection ended"),
        }
        match request(&store, &mut stream, peer).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => return warn!(%peer, cause = %err, "connection dropped mid-request"),
        }
    }
}

/// Serves one request; `Ok(false)` when the connection must close.
async fn request(
    store: &Arc<Store>,
    stream: &mut NoiseStream,
    peer: SocketAddr,
) -> std::io::Result<bool> {
    let body = stream.read_frame().await?;
    let req = match decode_request(&body) {
        Ok(req) => req,
        Err(err) => {
            warn!(%peer, cause = %err, "malformed request; closing");
            let resp = Response::Error {
                status: crate::error::Status::BadRequest,
                detail: err.to_string(),
            };
            stream.write_frame(&encode_response(&resp)).await?;
            stream.flush().await?;
            return Ok(false);
        }
    };
    let (op, key) = (req.op(), req.key().to_owned());
    let outcome: Result<(), StoreError> = match req {
        Request::Put { key, len } => {
            let received = receive::put(store, stream, key, len, None).await?;
            stored(stream, peer, op, received).await?
        }
        Request::Upload { key, len, crc } => {
            let received = receive::put(store, stream, key, len, Some(crc)).await?;
            stored(stream, peer, op, received).await?
        }
        Request::Resume { key, len, crc } => {
            let received = receive::resume(store, stream, key, len, crc).await?;
            stored(stream, peer, op, received).await?
        }
        Request::Get { key, offset, len } => {
            let s = Arc::clone(store);
            let small = (1..=SHARD_BLOCK).contains(&len);
            let got = if let Some(data) = small.then(|| s.get_nowait(&key, offset, len)).flatten() {
                Ok(data)
            } else if small {
                short(move || s.get(&key, offset, len)).await
            } else {
                blocking(move || s.get(&key, offset, len)).await
            };
            match got {
                Ok(data) => {
                    let header = Response::Get {
                        len: data.len() as u64,
                    };
                    stream.write_frame(&encode_response(&header)).await?;
                    stream.write(&data).await?;
                    Ok(())
                }
                Err(err) => Err(err),
            }
        }
        Request::Delete { key } => {
            let s = Arc::clone(store);
            let existed = blocking(move || s.delete(&key)).await;
            reply(stream, existed.map(|existed| Response::Delete { existed })).await?
        }
        Request::Stat { key } => {
            let s = Arc::clone(store);
            let stat = blocking(move || s.stat(&key)).await;
            reply(stream, stat.map(Response::Stat)).await?
        }
        Request::List { after, limit } => {
            let s = Arc::clone(store);
            let page = blocking(move || s.list(after.as_deref(), limit.min(MAX_LIST))).await;
            reply(stream, Ok(Response::List(page))).await?
        }
        Request::Capacity => {
            let s = Arc::clone(store);
            let cap = blocking(move || s.capacity()).await;
            reply(stream, cap.map(Response::Capacity)).await?
        }
        Request::Health => reply(stream, Ok(Response::Health)).await?,
    };
    match outcome {
        Ok(()) => debug!(%peer, op, key, "ok"),
        Err(err) => {
            let status = err.status();
            warn!(%peer, op, key, %status, cause = %err, "request failed");
            let resp = Response::Error {
                status,
                detail: err.to_string(),
            };
            stream.write_frame(&encode_response(&resp)).await?;
        }
    }
    stream.flush().await?;
    Ok(true)
}

/// Answers a put made durable (and logs it, with the bytes an earlier
/// connection delivered), else hands the error back to be answered.
async fn stored(
    stream: &mut NoiseStream,
    peer: SocketAddr,
    op: &'static str,
    received: Result<receive::Stored, StoreError>,
) -> std::io::Result<Result<(), StoreError>> {
    let stored = match received {
        Ok(stored) => stored,
        Err(err) => return Ok(Err(err)),
    };
    let key = stored.key.as_str();
    info!(%peer, op, key, len = stored.stat.len, resumed = stored.resumed, "put stored");
    reply(stream, Ok(Response::Put(stored.stat))).await
}

/// Writes `resp` if it is `Ok`, else hands the error back to be answered.
async fn reply(
    stream: &mut NoiseStream,
    resp: Result<Response, StoreError>,
) -> std::io::Result<Result<(), StoreError>> {
    match resp {
        Ok(resp) => {
            stream.write_frame(&encode_response(&resp)).await?;
            Ok(Ok(()))
        }
        Err(err) => Ok(Err(err)),
    }
}
