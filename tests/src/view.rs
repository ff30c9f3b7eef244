//! A `cairn mount` view for tests: mounted with the CLI a user runs, taken
//! away with `cairn umount` when dropped (before the gateway it belongs
//! to, when declared after it), so no test leaves a dead mount behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::gateway::run_cairn;
use crate::Gateway;

/// A mounted view; `dir` is where it is mounted.
pub struct View {
    pub dir: PathBuf,
    config: String,
}

impl Drop for View {
    fn drop(&mut self) {
        let dir = self.dir.to_string_lossy().into_owned();
        let _ = run_cairn(
            &["umount", &dir, "--config", &self.config],
            Duration::from_secs(60),
        );
        let mounted = std::process::Command::new("mountpoint")
            .args(["-q", &dir])
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            let _ = std::process::Command::new("umount")
                .args(["-l", &dir])
                .status();
        }
    }
}

/// Mounts the view of `gw` on `scratch/view` with `cairn mount`.
pub fn mount_view(gw: &Gateway) -> View {
    mount_view_at(gw, &gw.scratch().join("view"))
}

/// Mounts the view of `gw` on `dir` with `cairn mount`.
pub fn mount_view_at(gw: &Gateway, dir: &Path) -> View {
    let dir = dir.to_path_buf();
    // The gateway makes the folder (and clears a dead mount left there).
    let config = gw.config_path().to_string_lossy().into_owned();
    let out = run_cairn(
        &["mount", &dir.to_string_lossy(), "--config", &config],
        Duration::from_secs(60),
    )
    .expect("run cairn mount");
    assert!(out.status.success(), "cairn mount: {out:?}");
    View { dir, config }
}
