//! `cairn restore`: finds the stores (a `cairn up` folder's, started here
//! for the restore if they are not running, or `--stores`), then runs
//! [`crate::restore`] and prints what it says.

use std::path::PathBuf;
use std::process::ExitCode;

use super::runtime;
use super::spawn;

/// `cairn restore`.
pub(super) fn restore(
    stores: Vec<String>,
    secret_file: Option<PathBuf>,
    data: PathBuf,
    list: bool,
) -> ExitCode {
    // A `cairn up` folder: its stores (started here for the restore if they
    // are not running), its secret, its gateway folder.
    let mut started = Vec::new();
    let embedded = stores.is_empty();
    let (stores, secret_file, data_dir, write_config) = if embedded {
        let dir = data.join("stores");
        let mut configs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path().join("store.toml"))
                    .collect()
            })
            .unwrap_or_default();
        configs.sort();
        let mut found = Vec::new();
        for path in configs {
            let Ok(cfg) = cairn_config::StoreConfig::load(&path) else {
                continue;
            };
            if std::net::TcpStream::connect(cfg.listen).is_err() {
                match spawn::start_store(&path, cfg.listen, None) {
                    Ok(child) => started.push(child),
                    Err(e) => eprintln!(
                        "cairn restore: the store of {} did not start: {e}",
                        path.display()
                    ),
                }
            }
            found.push(cfg.listen.to_string());
        }
        if found.is_empty() {
            eprintln!(
                "cairn restore: no store configs under {}: pass --stores ADDR,… and --secret-file FILE",
                dir.display()
            );
            return ExitCode::from(2);
        }
        (
            found,
            secret_file.unwrap_or_else(|| data.join("cluster.secret")),
            data.join("gateway"),
            None,
        )
    } else {
        let Some(secret) = secret_file else {
            eprintln!("cairn restore: --stores needs --secret-file FILE (the cluster secret)");
            return ExitCode::from(2);
        };
        let config = data.join("gateway.toml");
        (stores, secret, data.clone(), Some(config))
    };
    let rt = runtime();
    let result = if list {
        rt.block_on(crate::restore::list(&stores, &secret_file))
    } else {
        rt.block_on(crate::restore::restore(&crate::restore::RestorePlan {
            stores,
            secret_file,
            data_dir,
            write_config,
        }))
    };
    spawn::stop_all(&mut started);
    match result {
        Ok(report) => {
            print!("{report}");
            if embedded && !list {
                println!("start it with: cairn up --data {}", data.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cairn restore: {e}");
            ExitCode::from(1)
        }
    }
}
