//! Runs a child command to completion under a deadline, so that a hung client
//! tool or a server that ignores a bad config fails the test instead of
//! hanging the suite. Output is captured whole (pipes are drained on a thread).

use std::io;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

/// Why [`run`] produced no output.
#[derive(Debug)]
pub enum RunError {
    /// The program could not be started (not installed, not executable).
    Spawn(io::Error),
    /// It was still running at the deadline and was killed; whatever it
    /// printed until then is kept.
    Timeout(Duration, Output),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Spawn(e) => write!(f, "could not start: {e}"),
            Self::Timeout(d, out) => write!(
                f,
                "still running after {d:?}, killed; stdout: {:?}; stderr: {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs `cmd` with stdin closed and stdout/stderr captured; kills it with
/// SIGKILL if it has not exited within `deadline`.
pub fn run(mut cmd: Command, deadline: Duration) -> Result<Output, RunError> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(RunError::Spawn)?;
    let pid = Pid::from_child(&child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.map_err(RunError::Spawn),
        Err(_) => {
            // The waiting thread still owns the child, so it is not reaped yet
            // and the pid cannot have been reused.
            let _ = kill_process(pid, Signal::KILL);
            let out = rx
                .recv()
                .expect("waiter thread ended without sending")
                .map_err(RunError::Spawn)?;
            Err(RunError::Timeout(deadline, out))
        }
    }
}

/// Formats a finished command's status and output for an assertion message.
pub fn describe(out: &Output) -> String {
    format!(
        "status {}; stdout: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}
