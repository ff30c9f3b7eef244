//! The TCP front door: accepts connections from allowed networks only, reads
//! bounded RPC records, runs many calls of one connection at once, and
//! writes their replies back as they finish.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cairn_config::Squash;
use ipnet::IpNet;
use nfs3_types::rpc::auth_stat;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn, Instrument};

use super::nfs3::Ctx;
use super::rpc::{self, Auth, Reply, MAX_RECORD};
use super::{mount, nfs3, portmap};
use crate::core::{Credentials, Fs};

/// Calls of one connection that may run at once.
const IN_FLIGHT: usize = 32;
/// How long the rest of a record may take to arrive once it started.
const RECORD_TIMEOUT: Duration = Duration::from_secs(60);

/// Who may connect and how their identities map.
#[derive(Clone, Debug)]
pub struct Access {
    pub allowed: Vec<IpNet>,
    pub squash: Squash,
    pub anon_uid: u32,
    pub anon_gid: u32,
}

impl Access {
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allowed.iter().any(|net| net.contains(&ip))
    }

    fn anon(&self) -> Credentials {
        Credentials::user(self.anon_uid, self.anon_gid)
    }

    /// The credentials the core sees for a call, after squashing.
    pub fn credentials(&self, auth: &Auth) -> Option<Credentials> {
        let cred = match auth {
            Auth::None => return Some(self.anon()),
            Auth::Sys { uid, gid, gids } => Credentials {
                uid: *uid,
                gid: *gid,
                gids: gids.clone(),
            },
            Auth::Other(_) => return None,
        };
        Some(match self.squash {
            Squash::All => self.anon(),
            Squash::Root if cred.uid == 0 => self.anon(),
            _ => cred,
        })
    }
}

/// Serves NFSv3, MOUNT v3 and portmap on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, fs: Arc<Fs>, access: Arc<Access>) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(cause = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !access.allows(peer.ip()) {
            warn!(%peer, "refused a connection from outside the allowed networks");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let span = tracing::info_span!("nfs_conn", %peer);
        tokio::spawn(connection(stream, peer, port, fs.clone(), access.clone()).instrument(span));
    }
}

async fn connection(
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
    loop {
        let record = match read_record(&mut rd).await {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(why) => {
                info!(%peer, why, "closing connection");
                break;
            }
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (fs, access, wr) = (fs.clone(), access.clone(), wr.clone());
        tokio::spawn(async move {
            if let Some(reply) = handle_record(&record, &fs, &access, port).await {
                let reply = reply.finish();
                let mut w = wr.lock().await;
                if w.write_all(&reply).await.is_err() {
                    let _ = w.shutdown().await;
                }
            }
            drop(permit);
        });
    }
    // Let the calls still running finish their replies.
    let _ = slots.acquire_many(IN_FLIGHT as u32).await;
    debug!("disconnected");
}

/// Reads one record (all its fragments). `Ok(None)` at a clean end of stream.
async fn read_record(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
) -> Result<Option<Vec<u8>>, &'static str> {
    let mut record = Vec::new();
    loop {
        let mut mark = [0u8; 4];
        if record.is_empty() {
            match rd.read_exact(&mut mark).await {
                Ok(_) => {}
                Err(_) => return Ok(None),
            }
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
        let start = record.len();
        record.resize(start + len, 0);
        tokio::time::timeout(RECORD_TIMEOUT, rd.read_exact(&mut record[start..]))
            .await
            .map_err(|_| "record timed out")?
            .map_err(|_| "connection ended inside a record")?;
        if mark & 0x8000_0000 != 0 {
            return Ok(Some(record));
        }
    }
}

async fn handle_record(record: &[u8], fs: &Fs, access: &Access, port: u16) -> Option<Reply> {
    let call = match rpc::parse_call(record) {
        Ok(c) => c,
        Err((Some(xid), garbage)) => {
            debug!(xid, %garbage, "undecodable call header");
            return Some(Reply::garbage_args(xid));
        }
        Err((None, garbage)) => {
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
    };
    match (call.prog, call.vers) {
        (nfs3::PROGRAM, nfs3::VERSION) => Some(nfs3::dispatch(&ctx, call.proc_, call.args).await),
        (nfs3::PROGRAM, _) => Some(Reply::prog_mismatch(call.xid, 3, 3)),
        (mount::PROGRAM, mount::VERSION) => {
            Some(mount::dispatch(&ctx, call.proc_, call.args).await)
        }
        (mount::PROGRAM, _) => Some(Reply::prog_mismatch(call.xid, 3, 3)),
        _ => Some(Reply::prog_unavail(call.xid)),
    }
}
