//! `cairn status` and `cairn store list`: the stores, the backlog, each
//! class's chunks by standing, the workers' progress, as typed replies.

use cairn_metadata::{ChunkInfo, ChunkLayout, StoreId, StoreState, Timestamp};

use super::classes::default_spec;
use super::proto::{
    AdminError, Backlog, CacheUse, ChunkCounts, ClassHealth, Files, Status, StoreList, StoreRow,
    StoreStanding,
};
use super::Admin;
use crate::class::ClassSpec;
use crate::placement::{domain_count, StoreView};
use crate::remote::Reach;

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
                let (reach, life) = stores.health(StoreId(v.id), self.grace);
                let state = match (life, reach) {
                    (StoreState::Active, Reach::Online) => StoreStanding::Online,
                    (StoreState::Active, Reach::Suspect) => StoreStanding::Suspect,
                    (StoreState::Active, Reach::Offline) => StoreStanding::Offline,
                    (StoreState::Draining, _) => StoreStanding::Draining,
                    (StoreState::Removed, _) => StoreStanding::Removed,
                };
                StoreRow {
                    id: v.id,
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
                }
            })
            .collect()
    }

    /// `cairn status`.
    pub(super) async fn status(&self) -> Result<Status, AdminError> {
        let meta = self.fs.metadata();
        let backlog = meta.read(|v| v.backlog())?;
        let now = Timestamp::now().0;
        let oldest = backlog
            .oldest
            .map(|t| ((now - t.0).max(0) as f64 / 1e9 * 10.0).round() / 10.0);
        let classes = meta.read(|v| v.classes())?;
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
            let mut count = ChunkCounts::default();
            let (mut logical, mut stored) = (0u64, 0u64);
            for c in chunks.iter().filter(|c| c.class == *id) {
                let rules = match (c.layout, &archived) {
                    (ChunkLayout::Ec { .. }, Some(a)) => a,
                    _ => &spec,
                };
                *match chunk_health(c, rules, &views) {
                    Health::Healthy => &mut count.healthy,
                    Health::Undergoal => &mut count.undergoal,
                    Health::AtRisk => &mut count.at_risk,
                    Health::Missing => &mut count.missing,
                    Health::Endangered => &mut count.endangered,
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
                name: name.clone(),
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
        let (inodes, logical) = meta.read(|v| v.usage())?;
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
        })
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
        .filter_map(|&(_, s)| views.iter().find(|v| v.id == s.0 && v.online))
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
