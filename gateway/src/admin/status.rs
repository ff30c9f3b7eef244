//! `cairn status` and `cairn store list`: the stores, the backlog, each
//! class's chunks by standing, the workers' progress, as typed replies.

use cairn_metadata::{StoreState, Timestamp};

use super::proto::{
    AdminError, Backlog, CacheUse, ChunkCounts, ClassHealth, Files, Status, StoreList, StoreRow,
    StoreStanding,
};
use super::Admin;
use crate::health::{assess, Fleet, Standing};
use crate::store::placement::domain_count;
use crate::store::{ObjectKey, Reach};

impl Admin {
    /// `cairn store list`.
    pub(super) fn store_list(&self) -> StoreList {
        StoreList {
            stores: self.store_rows(),
        }
    }

    pub(super) fn store_rows(&self) -> Vec<StoreRow> {
        let Some(stores) = &self.stores else {
            return Vec::new();
        };
        stores
            .views()
            .into_iter()
            .map(|v| {
                let fill = if v.capacity > 0 {
                    v.used as f64 * 100.0 / v.capacity as f64
                } else {
                    0.0
                };
                let (reach, life) = stores.health(v.id, self.grace);
                let link = stores.link(v.id);
                let round = |x: f64| (x * 100.0).round() / 100.0;
                let state = match (life, reach) {
                    (StoreState::Active, Reach::Online) => StoreStanding::Online,
                    (StoreState::Active, Reach::Suspect) => StoreStanding::Suspect,
                    (StoreState::Active, Reach::Offline) => StoreStanding::Offline,
                    (StoreState::Draining, _) => StoreStanding::Draining,
                    (StoreState::Removed, _) => StoreStanding::Removed,
                };
                StoreRow {
                    id: v.id.0,
                    name: v.name,
                    online: v.online,
                    state,
                    zone: v.zone,
                    host: v.host,
                    labels: v.labels,
                    capacity: v.capacity,
                    used: v.used,
                    free: v.capacity.saturating_sub(v.used),
                    fill_percent: (fill * 10.0).round() / 10.0,
                    stored: stores.stored(v.id),
                    rtt_ms: link.rtt.map(|d| round(d.as_secs_f64() * 1e3)),
                    up_mb_s: link.up.map(|r| round(r / 1e6)),
                    down_mb_s: link.down.map(|r| round(r / 1e6)),
                    queued_bytes: link.queued,
                    idle_seconds: link.idle.map(|d| round(d.as_secs_f64())),
                    why: stores.cause(v.id),
                }
            })
            .collect()
    }

    /// `cairn status`.
    pub(crate) async fn status(&self) -> Result<Status, AdminError> {
        let backlog = self.fs.backlog().await?;
        let now = Timestamp::now().0;
        let oldest = backlog
            .oldest
            .map(|t| ((now - t.0).max(0) as f64 / 1e9 * 10.0).round() / 10.0);
        let classes = self.fs.classes().snapshot()?;
        let chunks = self.fs.chunks().await?;
        let fleet = self
            .stores
            .as_ref()
            .map(|s| Fleet::of(s, self.grace))
            .unwrap_or_default();
        let condemned = self
            .condemned
            .as_ref()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default();
        let placeable = self
            .stores
            .as_ref()
            .map(|s| s.placeable())
            .unwrap_or_default();
        let default_spec = classes.default_spec()?;
        let mut per_class = Vec::new();
        for class in classes.list() {
            // A class whose spec does not parse is shown with why, not hidden.
            let spec = match class.spec() {
                Ok(spec) => spec,
                Err(e) => {
                    per_class.push(ClassHealth {
                        name: class.name.clone(),
                        describe: String::new(),
                        domains_needed: 0,
                        domains_available: 0,
                        why: Some(e.to_string()),
                        chunks: ChunkCounts::default(),
                        logical_bytes: 0,
                        stored_bytes: 0,
                        stored_ratio: 0.0,
                    });
                    continue;
                }
            };
            let archived = class.archived().cloned();
            let mut count = ChunkCounts::default();
            let (mut logical, mut stored) = (0u64, 0u64);
            for c in chunks.iter().filter(|c| c.class == class.id) {
                let rules = class.effective(c.layout)?;
                let standing = assess(c, &rules, &fleet, |shard, store| {
                    // No key is built per placement unless the audit found bad objects.
                    !condemned.is_empty()
                        && condemned
                            .contains(&(store, ObjectKey::of(c.id, c.layout, shard).to_string()))
                });
                *match standing.standing {
                    Standing::Healthy => &mut count.healthy,
                    Standing::Undergoal => &mut count.undergoal,
                    Standing::AtRisk => &mut count.at_risk,
                    Standing::Missing => &mut count.missing,
                    Standing::Endangered => &mut count.endangered,
                } += 1;
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
                let rules: &crate::class::ClassSpec = rules;
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
            per_class.push(ClassHealth {
                name: class.name.clone(),
                describe: spec.describe(),
                domains_needed: spec.domains_needed() as u64,
                domains_available: domain_count(&spec, &placeable) as u64,
                why: (!short.is_empty()).then(|| short.join("; ")),
                chunks: count,
                logical_bytes: logical,
                stored_bytes: stored,
                stored_ratio: ratio,
            });
        }
        let cache = self.fs.cache();
        let (inodes, logical) = self.fs.usage().await?;
        let smb = match &self.smb {
            Some(b) => Some(b.status().await),
            None => None,
        };
        Ok(Status {
            backlog_bytes: backlog.bytes,
            backlog: Backlog {
                bytes: backlog.bytes,
                files: backlog.files,
                slots: backlog.slots,
                oldest_seconds: oldest,
            },
            stores: self.store_rows(),
            classes: per_class,
            repair: self
                .repair
                .as_ref()
                .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).report()),
            backup: self.backup.as_ref().map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .report(self.backup_warn)
            }),
            cache: CacheUse {
                used_bytes: cache.used_bytes(),
                max_bytes: cache.max_bytes(),
            },
            files: Files {
                inodes,
                logical_bytes: logical,
            },
            chunks: chunks.len() as u64,
            smb,
            mounts: self.mounts.list(),
            jobs: self.jobs.snapshot(),
        })
    }
}
