//! The TCP front door: accepts connections from allowed networks only, up to
//! `nfs.max_connections` of them, and hands each to `conn.rs`. Refusals are
//! logged at most once per [`REFUSAL_LOG_EVERY`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn_chunkstore::LogLimit;
use cairn_config::Squash;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{warn, Instrument};

use super::conn;
use super::rpc::Auth;
use crate::core::{Credentials, Fs};

/// Who may connect and how their identities map.
#[derive(Clone, Debug)]
pub struct Access {
    /// Every call's procedure and latency, for `/metrics`.
    pub ops: crate::http::OpMetrics,
    pub allowed: Vec<IpNet>,
    pub squash: Squash,
    pub anon_uid: u32,
    pub anon_gid: u32,
    /// Open connections at most (`nfs.max_connections`).
    pub max_connections: usize,
}

impl Access {
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allowed.iter().any(|net| net.contains(&ip))
    }

    pub(super) fn anon(&self) -> Credentials {
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

/// The "too many connections" line comes at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves NFSv3, MOUNT v3 and portmap on `listener` until the task is dropped.
/// Past `access.max_connections` open connections, a new one is accepted and
/// closed at once.
pub async fn serve(listener: TcpListener, fs: Arc<Fs>, access: Arc<Access>) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let open = Arc::new(Semaphore::new(access.max_connections));
    let refusals = LogLimit::new(REFUSAL_LOG_EVERY);
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
            if let Some(suppressed) = refusals.allow() {
                warn!(%peer, suppressed, "refused a connection from outside the allowed networks");
            }
            drop(stream);
            continue;
        }
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if let Some(suppressed) = refusals.allow() {
                warn!(%peer, max = access.max_connections, suppressed,
                    "too many NFS connections (nfs.max_connections); closed a new one");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let span = tracing::info_span!("nfs_conn", %peer);
        let (fs, access) = (fs.clone(), access.clone());
        tokio::spawn(
            async move {
                conn::serve(stream, peer, port, fs, access).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}
