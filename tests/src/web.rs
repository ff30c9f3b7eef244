//! The gateway's HTTP endpoint as tests reach it: a plain HTTP/1.1 GET over
//! a TCP stream (one request per connection), the Prometheus text parsed
//! into samples, and the status page rendered by headless Chromium.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::command;

/// A response: its status code, headers (lowercase names) and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// `METHOD path` on 127.0.0.1:`port` with `extra` header lines.
pub fn request(port: u16, method: &str, path: &str, extra: &[&str]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `GET path`.
pub fn get(port: u16, path: &str) -> Response {
    request(port, "GET", path, &[])
}

/// The samples of a Prometheus text exposition: `name{labels}` (as
/// written) to value.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Headless Chromium's rendering of `url`: the DOM after load, and a
/// screenshot saved at `png`.
pub fn chromium(url: &str, png: &Path) -> String {
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
    ];
    let mut shot = Command::new("chromium");
    shot.args(base)
        .arg("--window-size=1280,900")
        .arg(format!("--screenshot={}", png.display()))
        .arg(url);
    let out = command::run(shot, Duration::from_secs(120)).unwrap_or_else(|e| {
        panic!("chromium --screenshot: {e}; install it with apt-get install chromium")
    });
    assert!(
        png.exists(),
        "no screenshot at {}: {}",
        png.display(),
        command::describe(&out)
    );
    let mut dom = Command::new("chromium");
    dom.args(base).arg("--dump-dom").arg(url);
    let out = command::run(dom, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("chromium --dump-dom: {e}"));
    assert!(
        out.status.success(),
        "chromium --dump-dom: {}",
        command::describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
