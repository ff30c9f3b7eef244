//! Shared by the cluster test files: a four-store layout, writing and
//! reading back files over NFS, and checks of chunk placement against the
//! stores' own folders; shipping the metadata and `cairn restore`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cairn_tests::{poll_until, random_bytes, sha256, ChunkInfo, Cluster, Nfs, StoreSpec};
use nfs3_types::nfs3::{nfs_fh3, stable_how};
use serde_json::Value;

/// Longest a drain of a few tens of MiB may take on two shared cores.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(90);
/// The gateway probes its stores every 2 s.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(20);

/// The file sizes every class directory gets.
pub const SIZES: [usize; 6] = [0, 1, 4096, 64 * 1024 + 1, (1 << 20) + 1, 9 << 20];

/// s1 and s2 share host h1; s3 is h2; s4 is h3 and the only `ssd`.
pub fn four_stores() -> Vec<StoreSpec> {
    vec![
        StoreSpec::new("s1", "h1", &["hdd"]),
        StoreSpec::new("s2", "h1", &["hdd"]),
        StoreSpec::new("s3", "h2", &["hdd"]),
        StoreSpec::new("s4", "h3", &["ssd"]),
    ]
}

/// A file the test wrote and must read back.
pub struct Written {
    pub path: String,
    pub data: Vec<u8>,
}

pub async fn mkdir(nfs: &mut Nfs, name: &str) -> nfs_fh3 {
    let root = nfs.root.clone();
    nfs.mkdir(&root, name, 0o755)
        .await
        .unwrap_or_else(|e| panic!("mkdir /{name}: {e}"))
}

/// Creates `dir/name` and writes `data` with FILE_SYNC writes.
pub async fn write_file(
    nfs: &mut Nfs,
    dir: &nfs_fh3,
    dir_path: &str,
    name: &str,
    data: Vec<u8>,
) -> Written {
    let path = format!("{dir_path}/{name}");
    let fh = nfs
        .create(dir, name, 0o644)
        .await
        .unwrap_or_else(|e| panic!("create {path}: {e}"));
    nfs.write_all(&fh, 0, &data, stable_how::FILE_SYNC)
        .await
        .unwrap_or_else(|e| panic!("write {path}: {e}"));
    Written { path, data }
}

/// Writes one file of every size in [`SIZES`] into `dir_path`.
pub async fn write_mix(nfs: &mut Nfs, dir: &nfs_fh3, dir_path: &str, seed: u64) -> Vec<Written> {
    let mut out = Vec::new();
    for (i, &len) in SIZES.iter().enumerate() {
        let data = random_bytes(seed ^ ((i as u64 + 1) << 32), len);
        out.push(write_file(nfs, dir, dir_path, &format!("f{len}"), data).await);
    }
    out
}

/// Reads every file over NFS and compares it byte for byte.
pub async fn read_back(nfs: &mut Nfs, files: &[Written], when: &str) {
    for f in files {
        let fh = nfs
            .lookup_path(&f.path)
            .await
            .unwrap_or_else(|e| panic!("{when}: lookup {}: {e}", f.path));
        let got = nfs
            .read_all(&fh)
            .await
            .unwrap_or_else(|e| panic!("{when}: read {}: {e}", f.path));
        if got != f.data {
            let first = got
                .iter()
                .zip(&f.data)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(f.data.len()));
            let zeros = got.iter().filter(|&&b| b == 0).count();
            panic!(
                "{when}: {} reads back wrong: {} bytes (sha256 {}), wrote {} (sha256 {}); \
                 first difference at byte {first}; {zeros} zero bytes read",
                f.path,
                got.len(),
                sha256(&got),
                f.data.len(),
                sha256(&f.data)
            );
        }
    }
}

/// The `chunks` counts of class `name` in `cairn status --json`.
pub fn class_health(status: &Value, name: &str) -> Value {
    status["classes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .map(|c| c["chunks"].clone())
        .unwrap_or_else(|| panic!("class {name} not in status: {status}"))
}

/// What a class asks of every chunk: copies, one label rule per copy
/// (`None` is `*`), copies on distinct hosts.
pub struct Goal {
    pub copies: usize,
    pub rules: Vec<Option<&'static str>>,
}

/// Whether the copies' stores can be matched one to one with the rules.
pub fn labels_match(rules: &[Option<&str>], stores: &[&StoreSpec]) -> bool {
    fn go(rules: &[Option<&str>], stores: &[&StoreSpec], used: &mut Vec<bool>) -> bool {
        let Some((rule, rest)) = rules.split_first() else {
            return true;
        };
        for i in 0..stores.len() {
            let ok = rule.is_none_or(|l| stores[i].labels.iter().any(|s| s == l));
            if !used[i] && ok {
                used[i] = true;
                if go(rest, stores, used) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    rules.len() == stores.len() && go(rules, stores, &mut vec![false; stores.len()])
}

/// Checks every chunk against its class's goal; returns the chunks per class.
pub fn check_placement(
    cluster: &Cluster,
    chunks: &[ChunkInfo],
    goals: &BTreeMap<&str, Goal>,
) -> BTreeMap<String, usize> {
    let mut per_class: BTreeMap<String, usize> = BTreeMap::new();
    for c in chunks {
        let goal = goals
            .get(c.class.as_str())
            .unwrap_or_else(|| panic!("chunk {} has unexpected class {:?}", c.key, c.class));
        let specs: Vec<&StoreSpec> = c.stores.iter().map(|n| &cluster.store(n).spec).collect();
        let distinct: BTreeSet<&str> = c.stores.iter().map(String::as_str).collect();
        let hosts: BTreeSet<&str> = specs.iter().map(|s| s.host.as_str()).collect();
        assert_eq!(
            c.stores.len(),
            goal.copies,
            "chunk {} of class {} has {} copies, wants {}: {:?}",
            c.key,
            c.class,
            c.stores.len(),
            goal.copies,
            c.stores
        );
        assert_eq!(
            distinct.len(),
            goal.copies,
            "chunk {} names a store twice: {:?}",
            c.key,
            c.stores
        );
        assert_eq!(
            hosts.len(),
            goal.copies,
            "chunk {} of class {} shares a host: stores {:?} on hosts {hosts:?}",
            c.key,
            c.class,
            c.stores
        );
        assert!(
            labels_match(&goal.rules, &specs),
            "chunk {} of class {}: stores {:?} (labels {:?}) do not meet the label rules {:?}",
            c.key,
            c.class,
            c.stores,
            specs.iter().map(|s| &s.labels).collect::<Vec<_>>(),
            goal.rules
        );
        *per_class.entry(c.class.clone()).or_default() += 1;
    }
    per_class
}

/// Which keys each store should hold, from the gateway's chunk list.
pub fn expected_keys(
    cluster: &Cluster,
    chunks: &[ChunkInfo],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut want: BTreeMap<String, BTreeSet<String>> = cluster
        .stores()
        .iter()
        .map(|s| (s.name().to_owned(), BTreeSet::new()))
        .collect();
    for c in chunks {
        for (s, key) in &c.objects {
            want.get_mut(s)
                .unwrap_or_else(|| panic!("chunk {} on unknown store {s}", c.key))
                .insert(key.clone());
        }
    }
    want
}

/// Polls until every store's own folder holds exactly the keys the gateway
/// places on it (a chunk the drain abandoned may linger until the collector
/// runs); returns the gateway's chunk list.
pub fn wait_stores_match_gateway(cluster: &Cluster) -> Vec<ChunkInfo> {
    poll_until(
        "the stores' folders hold exactly the chunks `cairn store chunks` lists",
        Duration::from_secs(30),
        || {
            let chunks = cluster.chunks();
            let want = expected_keys(cluster, &chunks);
            let have = cluster.shard_keys_by_store();
            if want == have {
                Ok(chunks)
            } else {
                Err(format!(
                    "gateway places {want:?}; store folders hold {have:?}"
                ))
            }
        },
    )
}

/// `cairn cache drop`, then checks the cache holds no byte any more.
pub fn drop_cache(cluster: &Cluster) {
    let said = cluster.cache_drop();
    let status = cluster.status();
    assert_eq!(
        status["cache"]["used_bytes"], 0,
        "the cache still holds data after `cairn cache drop` (it said {said:?}): {}",
        status["cache"]
    );
}

/// Stops the gateway, empties its cache folder and starts it again.
pub fn restart_with_empty_cache(cluster: &mut Cluster) {
    cluster.stop_gateway();
    let cache = cluster.cache_dir();
    assert!(cache.is_dir(), "no cache folder at {}", cache.display());
    std::fs::remove_dir_all(&cache).expect("empty the cache folder");
    std::fs::create_dir(&cache).expect("recreate the cache folder");
    cluster.start_gateway();
}

// ---------------------------------------------------------------------------
// Metadata shipping and `cairn restore`.

pub fn three_hosts() -> Vec<StoreSpec> {
    (1..=3)
        .map(|i| StoreSpec::new(&format!("s{i}"), &format!("h{i}"), &["hdd"]))
        .collect()
}

/// Polls `cairn status` until every change committed before `since` is
/// shipped; returns the status's `backup` object.
pub fn wait_shipped(cluster: &Cluster, since: Instant) -> serde_json::Value {
    poll_until(
        "every change so far shipped to the stores",
        Duration::from_secs(60),
        || {
            let status = cluster.try_cairn_json(&["status"])?;
            let b = status["backup"].clone();
            match b["recovery_point_seconds"].as_f64() {
                // The status rounds to 0.1 s: a margin, so a ship just
                // before `since` never passes for one after it.
                Some(behind) if behind + 0.2 < since.elapsed().as_secs_f64() => Ok(b),
                _ => Err(b.to_string()),
            }
        },
    )
}

/// Kills the gateway and wipes its data folder (metadata, cache, all).
pub fn lose_the_gateway(cluster: &mut Cluster) {
    cluster.kill9_gateway();
    let dir = cluster.gateway_data_dir();
    std::fs::remove_dir_all(&dir).expect("wipe the gateway's folder");
    std::fs::create_dir(&dir).expect("recreate it empty");
}

pub fn restore(cluster: &Cluster, stores: &[&str], extra: &[&str]) -> Result<String, String> {
    let addrs: Vec<String> = stores
        .iter()
        .map(|s| cluster.store(s).addr().to_string())
        .collect();
    let data = cluster.gateway_data_dir();
    let secret = cluster.secret_path().to_owned();
    let mut args = vec![
        "restore".to_owned(),
        "--stores".to_owned(),
        addrs.join(","),
        "--secret-file".to_owned(),
        secret.to_string_lossy().into_owned(),
        "--data".to_owned(),
        data.to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let out = std::process::Command::new(cairn_tests::gateway::cairn_bin())
        .args(&args)
        .output()
        .expect("run cairn restore");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}
