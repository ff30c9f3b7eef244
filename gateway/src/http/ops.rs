//! Counts and latencies of the NFSv3 and MOUNT procedures the gateway
//! serves, kept from start for `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// The NFSv3 procedure names (RFC 1813), by number.
const NFS3_PROCS: [&str; 22] = [
    "null",
    "getattr",
    "setattr",
    "lookup",
    "access",
    "readlink",
    "read",
    "write",
    "create",
    "mkdir",
    "symlink",
    "mknod",
    "remove",
    "rmdir",
    "rename",
    "link",
    "readdir",
    "readdirplus",
    "fsstat",
    "fsinfo",
    "pathconf",
    "commit",
];

/// One procedure of one protocol.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub protocol: &'static str,
    pub procedure: &'static str,
}

type Latencies = Family<OpLabels, Histogram, fn() -> Histogram>;

/// 50 µs to ~1.6 s, doubling: a cache hit to a cold read over a slow link.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every served operation's latency, by protocol and procedure (the
/// histogram's count is the operation count).
#[derive(Clone)]
pub struct OpMetrics {
    pub(super) latency: Latencies,
}

impl Default for OpMetrics {
    fn default() -> Self {
        Self {
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        }
    }
}

impl std::fmt::Debug for OpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpMetrics")
    }
}

impl OpMetrics {
    /// Records one NFSv3 call of procedure `proc_` that took `took`.
    pub fn nfs3(&self, proc_: u32, took: Duration) {
        let procedure = NFS3_PROCS.get(proc_ as usize).copied().unwrap_or("unknown");
        self.observe("nfs3", procedure, took);
    }

    /// Records one MOUNT call.
    pub fn mount(&self, took: Duration) {
        self.observe("mount", "any", took);
    }

    fn observe(&self, protocol: &'static str, procedure: &'static str, took: Duration) {
        self.latency
            .get_or_create(&OpLabels {
                protocol,
                procedure,
            })
            .observe(took.as_secs_f64());
    }
}
