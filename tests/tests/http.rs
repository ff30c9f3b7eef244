//! The gateway's HTTP endpoint through real clients: `/metrics` scraped
//! after a known workload agrees with `cairn status --json`; the status
//! page rendered by headless Chromium shows every store and a class's
//! health numbers as the status has them (a screenshot is kept); a token,
//! when configured, is required; the endpoint is read-only.

use std::time::Duration;

use cairn_tests::gateway::run_cairn;
use cairn_tests::web::{self, samples};
use cairn_tests::{
    command, libnfs, poll_until, sha256_file, write_random_file, Gateway, GatewayOptions,
};
use serde_json::Value;

fn up_with_http() -> Gateway {
    Gateway::start_up_with(GatewayOptions {
        http: true,
        ..GatewayOptions::default()
    })
}

/// Writes `sizes.len()` files over NFS and waits until they are drained and
/// the default class holds them healthy; their total size.
fn drained_workload(gw: &Gateway, sizes: &[u64]) -> u64 {
    for (i, size) in sizes.iter().enumerate() {
        let src = gw.scratch().join(format!("w{i}.bin"));
        write_random_file(&src, 100 + i as u64, *size).unwrap();
        libnfs::upload(gw.port(), &src, &format!("w{i}.bin"))
            .unwrap_or_else(|e| panic!("nfs-cp: {e}"));
    }
    poll_until("drained and healthy", Duration::from_secs(120), || {
        let v = gw.status_json();
        let default = v["classes"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "default"))
            .cloned()
            .unwrap_or_default();
        let c = &default["chunks"];
        let unhealthy: u64 = ["undergoal", "at_risk", "endangered", "missing"]
            .iter()
            .map(|k| c[k].as_u64().unwrap_or(0))
            .sum();
        if v["backlog_bytes"] == 0 && c["healthy"].as_u64() > Some(0) && unhealthy == 0 {
            Ok(())
        } else {
            Err(format!("backlog {} chunks {c}", v["backlog_bytes"]))
        }
    });
    sizes.iter().sum()
}

/// Class `name` in a `cairn status --json`.
fn class<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["classes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no class {name} in {st}"))
}

fn metric(m: &std::collections::BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in /metrics:\n{m:#?}"))
}

#[test]
fn metrics_agree_with_cairn_status_after_a_known_workload() {
    let gw = up_with_http();
    let total = drained_workload(&gw, &[100_000, 2_500_000, 7_000_000]);
    let st = gw.status_json();
    let r = web::get(gw.http_port(), "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers["content-type"].starts_with("application/openmetrics-text"),
        "{:?}",
        r.headers
    );
    let m = samples(&r.body);
    assert_eq!(
        metric(&m, "cairn_files"),
        st["files"]["inodes"].as_f64().unwrap()
    );
    assert_eq!(metric(&m, "cairn_logical_bytes"), total as f64);
    assert_eq!(st["files"]["logical_bytes"].as_u64(), Some(total));
    assert_eq!(metric(&m, "cairn_drain_backlog_bytes"), 0.0);
    for s in st["stores"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        assert_eq!(
            metric(&m, &format!("cairn_store_up{{store=\"{name}\"}}")),
            1.0
        );
        assert_eq!(
            metric(
                &m,
                &format!("cairn_store_capacity_bytes{{store=\"{name}\"}}")
            ),
            s["capacity"].as_f64().unwrap()
        );
        assert_eq!(
            metric(
                &m,
                &format!("cairn_store_state{{store=\"{name}\",state=\"online\"}}")
            ),
            1.0
        );
    }
    let default = class(&st, "default");
    // What cairn holds on each store, apart from what the disk holds.
    let stored: f64 = st["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            metric(
                &m,
                &format!(
                    "cairn_store_stored_bytes{{store=\"{}\"}}",
                    s["name"].as_str().unwrap()
                ),
            )
        })
        .sum();
    let chunks = default["stored_bytes"].as_f64().unwrap();
    assert!(
        stored >= chunks,
        "stores hold {stored} bytes of cairn's, the class's chunks {chunks}"
    );
    assert!(
        stored < chunks * 4.0 + 64e6,
        "stored {stored} counts more than cairn's objects"
    );
    for health in ["healthy", "undergoal", "at_risk", "endangered", "missing"] {
        assert_eq!(
            metric(
                &m,
                &format!("cairn_class_chunks{{class=\"default\",health=\"{health}\"}}")
            ),
            default["chunks"][health].as_f64().unwrap(),
            "{health}"
        );
    }
    assert_eq!(
        metric(&m, "cairn_class_logical_bytes{class=\"default\"}"),
        default["logical_bytes"].as_f64().unwrap()
    );
    let writes = metric(
        &m,
        "cairn_op_latency_seconds_count{protocol=\"nfs3\",procedure=\"write\"}",
    );
    assert!(writes >= 3.0, "3 files written, {writes} WRITEs counted");
    let creates = metric(
        &m,
        "cairn_op_latency_seconds_count{protocol=\"nfs3\",procedure=\"create\"}",
    );
    assert_eq!(creates, 3.0, "one CREATE per file");

    // Evicted and read back: misses and evictions count.
    let d = gw.up_dir().to_string_lossy().into_owned();
    let out =
        run_cairn(&["cache", "drop", "--data", &d], Duration::from_secs(60)).expect("cache drop");
    assert!(out.status.success(), "{}", command::describe(&out));
    let back = gw.scratch().join("back.bin");
    libnfs::download(gw.port(), "w2.bin", &back).unwrap_or_else(|e| panic!("nfs-cp out: {e}"));
    assert_eq!(
        sha256_file(&back).unwrap(),
        sha256_file(&gw.scratch().join("w2.bin")).unwrap()
    );
    let m = samples(&web::get(gw.http_port(), "/metrics").body);
    assert!(metric(&m, "cairn_cache_miss_bytes") >= 7_000_000.0, "{m:?}");
    assert!(metric(&m, "cairn_cache_evicted_slots") >= 1.0);

    // Every metric the shipped Grafana dashboard plots is served.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/grafana-dashboard.json"
    ))
    .expect("config/examples/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let served: std::collections::BTreeSet<&str> =
        m.keys().map(|k| k.split('{').next().unwrap_or(k)).collect();
    let mut used = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("cairn_"))
            {
                used += 1;
                assert!(
                    served.contains(name),
                    "panel {:?} plots {name}, which /metrics does not serve",
                    panel["title"]
                );
            }
        }
    }
    assert!(used >= 20, "the dashboard plots only {used} metrics");

    // Read-only, and nothing else is there.
    assert_eq!(
        web::request(gw.http_port(), "POST", "/metrics", &["Content-Length: 0"]).status,
        405
    );
    assert_eq!(web::get(gw.http_port(), "/nothing").status, 404);
    let json = web::get(gw.http_port(), "/status.json");
    assert_eq!(json.status, 200);
    let v: Value = serde_json::from_str(&json.body).expect("status.json is JSON");
    assert_eq!(v["files"]["logical_bytes"].as_u64(), Some(total));
}

/// The number in `<td class="n HEALTH">N</td>` of the row of class `class`
/// in the rendered DOM.
fn class_cell(dom: &str, class: &str, health: &str) -> u64 {
    let row = dom
        .find(&format!("data-class=\"{class}\""))
        .unwrap_or_else(|| panic!("no row for class {class} in the page:\n{dom}"));
    let rest = &dom[row..];
    let row_end = rest.find("</tr>").unwrap_or(rest.len());
    let row = &rest[..row_end];
    let cell = format!("class=\"n {health}");
    let at = row
        .find(&cell)
        .unwrap_or_else(|| panic!("no {health} cell in {row}"));
    let text = &row[at..];
    let from = text.find('>').unwrap() + 1;
    let to = text.find("</td>").unwrap();
    text[from..to]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{health} cell is not a number: {row}"))
}

#[test]
fn the_status_page_in_a_browser_shows_the_stores_and_class_health() {
    let gw = up_with_http();
    drained_workload(&gw, &[300_000, 5_000_000]);
    let st = gw.status_json();
    let png = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let url = format!("http://127.0.0.1:{}/", gw.http_port());
    let dom = web::chromium(&url, &png);
    eprintln!("status page screenshot: {}", png.display());
    assert!(dom.contains("<title>cairn gateway</title>"), "{dom}");
    for s in st["stores"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        assert!(
            dom.contains(&format!("data-store=\"{name}\"")),
            "store {name} missing:\n{dom}"
        );
    }
    let default = class(&st, "default");
    for health in ["healthy", "undergoal", "at_risk", "endangered", "missing"] {
        assert_eq!(
            class_cell(&dom, "default", health),
            default["chunks"][health].as_u64().unwrap(),
            "{health} on the page vs cairn status --json"
        );
    }
    assert!(
        dom.contains("http-equiv=\"refresh\""),
        "the page refreshes itself"
    );
    // A healthy start logs no warning (the backup was once "behind" and
    // "failed" before the stores had answered their first probe).
    assert!(
        dom.contains("No warnings or errors since start"),
        "warnings on a healthy start:\n{dom}"
    );
    assert!(!dom.contains("src=\"http"), "no external assets");
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(size > 10_000, "a {size}-byte screenshot is blank");
}

#[test]
fn a_configured_token_is_required() {
    let token = "cairn-test-token-0123456789";
    let gw = Gateway::start_with(GatewayOptions {
        http: true,
        http_token: Some(token.to_owned()),
        ..GatewayOptions::default()
    });
    let port = gw.http_port();
    for (path, headers) in [
        ("/metrics", vec![]),
        ("/", vec![]),
        (
            "/metrics",
            vec!["Authorization: Bearer wrong-token-0000000000"],
        ),
        ("/metrics?token=cairn-test-token", vec![]),
    ] {
        let r = web::request(port, "GET", path, &headers);
        assert_eq!(r.status, 401, "{path} {headers:?}: {}", r.body);
        assert!(!r.body.contains("cairn_files"), "{}", r.body);
    }
    let bearer = format!("Authorization: Bearer {token}");
    let r = web::request(port, "GET", "/metrics", &[&bearer]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("cairn_files"), "{}", r.body);
    let r = web::get(port, &format!("/?token={token}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("cairn gateway"));
}
