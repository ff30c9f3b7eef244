//! The status page: what `cairn status` says, for a person in a browser.
//! Capacity bars per store, health per class, backlog, repair progress with
//! its ETA, metadata backup lag, the jobs, and recent warnings. One HTML
//! document with its style inline (no external assets: it works offline),
//! refreshing itself every 5 s.

use std::fmt::Write as _;

use super::events::Event;
use crate::admin::proto::Status;
use crate::disk::human;

/// How often the page reloads itself, in seconds.
const REFRESH_SECONDS: u32 = 5;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}\
table{border-collapse:collapse;background:#fff}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}\
td{white-space:nowrap}td.msg{white-space:normal}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.bar{width:12em;height:.9em;background:#e4e4e4;border-radius:3px;overflow:hidden;display:inline-block;vertical-align:middle}\
.fill{display:block;height:100%;background:#3a7d44}.fill.high{background:#c77c02}.fill.full{background:#b3261e}\
.online{color:#3a7d44}.suspect{color:#c77c02}.offline,.bad{color:#b3261e;font-weight:600}\
.muted{color:#777}.warn{color:#c77c02}.error{color:#b3261e}";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn seconds(s: f64) -> String {
    match s {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

/// The page for `status` and the `events` kept (newest first).
pub fn render(status: &Status, events: &[Event]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta http-equiv=refresh content={REFRESH_SECONDS}>\
         <meta name=viewport content=\"width=device-width\">\
         <title>cairn gateway</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(
        h,
        "<h1>cairn gateway</h1><p id=summary>{} files, {} of data, {} chunks; \
         ingest cache {} of {}.</p>",
        status.files.inodes,
        human(status.files.logical_bytes),
        status.chunks,
        human(status.cache.used_bytes),
        human(status.cache.max_bytes)
    );
    stores(&mut h, status);
    classes(&mut h, status);
    work(&mut h, status);
    recent(&mut h, events);
    let _ = write!(
        h,
        "<p class=muted>Refreshes every {REFRESH_SECONDS} s. Metrics: <a href=metrics>/metrics</a>, \
         the same state as JSON: <a href=status.json>/status.json</a>.</p></body></html>"
    );
    h
}

fn stores(h: &mut String, status: &Status) {
    let _ = write!(h, "<h2>Stores</h2>");
    if status.stores.is_empty() {
        let _ = write!(
            h,
            "<p class=muted>No chunk stores: data stays in the ingest cache.</p>"
        );
        return;
    }
    let _ = write!(
        h,
        "<table id=stores><tr><th>store</th><th>state</th><th>zone / host</th><th>labels</th>\
         <th>disk fill</th><th>cairn holds</th><th>free</th><th>round trip</th><th>up / down MB/s</th></tr>"
    );
    for r in &status.stores {
        let pct = r.fill_percent.clamp(0.0, 100.0);
        let level = match pct {
            p if p >= 90.0 => " full",
            p if p >= 75.0 => " high",
            _ => "",
        };
        let rate = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1}"));
        let _ = write!(
            h,
            "<tr class=store data-store=\"{name}\"><td>{name}</td><td class=\"state {state}\">{state}</td>\
             <td>{zone} / {host}</td><td>{labels}</td>\
             <td><span class=bar title=\"{pct:.1}% used\"><span class=\"fill{level}\" style=\"width:{pct:.1}%\"></span></span> \
             <span class=fill-percent>{pct:.1}</span>%</td><td class=n>{stored}</td><td class=n>{free} of {cap}</td><td class=n>{rtt}</td><td class=n>{up} / {down}</td></tr>",
            name = esc(&r.name),
            state = r.state.name(),
            zone = esc(&r.zone),
            host = esc(&r.host),
            labels = esc(&r.labels.join(", ")),
            stored = human(r.stored),
            free = human(r.free),
            cap = human(r.capacity),
            rtt = r.rtt_ms.map_or("–".to_owned(), |ms| format!("{ms:.1} ms")),
            up = rate(r.up_mb_s),
            down = rate(r.down_mb_s),
        );
        if let Some(why) = &r.why {
            let _ = write!(
                h,
                "<tr class=why><td></td><td colspan=8 class=bad>{}</td></tr>",
                esc(why)
            );
        }
    }
    let _ = write!(h, "</table>");
}

fn classes(h: &mut String, status: &Status) {
    let _ = write!(
        h,
        "<h2>Classes</h2><table id=classes><tr><th>class</th><th>rule</th><th>healthy</th>\
         <th>undergoal</th><th>at risk</th><th>endangered</th><th>missing</th>\
         <th>logical</th><th>stored</th></tr>"
    );
    for c in &status.classes {
        let k = &c.chunks;
        let bad = |n: u64| if n > 0 { " bad" } else { "" };
        let _ = write!(
            h,
            "<tr class=class data-class=\"{name}\"><td>{name}</td><td>{rule}</td>\
             <td class=\"n healthy\">{}</td><td class=\"n undergoal{}\">{}</td><td class=\"n at_risk{}\">{}</td>\
             <td class=\"n endangered{}\">{}</td><td class=\"n missing{}\">{}</td>\
             <td class=n>{}</td><td class=n>{} ({:.2}×)</td></tr>",
            k.healthy,
            bad(k.undergoal),
            k.undergoal,
            bad(k.at_risk),
            k.at_risk,
            bad(k.endangered),
            k.endangered,
            bad(k.missing),
            k.missing,
            human(c.logical_bytes),
            human(c.stored_bytes),
            c.stored_ratio,
            name = esc(&c.name),
            rule = esc(&c.describe),
        );
        if let Some(why) = &c.why {
            let _ = write!(
                h,
                "<tr class=why><td></td><td colspan=8 class=warn>{}</td></tr>",
                esc(why)
            );
        }
    }
    let _ = write!(h, "</table>");
}

fn work(h: &mut String, status: &Status) {
    let b = &status.backlog;
    let _ = write!(
        h,
        "<h2>Work</h2><p id=backlog>Drain backlog: <b>{}</b> in {} files{}.</p>",
        human(b.bytes),
        b.files,
        b.oldest_seconds
            .map(|s| format!(", oldest {}", seconds(s)))
            .unwrap_or_default()
    );
    if let Some(r) = &status.repair {
        let eta = r
            .eta_seconds
            .map(|s| format!(", done in about {}", seconds(s)))
            .unwrap_or_default();
        let _ = write!(
            h,
            "<p id=repair>Repair: {} chunks ({}) waiting, {} stuck{eta}; {} repaired ({}) since start.</p>",
            r.waiting_chunks,
            human(r.waiting_bytes),
            r.stuck_chunks,
            r.repaired_chunks,
            human(r.repaired_bytes)
        );
    }
    if let Some(backup) = &status.backup {
        let _ = write!(
            h,
            "<p id=backup>Metadata backup: newest state on the stores is {} old{}.</p>",
            backup
                .recovery_point_seconds
                .map_or("not yet shipped".to_owned(), seconds),
            backup
                .warning
                .as_ref()
                .map(|w| format!(" <span class=warn>{}</span>", esc(w)))
                .unwrap_or_default()
        );
    }
    let _ = write!(h, "<table id=jobs><tr><th>job</th><th>state</th><th>steps</th><th>failures</th><th>last error</th></tr>");
    for (name, j) in &status.jobs {
        let _ = write!(
            h,
            "<tr class=job data-job=\"{}\"><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=bad>{}</td></tr>",
            esc(name),
            esc(name),
            j.state.name(),
            j.steps,
            j.failures,
            esc(j.last_error.as_deref().unwrap_or(""))
        );
    }
    let _ = write!(h, "</table>");
}

fn recent(h: &mut String, events: &[Event]) {
    let _ = write!(h, "<h2>Recent events</h2>");
    if events.is_empty() {
        let _ = write!(
            h,
            "<p class=muted id=events>No warnings or errors since start.</p>"
        );
        return;
    }
    let _ = write!(h, "<table id=events>");
    for e in events {
        let ago = e.at.elapsed().map_or(0.0, |d| d.as_secs_f64());
        let class = if e.level == tracing::Level::ERROR {
            "error"
        } else {
            "warn"
        };
        let _ = write!(
            h,
            "<tr class=event><td class=muted>{} ago</td><td class={class}>{}</td><td class=msg>{}</td></tr>",
            seconds(ago),
            e.level,
            esc(&e.text)
        );
    }
    let _ = write!(h, "</table>");
}
