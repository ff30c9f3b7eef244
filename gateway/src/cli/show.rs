//! How `cairn status` and `cairn store list` print for a person (the
//! `--json` forms print the admin reply as it is).

use serde_json::Value;

pub(super) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub(super) fn print_stores(v: &Value) {
    println!(
        "{:<10} {:<8} {:<8} {:<8} {:<12} {:>10} {:>10} {:>6}",
        "STORE", "STATE", "ZONE", "HOST", "LABELS", "USED", "FREE", "FILL"
    );
    for s in v["stores"].as_array().into_iter().flatten() {
        let labels: Vec<&str> = s["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "{:<10} {:<8} {:<8} {:<8} {:<12} {:>10} {:>10} {:>5}%",
            s["name"].as_str().unwrap_or(""),
            match s["state"].as_str() {
                Some("online") => "online".to_owned(),
                Some(other) => other.to_uppercase(),
                None => "?".to_owned(),
            },
            s["zone"].as_str().unwrap_or(""),
            s["host"].as_str().unwrap_or(""),
            labels.join(","),
            human(s["used"].as_u64().unwrap_or(0)),
            human(s["free"].as_u64().unwrap_or(0)),
            s["fill_percent"].as_f64().unwrap_or(0.0)
        );
    }
}

pub(super) fn print_status(v: &Value) {
    print_stores(v);
    let smb = &v["smb"];
    if !smb.is_null() {
        let shares: Vec<String> = smb["shares"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                format!(
                    "{} ({})",
                    s["name"].as_str().unwrap_or(""),
                    s["path"].as_str().unwrap_or("")
                )
            })
            .collect();
        println!(
            "\nsmb: {} on {}, view {}, {} client(s), {} restart(s); shares: {}",
            match smb["pid"].as_u64() {
                Some(pid) => format!("smbd running (pid {pid})"),
                None => "smbd NOT running".to_owned(),
            },
            smb["listen"].as_str().unwrap_or(""),
            if smb["view_mounted"].as_bool() == Some(true) {
                "mounted"
            } else {
                "NOT mounted"
            },
            smb["clients"]
                .as_u64()
                .map_or("?".to_owned(), |n| n.to_string()),
            smb["restarts"].as_u64().unwrap_or(0),
            if shares.is_empty() {
                "none".to_owned()
            } else {
                shares.join(", ")
            }
        );
    }
    let b = &v["backlog"];
    println!(
        "\ndrain backlog: {} in {} file(s), oldest waiting {}",
        human(b["bytes"].as_u64().unwrap_or(0)),
        b["files"],
        b["oldest_seconds"]
            .as_f64()
            .map_or("-".to_owned(), |s| format!("{s:.1} s"))
    );
    println!(
        "cache: {} used of {}",
        human(v["cache"]["used_bytes"].as_u64().unwrap_or(0)),
        human(v["cache"]["max_bytes"].as_u64().unwrap_or(0))
    );
    println!(
        "\n{:<16} {:>8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>10} {:>6}  LAYOUT",
        "CLASS",
        "HEALTHY",
        "UNDERGOAL",
        "AT RISK",
        "ENDANGERED",
        "MISSING",
        "LOGICAL",
        "STORED",
        "RATIO"
    );
    for c in v["classes"].as_array().into_iter().flatten() {
        let k = &c["chunks"];
        println!(
            "{:<16} {:>8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>10} {:>6}  {}",
            c["name"].as_str().unwrap_or(""),
            k["healthy"].as_u64().unwrap_or(0),
            k["undergoal"].as_u64().unwrap_or(0),
            k["at_risk"].as_u64().unwrap_or(0),
            k["endangered"].as_u64().unwrap_or(0),
            k["missing"].as_u64().unwrap_or(0),
            human(c["logical_bytes"].as_u64().unwrap_or(0)),
            human(c["stored_bytes"].as_u64().unwrap_or(0)),
            format!("{:.2}x", c["stored_ratio"].as_f64().unwrap_or(0.0)),
            c["describe"].as_str().unwrap_or("")
        );
    }
    for c in v["classes"].as_array().into_iter().flatten() {
        if let Some(why) = c["why"].as_str() {
            println!("  {}: {why}", c["name"].as_str().unwrap_or(""));
        }
    }
    let k = &v["backup"];
    if k.is_object() {
        println!(
            "\nmetadata backup: generation {}, {} changeset(s) since its snapshot, on {}; recovery point {}",
            k["generation"].as_str().unwrap_or("-"),
            k["changesets"],
            k["stores"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
            k["recovery_point_seconds"]
                .as_f64()
                .map_or("never shipped".to_owned(), |s| format!("{s:.1} s ago")),
        );
        if let Some(w) = k["warning"].as_str() {
            println!("  WARNING: {w}");
        }
    }
    let r = &v["repair"];
    if r.is_object() {
        let eta = r["eta_seconds"]
            .as_f64()
            .map_or("-".to_owned(), |s| format!("{s:.0} s"));
        println!(
            "\nrepair: {} chunk(s) waiting ({}), {} cannot be repaired now, {} have no store to go to; {} repaired ({}) so far; {}/s; ETA {eta}",
            r["waiting_chunks"],
            human(r["waiting_bytes"].as_u64().unwrap_or(0)),
            r["stuck_chunks"],
            r["unplaceable_chunks"],
            r["repaired_chunks"],
            human(r["repaired_bytes"].as_u64().unwrap_or(0)),
            human(r["bytes_per_second"].as_f64().unwrap_or(0.0) as u64),
        );
        let b = &r["rebalance"];
        println!(
            "rebalance: fills {} points apart (moves while over {}); {} copies moved ({})",
            b["fill_spread_points"],
            b["target_points"],
            b["moved_chunks"],
            human(b["moved_bytes"].as_u64().unwrap_or(0)),
        );
    }
}
