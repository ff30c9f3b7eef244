//! `cairn restore`: rebuilds a gateway's metadata from the backup objects on
//! the chunk stores (see `ship.rs`), given nothing but the stores (daemon
//! addresses, or `[[stores]]` tables naming buckets) and the cluster secret. It takes the newest generation whose snapshot
//! verifies, replays its changes in order up to the first one missing or
//! damaged, says what point in time that is and what is lost, and leaves a
//! gateway ready to start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use cairn_chunkstore::Secret;
use cairn_config::{GatewayConfig, StoreKind, StoreRef};
use cairn_metadata::{Metadata, Timestamp};

use crate::error::Error;
use crate::store::keys::{BackupObject, ObjectKey};
use crate::store::noise::NoiseStore;
use crate::store::s3::{S3Settings, S3Store};
use crate::store::ChunkStore;
use crate::work::ship::{backup_key, open};

/// Where to restore from and to.
pub struct RestorePlan {
    pub stores: Vec<StoreRef>,
    pub secret_file: PathBuf,
    /// The gateway's data folder: the metadata goes to `<data>/meta.db`.
    pub data_dir: PathBuf,
    /// Write a gateway config at this path listing the restored stores.
    pub write_config: Option<PathBuf>,
}

/// One backup object and the stores holding it.
struct Found {
    object: BackupObject,
    key: String,
    holders: Vec<usize>,
}

/// What the stores hold, by generation (newest last).
struct Inventory {
    clients: Vec<Option<Arc<dyn ChunkStore>>>,
    by_generation: BTreeMap<u64, Vec<Found>>,
    unreachable: Vec<String>,
}

fn when(t: Timestamp) -> String {
    let secs = t.0.div_euclid(1_000_000_000);
    let nanos = t.0.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        nanos / 1_000_000
    )
}

/// A client for one store: a `cairn chunkstore` daemon or a bucket.
pub fn open_store(store: &StoreRef, secret: &Secret) -> Result<Arc<dyn ChunkStore>, String> {
    match store.kind {
        StoreKind::Cairn => Ok(Arc::new(NoiseStore::new(&store.address, secret.clone()))),
        StoreKind::S3 => {
            let settings = S3Settings::from_config(store, secret)?;
            Ok(Arc::new(S3Store::new(settings).map_err(|e| e.to_string())?))
        }
    }
}

async fn inventory(stores: &[StoreRef], secret: &Secret) -> Inventory {
    let mut clients = Vec::new();
    let mut unreachable = Vec::new();
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, store) in stores.iter().enumerate() {
        let addr = store.location();
        let client = match open_store(store, secret) {
            Ok(c) => c,
            Err(e) => {
                unreachable.push(format!("{addr}: {e}"));
                clients.push(None);
                continue;
            }
        };
        let mut after = String::from("m");
        'pages: loop {
            match client.list(Some(&after), 1000).await {
                Ok(page) => {
                    let full = page.len() == 1000;
                    for e in page {
                        if !e.key.starts_with('m') {
                            break 'pages;
                        }
                        after = e.key.clone();
                        by_key.entry(e.key).or_default().push(i);
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    unreachable.push(format!("{addr}: listing failed: {e}"));
                    break;
                }
            }
        }
        clients.push(Some(client));
    }
    let mut by_generation: BTreeMap<u64, Vec<Found>> = BTreeMap::new();
    for (key, holders) in by_key {
        if let Some(object) = key.parse::<ObjectKey>().ok().and_then(|k| k.backup()) {
            by_generation
                .entry(object.generation())
                .or_default()
                .push(Found {
                    object,
                    key,
                    holders,
                });
        }
    }
    Inventory {
        clients,
        by_generation,
        unreachable,
    }
}

impl Inventory {
    /// The object from the first holder whose copy verifies.
    async fn fetch(
        &mut self,
        key: &crate::store::crypto::BlockKey,
        found: &Found,
    ) -> Result<(Timestamp, Vec<u8>), Error> {
        let mut why = Vec::new();
        for &i in &found.holders {
            let Some(client) = self.clients[i].as_ref() else {
                continue;
            };
            let len = match client.stat(&found.key).await {
                Ok(st) => st.len,
                Err(e) => {
                    why.push(e.to_string());
                    continue;
                }
            };
            match client.get(&found.key, 0, len, None).await {
                Ok(sealed) => match open(key, &found.key, &sealed) {
                    Ok(v) => return Ok(v),
                    Err(e) => why.push(format!("store #{}: {e}", i + 1)),
                },
                Err(e) => why.push(format!("store #{}: {e}", i + 1)),
            }
        }
        Err(Error::Backup {
            object: found.key.clone(),
            why: if why.is_empty() {
                "no store holds it".into()
            } else {
                why.join("; ")
            },
        })
    }
}

/// `cairn restore --list`: the generations the stores hold.
pub async fn list(stores: &[StoreRef], secret_file: &Path) -> Result<String, Error> {
    let secret = load_secret(secret_file)?;
    let inv = inventory(stores, &secret).await;
    let mut out = String::new();
    for u in &inv.unreachable {
        out.push_str(&format!("unreachable: {u}\n"));
    }
    if inv.by_generation.is_empty() {
        out.push_str("no metadata backup on these stores\n");
    }
    for (generation, found) in inv.by_generation.iter().rev() {
        let parts = found
            .iter()
            .filter(|f| matches!(f.object, BackupObject::Part { .. }))
            .count();
        let want = found
            .iter()
            .find_map(|f| match f.object {
                BackupObject::Part { parts, .. } => Some(parts),
                _ => None,
            })
            .unwrap_or(0);
        let changes = found.len() - parts;
        let copies = found.iter().map(|f| f.holders.len()).min().unwrap_or(0);
        out.push_str(&format!(
            "generation {generation:016x}  started {}  snapshot parts {parts}/{want}  changesets {changes}  copies >= {copies}\n",
            when(Timestamp(*generation as i64))
        ));
    }
    Ok(out)
}

/// The cluster secret, or why it cannot be read.
fn load_secret(path: &Path) -> Result<Secret, Error> {
    Secret::load(path).map_err(|e| Error::Secret(Box::new(e)))
}

/// The metadata setting that holds the gateway's config.
pub const CONFIG_SETTING: &str = "gateway.toml";

/// The config a restored gateway starts from: the lost gateway's own, as
/// shipped with its metadata (listen address, allowed networks, squash,
/// cache, SMB…), with this restore's data folder and secret file as
/// absolute paths. The stores are the lost gateway's, at the addresses its
/// metadata knew. Without a shipped config (a gateway older than that),
/// only the data folder, the secret and the stores are written.
fn restored_config(
    plan: &RestorePlan,
    shipped: Option<&str>,
    stores: &[(cairn_metadata::StoreId, String, String)],
) -> Result<String, Error> {
    let absolute = |p: &std::path::Path| {
        std::path::absolute(p).map_err(|source| Error::File {
            what: "make absolute",
            path: p.to_owned(),
            source,
        })
    };
    let data_dir = absolute(&plan.data_dir)?;
    let secret_file = absolute(&plan.secret_file)?;
    if let Some(mut cfg) = shipped.and_then(|t| toml::from_str::<GatewayConfig>(t).ok()) {
        cfg.data_dir = data_dir;
        cfg.cluster.secret_file = Some(secret_file);
        for store in cfg
            .stores
            .iter_mut()
            .filter(|s| s.kind == cairn_config::StoreKind::Cairn)
        {
            if let Some((_, _, address)) = stores.iter().find(|(_, n, _)| *n == store.name) {
                store.address.clone_from(address);
            }
        }
        // A store this restore was given by its table (a bucket's keys may
        // sit elsewhere on this machine) is written as given.
        for store in &mut cfg.stores {
            if let Some(given) = plan.stores.iter().find(|g| g.name == store.name) {
                store.clone_from(given);
            }
        }
        let body = toml::to_string(&cfg)?;
        return Ok(format!(
            "# Written by `cairn restore` from the lost gateway's own config.\n{body}"
        ));
    }
    let mut cfg = GatewayConfig::with_defaults(data_dir, cairn_config::DEFAULT_LISTEN);
    cfg.cluster.secret_file = Some(secret_file);
    cfg.stores = stores
        .iter()
        .map(|(_, name, address)| {
            plan.stores
                .iter()
                .find(|g| g.name == *name)
                .cloned()
                .unwrap_or_else(|| StoreRef::cairn(name, address))
        })
        .collect();
    let body = toml::to_string(&cfg)?;
    Ok(format!("# Written by `cairn restore`.\n{body}"))
}

/// Runs a restore; returns the report to print.
pub async fn restore(plan: &RestorePlan) -> Result<String, Error> {
    let db = plan.data_dir.join("meta.db");
    if db.exists() {
        return Err(Error::NotEmpty { db });
    }
    std::fs::create_dir_all(&plan.data_dir).map_err(|source| Error::File {
        what: "create",
        path: plan.data_dir.clone(),
        source,
    })?;
    let secret = load_secret(&plan.secret_file)?;
    let key = backup_key(&secret);
    let mut inv = inventory(&plan.stores, &secret).await;
    let mut report = String::new();
    for u in &inv.unreachable {
        report.push_str(&format!("store unreachable (skipped): {u}\n"));
    }
    let generations: Vec<u64> = inv.by_generation.keys().rev().copied().collect();
    if generations.is_empty() {
        return Err(Error::NothingRestored {
            report,
            why: format!(
                "no metadata backup found on {} store(s): is this the right cluster secret and are the stores up?",
                plan.stores.len()
            ),
        });
    }
    for generation in generations {
        let found = inv.by_generation.remove(&generation).unwrap_or_default();
        let mut parts: Vec<&Found> = found
            .iter()
            .filter(|f| matches!(f.object, BackupObject::Part { .. }))
            .collect();
        parts.sort_by_key(|f| f.object);
        let want = parts.first().map_or(0, |f| match f.object {
            BackupObject::Part { parts, .. } => parts,
            _ => 0,
        });
        let label = format!(
            "generation {generation:016x} ({})",
            when(Timestamp(generation as i64))
        );
        if want == 0 || parts.len() != want {
            report.push_str(&format!(
                "skipped {label}: its snapshot is incomplete ({} of {want} parts)\n",
                parts.len()
            ));
            continue;
        }
        let changesets = found
            .iter()
            .filter(|f| matches!(f.object, BackupObject::Changes { .. }))
            .count();
        let mut progress = crate::progress::Progress::new(
            &format!("fetching {label}: metadata objects"),
            (parts.len() + changesets) as u64,
        );
        let mut snapshot = Vec::new();
        let mut taken = Timestamp(0);
        let mut bad = None;
        for f in &parts {
            match inv.fetch(&key, f).await {
                Ok((t, bytes)) => {
                    taken = t;
                    progress.step(bytes.len() as u64);
                    snapshot.extend_from_slice(&bytes);
                }
                Err(e) => {
                    bad = Some(format!("snapshot {e}"));
                    break;
                }
            }
        }
        if let Some(why) = bad {
            progress.finish();
            report.push_str(&format!("skipped {label}: {why}\n"));
            continue;
        }
        // The changes, in order, up to the first missing or damaged one.
        let mut changes: Vec<&Found> = found
            .iter()
            .filter(|f| matches!(f.object, BackupObject::Changes { .. }))
            .collect();
        changes.sort_by_key(|f| f.object);
        let mut sets = Vec::new();
        let mut until = taken;
        let mut stop = None;
        for (i, f) in changes.iter().enumerate() {
            let BackupObject::Changes { seq, .. } = f.object else {
                continue;
            };
            if seq != i as u64 + 1 {
                stop = Some(format!("changeset {} is missing", i + 1));
                break;
            }
            match inv.fetch(&key, f).await {
                Ok((t, bytes)) => {
                    progress.step(bytes.len() as u64);
                    sets.push((t, bytes));
                }
                Err(e) => {
                    stop = Some(format!("changeset {seq}: {e}"));
                    break;
                }
            }
        }
        progress.finish();
        // Apply; a changeset that does not apply ends the chain there.
        let mut applied = sets.len();
        // Built in a temp file beside meta.db (removed if anything fails),
        // moved into place durably once the changes apply.
        let restored = loop {
            let mut temp = cairn_config::TempFile::create(&db)?;
            temp.write_all(&snapshot)?;
            let bytes: Vec<Vec<u8>> = sets[..applied].iter().map(|(_, b)| b.clone()).collect();
            match cairn_metadata::restore(temp.temp_path(), &bytes) {
                Ok(()) => break temp,
                Err((i, e)) => {
                    stop = Some(format!("changeset {} does not apply: {e}", i + 1));
                    applied = i;
                }
            }
        };
        if let Some((t, _)) = applied.checked_sub(1).and_then(|i| sets.get(i)) {
            until = *t;
        }
        restored.commit()?;
        // The new gateway has no cache: slots being re-laid read from their
        // blocks again, and what was never drained is marked lost (reads of
        // it fail) and named.
        let meta = Metadata::open(&db)?;
        let lost = meta
            .write(true, |tx| tx.all_cache_lost())
            .await
            .map_err(Error::from)?;
        let mut lost_paths = Vec::new();
        for &id in &lost {
            let path = meta.read(|v| v.path_of(id))?;
            lost_paths.push(path.unwrap_or_else(|| format!("(inode {id}, no name)")));
        }
        let stores = meta.read(|v| v.stores())?;
        let shipped_config = meta.read(|v| v.setting(CONFIG_SETTING))?;
        meta.close();
        report.push_str(&format!(
            "restored {label}: snapshot + {applied} of {} changesets; the metadata is as of {}\n",
            changes.len(),
            when(until)
        ));
        if let Some(why) = stop {
            report.push_str(&format!("  later changes are lost: {why}\n"));
        }
        if !lost_paths.is_empty() {
            report.push_str(&format!(
                "  lost: {} file(s) had data not yet drained to the stores; reading those ranges fails with an I/O error until they are overwritten or the files deleted:\n",
                lost_paths.len()
            ));
            for path in &lost_paths {
                report.push_str(&format!("    {path}\n"));
            }
        } else {
            report.push_str("  every file's data had been drained: nothing else is lost\n");
        }
        if let Some(path) = &plan.write_config {
            let text = restored_config(plan, shipped_config.as_deref(), &stores)?;
            cairn_config::write_durable(path, text.as_bytes())?;
            report.push_str(&format!(
                "wrote {}; start the gateway with: cairn gateway --config {}\n",
                path.display(),
                path.display()
            ));
        }
        return Ok(report);
    }
    Err(Error::NothingRestored {
        report,
        why: "no generation could be restored".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_a_shipped_one_reads_back_with_the_stores() {
        let plan = RestorePlan {
            stores: Vec::new(),
            secret_file: PathBuf::from("/srv/a \"quoted\" \\ folder/cluster.secret"),
            data_dir: PathBuf::from("/srv/gw"),
            write_config: None,
        };
        let stores = vec![
            (
                cairn_metadata::StoreId(1),
                "s1".to_owned(),
                "127.0.0.1:7001".to_owned(),
            ),
            (
                cairn_metadata::StoreId(2),
                "s\"2".to_owned(),
                "[::1]:7002".to_owned(),
            ),
        ];
        let text = restored_config(&plan, None, &stores).unwrap();
        assert!(
            text.starts_with("# Written by `cairn restore`.\n"),
            "{text}"
        );
        let cfg = GatewayConfig::parse(&text, Path::new("gateway.toml")).unwrap();
        assert_eq!(cfg.data_dir, plan.data_dir);
        assert_eq!(cfg.cluster.secret_file.as_ref(), Some(&plan.secret_file));
        let got: Vec<(&str, &str)> = cfg
            .stores
            .iter()
            .map(|s| (s.name.as_str(), s.address.as_str()))
            .collect();
        assert_eq!(got, vec![("s1", "127.0.0.1:7001"), ("s\"2", "[::1]:7002")]);
    }
}
