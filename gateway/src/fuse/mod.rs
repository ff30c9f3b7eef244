//! The FUSE view: the filesystem core mounted as a local folder, for
//! `cairn mount DIR` and for the SMB bridge's `smbd`. Mounted with
//! `allow_other` (smbd acts as each logged-in user) and
//! `default_permissions` (the kernel checks mode bits with the caller's
//! full group list); the caller's uid and gid reach the core as the
//! credentials of every call. FUSE types stay inside this module.

mod convert;
mod errno;
mod handles;
mod ops;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use tracing::{info, warn};

use crate::core::Fs;
pub use ops::{MAX_WRITE, TTL};

#[derive(Debug, thiserror::Error)]
pub enum FuseError {
    #[error("cannot mount the FUSE view on {dir}: {source}; is /dev/fuse there and are you root?")]
    Mount {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{dir} is not an empty folder: the FUSE view mounts only on one")]
    NotEmptyDir { dir: PathBuf },
    #[error("the FUSE view must be mounted from inside the gateway's runtime")]
    NoRuntime,
}

/// A mounted view. Unmounts when dropped.
pub struct FuseView {
    dir: PathBuf,
    session: Option<BackgroundSession>,
}

impl std::fmt::Debug for FuseView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuseView").field("dir", &self.dir).finish()
    }
}

/// Detaches whatever is mounted on `dir` if it no longer answers (a view
/// whose server died: "Transport endpoint is not connected").
pub fn clear_dead_mount(dir: &Path) {
    if let Err(e) = std::fs::metadata(dir) {
        if e.raw_os_error() == Some(rustix::io::Errno::NOTCONN.raw_os_error()) {
            warn!(dir = %dir.display(), "a dead FUSE mount was left here; detaching it");
            let _ = rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

impl FuseView {
    /// Mounts the core on `dir` (an empty folder, created if missing).
    /// Must be called from within a tokio runtime: requests run there.
    pub fn mount(fs: Arc<Fs>, dir: &Path) -> Result<FuseView, FuseError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| FuseError::NoRuntime)?;
        let err = |source| FuseError::Mount {
            dir: dir.to_owned(),
            source,
        };
        clear_dead_mount(dir);
        std::fs::create_dir_all(dir).map_err(err)?;
        if std::fs::read_dir(dir).map_err(err)?.next().is_some() {
            return Err(FuseError::NotEmptyDir {
                dir: dir.to_owned(),
            });
        }
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("cairn".into()),
            MountOption::Subtype("cairn".into()),
            MountOption::DefaultPermissions,
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        config.acl = SessionACL::All;
        let session = fuser::spawn_mount(
            ops::View {
                fs,
                rt,
                handles: handles::Handles::default(),
            },
            dir,
            &config,
        )
        .map_err(err)?;
        info!(dir = %dir.display(), "FUSE view mounted");
        Ok(FuseView {
            dir: dir.to_owned(),
            session: Some(session),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the kernel side still talks to this view (false once the
    /// connection was aborted or unmounted from outside).
    pub fn is_alive(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Unmounts and waits for the request thread to end.
    pub fn unmount(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let alive = !session.guard.is_finished();
        if alive {
            if let Err(e) = session.umount_and_join() {
                warn!(dir = %self.dir.display(), cause = %e, "unmounting the FUSE view failed; detaching it");
                let _ = rustix::mount::unmount(&self.dir, rustix::mount::UnmountFlags::DETACH);
            }
        } else {
            drop(session);
            clear_dead_mount(&self.dir);
        }
        info!(dir = %self.dir.display(), "FUSE view unmounted");
    }
}

impl Drop for FuseView {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Keeps a view mounted at `dir` for as long as the returned handle lives:
/// if the kernel side goes away, the view is mounted again after a backoff
/// (2 s, doubling to 30 s).
pub struct WatchedView {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    mounted: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for WatchedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedView").finish()
    }
}

impl WatchedView {
    /// Mounts once (failing if that fails), then watches.
    pub fn start(fs: Arc<Fs>, dir: PathBuf) -> Result<WatchedView, FuseError> {
        let mut view = FuseView::mount(fs.clone(), &dir)?;
        let mounted = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = mounted.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_secs(2);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                if view.is_alive() {
                    continue;
                }
                flag.store(false, std::sync::atomic::Ordering::SeqCst);
                warn!(dir = %dir.display(), retry_in = ?backoff, "the FUSE view went away; mounting it again");
                drop(std::mem::replace(
                    &mut view,
                    FuseView {
                        dir: dir.clone(),
                        session: None,
                    },
                ));
                clear_dead_mount(&dir);
                // Mount again after a backoff, doubling while mounting fails.
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    match FuseView::mount(fs.clone(), &dir) {
                        Ok(v) => {
                            view = v;
                            flag.store(true, std::sync::atomic::Ordering::SeqCst);
                            backoff = Duration::from_secs(2);
                            break;
                        }
                        Err(e) => {
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                            warn!(dir = %dir.display(), cause = %e, retry_in = ?backoff, "mounting the FUSE view failed");
                        }
                    }
                }
            }
            tokio::task::spawn_blocking(move || view.unmount())
                .await
                .ok();
        });
        Ok(WatchedView {
            stop: Some(stop),
            task: Some(task),
            mounted,
        })
    }

    pub fn is_mounted(&self) -> bool {
        self.mounted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Unmounts and stops watching.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for WatchedView {
    fn drop(&mut self) {
        // Dropped without `stop` (a failed start): the task unmounts on its own.
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
