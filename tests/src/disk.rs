//! Small real disks for tests: a size-limited tmpfs mounted on a folder
//! (the tests run as root), so a test can fill a gateway's disk for real.
//! The mount is checked with `statvfs` and unmounted when dropped; a mount
//! that fails fails the test with the reason, it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a fixed size mounted on a folder until dropped.
pub struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` on `dir` (created if missing).
    pub fn mount(dir: &Path, bytes: u64) -> Self {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("create mount point {}: {e}", dir.display()));
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes},mode=0755"))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("run mount: {e}"));
        assert!(
            out.status.success(),
            "mounting a {bytes}-byte tmpfs on {} failed ({}): {}; these tests need root \
             and permission to mount tmpfs",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let disk = SmallDisk {
            dir: dir.to_owned(),
        };
        let total = disk.total();
        assert!(
            total.abs_diff(bytes) < 1 << 20,
            "statvfs of {} says {total} bytes, not the {bytes} mounted",
            dir.display()
        );
        disk
    }

    /// The filesystem's size in bytes.
    pub fn total(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.dir).expect("statvfs");
        st.f_blocks * st.f_frsize
    }

    /// Bytes still free on it.
    pub fn avail(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.dir).expect("statvfs");
        st.f_bavail * st.f_frsize
    }

    /// Writes `name` on the disk until the disk is full (ENOSPC); returns
    /// its path.
    pub fn fill(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join(name);
        let mut f = std::fs::File::create(&path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let block = vec![0x5au8; 64 << 10];
        for _ in 0..(1 << 20) {
            match f.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("fill {}: {e}", path.display()),
            }
        }
        // The last partial blocks, down to the byte.
        let small = [0x5au8; 4096];
        while f.write(&small).is_ok_and(|n| n > 0) {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it open: detach it now, freed when let go.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}
