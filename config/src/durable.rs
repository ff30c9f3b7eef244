//! The one durable-write helper of cairn: a file that must survive a crash
//! (a config, a state file, a shard, a marker) is written to a temp file in
//! its own folder, fsynced, renamed over its final name, and the folder is
//! fsynced. A reader sees the old file or the whole new one, never a part;
//! a [`TempFile`] dropped before [`TempFile::commit`] removes its temp file.
//! Temp names are `.<name>.<unique>.tmp`, so a daemon can sweep leftovers.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of every file written here: for the owner only.
const FILE_MODE: u32 = 0o600;

/// Which step of a durable write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Write,
    Fsync,
    Rename,
    FsyncDir,
}

impl Step {
    /// The step as words ("create temp file", "fsync directory", …).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Create => "create temp file",
            Step::Write => "write",
            Step::Fsync => "fsync",
            Step::Rename => "rename",
            Step::FsyncDir => "fsync directory",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A durable write that failed, with the path of the step that failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {step} {} failed: {source}", dest.display(), path.display())]
pub struct DurableError {
    pub step: Step,
    /// The file or folder the step worked on.
    pub path: PathBuf,
    /// The file being written.
    pub dest: PathBuf,
    #[source]
    pub source: io::Error,
}

/// A temp file beside its final name. Write through [`TempFile::file`],
/// then [`TempFile::commit`]; dropped uncommitted, the temp file is removed.
#[derive(Debug)]
pub struct TempFile {
    file: Option<File>,
    temp: PathBuf,
    dest: PathBuf,
}

/// Tells temp names of one process apart (the PID tells processes apart).
static NEXT: AtomicU64 = AtomicU64::new(0);

impl TempFile {
    /// Creates the temp file (mode 0600) for `dest`, in `dest`'s folder.
    pub fn create(dest: &Path) -> Result<TempFile, DurableError> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let temp = dest.with_file_name(format!(
            ".{name}.{:x}{unique:x}{nanos:08x}.tmp",
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)
            .map_err(|source| DurableError {
                step: Step::Create,
                path: temp.clone(),
                dest: dest.to_owned(),
                source,
            })?;
        // The umask may have taken owner bits away.
        let _ = file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE));
        Ok(TempFile {
            file: Some(file),
            temp,
            dest: dest.to_owned(),
        })
    }

    /// The open temp file.
    pub fn file(&mut self) -> &mut File {
        self.file
            .as_mut()
            .expect("the temp file is open until commit")
    }

    /// The temp file's path.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Writes all of `bytes` at the temp file's current position.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), DurableError> {
        let result = self.file().write_all(bytes);
        result.map_err(|source| self.error(Step::Write, self.temp.clone(), source))
    }

    /// fsync → rename over the final name → fsync the folder. After an
    /// error the caller must not assume anything about the final name's
    /// contents being on disk (never retry an fsync and carry on).
    pub fn commit(mut self) -> Result<(), DurableError> {
        let file = self.file.take().expect("commit once");
        file.sync_all()
            .map_err(|source| self.error(Step::Fsync, self.temp.clone(), source))?;
        drop(file);
        std::fs::rename(&self.temp, &self.dest)
            .map_err(|source| self.error(Step::Rename, self.temp.clone(), source))?;
        // The temp name is gone: nothing left for Drop to remove.
        self.temp = PathBuf::new();
        let dir = match self.dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        sync_dir(&dir).map_err(|source| self.error(Step::FsyncDir, dir.clone(), source))
    }

    fn error(&self, step: Step, path: PathBuf, source: io::Error) -> DurableError {
        DurableError {
            step,
            path,
            dest: self.dest.clone(),
            source,
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `path` durably (temp, fsync, rename, fsync the folder);
/// the file is 0600.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), DurableError> {
    let mut temp = TempFile::create(path)?;
    temp.write_all(bytes)?;
    temp.commit()
}

/// fsyncs a folder, so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_file_is_complete_and_private_after_the_call_and_no_temp_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, "old contents, longer than the new ones").unwrap();
        write_durable(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(names(dir.path()), vec!["gateway.toml"]);
    }

    #[test]
    fn a_failed_write_removes_the_temp_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.toml");
        std::fs::write(&path, "old").unwrap();
        let mut temp = TempFile::create(&path).unwrap();
        temp.write_all(b"half of the new").unwrap();
        let temp_path = temp.temp_path().to_owned();
        assert!(temp_path.exists());
        assert!(temp_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".state.toml."));
        drop(temp); // the writer failed before commit
        assert!(!temp_path.exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["state.toml"]);
    }

    #[test]
    fn a_failed_rename_removes_the_temp_and_names_the_step() {
        let dir = tempfile::tempdir().unwrap();
        // A folder in the way: rename(file, non-empty folder) fails.
        let path = dir.path().join("conf");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), "x").unwrap();
        let err = write_durable(&path, b"bytes").unwrap_err();
        assert_eq!(err.step, Step::Rename);
        assert_eq!(err.dest, path);
        assert_eq!(names(dir.path()), vec!["conf"]);
    }

    #[test]
    fn a_missing_folder_fails_at_create() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_durable(&dir.path().join("no/such/file"), b"x").unwrap_err();
        assert_eq!(err.step, Step::Create);
        assert!(err.to_string().contains("no/such/file"), "{err}");
    }
}
