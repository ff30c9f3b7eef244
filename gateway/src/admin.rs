//! The admin API: JSON lines over a Unix socket in the gateway's data
//! folder (`admin.sock`, mode 0600, so only the gateway's user reaches it).
//! The `cairn` CLI sends one request object per line and reads one reply
//! object: `{"ok": true, ...}` or `{"ok": false, "error": "..."}`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_metadata::{ChunkInfo, ChunkLayout, ClassId, InodeId, StoreId, StoreState, Timestamp};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};

use crate::class::ClassSpec;
use crate::core::{Credentials, Fs, FsError};
use crate::store::placement::{domain_count, StoreView};
use crate::store::Stores;

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

/// The id of the class "default", creating it on first use.
pub async fn default_class_id(fs: &Fs) -> Result<ClassId, FsError> {
    Ok(fs.classes().default_id().await?)
}

/// The classes as tuples (until the admin API asks the catalogue).
fn class_tuples(
    v: &cairn_metadata::View<'_>,
) -> Result<Vec<(ClassId, String, String)>, cairn_metadata::MetaError> {
    Ok(v.classes()?
        .into_iter()
        .map(|r| (r.id, r.name, r.spec))
        .collect())
}

/// The cluster's default class as stored (or the built-in one).
fn default_spec(classes: &[(ClassId, String, String)]) -> ClassSpec {
    classes
        .iter()
        .find(|(_, n, _)| n == "default")
        .and_then(|(_, _, j)| ClassSpec::from_json(j).ok())
        .unwrap_or_else(ClassSpec::default_class)
}

/// What the admin API serves from.
pub struct Admin {
    pub fs: Arc<Fs>,
    pub stores: Option<Arc<Stores>>,
    /// The repair worker's progress (none without stores).
    pub repair: Option<Arc<std::sync::Mutex<crate::repair::Progress>>>,
    /// `[repair] grace`: when a silent store turns from suspect to offline.
    pub grace: std::time::Duration,
    /// Bad objects `fsck_deep` hands to the repairer (none without stores).
    pub condemned: Option<crate::repair::Condemned>,
    /// Metadata shipping (none without stores).
    pub backup: Option<Arc<std::sync::Mutex<crate::ship::ShipState>>>,
    /// `[backup] warn_after`.
    pub backup_warn: std::time::Duration,
    /// Views mounted by `cairn mount`.
    pub mounts: Arc<crate::mounts::Mounts>,
    /// The SMB bridge, when `[smb] listen` is set.
    pub smb: Option<Arc<crate::smb::Bridge>>,
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
            let reply = match serde_json::from_str::<Value>(&line) {
                Ok(req) => match self.handle(&req).await {
                    Ok(mut v) => {
                        v["ok"] = json!(true);
                        v
                    }
                    Err(e) => json!({"ok": false, "error": e}),
                },
                Err(e) => json!({"ok": false, "error": format!("not a JSON request: {e}")}),
            };
            wr.write_all(format!("{reply}\n").as_bytes()).await?;
        }
        Ok(())
    }

    async fn handle(&self, req: &Value) -> Result<Value, String> {
        let s = |k: &str| req.get(k).and_then(Value::as_str).map(str::to_owned);
        let cmd = s("cmd").ok_or("the request has no \"cmd\"")?;
        let fs = &self.fs;
        let err = |e: FsError| e.to_string();
        match cmd.as_str() {
            "status" => {
                let mut v = self.status().await.map_err(err)?;
                v["smb"] = match &self.smb {
                    Some(b) => b.status().await,
                    None => Value::Null,
                };
                v["mounts"] = json!(self.mounts.list());
                Ok(v)
            }
            "mount" | "unmount" => {
                let dir = PathBuf::from(s("dir").ok_or("the request has no \"dir\"")?);
                if cmd == "mount" {
                    self.mounts.mount(fs.clone(), &dir).await
                } else {
                    self.mounts.unmount(&dir).await
                }
                .map_err(|e| e.to_string())
            }
            "smb_share_add" => {
                let bridge = self.smb.as_ref().ok_or(
                    "the SMB bridge is off on this gateway; set [smb] listen in its config (or cairn up --smb ADDR:PORT)",
                )?;
                let name = s("name").ok_or("the request has no \"name\"")?;
                let path = s("path").ok_or("the request has no \"path\"")?;
                bridge
                    .add_share(fs, &name, &path)
                    .await
                    .map_err(|e| e.to_string())
            }
            "store_list" => Ok(json!({ "stores": self.store_json() })),
            "fsck_deep" => {
                let stores = self
                    .stores
                    .as_ref()
                    .ok_or("this gateway has no chunk stores: nothing to check")?;
                let (checked, problems) = crate::fsck::deep_check(fs, stores).await.map_err(err)?;
                let repair = req.get("repair").and_then(Value::as_bool).unwrap_or(false);
                let mut queued = 0;
                if let (true, Some(condemned)) = (repair, &self.condemned) {
                    let mut set = condemned.lock().unwrap_or_else(|e| e.into_inner());
                    for p in problems
                        .iter()
                        .filter(|p| !p["problem"].as_str().unwrap_or("").contains("offline"))
                    {
                        let (Some(store), Some(key)) = (p["store_id"].as_u64(), p["key"].as_str())
                        else {
                            continue;
                        };
                        set.insert((StoreId(store), key.to_owned()));
                        queued += 1;
                    }
                }
                Ok(json!({"checked": checked, "problems": problems, "queued_for_repair": queued}))
            }
            "store_drain" | "store_remove" | "store_undrain" => {
                let name = s("name").ok_or("the request has no store \"name\"")?;
                self.store_life(&cmd, &name).await
            }
            "chunks" => {
                let classes = fs
                    .metadata()
                    .read(class_tuples)
                    .map_err(|e| e.to_string())?;
                let chunks = fs
                    .metadata()
                    .read(|v| v.chunks())
                    .map_err(|e| e.to_string())?;
                let name = |s: StoreId| {
                    self.stores
                        .as_ref()
                        .map_or_else(|| s.to_string(), |st| st.name(s))
                };
                let list: Vec<Value> = chunks
                    .into_iter()
                    .map(|c| {
                        let class = classes.iter().find(|(id, _, _)| *id == c.class).map(|(_, n, _)| n.clone()).unwrap_or_default();
                        let names: Vec<String> = c.placements.iter().map(|&(_, s)| name(s)).collect();
                        let shards: Vec<Value> = c.placements.iter().map(|&(shard, s)| {
                            json!({"shard": shard, "store": name(s), "key": crate::store::ObjectKey::of(c.id, c.layout, shard).to_string()})
                        }).collect();
                        json!({"key": crate::store::ObjectKey::Chunk(c.id).to_string(), "class": class, "layout": layout_name(c.layout),
                               "size": c.size, "logical_bytes": c.logical, "stored_bytes": c.stored_bytes(),
                               "stores": names, "shards": shards})
                    })
                    .collect();
                Ok(json!({ "chunks": list }))
            }
            "cache_drop" => {
                let done = fs.evict(None).await.map_err(err)?;
                if let Some(stores) = &self.stores {
                    stores.drop_hot();
                }
                let left = fs
                    .metadata()
                    .read(|v| v.backlog())
                    .map_err(|e| e.to_string())?;
                Ok(
                    json!({"evicted_bytes": done.bytes, "evicted_slots": done.slots, "undrained_bytes": left.bytes}),
                )
            }
            "class_create" => {
                let name = s("name").ok_or("class_create needs \"name\"")?;
                let replicas = req
                    .get("replicas")
                    .and_then(Value::as_u64)
                    .map(|r| r.min(255) as u8);
                let spec = ClassSpec::parse(
                    &name,
                    replicas,
                    s("ec").as_deref(),
                    s("labels").as_deref(),
                    s("spread").as_deref(),
                    req.get("strict").and_then(Value::as_bool).unwrap_or(false),
                    req.get("loose").and_then(Value::as_bool).unwrap_or(false),
                )
                .map_err(|e| e.to_string())?;
                let spec = spec
                    .with_archive(
                        s("archive_after").as_deref(),
                        s("archive_ec").as_deref(),
                        s("archive_spread").as_deref(),
                        s("archive_labels").as_deref(),
                    )
                    .and_then(|spec| spec.with_durability(s("durability").as_deref()))
                    .map_err(|e| e.to_string())?;
                let exists = fs
                    .metadata()
                    .read(class_tuples)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .any(|(_, n, _)| *n == name);
                if exists {
                    return Err(format!(
                        "class {name:?} exists; delete it first or pick another name"
                    ));
                }
                let views = self
                    .stores
                    .as_ref()
                    .map(|s| s.placeable())
                    .unwrap_or_default();
                let have = domain_count(&spec, &views);
                let (json, n) = (spec.to_json(), name.clone());
                fs.metadata()
                    .write(true, move |tx| tx.upsert_class(&n, &json, Timestamp::now()))
                    .await
                    .map_err(|e: cairn_metadata::MetaError| e.to_string())?;
                let default = default_spec(
                    &fs.metadata()
                        .read(class_tuples)
                        .map_err(|e| e.to_string())?,
                );
                let geometry = |spec: &ClassSpec, have: usize| {
                    format!(
                        "needs {} {} domains, the cluster has {have}: {}",
                        spec.domains_needed(),
                        spec.spread,
                        crate::outlook::describe(spec, &default, &views)
                    )
                };
                let mut note = geometry(&spec, have);
                let mut archive = Value::Null;
                if let Some(archived) = spec.archived() {
                    let have = domain_count(&archived, &views);
                    note.push_str(&format!("\narchived chunks {}", geometry(&archived, have)));
                    archive = json!({"domains_needed": archived.domains_needed(), "domains_available": have});
                }
                Ok(json!({
                    "class": name, "describe": spec.describe(),
                    "domains_needed": spec.domains_needed(), "domains_available": have,
                    "archive": archive, "note": note,
                }))
            }
            "class_list" => {
                let classes = fs
                    .metadata()
                    .read(class_tuples)
                    .map_err(|e| e.to_string())?;
                let list: Vec<Value> = classes
                    .into_iter()
                    .map(|(_, name, j)| {
                        let d = ClassSpec::from_json(&j)
                            .map(|s| s.describe())
                            .unwrap_or_else(|e| e.to_string());
                        json!({"name": name, "describe": d})
                    })
                    .collect();
                Ok(json!({ "classes": list }))
            }
            "class_show" => {
                let name = s("name").ok_or("class_show needs \"name\"")?;
                let classes = fs
                    .metadata()
                    .read(class_tuples)
                    .map_err(|e| e.to_string())?;
                let (_, _, j) = classes
                    .into_iter()
                    .find(|(_, n, _)| *n == name)
                    .ok_or(format!("no class named {name:?}"))?;
                let spec = ClassSpec::from_json(&j).map_err(|e| e.to_string())?;
                Ok(
                    json!({"name": name, "describe": spec.describe(), "spec": serde_json::from_str::<Value>(&j).unwrap_or(Value::Null)}),
                )
            }
            "class_delete" => {
                let name = s("name").ok_or("class_delete needs \"name\"")?;
                if name == "default" {
                    return Err("the default class cannot be deleted".into());
                }
                let n = name.clone();
                fs.metadata()
                    .write(true, move |tx| tx.delete_class(&n))
                    .await
                    .map_err(|e: cairn_metadata::MetaError| e.to_string())?
                    .map_err(|users| format!("class {name:?} is still set on {users} inode(s) or used by chunks; set another class there first"))?;
                Ok(json!({"deleted": name}))
            }
            "class_set" | "class_get" => {
                let path = s("path").ok_or("needs \"path\"")?;
                let inode = self
                    .resolve(&path)
                    .await
                    .map_err(|e| format!("{path}: {e}"))?;
                let classes = fs
                    .metadata()
                    .read(class_tuples)
                    .map_err(|e| e.to_string())?;
                if cmd == "class_get" {
                    let name = match inode.class {
                        Some(c) => classes
                            .iter()
                            .find(|(id, _, _)| *id == c)
                            .map(|(_, n, _)| n.clone())
                            .unwrap_or_default(),
                        None => "default".to_owned(),
                    };
                    return Ok(json!({"path": path, "class": name}));
                }
                let name = s("name").ok_or("class_set needs \"name\"")?;
                let (id, _, _) = classes
                    .iter()
                    .find(|(_, n, _)| *n == name)
                    .ok_or(format!("no class named {name:?}; see `cairn class list`"))?;
                let id = *id;
                let target = inode.id;
                fs.metadata()
                    .write(true, move |tx| {
                        let mut i = tx.inode(target)?.ok_or(FsError::Stale(target))?;
                        i.class = Some(id);
                        tx.update_inode(&i)?;
                        Ok::<_, FsError>(())
                    })
                    .await
                    .map_err(err)?;
                // Everything below follows in the background.
                let fs = self.fs.clone();
                let (p, n) = (path.clone(), name.clone());
                tokio::spawn(async move {
                    match fs.set_class_tree(target, id).await {
                        Ok(done) => {
                            tracing::info!(path = %p, class = %n, inodes = done.inodes, slots = done.slots, "class set below the path; changed data re-lays as it drains")
                        }
                        Err(e) => {
                            warn!(path = %p, class = %n, cause = %e, "setting the class below the path stopped")
                        }
                    }
                });
                let spec = classes
                    .iter()
                    .find(|(c, _, _)| *c == id)
                    .and_then(|(_, _, j)| ClassSpec::from_json(j).ok())
                    .unwrap_or_else(ClassSpec::default_class);
                let views = self
                    .stores
                    .as_ref()
                    .map(|s| s.placeable())
                    .unwrap_or_default();
                let outlook = crate::outlook::describe(&spec, &default_spec(&classes), &views);
                Ok(json!({"path": path, "class": name, "outlook": outlook,
                           "note": format!("new files below inherit it; existing files re-lay in the background (watch `cairn status`); class {name}: {outlook}")}))
            }
            other => Err(format!("unknown command {other:?}")),
        }
    }

    async fn resolve(&self, path: &str) -> Result<cairn_metadata::Inode, FsError> {
        let root = Credentials::root();
        let mut inode = self.fs.getattr(InodeId::ROOT).await?;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            inode = self.fs.lookup(&root, inode.id, part.as_bytes()).await?;
        }
        Ok(inode)
    }

    fn store_json(&self) -> Vec<Value> {
        let Some(stores) = &self.stores else {
            return Vec::new();
        };
        stores
            .views()
            .into_iter()
            .map(|v| {
                let fill = if v.capacity > 0 { v.used as f64 * 100.0 / v.capacity as f64 } else { 0.0 };
                let (reach, life) = stores.health(v.id, self.grace);
                let state = match life {
                    StoreState::Active => reach.name(),
                    StoreState::Draining => "draining",
                    StoreState::Removed => "removed",
                };
                json!({"id": v.id.0, "name": v.name, "online": v.online, "state": state, "zone": v.zone, "host": v.host,
                       "labels": v.labels, "capacity": v.capacity, "used": v.used,
                       "free": v.capacity.saturating_sub(v.used), "fill_percent": (fill * 10.0).round() / 10.0})
            })
            .collect()
    }

    async fn status(&self) -> Result<Value, FsError> {
        let meta = self.fs.metadata();
        let backlog = meta.read(|v| v.backlog())?;
        let now = Timestamp::now().0;
        let oldest = backlog
            .oldest
            .map(|t| ((now - t.0).max(0) as f64 / 1e9 * 10.0).round() / 10.0);
        let classes = meta.read(class_tuples)?;
        let chunks = meta.read(|v| v.chunks())?;
        let views = self.stores.as_ref().map(|s| s.views()).unwrap_or_default();
        let placeable = self
            .stores
            .as_ref()
            .map(|s| s.placeable())
            .unwrap_or_default();
        let default_spec = default_spec(&classes);
        let mut per_class = Vec::new();
        for (id, name, j) in &classes {
            let spec = ClassSpec::from_json(j).unwrap_or_else(|_| ClassSpec::default_class());
            let archived = spec.archived();
            let mut count = [0u64; 5];
            let (mut logical, mut stored) = (0u64, 0u64);
            for c in chunks.iter().filter(|c| c.class == *id) {
                let rules = match (c.layout, &archived) {
                    (ChunkLayout::Ec { .. }, Some(a)) => a,
                    _ => &spec,
                };
                count[chunk_health(c, rules, &views) as usize] += 1;
                logical += c.logical;
                stored += c.stored_bytes();
            }
            let ratio = if logical > 0 {
                (stored as f64 / logical as f64 * 1000.0).round() / 1000.0
            } else {
                0.0
            };
            // Why chunks may be at risk or not placed at all.
            let mut short = Vec::new();
            for rules in std::iter::once(&spec).chain(archived.as_ref()) {
                if crate::outlook::outlook(rules, &placeable) != crate::outlook::Outlook::Met
                    || crate::outlook::weaker_than_default(rules, &default_spec, &placeable)
                        .is_some()
                {
                    short.push(format!(
                        "{} needs {} {} domains, {} are online with room: {}",
                        rules.describe(),
                        rules.domains_needed(),
                        rules.spread,
                        domain_count(rules, &placeable),
                        crate::outlook::describe(rules, &default_spec, &placeable)
                    ));
                }
            }
            per_class.push(json!({"name": name, "describe": spec.describe(),
                "domains_needed": spec.domains_needed(), "domains_available": domain_count(&spec, &placeable),
                "why": if short.is_empty() { Value::Null } else { Value::from(short.join("; ")) },
                "chunks": {"healthy": count[Health::Healthy as usize], "undergoal": count[Health::Undergoal as usize],
                           "at_risk": count[Health::AtRisk as usize], "missing": count[Health::Missing as usize],
                           "endangered": count[Health::Endangered as usize]},
                "logical_bytes": logical, "stored_bytes": stored, "stored_ratio": ratio}));
        }
        let cache = self.fs.cache();
        let (inodes, logical) = meta.read(|v| v.usage())?;
        Ok(json!({
            "backlog_bytes": backlog.bytes,
            "backlog": {"bytes": backlog.bytes, "files": backlog.files, "slots": backlog.slots, "oldest_seconds": oldest},
            "stores": self.store_json(),
            "classes": per_class,
            "repair": self.repair.as_ref().map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).to_json()),
            "backup": self.backup.as_ref().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).to_json(self.backup_warn)),
            "cache": {"used_bytes": cache.used_bytes(), "max_bytes": cache.max_bytes()},
            "files": {"inodes": inodes, "logical_bytes": logical},
            "chunks": chunks.len(),
        }))
    }
}

impl Admin {
    /// `cairn store drain|undrain|remove NAME`.
    async fn store_life(&self, cmd: &str, name: &str) -> Result<Value, String> {
        let stores = self
            .stores
            .as_ref()
            .ok_or("this gateway has no chunk stores")?;
        let meta = self.fs.metadata();
        let known = meta
            .read(|v| v.stores())
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|(_, n, _)| n == name);
        let Some((id, _, _)) = known else {
            return Err(format!(
                "no store named {name:?}; `cairn store list` shows the stores"
            ));
        };
        let state = match cmd {
            "store_drain" => StoreState::Draining,
            "store_undrain" => StoreState::Active,
            _ => {
                let held = meta
                    .read(|v| v.placements_on(id))
                    .map_err(|e| e.to_string())?;
                if held > 0 {
                    return Err(format!(
                        "store {name:?} still holds {held} copies or shards the metadata needs; \
                         `cairn store drain {name}` first and wait until `cairn status` shows it empty"
                    ));
                }
                StoreState::Removed
            }
        };
        let n = name.to_owned();
        meta.write(true, move |tx| tx.set_store_state(&n, state))
            .await
            .map_err(|e| e.to_string())?;
        stores.set_life(id, state);
        let held = meta
            .read(|v| v.placements_on(id))
            .map_err(|e| e.to_string())?;
        Ok(json!({"store": name, "state": format!("{state:?}").to_lowercase(), "holds": held}))
    }
}

/// How a chunk stands against its class, from the stores online now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Healthy = 0,
    /// Fewer copies or shards readable than the class asks.
    Undergoal = 1,
    /// All there, but some share a spread domain.
    AtRisk = 2,
    /// Not readable: no replica, or fewer than `k` shards.
    Missing = 3,
    /// Readable, but one more failure loses data: one replica left, or
    /// exactly `k` shards (of a class that wants more).
    Endangered = 4,
}

fn chunk_health(c: &ChunkInfo, spec: &ClassSpec, views: &[StoreView]) -> Health {
    let live: Vec<&StoreView> = c
        .placements
        .iter()
        .filter_map(|&(_, s)| views.iter().find(|v| v.id == s && v.online))
        .collect();
    let mut domains: Vec<_> = live.iter().map(|v| v.domain(spec.spread)).collect();
    domains.sort_unstable();
    domains.dedup();
    let (readable, wanted) = match c.layout {
        ChunkLayout::Replicas => (1, spec.copies()),
        ChunkLayout::Ec { k, m, .. } => (k as usize, (k + m) as usize),
    };
    if live.len() < readable {
        Health::Missing
    } else if live.len() == readable && wanted > readable {
        Health::Endangered
    } else if live.len() < wanted {
        Health::Undergoal
    } else if domains.len() < wanted {
        Health::AtRisk
    } else {
        Health::Healthy
    }
}

/// `replicas` or `ec K+M`.
fn layout_name(layout: ChunkLayout) -> String {
    match layout {
        ChunkLayout::Replicas => "replicas".to_owned(),
        ChunkLayout::Ec { k, m, .. } => format!("ec {k}+{m}"),
    }
}

/// Sends one request to the gateway at `data_dir` and returns its reply.
pub async fn request(data_dir: &Path, req: &Value) -> Result<Value, String> {
    let path = socket_path(data_dir);
    let stream = UnixStream::connect(&path).await.map_err(|e| {
        format!("cannot reach the gateway's admin socket {}: {e}; is the gateway running (cairn up / cairn gateway)?", path.display())
    })?;
    let (rd, mut wr) = stream.into_split();
    wr.write_all(format!("{req}\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(rd).lines();
    let line = lines
        .next_line()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the gateway closed the admin connection without answering")?;
    let reply: Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
    if reply.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(reply)
    } else {
        Err(reply
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
            .to_owned())
    }
}

/// Logs an admin socket failure without stopping the gateway.
pub fn log_failure(e: &std::io::Error) {
    warn!(cause = %e, "the admin socket stopped; cairn CLI commands cannot reach this gateway");
}
