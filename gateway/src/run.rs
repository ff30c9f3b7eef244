//! Running a gateway: make its data private, take the data folder's lock,
//! open the core, bind the NFS port, serve until SIGINT or SIGTERM, then
//! close the metadata cleanly.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_config::{GatewayConfig, StoreKind};
use rustix::fs::{flock, FlockOperation};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::admin::{self, Admin};
use crate::core::{Fs, FsError};
use crate::nfs::{self, Access};
use crate::store::s3::{S3Settings, S3Store};
use crate::store::Stores;
use crate::work::drain::{self, Drainer};
use crate::work::repair::Repairer;
use crate::work::runner::{self, Board, Shutdown};
use crate::work::ship::Shipper;
use cairn_chunkstore::Secret;

/// How long a clean stop waits for the background jobs' current steps.
const WORKERS_AT_STOP: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a clean stop waits to ship the last metadata changes.
const SHIP_AT_STOP: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another cairn gateway is already running on {path} (its lock file is held); stop it first"
    )]
    Locked { path: PathBuf },
    #[error("cannot open the gateway's state: {0}")]
    Fs(#[from] FsError),
    #[error("cannot start: the disk holding {} is full: {free} bytes free; free space on it (or give the gateway a larger disk), then start again", path.display())]
    DiskFull { path: PathBuf, free: u64 },
    #[error("cannot make the gateway's data private to its user ({path}): {source}")]
    Private {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}; is another NFS server using the port? choose another with nfs.listen")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http.token_file: {0}")]
    HttpToken(#[from] cairn_config::TokenError),
    #[error("cannot read the cluster secret: {0}")]
    Secret(#[from] cairn_chunkstore::StoreError),
    #[error("cannot open the admin socket {path}: {source}")]
    Admin {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Smb(#[from] crate::smb::BridgeError),
    #[error("cannot use a bucket store: {0}")]
    Bucket(String),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Holds the data folder's lock for as long as it lives.
pub struct DataLock {
    _file: File,
}

/// Takes the exclusive lock on `<data_dir>/gateway.lock`.
pub fn lock_data_dir(cfg: &GatewayConfig) -> Result<DataLock, StartError> {
    let path = cfg.data_dir.join("gateway.lock");
    let file = cairn_chunkstore::private::file_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StartError::Create {
            path: path.clone(),
            source,
        })?;
    flock(&file, FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| StartError::Locked { path })?;
    Ok(DataLock { _file: file })
}

/// Takes group and world access away from the gateway's data folder, its
/// cache folder and its metadata files, wherever they are, logging each
/// change: they hold file names and contents.
pub fn make_private(cfg: &GatewayConfig) -> Result<(), StartError> {
    let (data, cache, meta) = (&cfg.data_dir, cfg.cache_dir(), cfg.metadata_path());
    let mut roots: Vec<PathBuf> = vec![data.clone()];
    if !cache.starts_with(data) {
        roots.push(cache);
    }
    if !meta.starts_with(data) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = meta.as_os_str().to_owned();
            name.push(suffix);
            roots.push(name.into());
        }
    }
    // The SMB bridge's folder holds Samba's own files, whose modes Samba
    // and the bridge set; with SMB on, SMB users (smbd acts as them) must
    // pass through the data folder to the FUSE view mounted below it.
    let smb_dir = data.join("smb");
    let except = cairn_chunkstore::private::Exceptions {
        traverse: if cfg.smb.listen.is_some() {
            vec![data.clone()]
        } else {
            Vec::new()
        },
        skip: vec![smb_dir],
    };
    for root in &roots {
        cairn_chunkstore::private::secure_and_log(&[root], &except).map_err(|source| {
            StartError::Private {
                path: root.clone(),
                source,
            }
        })?;
    }
    if cfg.smb.listen.is_some() {
        // Search only (0711): others can reach the view, list nothing.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o711)).map_err(
            |source| StartError::Private {
                path: data.clone(),
                source,
            },
        )?;
    }
    Ok(())
}

/// A start that failed for want of disk space says which disk and how full
/// it is, rather than blaming the cache (SQLite reports a full disk while
/// opening as an I/O error, so a failure on a disk with under 1 MiB free is
/// taken for one too).
fn explain_full(cfg: &GatewayConfig, e: StartError) -> StartError {
    let meta_dir = cfg
        .metadata_path()
        .parent()
        .map_or_else(|| cfg.data_dir.clone(), Into::into);
    let named = match &e {
        StartError::Fs(FsError::DiskFull { path, .. }) => Some(path.clone()),
        StartError::Fs(FsError::MetadataFull) => Some(meta_dir.clone()),
        StartError::Fs(FsError::NoSpace) => Some(cfg.cache_dir()),
        StartError::Bind { .. } | StartError::Locked { .. } | StartError::DiskFull { .. } => {
            return e
        }
        _ => None,
    };
    if let Some(path) = named {
        let free = crate::disk::space(&path).map_or(0, |s| s.avail);
        return StartError::DiskFull { path, free };
    }
    for path in [meta_dir, cfg.cache_dir(), cfg.data_dir.clone()] {
        if let Ok(space) = crate::disk::space(&path) {
            if space.avail < crate::disk::FULL {
                return StartError::DiskFull {
                    path,
                    free: space.avail,
                };
            }
        }
    }
    e
}

/// Opens the filesystem core as the config says.
pub fn open_fs(cfg: &GatewayConfig) -> Result<Fs, StartError> {
    let cache_dir = cfg.cache_dir();
    cairn_chunkstore::private::create_dir_all(&cache_dir).map_err(|source| StartError::Create {
        path: cache_dir.clone(),
        source,
    })?;
    Ok(Fs::open(
        &cfg.metadata_path(),
        &cache_dir,
        cfg.cache.max_size.bytes(),
    )?)
}

/// Runs the gateway until SIGINT or SIGTERM. `ready` is called once the
/// port is bound, with its address.
pub async fn run(cfg: GatewayConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), StartError> {
    let started = start(&cfg).await;
    match started {
        Ok(s) => serve(cfg, s, ready).await,
        Err(e) => Err(explain_full(&cfg, e)),
    }
}

/// What [`start`] opened, for [`serve`].
struct Started {
    _lock: DataLock,
    fs: Arc<Fs>,
    stores: Option<Arc<Stores>>,
    cluster_secret: Option<Secret>,
    /// Requests for remote durability, when metadata shipping is on.
    persist_requests: Option<tokio::sync::mpsc::Receiver<crate::core::PersistRequest>>,
}

/// Makes the data private, takes the lock, opens the core and registers
/// the chunk stores.
async fn start(cfg: &GatewayConfig) -> Result<Started, StartError> {
    make_private(cfg)?;
    let lock = lock_data_dir(cfg)?;
    let mut fs = open_fs(cfg)?;
    let mut cluster_secret = None;
    let mut persist_requests = None;
    let stores = match &cfg.cluster.secret_file {
        Some(path) if !cfg.stores.is_empty() => {
            let secret = Secret::load(path)?;
            cluster_secret = Some(secret.clone());
            let stores = Arc::new(
                Stores::new(
                    secret.clone(),
                    cfg.drain.store_concurrency,
                    cfg.drain.store_bandwidth.bytes(),
                )
                .with_read_limits(cfg.read.stall.get(), cfg.read.timeout.get())
                .with_caps(crate::store::Caps {
                    drain: cfg.drain.store_bandwidth.bytes(),
                    repair: cfg.repair.store_bandwidth.bytes(),
                    rebalance: cfg.repair.rebalance_store_bandwidth.bytes(),
                })
                .with_hedge(cfg.read.hedge.map(|d| d.get())),
            );
            for s in &cfg.stores {
                let id = fs.register_store(&s.name, &s.location()).await?;
                match s.kind {
                    StoreKind::Cairn => stores.add_address(id, &s.name, &s.address),
                    StoreKind::S3 => {
                        let settings =
                            S3Settings::from_config(s, &secret).map_err(StartError::Bucket)?;
                        let bucket = S3Store::new(settings)
                            .map_err(|e| StartError::Bucket(format!("store {}: {e}", s.name)))?;
                        stores.add(id, &s.name, Arc::new(bucket));
                    }
                }
            }
            let dropped = fs.forget_pending_chunks().await?;
            if dropped > 0 {
                info!(chunks = dropped, "forgot chunks a stopped drain left half-stored; their objects are collected as orphans");
            }
            for (id, life) in fs.store_states()? {
                stores.set_life(id, life);
            }
            fs = fs
                .with_blocks(stores.clone())
                .with_readahead(cfg.read.readahead.bytes());
            if cfg.backup.enabled {
                let (persistence, requests) = crate::core::Persistence::channel();
                fs = fs.with_persistence(persistence);
                persist_requests = Some(requests);
            }
            Some(stores)
        }
        _ => None,
    };
    let fs = Arc::new(fs);
    // The config travels with the metadata, so `cairn restore` can write
    // one that serves as this gateway did.
    if let Ok(text) = toml::to_string(&cfg) {
        fs.save_setting(crate::restore::CONFIG_SETTING, text)
            .await?;
    }
    fs.reconcile_cache().await?;
    fs.classes().default_id().await.map_err(FsError::from)?;
    Ok(Started {
        _lock: lock,
        fs,
        stores,
        cluster_secret,
        persist_requests,
    })
}

/// Undoes what a start did before it failed: the admin socket, the bridge.
async fn undo_start(admin_path: &std::path::Path, smb: Option<&crate::smb::Bridge>) {
    let _ = std::fs::remove_file(admin_path);
    if let Some(bridge) = smb {
        bridge.stop().await;
    }
}

/// Serves until SIGINT or SIGTERM.
async fn serve(
    cfg: GatewayConfig,
    started: Started,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), StartError> {
    let Started {
        _lock,
        fs,
        stores,
        cluster_secret,
        persist_requests,
    } = started;
    // The SMB bridge first: once the NFS port accepts, SMB clients are
    // served too.
    let smb = if cfg.smb.listen.is_some() {
        Some(crate::smb::Bridge::start(&cfg, fs.clone()).await?)
    } else {
        None
    };
    // The admin socket before the NFS port: a client that sees the port
    // open finds the CLI working and the socket private (0600) already.
    let admin_path = admin::socket_path(&cfg.data_dir);
    let admin_listener = match admin::bind(&admin_path) {
        Ok(l) => l,
        Err(source) => {
            if let Some(bridge) = &smb {
                bridge.stop().await;
            }
            return Err(StartError::Admin {
                path: admin_path,
                source,
            });
        }
    };
    let addr = cfg.nfs.listen;
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(source) => {
            undo_start(&admin_path, smb.as_deref()).await;
            return Err(StartError::Bind { addr, source });
        }
    };
    let http_listener = match cfg.http.listen {
        Some(addr) => match TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(source) => {
                undo_start(&admin_path, smb.as_deref()).await;
                return Err(StartError::Bind { addr, source });
            }
        },
        None => None,
    };
    let http_token = match cfg.http.token_file.as_deref().map(cairn_config::read_token) {
        Some(Err(e)) => {
            undo_start(&admin_path, smb.as_deref()).await;
            return Err(StartError::HttpToken(e));
        }
        Some(Ok(token)) => Some(token),
        None => None,
    };
    let bound = listener.local_addr().unwrap_or(addr);
    let ops = crate::http::OpMetrics::default();
    let access = Arc::new(Access {
        ops: ops.clone(),
        allowed: cfg.nfs.allowed_networks.clone(),
        squash: cfg.nfs.squash,
        anon_uid: cfg.nfs.anon_uid,
        anon_gid: cfg.nfs.anon_gid,
        max_connections: cfg.nfs.max_connections as usize,
    });
    let mounts = Arc::new(crate::mounts::Mounts::default());
    let repairer = stores
        .as_ref()
        .map(|st| Repairer::new(fs.clone(), st.clone(), cfg.repair.clone()));
    if !cfg.backup.enabled {
        fs.stop_recording()?;
    }
    let shipper = match (&stores, &cluster_secret) {
        (Some(st), Some(secret)) if cfg.backup.enabled => {
            let shipper = Arc::new(Shipper::new(
                fs.clone(),
                st.clone(),
                secret,
                cfg.backup.clone(),
                cfg.repair.grace.get(),
                &cfg.data_dir,
            ));
            Some(shipper)
        }
        _ => None,
    };
    // Background jobs stop on one shutdown, each after its current step,
    // and report into one board that `cairn status` shows.
    let shutdown = Shutdown::new();
    let board = Board::default();
    let admin = Arc::new(Admin {
        jobs: board.clone(),
        fs: fs.clone(),
        stores: stores.clone(),
        repair: repairer.as_ref().map(|r| r.progress()),
        grace: cfg.repair.grace.get(),
        condemned: repairer.as_ref().map(|r| r.condemned()),
        backup: shipper.as_ref().map(|s| s.state()),
        backup_warn: cfg.backup.warn_after.get(),
        mounts: mounts.clone(),
        smb: smb.clone(),
    });
    let http = Arc::new(crate::http::Http {
        admin: admin.clone(),
        ops,
        token: http_token,
    });
    let mut tasks = vec![tokio::spawn(async move {
        if let Err(e) = admin.serve(admin_listener).await {
            admin::log_failure(&e);
        }
    })];
    if let Some(listener) = http_listener {
        tasks.push(tokio::spawn(crate::http::serve(listener, http)));
    }
    let mut workers = Vec::new();
    if let Some(stores) = &stores {
        let mut drainer = Drainer::new(fs.clone(), stores.clone(), cfg.drain.clone());
        if let Some(shipper) = &shipper {
            drainer = drainer.with_shipping(shipper.state());
        }
        workers.extend(drain::spawn(drainer, &shutdown, &board));
        if let (Some(shipper), Some(requests)) = (&shipper, persist_requests) {
            let persister = drain::Persister::new(fs.clone(), stores.clone(), shipper.clone());
            workers.push(tokio::spawn(drain::persist::serve(
                persister,
                requests,
                shutdown.subscribe(),
            )));
        }
    }
    if let Some(repairer) = repairer {
        if let Some(stores) = &stores {
            let scrub =
                crate::work::repair::scrub::Scrub::new(stores.clone(), repairer.condemned());
            workers.push(tokio::spawn(runner::run(
                scrub,
                shutdown.subscribe(),
                board.clone(),
            )));
        }
        workers.push(tokio::spawn(runner::run(
            repairer.job(),
            shutdown.subscribe(),
            board.clone(),
        )));
    }
    // The shipper stops on the same shutdown; `ship_last` below then ships
    // what is left once every other job has stopped.
    let mut ship_task = None;
    if let Some(shipper) = &shipper {
        ship_task = Some(tokio::spawn(runner::run(
            shipper.clone().job(),
            shutdown.subscribe(),
            board.clone(),
        )));
    }
    info!(listen = %bound, data = %cfg.data_dir.display(), stores = cfg.stores.len(), "gateway serving NFSv3");
    ready(bound);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(StartError::Signals)?;
    tasks.push(tokio::spawn(nfs::serve(listener, fs.clone(), access)));
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(StartError::Signals)?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                info!("interrupted; shutting down");
                break;
            }
            _ = term.recv() => {
                info!("terminated; shutting down");
                break;
            }
            // A closed terminal or a reload request: nothing is reloaded
            // (the config is read at start), and the gateway serves on.
            _ = hup.recv() => warn!("SIGHUP: ignored; the config is read at start, so restart the gateway to apply changes"),
        }
    }
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    shutdown.stop();
    let deadline = tokio::time::Instant::now() + WORKERS_AT_STOP;
    for mut w in workers {
        if tokio::time::timeout_at(deadline, &mut w).await.is_err() {
            warn!(waited = ?WORKERS_AT_STOP, "a background job did not finish its step; stopping it");
            w.abort();
        }
    }
    // Nothing changes the metadata any more: ship the last changes, so a
    // clean stop loses nothing a rebuild from the stores would need.
    if let (Some(shipper), Some(task)) = (&shipper, ship_task) {
        match tokio::time::timeout(SHIP_AT_STOP, shipper.ship_last(task)).await {
            Ok(Ok(())) => info!("shipped the last metadata changes"),
            Ok(Err(e)) => {
                warn!(cause = %e, "could not ship the last metadata changes; a rebuild from the stores would miss them")
            }
            Err(_) => warn!(
                waited = ?SHIP_AT_STOP,
                "shipping the last metadata changes did not finish; a rebuild from the stores would miss them"
            ),
        }
    }
    let _ = std::fs::remove_file(&admin_path);
    // smbd goes before the view it serves; then the local mounts.
    if let Some(bridge) = &smb {
        bridge.stop().await;
    }
    mounts.unmount_all().await;
    fs.close_metadata();
    info!("gateway stopped cleanly");
    Ok(())
}
