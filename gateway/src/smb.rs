//! The gateway's side of the SMB bridge: mounts the FUSE view smbd serves
//! (watched, mounted again if it goes away), writes smb.conf for the
//! config's shares plus those added at run time (kept in
//! `<data>/smb/shares.toml`), runs smbd under the bridge's supervisor, and
//! on shutdown stops smbd before unmounting the view (an open session would
//! keep the mount busy).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cairn_config::{GatewayConfig, SmbShare};
use cairn_metadata::{FileKind, InodeId};
use cairn_smb_bridge::{Layout, Share, SmbError, Supervisor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::info;

use crate::core::{Credentials, Fs, FsError, SetAttr};
use crate::fuse::{FuseError, WatchedView};

/// The SMB bridge, as `cairn status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmbStatus {
    pub listen: String,
    pub running: bool,
    pub pid: Option<u32>,
    pub restarts: u64,
    pub view_mounted: bool,
    pub view: String,
    pub shares: Vec<ShareRow>,
    pub clients: Option<u64>,
}

/// One share smbd serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRow {
    pub name: String,
    pub path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("SMB bridge: {0}")]
    Smb(#[from] SmbError),
    #[error("SMB bridge: {0}")]
    Fuse(#[from] FuseError),
    #[error("SMB bridge: cannot read {}: {source}", path.display())]
    Shares {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

/// Why a share was not added.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("bad share name {name:?}: {why}")]
    BadName { name: String, why: String },
    #[error("bad share path {path:?}: {why}")]
    BadPath { path: String, why: String },
    #[error("a share named {name:?} exists already")]
    Exists { name: String },
    #[error("the share path {path:?} does not exist in the cairn tree; create the folder first (over NFS or SMB)")]
    PathMissing { path: String },
    #[error("cannot look up {path:?}: {source}")]
    Lookup {
        path: String,
        #[source]
        source: FsError,
    },
    #[error("the share path {path:?} is not a folder")]
    NotAFolder { path: String },
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Serialize(#[from] toml::ser::Error),
    #[error(transparent)]
    Write(#[from] cairn_config::DurableError),
    #[error(transparent)]
    Conf(#[from] SmbError),
}

/// Shares added with `cairn smb share add`, beside the config's.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharesFile {
    #[serde(default)]
    shares: Vec<SmbShare>,
}

pub struct Bridge {
    layout: Layout,
    listen: SocketAddr,
    config_shares: Vec<SmbShare>,
    added: Mutex<Vec<SmbShare>>,
    view: Mutex<Option<WatchedView>>,
    smbd: Mutex<Option<Supervisor>>,
}

fn shares_path(layout: &Layout) -> PathBuf {
    layout.base().join("shares.toml")
}

/// Resolves an absolute path inside the tree as root; it must be a folder.
pub async fn resolve_dir(fs: &Fs, path: &str) -> Result<InodeId, ShareError> {
    if let Some(why) = cairn_config::share_path_problem(path) {
        return Err(ShareError::BadPath {
            path: path.to_owned(),
            why,
        });
    }
    let mut id = InodeId::ROOT;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        id = match fs.lookup(&Credentials::root(), id, part.as_bytes()).await {
            Ok(i) => i.id,
            Err(FsError::NotFound) => {
                return Err(ShareError::PathMissing {
                    path: path.to_owned(),
                })
            }
            Err(source) => {
                return Err(ShareError::Lookup {
                    path: path.to_owned(),
                    source,
                })
            }
        };
    }
    match fs.getattr(id).await? {
        i if i.kind == FileKind::Dir => Ok(id),
        _ => Err(ShareError::NotAFolder {
            path: path.to_owned(),
        }),
    }
}

/// Hands the share folder `path` to the SMB users' group (gid `group`):
/// group-owned, group-writable and setgid, other bits kept. Without it a
/// share of a folder root made would refuse every SMB user's writes.
async fn open_to_group(fs: &Fs, path: &str, group: u32) -> Result<(), ShareError> {
    let id = resolve_dir(fs, path).await?;
    let inode = fs.getattr(id).await?;
    let mode = inode.mode & 0o7777;
    let wanted = mode | 0o2070;
    if inode.gid == group && mode == wanted {
        return Ok(());
    }
    let attrs = SetAttr {
        mode: Some(wanted),
        gid: Some(group),
        ..SetAttr::default()
    };
    fs.setattr(&Credentials::root(), id, attrs, None).await?;
    info!(
        path,
        group = cairn_smb_bridge::SMB_GROUP,
        mode = format!("{wanted:o}"),
        "share folder handed to the SMB users' group"
    );
    Ok(())
}

impl Bridge {
    /// Mounts the view, writes smb.conf and starts smbd.
    pub async fn start(cfg: &GatewayConfig, fs: Arc<Fs>) -> Result<Arc<Bridge>, BridgeError> {
        let listen = cfg
            .smb
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 445)));
        let layout = Layout::new(&cfg.data_dir)?;
        layout.create_dirs()?;
        let path = shares_path(&layout);
        let added = match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str::<SharesFile>(&text)
                    .map_err(|source| BridgeError::Shares {
                        path: path.clone(),
                        source,
                    })?
                    .shares
            }
            Err(_) => Vec::new(),
        };
        let group = cairn_smb_bridge::ensure_group()?;
        for share in cfg.smb.shares.iter().chain(&added) {
            if let Err(e) = open_to_group(&fs, &share.path, group).await {
                tracing::warn!(
                    share = share.name,
                    path = share.path,
                    "share folder not handed to the SMB users' group: {e}"
                );
            }
        }
        let view = WatchedView::start(fs, layout.view())?;
        let bridge = Bridge {
            layout: layout.clone(),
            listen,
            config_shares: cfg.smb.shares.clone(),
            added: Mutex::new(added),
            view: Mutex::new(Some(view)),
            smbd: Mutex::new(None),
        };
        bridge.write_conf()?;
        bridge.wait_port_free().await;
        let smbd = tokio::task::spawn_blocking(move || Supervisor::start(layout))
            .await
            .map_err(|e| SmbError::Spawn {
                program: "smbd",
                source: std::io::Error::other(e),
            })??;
        *bridge.smbd.lock().unwrap_or_else(|p| p.into_inner()) = Some(smbd);
        bridge.wait_listening().await;
        info!(listen = %listen, shares = bridge.shares().len(), "SMB bridge serving");
        Ok(Arc::new(bridge))
    }

    /// Waits (up to 10 s) until nothing accepts connections on the port: a
    /// process of an smbd stopped a moment ago may still hold its listening
    /// socket, and the new smbd could not listen beside it.
    async fn wait_port_free(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if tokio::net::TcpStream::connect(self.listen).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tracing::warn!(listen = %self.listen, "something else accepts connections on the SMB port; smbd may not be able to listen");
    }

    /// Waits (up to 15 s) until smbd accepts connections steadily (three
    /// probes in a row, 50 ms apart), so that "ready" means ready for SMB
    /// clients too. Past the deadline, carries on and logs.
    async fn wait_listening(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        let mut in_a_row = 0;
        while tokio::time::Instant::now() < deadline {
            if tokio::net::TcpStream::connect(self.listen).await.is_ok() {
                in_a_row += 1;
                if in_a_row == 3 {
                    return;
                }
            } else {
                in_a_row = 0;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tracing::warn!(listen = %self.listen, log = %self.layout.smbd_log().display(), "smbd does not accept connections yet");
    }

    fn shares(&self) -> Vec<SmbShare> {
        let mut all = self.config_shares.clone();
        all.extend(
            self.added
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        all
    }

    fn write_conf(&self) -> Result<(), SmbError> {
        let shares: Vec<Share> = self
            .shares()
            .into_iter()
            .map(|s| Share {
                name: s.name,
                path: s.path,
            })
            .collect();
        cairn_smb_bridge::write_conf(&self.layout, self.listen, &shares)
    }

    /// Adds a share at run time: checks the name and the folder, keeps it
    /// in shares.toml, rewrites smb.conf and has smbd reload it. Nothing
    /// changes if any check fails.
    pub async fn add_share(&self, fs: &Fs, name: &str, path: &str) -> Result<(), ShareError> {
        if let Some(why) = cairn_config::share_name_problem(name) {
            return Err(ShareError::BadName {
                name: name.to_owned(),
                why,
            });
        }
        if self
            .shares()
            .iter()
            .any(|s| s.name.eq_ignore_ascii_case(name))
        {
            return Err(ShareError::Exists {
                name: name.to_owned(),
            });
        }
        resolve_dir(fs, path).await?;
        open_to_group(fs, path, cairn_smb_bridge::ensure_group()?).await?;
        let text = {
            let mut added = self.added.lock().unwrap_or_else(|p| p.into_inner());
            added.push(SmbShare {
                name: name.to_owned(),
                path: path.to_owned(),
            });
            let file = SharesFile {
                shares: added.clone(),
            };
            toml::to_string(&file)
        };
        let result = (|| -> Result<(), ShareError> {
            cairn_config::write_durable(&shares_path(&self.layout), text?.as_bytes())?;
            Ok(self.write_conf()?)
        })();
        if let Err(e) = result {
            self.added
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|s| s.name != name);
            return Err(e);
        }
        if let Some(smbd) = &*self.smbd.lock().unwrap_or_else(|p| p.into_inner()) {
            smbd.reload();
        }
        info!(share = name, path, "SMB share added");
        Ok(())
    }

    /// What `cairn status` shows: smbd, the view, the shares, the sessions.
    pub async fn status(&self) -> SmbStatus {
        let smbd = self
            .smbd
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Supervisor::status);
        let mounted = self
            .view
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(WatchedView::is_mounted);
        let conf = self.layout.conf();
        let clients = tokio::task::spawn_blocking(move || connected_clients(&conf))
            .await
            .ok()
            .flatten();
        let shares = self
            .shares()
            .into_iter()
            .map(|s| ShareRow {
                name: s.name,
                path: s.path,
            })
            .collect();
        SmbStatus {
            listen: self.listen.to_string(),
            running: smbd.as_ref().is_some_and(|s| s.pid.is_some()),
            pid: smbd.as_ref().and_then(|s| s.pid),
            restarts: smbd.as_ref().map_or(0, |s| s.restarts),
            view_mounted: mounted,
            view: self.layout.view().display().to_string(),
            shares,
            clients,
        }
    }

    /// Stops smbd, then unmounts the view.
    pub async fn stop(&self) {
        let smbd = self.smbd.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(smbd) = smbd {
            let _ = tokio::task::spawn_blocking(move || smbd.stop()).await;
        }
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(view) = view {
            view.stop().await;
        }
    }
}

/// How many SMB sessions smbd has, from `smbstatus -b`.
fn connected_clients(conf: &std::path::Path) -> Option<u64> {
    let out = std::process::Command::new("smbstatus")
        .arg("-s")
        .arg(conf)
        .args(["-b", "--json"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(v["sessions"].as_object().map_or(0, |m| m.len() as u64))
}
