//! Shipping the metadata to the chunk stores, so the gateway is no single
//! point of failure: a consistent snapshot starts each generation, and the
//! changes committed since are shipped every `[backup] ship_every`. Every
//! object is sealed (AES-256-GCM, a key derived from the cluster secret, its
//! object key as associated data) and written to `[backup] copies` stores on
//! distinct hosts. An object counts as shipped when a majority of `copies`
//! took it: a store that is down or silent never
//! holds shipping up, and misses what was shipped meanwhile until a new
//! snapshot, taken as soon as it answers again, covers it. What a rebuild
//! needs besides the secret (class
//! definitions, store names and addresses, the block key's derivation)
//! is in the metadata itself, so the secret and the stores' addresses
//! suffice: see `restore.rs`.
//!
//! Object keys: [`ObjectKey::snapshot`] and [`ObjectKey::changes`]
//! (`store/keys.rs`).
//! A sealed payload is the unix-nanosecond time it covers up to (8 bytes LE)
//! followed by the bytes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_chunkstore::Secret;
use cairn_config::BackupConfig;
use cairn_metadata::{StoreId, Timestamp};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::work::runner::{Job, Step};

use crate::class::{ClassSpec, LabelRule, Layout, Spread};
use crate::core::Fs;
use crate::error::Error;
use crate::store::crypto::BlockKey;
use crate::store::placement::place;
use crate::store::{ObjectKey, Stores};

/// Metadata shipping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupState {
    /// The generation, 16 hex digits.
    pub generation: String,
    pub changesets: u64,
    pub recovery_point_seconds: Option<f64>,
    pub warning: Option<String>,
    pub stores: Vec<String>,
    pub last_error: Option<String>,
    pub shipped_bytes: u64,
}

/// Snapshot bytes per object.
pub const PART: usize = 32 << 20;

/// How long the slower stores may still take an object once a majority has
/// it; past that they are left to catch up with the next snapshot.
const STRAGGLERS: Duration = Duration::from_secs(2);

/// Where an object must go: `targets` (the online stores placement chose)
/// and how many of them must take it.
struct Targets {
    stores: Vec<StoreId>,
    need: usize,
    /// Copies a generation has when nothing is missing.
    full: usize,
}

/// The key that seals backup objects.
pub fn backup_key(secret: &Secret) -> BlockKey {
    let mut key = [0u8; 32];
    secret.derive(b"cairn metadata backup v1", &mut key);
    BlockKey::from_key(&key)
}

/// Seals `bytes` covering up to `until` for object `key`.
pub fn seal(
    key: &BlockKey,
    object: &str,
    until: Timestamp,
    bytes: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut plain = Vec::with_capacity(8 + bytes.len());
    plain.extend_from_slice(&until.0.to_le_bytes());
    plain.extend_from_slice(bytes);
    key.seal(&plain, object.as_bytes())
        .map_err(|e| Error::Backup {
            object: object.to_owned(),
            why: format!("cannot seal: {e}"),
        })
}

/// Opens a sealed object: the time it covers up to, and its bytes.
pub fn open(key: &BlockKey, object: &str, sealed: &[u8]) -> Result<(Timestamp, Vec<u8>), Error> {
    let bad = |why: String| Error::Backup {
        object: object.to_owned(),
        why,
    };
    let mut plain = key.open(sealed, object.as_bytes()).map_err(|e| {
        bad(format!(
            "does not verify ({e}): damaged, truncated or not ours"
        ))
    })?;
    if plain.len() < 8 {
        return Err(bad("too short".into()));
    }
    let until = i64::from_le_bytes(plain[..8].try_into().unwrap_or([0; 8]));
    plain.drain(..8);
    Ok((Timestamp(until), plain))
}

/// What `cairn status` shows of shipping.
#[derive(Debug, Default, Clone)]
pub struct ShipState {
    pub generation: u64,
    pub changesets: u64,
    /// Every change committed before this is on the stores.
    pub shipped_until: Option<Timestamp>,
    pub stores: Vec<String>,
    pub last_error: Option<String>,
    pub shipped_bytes: u64,
    /// When the shipper was made: before the first ship, lateness counts
    /// from here (a gateway just started is not "behind").
    pub started: Option<Instant>,
}

impl ShipState {
    /// Whether the shipped metadata is more than `warn_after` behind; with
    /// nothing shipped yet, whether the shipper started that long ago.
    fn late(&self, warn_after: Duration) -> bool {
        match self.shipped_until {
            Some(t) => Timestamp::now().0 - t.0 > warn_after.as_nanos() as i64,
            None => self.started.is_none_or(|s| s.elapsed() > warn_after),
        }
    }

    /// What `cairn status` shows of it, warning once the shipped metadata
    /// is more than `warn_after` behind.
    pub fn report(&self, warn_after: Duration) -> BackupState {
        let behind = self
            .shipped_until
            .map(|t| ((Timestamp::now().0 - t.0).max(0) as f64 / 1e9 * 10.0).round() / 10.0);
        let late = self.late(warn_after);
        BackupState {
            generation: format!("{:016x}", self.generation),
            changesets: self.changesets,
            recovery_point_seconds: behind,
            warning: late.then(|| {
                format!(
                    "{}; a lost gateway would lose the changes since{}",
                    behind.map_or("the metadata has not been shipped yet".to_owned(), |b| {
                        format!("the shipped metadata is {b} s behind (more than {warn_after:?})")
                    }),
                    self.last_error
                        .as_ref()
                        .map_or(String::new(), |e| format!(" (last error: {e})"))
                )
            }),
            stores: self.stores.clone(),
            last_error: self.last_error.clone(),
            shipped_bytes: self.shipped_bytes,
        }
    }
}

/// How many stores must take a backup object, and how many it has when
/// nothing is missing, with `expected` stores expected to answer (online or
/// within the grace period): a majority of `copies`, so no object (the
/// first snapshot of a start included) is left on one store, and a gateway
/// started while a store is down still ships; the stores that missed an
/// object catch up with the next snapshot once they answer.
fn copies_needed(copies: usize, expected: usize) -> (usize, usize) {
    let copies = copies.clamp(1, 8);
    let full = copies.min(expected).max(1);
    ((copies / 2 + 1).min(full), full)
}

/// The background worker.
pub struct Shipper {
    fs: Arc<Fs>,
    stores: Arc<Stores>,
    cfg: BackupConfig,
    key: BlockKey,
    scratch: PathBuf,
    state: Arc<Mutex<ShipState>>,
    /// One snapshot or changeset at a time (the loop and [`Shipper::ship_now`]).
    busy: tokio::sync::Mutex<()>,
    /// `[repair] grace`: a store silent for longer no longer counts as one
    /// a backup must wait for.
    grace: Duration,
    /// Some object of the current generation is on fewer stores than it
    /// should be: a snapshot follows as soon as enough answer.
    short: std::sync::atomic::AtomicBool,
}

impl Shipper {
    pub fn new(
        fs: Arc<Fs>,
        stores: Arc<Stores>,
        secret: &Secret,
        cfg: BackupConfig,
        grace: Duration,
        data_dir: &std::path::Path,
    ) -> Self {
        Shipper {
            fs,
            stores,
            cfg,
            key: backup_key(secret),
            scratch: data_dir.join("backup-snapshot.tmp"),
            state: Arc::new(Mutex::new(ShipState {
                started: Some(Instant::now()),
                ..ShipState::default()
            })),
            busy: tokio::sync::Mutex::new(()),
            grace,
            short: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn state(&self) -> Arc<Mutex<ShipState>> {
        self.state.clone()
    }

    fn update(&self, f: impl FnOnce(&mut ShipState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Ships every change committed so far, now (a remote-durable write):
    /// the changes since the last ship, or a snapshot if there is none yet.
    pub async fn ship_now(&self) -> Result<(), Error> {
        let _one = self.busy.lock().await;
        self.ship_locked().await
    }

    /// At a clean stop, after the last change: waits for a ship in
    /// progress, ends the loop `task` (it holds no ship then), and ships
    /// what is left.
    pub async fn ship_last(&self, task: tokio::task::JoinHandle<()>) -> Result<(), Error> {
        let _one = self.busy.lock().await;
        task.abort();
        let _ = task.await;
        self.ship_locked().await
    }

    /// [`Shipper::ship_now`] with `busy` held.
    async fn ship_locked(&self) -> Result<(), Error> {
        let fresh = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generation
            == 0;
        let shipped = if fresh {
            self.snapshot().await
        } else {
            self.ship_changes().await
        };
        if let Err(e) = &shipped {
            // The chain of changes is broken: the next ship starts a new generation.
            self.update(|s| {
                s.last_error = Some(e.to_string());
                s.generation = 0;
            });
        }
        shipped
    }

    /// Stores for the next object: `copies` online stores, on distinct hosts
    /// where there are enough, and how many of them must take it.
    fn targets(&self) -> Result<Targets, Error> {
        let spec = ClassSpec {
            name: "backup".into(),
            layout: Layout::Replicas {
                n: self.cfg.copies.clamp(1, 8) as u8,
            },
            labels: vec![LabelRule::Any],
            spread: Spread::Host,
            strict: false,
            archive: None,
            durability: crate::class::Durability::Local,
        };
        let placed: Vec<StoreId> = place(&spec, &self.stores.placeable(), 0, &[])
            .targets
            .into_iter()
            .flatten()
            .collect();
        // The stores expected back (all but those silent past the grace
        // period), up to `copies`, are what a full object has.
        let views = self.stores.views();
        let expected = views
            .iter()
            .filter(|v| {
                let (reach, life) = self.stores.health(v.id, self.grace);
                reach != crate::store::Reach::Offline && life == cairn_metadata::StoreState::Active
            })
            .count();
        let (need, full) = copies_needed(self.cfg.copies, expected);
        if placed.len() < need {
            return Err(Error::NoTarget {
                class: spec.name,
                why: format!(
                    "{} of the {need} stores a metadata backup goes to are online; waiting",
                    placed.len()
                ),
            });
        }
        Ok(Targets {
            stores: placed,
            need,
            full,
        })
    }

    /// Stores `sealed` on every target at once; succeeds once `need` have
    /// it. The others get [`STRAGGLERS`] more, then are left out (and the
    /// generation counted short).
    async fn put_everywhere(
        &self,
        targets: &Targets,
        key: &str,
        sealed: Vec<u8>,
    ) -> Result<(), Error> {
        let sealed = Arc::new(sealed);
        let mut puts = tokio::task::JoinSet::new();
        for &store in &targets.stores {
            let (stores, key, sealed) = (self.stores.clone(), key.to_owned(), sealed.clone());
            puts.spawn(async move {
                let r = stores.put(store, &key, sealed).await;
                (store, r)
            });
        }
        let mut stored = 0;
        let mut failures = Vec::new();
        let mut cutoff: Option<tokio::time::Instant> = None;
        loop {
            let next = match cutoff {
                Some(at) => match tokio::time::timeout_at(at, puts.join_next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
                None => puts.join_next().await,
            };
            let Some(joined) = next else { break };
            match joined {
                Ok((_, Ok(()))) => stored += 1,
                Ok((store, Err(e))) => {
                    failures.push(format!("{}: {e}", self.stores.name(store)));
                }
                Err(e) => failures.push(e.to_string()),
            }
            if stored >= targets.need && cutoff.is_none() {
                cutoff = Some(tokio::time::Instant::now() + STRAGGLERS);
            }
        }
        let left_out = puts.len();
        puts.abort_all();
        if left_out > 0 {
            failures.push(format!("{left_out} store(s) too slow"));
        }
        self.update(|s| s.shipped_bytes += (sealed.len() * stored) as u64);
        if stored < targets.full {
            let was = self.short.swap(true, std::sync::atomic::Ordering::SeqCst);
            if stored >= targets.need && !was {
                warn!(key, stored, copies = targets.full, missed = %failures.join("; "), "a metadata backup object is on fewer stores than it should be; a snapshot catches them up when they answer");
            }
        }
        if stored < targets.need {
            return Err(Error::Shipping {
                object: key.to_owned(),
                stored,
                need: targets.need,
                why: failures.join("; "),
            });
        }
        Ok(())
    }

    async fn snapshot(&self) -> Result<(), Error> {
        let targets = self.targets()?;
        let taken = Timestamp::now();
        let generation = taken.0 as u64;
        // A new generation: whatever the last one missed no longer matters.
        self.short.store(false, std::sync::atomic::Ordering::SeqCst);
        let path = self.scratch.clone();
        let _ = std::fs::remove_file(&path);
        self.fs.snapshot_metadata(path.clone()).await?;
        let bytes = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path).map_err(|source| Error::Scratch {
                path: path.clone(),
                source,
            });
            let _ = std::fs::remove_file(&path);
            bytes
        })
        .await
        .map_err(crate::core::FsError::from)??;
        let parts: Vec<&[u8]> = bytes.chunks(PART).collect();
        for (i, part) in parts.iter().enumerate() {
            let key = ObjectKey::snapshot(generation, i, parts.len()).to_string();
            let sealed = seal(&self.key, &key, taken, part)?;
            self.put_everywhere(&targets, &key, sealed).await?;
        }
        let names: Vec<String> = targets
            .stores
            .iter()
            .map(|s| self.stores.name(*s))
            .collect();
        info!(generation = %format!("{generation:016x}"), bytes = bytes.len(), stores = ?names, "shipped a metadata snapshot");
        self.update(|s| {
            s.generation = generation;
            s.changesets = 0;
            s.shipped_until = Some(taken);
            s.stores = names;
        });
        self.prune(generation).await;
        Ok(())
    }

    async fn ship_changes(&self) -> Result<(), Error> {
        let taken = Timestamp::now();
        let changes = self.fs.take_changes().await?;
        if changes.is_empty() {
            self.update(|s| s.shipped_until = Some(taken));
            return Ok(());
        }
        let (generation, seq) = {
            let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            (s.generation, s.changesets + 1)
        };
        let targets = self.targets()?;
        let key = ObjectKey::changes(generation, seq).to_string();
        let sealed = seal(&self.key, &key, taken, &changes)?;
        self.put_everywhere(&targets, &key, sealed).await?;
        self.update(|s| {
            s.changesets = seq;
            s.shipped_until = Some(taken);
        });
        Ok(())
    }

    /// Deletes generations older than the newest `keep` from every store
    /// that answers.
    async fn prune(&self, newest: u64) {
        for view in self.stores.views() {
            let store = view.id;
            if !view.online {
                continue;
            }
            let Ok(keys) = self.stores.list_keys(store, Some('m')).await else {
                continue;
            };
            let mut generations: Vec<u64> = keys
                .iter()
                .filter_map(|k| k.parse::<ObjectKey>().ok()?.backup())
                .map(|o| o.generation())
                .filter(|&g| g <= newest)
                .collect();
            generations.sort_unstable();
            generations.dedup();
            let keep = self.cfg.keep.max(1);
            if generations.len() <= keep {
                continue;
            }
            let cut = generations[generations.len() - keep];
            for key in keys {
                if key
                    .parse::<ObjectKey>()
                    .ok()
                    .and_then(|k| k.backup())
                    .is_some_and(|o| o.generation() < cut)
                {
                    if let Err(e) = self.stores.delete(store, &key).await {
                        warn!(store = %view.name, key, cause = %e, "cannot prune an old metadata backup");
                    }
                }
            }
        }
    }
}

/// The shipper as a background [`Job`]: each step takes a snapshot when one
/// is due (none yet, the chain of changes broke, a store that missed objects
/// answers again, or `[backup] snapshot_every` passed) or ships the changes
/// since the last ship, then waits `[backup] ship_every` (at most 1 s after
/// a failure). A failed ship is handled in the step (the next one starts a
/// new generation), so the pacing stays the shipper's own.
pub struct ShipJob {
    shipper: Arc<Shipper>,
    last_snapshot: Option<Instant>,
    warned: bool,
}

impl Shipper {
    /// The job that runs this shipper under [`crate::work::runner::run`].
    /// [`Shipper::ship_last`] ends its task between two steps.
    pub fn job(self: Arc<Self>) -> ShipJob {
        ShipJob {
            shipper: self,
            last_snapshot: None,
            warned: false,
        }
    }
}

impl Job for ShipJob {
    fn name(&self) -> &'static str {
        "ship"
    }

    async fn step(&mut self) -> Result<Step, Error> {
        let this = &*self.shipper;
        let broken = this
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generation
            == 0;
        // A generation some store missed objects of is taken again once
        // every store expected back answers.
        let catch_up = this.short.load(std::sync::atomic::Ordering::SeqCst)
            && this.targets().is_ok_and(|t| t.stores.len() >= t.full);
        if catch_up {
            info!("every backup store answers again; a new snapshot catches up the ones that missed objects");
        }
        let due = broken
            || catch_up
            || self
                .last_snapshot
                .is_none_or(|t| t.elapsed() >= this.cfg.snapshot_every.get());
        // One ship at a time with `ship_now` and `ship_last`, which may
        // end this task only while it does not hold this.
        let one = this.busy.lock().await;
        let result = if due {
            this.snapshot()
                .await
                .map(|()| self.last_snapshot = Some(Instant::now()))
        } else {
            this.ship_changes().await
        };
        drop(one);
        let failed = result.is_err();
        match result {
            Ok(()) => this.update(|s| s.last_error = None),
            Err(e) => {
                let starting = {
                    let s = this.state.lock().unwrap_or_else(|p| p.into_inner());
                    s.shipped_until.is_none() && !s.late(this.cfg.warn_after.get())
                };
                if starting {
                    // Just started: the stores have not all answered a probe yet.
                    info!(cause = %e, "metadata shipping waits for the stores");
                } else {
                    warn!(cause = %e, "shipping the metadata failed; a new snapshot follows");
                }
                // The chain of changes is broken: start a new generation.
                self.last_snapshot = None;
                this.update(|s| {
                    s.last_error = Some(e.to_string());
                    s.generation = 0;
                });
            }
        }
        let late = this
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .late(this.cfg.warn_after.get());
        if late && !self.warned {
            warn!(warn_after = ?this.cfg.warn_after.get(), "the shipped metadata is behind more than [backup] warn_after");
        }
        self.warned = late;
        let pause = this.cfg.ship_every.get();
        // After a failure (no store online yet, say) try again soon.
        let pause = if failed {
            pause.min(Duration::from_secs(1))
        } else {
            pause
        };
        Ok(Step::Throttled(pause))
    }
}

#[cfg(test)]
mod tests {
    use super::copies_needed;

    #[test]
    fn a_majority_of_copies_is_enough_and_gone_stores_are_not_waited_for() {
        // (copies, expected) -> (need, full)
        assert_eq!(copies_needed(3, 3), (2, 3));
        assert_eq!(copies_needed(5, 5), (3, 5));
        assert_eq!(copies_needed(2, 2), (2, 2));
        assert_eq!(copies_needed(1, 3), (1, 1));
        // Stores gone past the grace period are not waited for.
        assert_eq!(copies_needed(3, 1), (1, 1));
        assert_eq!(copies_needed(3, 0), (1, 1));
    }
}
