//! The admin API: typed JSON lines ([`proto`]) over a Unix socket in the
//! gateway's data folder (`admin.sock`, mode 0600, so only the gateway's
//! user reaches it). The `cairn` CLI sends one [`Request`] per line and
//! reads one [`proto::Answer`]; each request goes to one handler by topic.

mod classes;
mod files;
pub mod proto;
mod status;
mod stores;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};

use crate::core::{Fs, FsError};
use crate::store::Stores;
use proto::{AdminError, Answer, Reply, Request};

/// Where a gateway's admin socket lives.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// Binds the admin socket at `path` (replacing a stale one), readable and
/// writable by the gateway's user only.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// What the admin API serves from.
pub struct Admin {
    /// The background jobs' status board.
    pub jobs: crate::work::runner::Board,
    pub fs: Arc<Fs>,
    pub stores: Option<Arc<Stores>>,
    /// The repair worker's progress (none without stores).
    pub repair: Option<Arc<std::sync::Mutex<crate::work::repair::Progress>>>,
    /// `[repair] grace`: when a silent store turns from suspect to offline.
    pub grace: std::time::Duration,
    /// Bad objects `fsck_deep` hands to the repairer (none without stores).
    pub condemned: Option<crate::work::repair::Condemned>,
    /// Metadata shipping (none without stores).
    pub backup: Option<Arc<std::sync::Mutex<crate::work::ship::ShipState>>>,
    /// `[backup] warn_after`.
    pub backup_warn: std::time::Duration,
    /// Views mounted by `cairn mount`.
    pub mounts: Arc<crate::mounts::Mounts>,
    /// The SMB bridge, when `[smb] listen` is set.
    pub smb: Option<Arc<crate::smb::Bridge>>,
}

impl From<FsError> for AdminError {
    fn from(e: FsError) -> Self {
        AdminError::Metadata { why: e.to_string() }
    }
}

impl From<cairn_metadata::MetaError> for AdminError {
    fn from(e: cairn_metadata::MetaError) -> Self {
        AdminError::Metadata { why: e.to_string() }
    }
}

impl Admin {
    /// Serves `listener` (from [`bind`]) until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: UnixListener) -> std::io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.connection(stream).await {
                    debug!(cause = %e, "admin connection ended");
                }
            });
        }
    }

    async fn connection(&self, stream: UnixStream) -> std::io::Result<()> {
        let (rd, mut wr) = stream.into_split();
        let mut lines = BufReader::new(rd.take(1 << 20)).lines();
        while let Some(line) = lines.next_line().await? {
            let answer: Answer = match Request::parse(&line) {
                Ok(req) => self.dispatch(req).await,
                Err(e) => Err(e),
            };
            let mut text = serde_json::to_string(&answer).map_err(std::io::Error::other)?;
            text.push('\n');
            wr.write_all(text.as_bytes()).await?;
        }
        Ok(())
    }

    /// Runs one request by its handler.
    async fn dispatch(&self, req: Request) -> Answer {
        Ok(match req {
            Request::Status => self.status().await?.into(),
            Request::Mount { dir } => self.mount(&dir).await?.into(),
            Request::Unmount { dir } => self.unmount(&dir).await?.into(),
            Request::SmbShareAdd { name, path } => self.smb_share_add(&name, &path).await?.into(),
            Request::StoreList => self.store_list().into(),
            Request::StoreDrain { name } => {
                self.store_life(&name, stores::Life::Drain).await?.into()
            }
            Request::StoreUndrain { name } => {
                self.store_life(&name, stores::Life::Undrain).await?.into()
            }
            Request::StoreRemove { name } => {
                self.store_life(&name, stores::Life::Remove).await?.into()
            }
            Request::Chunks => self.chunks().await?.into(),
            Request::FsckDeep { repair } => self.fsck_deep(repair).await?.into(),
            Request::CacheDrop => self.cache_drop().await?.into(),
            Request::ClassCreate(c) => self.class_create(c).await?.into(),
            Request::ClassList => self.class_list()?.into(),
            Request::ClassShow { name } => self.class_show(name)?.into(),
            Request::ClassDelete { name } => self.class_delete(name).await?.into(),
            Request::ClassSet { path, name } => self.class_set(path, name).await?.into(),
            Request::ClassGet { path } => self.class_get(path).await?.into(),
        })
    }
}

/// Sends one request to the gateway at `data_dir` and returns its reply.
pub async fn request(data_dir: &Path, req: &Request) -> Answer {
    let path = socket_path(data_dir);
    let stream = UnixStream::connect(&path)
        .await
        .map_err(|e| AdminError::Unreachable {
            socket: path.clone(),
            why: e.to_string(),
        })?;
    let broken = |e: std::io::Error| AdminError::Connection { why: e.to_string() };
    let (rd, mut wr) = stream.into_split();
    let mut text =
        serde_json::to_string(req).map_err(|e| AdminError::Connection { why: e.to_string() })?;
    text.push('\n');
    wr.write_all(text.as_bytes()).await.map_err(broken)?;
    let line = BufReader::new(rd)
        .lines()
        .next_line()
        .await
        .map_err(broken)?
        .ok_or(AdminError::NoAnswer)?;
    serde_json::from_str::<Answer>(&line)
        .map_err(|e| AdminError::BadAnswer { why: e.to_string() })?
}

/// [`request`] for a reply of the kind `T`.
pub async fn call<T: TryFrom<Reply, Error = AdminError>>(
    data_dir: &Path,
    req: &Request,
) -> Result<T, AdminError> {
    request(data_dir, req).await?.try_into()
}

/// Logs an admin socket failure without stopping the gateway.
pub fn log_failure(e: &std::io::Error) {
    warn!(cause = %e, "the admin socket stopped; cairn CLI commands cannot reach this gateway");
}

#[cfg(test)]
pub(crate) mod tests;
