//! Rebalancing: when nothing needs repair, moves one copy at a time from
//! the fullest active store to a less full one the chunk's class allows.

use std::collections::HashMap;

use cairn_metadata::StoreId;
use tracing::info;

use super::{per_object, Need, Repairer, REBALANCE_SPREAD};
use crate::error::Error;

impl Repairer {
    /// When nothing needs repair and the active stores' fills (cairn's bytes
    /// on each, from the metadata, over its capacity) differ by more than
    /// [`REBALANCE_SPREAD`]: moves one copy or shard from the fullest store
    /// to a less full one the chunk's class allows, if that narrows the gap.
    pub(super) async fn rebalance_one(&self, needs: Vec<Need>) -> Result<u64, Error> {
        let views = self.stores.placeable();
        let mut load: HashMap<u64, u64> = HashMap::new();
        for n in &needs {
            for &(_, s) in &n.info.placements {
                *load.entry(s.0).or_default() += per_object(&n.info);
            }
        }
        let fill = |id: u64, extra: i64| {
            let v = views.iter().find(|v| v.id.0 == id);
            let cap = v.map_or(0, |v| v.capacity).max(1);
            (load.get(&id).copied().unwrap_or(0) as i64 + extra) as f64 / cap as f64
        };
        let active: Vec<u64> = views
            .iter()
            .filter(|v| v.online && v.capacity > 0)
            .map(|v| v.id.0)
            .collect();
        let by_fill = |a: &&u64, b: &&u64| fill(**a, 0).total_cmp(&fill(**b, 0));
        let (Some(&full), Some(&empty)) =
            (active.iter().max_by(by_fill), active.iter().min_by(by_fill))
        else {
            return Ok(0);
        };
        let gap = fill(full, 0) - fill(empty, 0);
        self.with_progress(|p| p.fill_spread_points = gap * 100.0);
        if gap <= REBALANCE_SPREAD {
            return Ok(0);
        }
        for need in needs {
            if !need.make.is_empty() || !need.drop.is_empty() {
                continue;
            }
            let Some(&(i, src)) = need.info.placements.iter().find(|p| p.1 .0 == full) else {
                continue;
            };
            let size = per_object(&need.info);
            let keep: Vec<(u32, StoreId)> =
                need.keep.iter().copied().filter(|p| p.1 != src).collect();
            let targets = self.targets(&need.spec, &need.info, &keep, &[i], size)?;
            let Some(&(_, dst)) = targets.first() else {
                continue;
            };
            let signed = i64::try_from(size).unwrap_or(i64::MAX);
            if fill(dst.0, signed) >= fill(full, -signed) {
                continue;
            }
            info!(chunk = %need.info.id, from = %self.stores.name(src), to = %self.stores.name(dst), bytes = size, "rebalancing a copy to a less full store");
            let need = Need {
                keep,
                drop: vec![(i, src)],
                make: vec![i],
                ..need
            };
            return self
                .repair_to(need, targets, crate::store::Purpose::Rebalance)
                .await;
        }
        Ok(0)
    }
}
