//! How `cairn status`, `cairn store list` and `cairn store chunks` print
//! for a person, from the typed admin replies (the `--json` forms print
//! those replies as they are).

use crate::admin::proto::{ChunkRow, Status, StoreRow, StoreStanding};
pub(crate) use crate::disk::human;

pub(super) fn print_stores(stores: &[StoreRow]) {
    print!("{}", store_table(stores));
}

/// The stores table: standing, fill, and each link's round trip and
/// measured rates (`-` until measured); the text columns are as wide as
/// their longest value. A store that is not answering gets a line saying
/// why under the table.
fn store_table(stores: &[StoreRow]) -> String {
    let rate = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"));
    let rows: Vec<[String; 10]> = stores
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                match s.state {
                    StoreStanding::Online => s.state.name().to_owned(),
                    other => other.name().to_uppercase(),
                },
                s.zone.clone(),
                s.host.clone(),
                s.labels.join(","),
                human(s.stored),
                human(s.free),
                format!("{}%", s.fill_percent),
                s.rtt_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0}ms")),
                format!("{}/{}", rate(s.up_mb_s), rate(s.down_mb_s)),
            ]
        })
        .collect();
    let head = [
        "STORE",
        "STATE",
        "ZONE",
        "HOST",
        "LABELS",
        "CAIRN",
        "FREE",
        "FILL",
        "RTT",
        "MB/S UP/DOWN",
    ];
    // Minimum widths keep short tables in their familiar shape.
    let mut width = [10, 8, 8, 8, 12, 10, 10, 6, 7, 13];
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 10]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(width).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            // Text columns left, numbers right.
            if i < 5 {
                out += &format!("{cell:<w$}");
            } else {
                out += &format!("{cell:>w$}");
            }
        }
        out.truncate(out.trim_end().len());
        out + "\n"
    };
    let mut out = line(head);
    for row in &rows {
        out += &line(std::array::from_fn(|i| row[i].as_str()));
    }
    for s in stores {
        if let Some(why) = &s.why {
            out += &format!("  {}: {why}\n", s.name);
        }
    }
    out
}

pub(super) fn print_chunks(chunks: &[ChunkRow]) {
    for c in chunks {
        println!(
            "{} {:<12} {:<9} {}",
            c.key,
            c.class,
            c.layout,
            c.stores.join(",")
        );
    }
}

pub(super) fn print_status(v: &Status) {
    print_stores(&v.stores);
    if let Some(smb) = &v.smb {
        let shares: Vec<String> = smb
            .shares
            .iter()
            .map(|s| format!("{} ({})", s.name, s.path))
            .collect();
        println!(
            "\nsmb: {} on {}, view {}, {} client(s), {} restart(s); shares: {}",
            match smb.pid {
                Some(pid) => format!("smbd running (pid {pid})"),
                None => "smbd NOT running".to_owned(),
            },
            smb.listen,
            if smb.view_mounted {
                "mounted"
            } else {
                "NOT mounted"
            },
            smb.clients.map_or("?".to_owned(), |n| n.to_string()),
            smb.restarts,
            if shares.is_empty() {
                "none".to_owned()
            } else {
                shares.join(", ")
            }
        );
    }
    let b = &v.backlog;
    println!(
        "\ndrain backlog: {} in {} file(s), oldest waiting {}",
        human(b.bytes),
        b.files,
        b.oldest_seconds
            .map_or("-".to_owned(), |s| format!("{s:.1} s"))
    );
    println!(
        "cache: {} used of {}",
        human(v.cache.used_bytes),
        human(v.cache.max_bytes)
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
    for c in &v.classes {
        let k = &c.chunks;
        println!(
            "{:<16} {:>8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>10} {:>6}  {}",
            c.name,
            k.healthy,
            k.undergoal,
            k.at_risk,
            k.endangered,
            k.missing,
            human(c.logical_bytes),
            human(c.stored_bytes),
            format!("{:.2}x", c.stored_ratio),
            c.describe
        );
    }
    for c in &v.classes {
        if let Some(why) = &c.why {
            println!("  {}: {why}", c.name);
        }
    }
    if let Some(k) = &v.backup {
        println!(
            "\nmetadata backup: generation {}, {} changeset(s) since its snapshot, on {}; recovery point {}",
            k.generation,
            k.changesets,
            k.stores.join(","),
            k.recovery_point_seconds
                .map_or("never shipped".to_owned(), |s| format!("{s:.1} s ago")),
        );
        if let Some(w) = &k.warning {
            println!("  WARNING: {w}");
        }
    }
    if let Some(r) = &v.repair {
        let eta = r
            .eta_seconds
            .map_or("-".to_owned(), |s| format!("{s:.0} s"));
        println!(
            "\nrepair: {} chunk(s) waiting ({}), {} cannot be repaired now, {} have no store to go to; {} repaired ({}) so far; {}/s; ETA {eta}",
            r.waiting_chunks,
            human(r.waiting_bytes),
            r.stuck_chunks,
            r.unplaceable_chunks,
            r.repaired_chunks,
            human(r.repaired_bytes),
            human(r.bytes_per_second as u64),
        );
        let b = &r.rebalance;
        // `{:?}` writes 5.0 as "5.0", as the JSON-era table did.
        println!(
            "rebalance: fills {:?} points apart (moves while over {:?}); {} copies moved ({})",
            b.fill_spread_points,
            b.target_points,
            b.moved_chunks,
            human(b.moved_bytes),
        );
    }
    if !v.jobs.is_empty() {
        let jobs: Vec<String> = v
            .jobs
            .iter()
            .map(|(name, j)| match &j.last_error {
                Some(e) => format!("{name} failing ({} failure(s): {e})", j.failures),
                None => format!("{name} {}", j.state.name()),
            })
            .collect();
        println!(
            "
jobs: {}",
            jobs.join(", ")
        );
    }
}

#[cfg(test)]
#[test]
fn the_stores_table_shows_each_links_round_trip_and_rates() {
    let status = crate::admin::tests::example_status();
    let table = store_table(&status.stores);
    let mut lines = table.lines();
    let head = lines.next().unwrap_or_default();
    assert!(
        head.contains("RTT") && head.contains("MB/S UP/DOWN"),
        "{table}"
    );
    let row = lines.next().unwrap_or_default();
    assert!(row.ends_with("42ms         1.2/-"), "{table}");
}

#[cfg(test)]
#[test]
fn long_zone_and_host_names_keep_the_columns_aligned_and_a_silent_store_says_why() {
    let mut status = crate::admin::tests::example_status();
    let mut silent = status.stores[0].clone();
    silent.name = "eu-bucket".into();
    silent.zone = "s3.eu-central-1.wasabisys.com".into();
    silent.host = "s3.eu-central-1.wasabisys.com/cairn-data".into();
    silent.state = StoreStanding::Offline;
    silent.why = Some("bucket \"cairn-data\" does not exist".into());
    status.stores.push(silent);
    let table = store_table(&status.stores);
    let lines: Vec<&str> = table.lines().collect();
    let head = lines[0];
    for row in &lines[1..3] {
        let cells: Vec<&str> = row.split_whitespace().collect();
        // Each row's HOST and LABELS values start where their headings do.
        for (heading, cell) in [("HOST", cells[3]), ("LABELS", cells[4])] {
            assert_eq!(head.find(heading), row.find(cell), "{table}");
        }
    }
    assert_eq!(
        lines[3], "  eu-bucket: bucket \"cairn-data\" does not exist",
        "{table}"
    );
}
