//! What a class can get on the stores there are now, in the words `cairn
//! class create`, `cairn class set` and `cairn status` share: it is met,
//! it is placed at risk, or it cannot be placed and its data stays pinned
//! in the gateway's cache. And whether it keeps fewer copies than the
//! cluster's default class would.
//!
//! The rule the drainer keeps (see `drain.rs`'s `lay_out`): a chunk is
//! stored only when it is readable from what is placed (one replica, `k`
//! shards) and, for a strict class, only when every copy or shard has its
//! own spread domain. Otherwise it is not stored at all: its slots stay
//! dirty, and dirty data is never evicted.

use crate::class::{ClassSpec, Layout};
use crate::store::placement::{place, PlacementHealth, StoreView};

/// The words every report uses for data that cannot be placed.
pub const PINNED: &str = "its data stays pinned in the gateway's cache (never evicted) until stores that can hold it are added";

/// One chunk of a class on the stores there are now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outlook {
    /// Every copy or shard placed, each in its own spread domain.
    Met,
    /// A loose class: placed, but some copies share a domain or are missing.
    AtRisk { why: String },
    /// Not stored at all: the data stays in the cache.
    Pinned { why: String },
}

/// How many copies or shards must be placed for a chunk to be readable.
pub fn readable_minimum(spec: &ClassSpec) -> usize {
    match spec.layout {
        Layout::Replicas { .. } => 1,
        Layout::ErasureCoded { k, .. } => usize::from(k),
    }
}

/// Whether a chunk placed as `health` says may be stored for `spec`.
/// `None`: yes; `Some(why)`: no, it stays pinned.
pub fn refusal(spec: &ClassSpec, health: &PlacementHealth) -> Option<String> {
    let PlacementHealth::Undergoal { placed, why, .. } = health else {
        return None;
    };
    let need = readable_minimum(spec);
    if *placed < need {
        return Some(match spec.layout {
            Layout::Replicas { .. } => format!("no store can take a copy: {why}"),
            Layout::ErasureCoded { k, m } => {
                format!("only {placed} of its {k}+{m} shards can be placed and at least {k} must be: {why}")
            }
        });
    }
    if spec.strict {
        return Some(format!(
            "it is strict and only {placed} of its {} {} can be placed as it asks: {why}",
            spec.copies(),
            unit(spec)
        ));
    }
    None
}

fn unit(spec: &ClassSpec) -> &'static str {
    match spec.layout {
        Layout::Replicas { .. } => "copies",
        Layout::ErasureCoded { .. } => "shards",
    }
}

/// What one chunk of `spec` would get on `stores` now.
pub fn outlook(spec: &ClassSpec, stores: &[StoreView]) -> Outlook {
    let placement = place(spec, stores, 0, &[]);
    if let Some(why) = refusal(spec, &placement.health) {
        return Outlook::Pinned { why };
    }
    match placement.health {
        PlacementHealth::Full => Outlook::Met,
        PlacementHealth::AtRisk {
            domains_used,
            domains_wanted,
        } => Outlook::AtRisk {
            why: format!(
                "its {} {} share {domains_used} {} domain(s) of the {domains_wanted} it asks",
                spec.copies(),
                unit(spec),
                spec.spread
            ),
        },
        PlacementHealth::Undergoal {
            placed,
            wanted,
            why,
        } => Outlook::AtRisk {
            why: format!(
                "only {placed} of its {wanted} {} can be placed: {why}",
                unit(spec)
            ),
        },
    }
}

/// How many store losses a chunk of `spec` placed on `stores` now would
/// survive (`None`: it cannot be placed).
fn losses_survived(spec: &ClassSpec, stores: &[StoreView]) -> Option<usize> {
    let placement = place(spec, stores, 0, &[]);
    if refusal(spec, &placement.health).is_some() {
        return None;
    }
    let placed = placement.targets.iter().flatten().count();
    Some(placed.saturating_sub(readable_minimum(spec)))
}

/// A sentence when `spec` keeps fewer copies than `default` would on
/// `stores` now (counted as store losses a chunk survives).
pub fn weaker_than_default(
    spec: &ClassSpec,
    default: &ClassSpec,
    stores: &[StoreView],
) -> Option<String> {
    let mine = losses_survived(spec, stores)?;
    let theirs = losses_survived(default, stores)?;
    (mine < theirs).then(|| {
        format!(
            "warning: its data survives the loss of {mine} store(s) where the default class ({}) would survive {theirs}",
            default.describe()
        )
    })
}

/// The sentence reports print for `spec` on `stores` now.
pub fn describe(spec: &ClassSpec, default: &ClassSpec, stores: &[StoreView]) -> String {
    let mut text = match outlook(spec, stores) {
        Outlook::Met => "the stores there are now can meet it".to_owned(),
        Outlook::AtRisk { why } => {
            format!("chunks are placed as wide as possible and counted at risk: {why}")
        }
        Outlook::Pinned { why } => format!("cannot be placed ({why}): {PINNED}"),
    };
    if let Some(weaker) = weaker_than_default(spec, default, stores) {
        text.push_str("; ");
        text.push_str(&weaker);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::Spread;

    fn store(id: u64, host: &str, zone: &str) -> StoreView {
        StoreView {
            id: cairn_metadata::StoreId(id),
            name: format!("s{id}"),
            zone: zone.to_owned(),
            host: host.to_owned(),
            labels: vec!["hdd".to_owned()],
            online: true,
            capacity: 1 << 40,
            used: 0,
            reserve: 0,
            queued: 0,
            rate: 0,
        }
    }

    fn replicas(n: u8, spread: &str, strict: bool) -> ClassSpec {
        ClassSpec::parse("c", Some(n), None, None, Some(spread), strict, !strict)
            .expect("a replica class")
    }

    #[test]
    fn a_strict_class_short_of_domains_is_pinned_not_stored_with_fewer_copies() {
        let one_zone = [store(1, "a", "z"), store(2, "b", "z"), store(3, "c", "z")];
        let strict = replicas(3, "zone", true);
        assert!(matches!(
            outlook(&strict, &one_zone),
            Outlook::Pinned { .. }
        ));
        let text = describe(&strict, &ClassSpec::default_class(), &one_zone);
        assert!(text.contains(PINNED), "{text}");
        let loose = replicas(3, "zone", false);
        assert!(matches!(outlook(&loose, &one_zone), Outlook::AtRisk { .. }));
    }

    #[test]
    fn ec_wider_than_the_stores_is_pinned() {
        let three = [store(1, "a", "z"), store(2, "b", "z"), store(3, "c", "z")];
        let ec = ClassSpec::parse("ec", None, Some("4+1"), None, None, false, true).expect("ec");
        let text = describe(&ec, &ClassSpec::default_class(), &three);
        assert!(
            text.contains("cannot be placed") && text.contains(PINNED),
            "{text}"
        );
        assert_eq!(ec.spread, Spread::Host);
    }

    #[test]
    fn fewer_copies_than_the_default_is_said() {
        let three = [store(1, "a", "z"), store(2, "b", "z"), store(3, "c", "z")];
        let one = replicas(1, "host", false);
        let text = describe(&one, &ClassSpec::default_class(), &three);
        assert!(
            text.contains("warning") && text.contains("survives the loss of 0"),
            "{text}"
        );
        let three_copies = replicas(3, "host", false);
        let text = describe(&three_copies, &ClassSpec::default_class(), &three);
        assert!(!text.contains("warning"), "{text}");
    }
}
