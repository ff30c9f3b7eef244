//! Progress of long operations (`cairn restore`, …): a bar on a terminal
//! (indicatif), and plain lines on standard error otherwise, at most one
//! every few seconds and one at the end, so logs stay readable.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is written at most.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Counts `done` of `total` steps of one operation.
pub struct Progress {
    what: String,
    total: u64,
    done: u64,
    bytes: u64,
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl Progress {
    /// Starts counting `total` steps of `what` ("fetching metadata objects").
    pub fn new(what: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} ({elapsed}, about {eta} left)",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.to_owned());
            bar
        });
        Self {
            what: what.to_owned(),
            total,
            done: 0,
            bytes: 0,
            bar,
            last_line: Instant::now(),
        }
    }

    /// One more step done, of `bytes` bytes.
    pub fn step(&mut self, bytes: u64) {
        self.done += 1;
        self.bytes += bytes;
        match &self.bar {
            Some(bar) => bar.inc(1),
            None if self.last_line.elapsed() >= LINE_EVERY => {
                self.last_line = Instant::now();
                eprintln!("{}", self.line());
            }
            None => {}
        }
    }

    fn line(&self) -> String {
        format!(
            "{}: {} of {} ({})",
            self.what,
            self.done,
            self.total,
            crate::disk::human(self.bytes)
        )
    }

    /// The end: the bar goes, a last line stays.
    pub fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!("{}", self.line());
    }
}
