//! Running a gateway: take the data folder's lock, open the core, bind the
//! NFS port, serve until SIGINT or SIGTERM, then close the metadata cleanly.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_config::GatewayConfig;
use rustix::fs::{flock, FlockOperation};
use tokio::net::TcpListener;
use tracing::info;

use crate::admin::{self, Admin};
use crate::core::{Fs, FsError};
use crate::drain::Drainer;
use crate::nfs::{self, Access};
use crate::remote::Stores;
use crate::repair::Repairer;
use crate::ship::Shipper;
use cairn_chunkstore::Secret;

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
    #[error("cannot listen on {addr}: {source}; is another NFS server using the port? choose another with nfs.listen")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the cluster secret: {0}")]
    Secret(#[from] cairn_chunkstore::StoreError),
    #[error("cannot open the admin socket {path}: {source}")]
    Admin {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Smb(#[from] crate::smb::BridgeError),
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
    let file = File::options()
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

/// Opens the filesystem core as the config says.
pub fn open_fs(cfg: &GatewayConfig) -> Result<Fs, StartError> {
    let cache_dir = cfg.cache_dir();
    std::fs::create_dir_all(&cache_dir).map_err(|source| StartError::Create {
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
    let _lock = lock_data_dir(&cfg)?;
    let mut fs = open_fs(&cfg)?;
    let mut cluster_secret = None;
    let stores = match &cfg.cluster.secret_file {
        Some(path) if !cfg.stores.is_empty() => {
            let secret = Secret::load(path)?;
            cluster_secret = Some(secret.clone());
            let stores = Arc::new(
                Stores::new(
                    secret,
                    cfg.drain.store_concurrency,
                    cfg.drain.store_bandwidth.bytes(),
                )
                .with_read_limits(cfg.read.stall.get(), cfg.read.timeout.get()),
            );
            for s in &cfg.stores {
                let (name, address) = (s.name.clone(), s.address.clone());
                let id = fs
                    .metadata()
                    .write(true, move |tx| tx.upsert_store(&name, &address, "", "", ""))
                    .await
                    .map_err(FsError::from)?;
                stores.add(id, &s.name, &s.address);
            }
            let dropped = fs
                .metadata()
                .write(true, |tx| tx.forget_pending_chunks())
                .await
                .map_err(FsError::from)?;
            if dropped > 0 {
                info!(chunks = dropped, "forgot chunks a stopped drain left half-stored; their objects are collected as orphans");
            }
            for (id, life) in fs
                .metadata()
                .read(|v| v.store_states())
                .map_err(FsError::from)?
            {
                stores.set_life(id, life);
            }
            fs = fs.with_blocks(stores.clone());
            Some(stores)
        }
        _ => None,
    };
    let fs = Arc::new(fs);
    fs.reconcile_cache().await?;
    admin::default_class_id(&fs).await?;
    // The SMB bridge first: once the NFS port accepts, SMB clients are
    // served too.
    let smb = if cfg.smb.listen.is_some() {
        Some(crate::smb::Bridge::start(&cfg, fs.clone()).await?)
    } else {
        None
    };
    let addr = cfg.nfs.listen;
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(source) => {
            if let Some(bridge) = &smb {
                bridge.stop().await;
            }
            return Err(StartError::Bind { addr, source });
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    let access = Arc::new(Access {
        allowed: cfg.nfs.allowed_networks.clone(),
        squash: cfg.nfs.squash,
        anon_uid: cfg.nfs.anon_uid,
        anon_gid: cfg.nfs.anon_gid,
    });
    let admin_path = admin::socket_path(&cfg.data_dir);
    let mounts = Arc::new(crate::mounts::Mounts::default());
    let repairer = stores
        .as_ref()
        .map(|st| Repairer::new(fs.clone(), st.clone(), cfg.repair.clone()));
    if !cfg.backup.enabled {
        fs.metadata().stop_recording().map_err(FsError::from)?;
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
            let persist = crate::drain::Persister::new(&fs, st.clone(), shipper.clone());
            fs.set_persist(Arc::new(persist));
            Some(shipper)
        }
        _ => None,
    };
    let admin = Arc::new(Admin {
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
    // Bound before readiness is announced, so the CLI works at once.
    let admin_listener = admin::bind(&admin_path).map_err(|source| StartError::Admin {
        path: admin_path.clone(),
        source,
    })?;
    let mut tasks = vec![tokio::spawn(async move {
        if let Err(e) = admin.serve(admin_listener).await {
            admin::log_failure(&e);
        }
    })];
    if let Some(stores) = &stores {
        let drainer = Drainer::new(fs.clone(), stores.clone(), cfg.drain.clone());
        tasks.push(tokio::spawn(drainer.run()));
    }
    if let Some(repairer) = repairer {
        tasks.push(tokio::spawn(repairer.run()));
    }
    if let Some(shipper) = shipper {
        tasks.push(tokio::spawn(shipper.run()));
    }
    info!(listen = %bound, data = %cfg.data_dir.display(), stores = cfg.stores.len(), "gateway serving NFSv3");
    ready(bound);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(StartError::Signals)?;
    tasks.push(tokio::spawn(nfs::serve(listener, fs.clone(), access)));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("interrupted; shutting down"),
        _ = term.recv() => info!("terminated; shutting down"),
    }
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = std::fs::remove_file(&admin_path);
    // smbd goes before the view it serves; then the local mounts.
    if let Some(bridge) = &smb {
        bridge.stop().await;
    }
    mounts.unmount_all().await;
    fs.metadata().close();
    info!("gateway stopped cleanly");
    Ok(())
}
