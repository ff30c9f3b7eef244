//! `cairn fsck` without `--deep`: checks a gateway's metadata and ingest
//! cache on this machine ([`crate::fsck::check`]) and prints the report, as
//! text or as one JSON object (through serde, valid for any file name).

use std::path::PathBuf;
use std::process::ExitCode;

use cairn_config::GatewayConfig;
use serde::Serialize;

use super::config_error;
use crate::core::cache::IngestCache;
use crate::fsck::Report;

/// The exit status when the check could not run (no metadata, unreadable):
/// not to be mistaken for "inconsistent" (1).
const CANNOT_CHECK: u8 = 3;

/// `cairn fsck [--config FILE | --data DIR] [--json]`.
pub(super) fn local(config: Option<PathBuf>, data: Option<PathBuf>, json: bool) -> ExitCode {
    // `CAIRN_CONFIG` when neither flag is given, as every admin command.
    let config = config.or_else(|| {
        data.is_none()
            .then(|| std::env::var_os("CAIRN_CONFIG").filter(|v| !v.is_empty()))
            .flatten()
            .map(PathBuf::from)
    });
    let cfg = match (config, data) {
        (Some(path), _) => GatewayConfig::load(&path),
        (None, Some(dir)) => Ok(GatewayConfig::with_defaults(
            dir.join("gateway"),
            cairn_config::DEFAULT_LISTEN,
        )),
        // As every other command: the `cairn up` folder ./cairn-data.
        (None, None) => Ok(GatewayConfig::with_defaults(
            PathBuf::from("./cairn-data/gateway"),
            cairn_config::DEFAULT_LISTEN,
        )),
    };
    match cfg {
        Ok(cfg) => check(&cfg, json),
        Err(e) => config_error(&e),
    }
}

/// A lost file in `--json` output.
#[derive(Serialize)]
struct LostJson<'a> {
    inode: u64,
    path: Option<&'a str>,
}

/// The `--json` report.
#[derive(Serialize)]
struct ReportJson<'a> {
    consistent: bool,
    inodes: u64,
    problems: Vec<String>,
    cache_tails: usize,
    cache_orphans: usize,
    lost: Vec<LostJson<'a>>,
}

/// The report as one line of JSON.
fn json_report(report: &Report) -> String {
    let json = ReportJson {
        consistent: report.consistent(),
        inodes: report.inodes,
        problems: report.problems.iter().map(ToString::to_string).collect(),
        cache_tails: report.cache_tails.len(),
        cache_orphans: report.cache_orphans.len(),
        lost: report
            .lost
            .iter()
            .map(|(id, path)| LostJson {
                inode: id.0,
                path: path.as_deref(),
            })
            .collect(),
    };
    serde_json::to_string(&json).expect("a report of strings and numbers serializes")
}

/// Checks the metadata and the cache of one gateway; prints the report.
fn check(cfg: &GatewayConfig, json: bool) -> ExitCode {
    let path = cfg.metadata_path();
    // Opening would create an empty database, which checks as consistent.
    if !path.is_file() {
        eprintln!(
            "cairn fsck: no gateway metadata at {}: name the gateway with --config FILE, or --data DIR for a `cairn up` folder",
            path.display()
        );
        return ExitCode::from(CANNOT_CHECK);
    }
    let meta = match cairn_metadata::Metadata::open(&path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cairn fsck: {e}");
            return ExitCode::from(CANNOT_CHECK);
        }
    };
    let cache = match IngestCache::open(&cfg.cache_dir(), cfg.cache.max_size.bytes()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cairn fsck: {e}");
            return ExitCode::from(CANNOT_CHECK);
        }
    };
    let report = match crate::fsck::check(&meta, &cache) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn fsck: {e}");
            return ExitCode::from(CANNOT_CHECK);
        }
    };
    if json {
        println!("{}", json_report(&report));
    } else {
        for p in &report.problems {
            println!("problem: {p}");
        }
        if !report.cache_tails.is_empty() || !report.cache_orphans.is_empty() {
            println!(
                "note: {} cache file(s) hold bytes of unacknowledged writes and {} belong to deleted files; the next gateway start trims and removes them",
                report.cache_tails.len(),
                report.cache_orphans.len()
            );
        }
        for (id, path) in &report.lost {
            let name = path
                .clone()
                .unwrap_or_else(|| format!("(inode {id}, no name)"));
            println!("lost: {name}: data that never reached a chunk store was in a cache that is gone; reading it fails until it is overwritten or deleted");
        }
        if report.consistent() {
            println!("consistent: {} inodes checked", report.inodes);
        } else {
            println!(
                "inconsistent: {} problem(s) in {} inodes",
                report.problems.len(),
                report.inodes
            );
        }
    }
    if report.consistent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_metadata::{Inconsistency, InodeId};

    #[test]
    fn json_output_is_valid_for_control_characters_in_names() {
        let report = Report {
            inodes: 7,
            problems: vec![Inconsistency::DanglingEntry {
                dir: InodeId(1),
                name: b"tab\there\x01\x7f".to_vec(),
                child: InodeId(9),
            }],
            cache_tails: vec![InodeId(3)],
            cache_orphans: Vec::new(),
            lost: vec![
                (
                    InodeId(5),
                    Some("/dir/bell\u{7}new\nline\u{1b}[31m".to_owned()),
                ),
                (InodeId(6), None),
            ],
        };
        let text = json_report(&report);
        assert!(!text.contains('\n'), "one line: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["consistent"], false);
        assert_eq!(v["inodes"], 7);
        assert_eq!(v["cache_tails"], 1);
        assert_eq!(v["cache_orphans"], 0);
        assert_eq!(v["problems"][0], report.problems[0].to_string());
        assert_eq!(v["lost"][0]["inode"], 5);
        assert_eq!(v["lost"][0]["path"], "/dir/bell\u{7}new\nline\u{1b}[31m");
        assert_eq!(v["lost"][1]["path"], serde_json::Value::Null);
    }
}
