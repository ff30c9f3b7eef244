//! `/metrics`: the gateway's state in the Prometheus text format, built by
//! `prometheus-client` at each scrape from the same [`Status`] that `cairn
//! status --json` shows, plus the operation latencies kept since start.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::ops::OpMetrics;
use crate::admin::proto::{Status, StoreRow};
use crate::core::CacheCounters;
use crate::work::runner::JobState;

type Labels = Vec<(&'static str, String)>;
type Values = Family<Labels, Gauge<f64, AtomicU64>>;
/// A per-store gauge: name, help, and its value for a store (if known).
type PerStore = (&'static str, &'static str, fn(&StoreRow) -> Option<f64>);

/// One scrape's registry under the `cairn_` prefix.
struct Sheet(Registry);

impl Sheet {
    /// Registers gauge `name` with one sample per `(labels, value)`.
    fn gauge(&mut self, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, f64)>) {
        let family = Values::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).set(value);
        }
        self.0.register(name, help, family);
    }

    /// Registers gauge `name` with one unlabelled value.
    fn value(&mut self, name: &str, help: &str, value: f64) {
        let gauge = Gauge::<f64, AtomicU64>::default();
        gauge.set(value);
        self.0.register(name, help, gauge);
    }
}

/// The exposition text for `status`, `ops` and `cache`.
pub fn render(status: &Status, ops: &OpMetrics, cache: &CacheCounters) -> String {
    let mut sheet = Sheet(Registry::with_prefix("cairn"));
    stores(&mut sheet, status);
    classes(&mut sheet, status);
    work(&mut sheet, status);
    let s = &mut sheet;
    s.value(
        "files",
        "Inodes in the namespace.",
        status.files.inodes as f64,
    );
    s.value(
        "logical_bytes",
        "Bytes of file data in the namespace.",
        status.files.logical_bytes as f64,
    );
    s.value("chunks", "Chunks in the metadata.", status.chunks as f64);
    s.value(
        "cache_used_bytes",
        "Bytes the ingest cache holds.",
        status.cache.used_bytes as f64,
    );
    s.value(
        "cache_max_bytes",
        "The ingest cache's limit.",
        status.cache.max_bytes as f64,
    );
    let read = cache.read_bytes.load(Relaxed);
    let missed = cache.store_read_bytes.load(Relaxed);
    s.value(
        "cache_hit_bytes",
        "File bytes read from the ingest cache since start.",
        read.saturating_sub(missed) as f64,
    );
    s.value(
        "cache_miss_bytes",
        "File bytes read from the stores (evicted data) since start.",
        missed as f64,
    );
    s.value(
        "cache_evicted_slots",
        "Slots evicted from the ingest cache since start.",
        cache.evicted_slots.load(Relaxed) as f64,
    );
    s.value(
        "cache_evicted_bytes",
        "Cache bytes freed by eviction since start.",
        cache.evicted_bytes.load(Relaxed) as f64,
    );
    if let Some(smb) = &status.smb {
        s.value(
            "smb_up",
            "1 while smbd runs and the FUSE view is mounted.",
            f64::from(u8::from(smb.running && smb.view_mounted)),
        );
        s.value(
            "smb_restarts",
            "Times smbd was started again after dying.",
            smb.restarts as f64,
        );
        s.value(
            "smb_clients",
            "SMB sessions open.",
            smb.clients.unwrap_or(0) as f64,
        );
    }
    sheet.0.register(
        "op_latency_seconds",
        "Time to answer one operation, by protocol and procedure (its count is the operation count).",
        ops.latency.clone(),
    );
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut text, &sheet.0);
    text
}

fn store_labels(name: &str) -> Labels {
    vec![("store", name.to_owned())]
}

fn stores(s: &mut Sheet, status: &Status) {
    let rows = &status.stores;
    s.gauge(
        "store_info",
        "A store's place: 1 per store, with its zone, host and labels.",
        rows.iter().map(|r| {
            (
                vec![
                    ("store", r.name.clone()),
                    ("zone", r.zone.clone()),
                    ("host", r.host.clone()),
                    ("labels", r.labels.join(",")),
                ],
                1.0,
            )
        }),
    );
    s.gauge(
        "store_state",
        "1 for the store's standing (online, suspect, offline, draining, removed).",
        rows.iter().map(|r| {
            (
                vec![
                    ("store", r.name.clone()),
                    ("state", r.state.name().to_owned()),
                ],
                1.0,
            )
        }),
    );
    // One sample per store (none where a value is not measured yet).
    let per_store: [PerStore; 11] = [
        ("store_up", "1 while the store answers.", |r| {
            Some(f64::from(u8::from(r.online)))
        }),
        (
            "store_capacity_bytes",
            "The store's capacity (a bucket's configured quota).",
            |r| Some(r.capacity as f64),
        ),
        (
            "store_used_bytes",
            "Bytes in use on the store's disk, by anything.",
            |r| Some(r.used as f64),
        ),
        (
            "store_stored_bytes",
            "Bytes of cairn's own objects on the store.",
            |r| Some(r.stored as f64),
        ),
        ("store_free_bytes", "Bytes free on the store.", |r| {
            Some(r.free as f64)
        }),
        ("store_fill_ratio", "Used over capacity, 0 to 1.", |r| {
            Some(r.fill_percent / 100.0)
        }),
        (
            "store_rtt_seconds",
            "Round trip to the store (recent probes).",
            |r| r.rtt_ms.map(|ms| ms / 1000.0),
        ),
        (
            "store_upload_bytes_per_second",
            "Measured upload rate to the store.",
            |r| r.up_mb_s.map(|m| m * 1e6),
        ),
        (
            "store_download_bytes_per_second",
            "Measured download rate from the store.",
            |r| r.down_mb_s.map(|m| m * 1e6),
        ),
        (
            "store_queued_bytes",
            "Bytes waiting for or on their way to the store.",
            |r| Some(r.queued_bytes as f64),
        ),
        (
            "store_idle_seconds",
            "Seconds since bytes last moved to or from the store.",
            |r| r.idle_seconds,
        ),
    ];
    for (name, help, value) in per_store {
        let samples = rows
            .iter()
            .filter_map(|r| value(r).map(|v| (store_labels(&r.name), v)));
        s.gauge(name, help, samples);
    }
}

fn classes(s: &mut Sheet, status: &Status) {
    let classes = &status.classes;
    s.gauge(
        "class_chunks",
        "A class's chunks by health (healthy, undergoal, at_risk, endangered, missing).",
        classes.iter().flat_map(|c| {
            let k = &c.chunks;
            [
                ("healthy", k.healthy),
                ("undergoal", k.undergoal),
                ("at_risk", k.at_risk),
                ("endangered", k.endangered),
                ("missing", k.missing),
            ]
            .map(|(health, n)| {
                (
                    vec![("class", c.name.clone()), ("health", health.to_owned())],
                    n as f64,
                )
            })
        }),
    );
    let by_class = |f: fn(&crate::admin::proto::ClassHealth) -> f64| -> Vec<(Labels, f64)> {
        classes
            .iter()
            .map(|c| (vec![("class", c.name.clone())], f(c)))
            .collect()
    };
    s.gauge(
        "class_logical_bytes",
        "Bytes of file data under the class.",
        by_class(|c| c.logical_bytes as f64),
    );
    s.gauge(
        "class_stored_bytes",
        "Bytes the class's chunks take on the stores.",
        by_class(|c| c.stored_bytes as f64),
    );
}

fn work(s: &mut Sheet, status: &Status) {
    let b = &status.backlog;
    s.value(
        "drain_backlog_bytes",
        "Bytes written but not yet on the stores.",
        b.bytes as f64,
    );
    s.value(
        "drain_backlog_files",
        "Files with bytes not yet on the stores.",
        b.files as f64,
    );
    s.value(
        "drain_backlog_oldest_seconds",
        "Age of the oldest undrained write.",
        b.oldest_seconds.unwrap_or(0.0),
    );
    if let Some(r) = &status.repair {
        s.value(
            "repair_waiting_chunks",
            "Chunks below their class waiting for repair.",
            r.waiting_chunks as f64,
        );
        s.value(
            "repair_waiting_bytes",
            "Bytes of chunks waiting for repair.",
            r.waiting_bytes as f64,
        );
        s.value(
            "repair_stuck_chunks",
            "Chunks repair cannot place now.",
            r.stuck_chunks as f64,
        );
        s.value(
            "repair_repaired_chunks",
            "Chunks repaired since start.",
            r.repaired_chunks as f64,
        );
        s.value(
            "repair_repaired_bytes",
            "Bytes repaired since start.",
            r.repaired_bytes as f64,
        );
        s.value(
            "repair_bytes_per_second",
            "Recent repair rate.",
            r.bytes_per_second,
        );
        s.value(
            "repair_eta_seconds",
            "Time left for the waiting repairs at the recent rate (0: none waiting).",
            r.eta_seconds.unwrap_or(0.0),
        );
        s.value(
            "rebalance_fill_spread_points",
            "Spread of store fill, in percentage points.",
            r.rebalance.fill_spread_points,
        );
        s.value(
            "rebalance_moved_bytes",
            "Bytes rebalancing moved since start.",
            r.rebalance.moved_bytes as f64,
        );
    }
    if let Some(backup) = &status.backup {
        s.value(
            "backup_recovery_point_seconds",
            "Age of the newest metadata state on the stores (the lag a restore would lose).",
            backup.recovery_point_seconds.unwrap_or(0.0),
        );
        s.value(
            "backup_changesets",
            "Metadata changesets shipped in this generation.",
            backup.changesets as f64,
        );
        s.value(
            "backup_shipped_bytes",
            "Metadata bytes shipped since start.",
            backup.shipped_bytes as f64,
        );
    }
    s.gauge(
        "job_steps",
        "Steps a background job ended well since start.",
        status
            .jobs
            .iter()
            .map(|(name, j)| (vec![("job", name.clone())], j.steps as f64)),
    );
    s.gauge(
        "job_failures",
        "Steps a background job failed since start.",
        status
            .jobs
            .iter()
            .map(|(name, j)| (vec![("job", name.clone())], j.failures as f64)),
    );
    s.gauge(
        "job_failing",
        "1 while a background job's last step failed.",
        status.jobs.iter().map(|(name, j)| {
            (
                vec![("job", name.clone())],
                f64::from(u8::from(j.state == JobState::Failing)),
            )
        }),
    );
}
