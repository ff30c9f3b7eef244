//! `cairn restore`: finds the stores (a `cairn up` folder's, started here
//! for the restore if they are not running, or `--stores` and `--from`'s
//! tables), then runs
//! [`crate::restore`] and prints what it says.

use std::path::PathBuf;
use std::process::ExitCode;

use super::runtime;
use super::spawn;

/// `cairn restore`.
pub(super) fn restore(
    stores: Vec<String>,
    from: Option<PathBuf>,
    secret_file: Option<PathBuf>,
    data: PathBuf,
    list: bool,
) -> ExitCode {
    // A `cairn up` folder: its stores (started here for the restore if they
    // are not running), its secret, its gateway folder.
    let mut started = Vec::new();
    let mut tables = Vec::new();
    let mut secret_file = secret_file;
    if let Some(path) = &from {
        match from_config(path) {
            Ok((found, secret)) => {
                tables = found;
                secret_file = secret_file.or(secret);
            }
            Err(e) => {
                eprintln!("cairn restore: {e}");
                return ExitCode::from(2);
            }
        }
    }
    tables.extend(stores.iter().map(|a| cairn_config::StoreRef::cairn(a, a)));
    let embedded = tables.is_empty();
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
            let addr = cfg.listen.to_string();
            found.push(cairn_config::StoreRef::cairn(&addr, &addr));
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
        (tables, secret, data.clone(), Some(config))
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
                println!(
                    "start it with: {} up --data {}",
                    super::me(),
                    data.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cairn restore: {e}");
            ExitCode::from(1)
        }
    }
}

/// The `[[stores]]` tables and secret file of the gateway config at `path`;
/// only the stores are checked (the config's data folder is the lost
/// gateway's, not this restore's).
fn from_config(
    path: &std::path::Path,
) -> Result<(Vec<cairn_config::StoreRef>, Option<PathBuf>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --from {}: {e}", path.display()))?;
    let cfg = cairn_config::GatewayConfig::parse(&text, path).map_err(|e| e.to_string())?;
    let problems: Vec<String> = cfg
        .stores
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.problems(i))
        .map(|p| format!("  {p}"))
        .collect();
    if !problems.is_empty() {
        return Err(format!(
            "--from {} has {} problem(s) in its stores:\n{}",
            path.display(),
            problems.len(),
            problems.join("\n")
        ));
    }
    if cfg.stores.is_empty() {
        return Err(format!(
            "--from {} lists no [[stores]]: nothing to restore from",
            path.display()
        ));
    }
    Ok((cfg.stores, cfg.cluster.secret_file))
}
