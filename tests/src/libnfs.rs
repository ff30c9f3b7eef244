//! Wrappers around libnfs-utils' `nfs-cp`, `nfs-ls` and `nfs-cat`: URL
//! building for a one-port gateway, a deadline on every run, and `nfs-ls`
//! output parsed into entries.
//!
//! URL rules (see shared notes/nfs.md): both ports must be given, since there
//! is no rpcbind; a file in the export root needs a double slash,
//! `nfs://127.0.0.1//FILE?...`, because libnfs mounts the part before the last
//! `/`; `nfs-ls` mounts the whole path, so the root is `nfs://127.0.0.1/?...`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::command::{self, RunError};

/// Deadline for one libnfs command: a 300 MiB copy through a debug build on
/// two shared cores fits well inside it.
pub const TOOL_DEADLINE: Duration = Duration::from_secs(300);

/// URL of `name`, a file in the export root.
pub fn file_url(port: u16, name: &str) -> String {
    assert!(
        !name.contains('/'),
        "only files in the export root have a mount-independent URL"
    );
    format!("nfs://127.0.0.1//{name}?nfsport={port}&mountport={port}")
}

/// URL of the export root, for `nfs-ls`.
pub fn root_url(port: u16) -> String {
    format!("nfs://127.0.0.1/?nfsport={port}&mountport={port}")
}

fn run_tool(tool: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(tool);
    cmd.args(args);
    match command::run(cmd, TOOL_DEADLINE) {
        Ok(out) => out,
        Err(RunError::Spawn(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{tool} not found: install libnfs-utils (apt-get install libnfs-utils)")
        }
        Err(e) => panic!("{tool} {args:?}: {e}"),
    }
}

fn check(tool: &str, args: &[&str], out: Output) -> Result<Output, String> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!("{tool} {args:?}: {}", command::describe(&out)))
    }
}

/// `nfs-cp SRC DST`; either side may be a local path or an nfs URL.
/// nfs-cp never overwrites: copy to fresh names.
pub fn cp(src: &str, dst: &str) -> Result<(), String> {
    let args = [src, dst];
    check("nfs-cp", &args, run_tool("nfs-cp", &args)).map(|_| ())
}

/// Copies a local file to `name` in the export root.
pub fn upload(port: u16, local: &Path, name: &str) -> Result<(), String> {
    cp(&local.to_string_lossy(), &file_url(port, name))
}

/// Copies `name` from the export root to a new local file.
pub fn download(port: u16, name: &str, local: &Path) -> Result<(), String> {
    cp(&file_url(port, name), &local.to_string_lossy())
}

/// `nfs-cat URL`: the file's bytes.
pub fn cat(url: &str) -> Result<Vec<u8>, String> {
    let args = [url];
    check("nfs-cat", &args, run_tool("nfs-cat", &args)).map(|o| o.stdout)
}

/// One line of `nfs-ls` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsEntry {
    /// `-rw-r--r--` style.
    pub mode: String,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub name: String,
}

/// `nfs-ls URL`, parsed. Fails on a non-zero exit or an unparsable line
/// (nfs-ls prints "Failed to opendir" on stdout and exits 10).
pub fn ls(url: &str) -> Result<Vec<LsEntry>, String> {
    let args = [url];
    let out = check("nfs-ls", &args, run_tool("nfs-ls", &args))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_ls_line(l).ok_or_else(|| format!("nfs-ls: unparsable line {l:?}")))
        .collect()
}

/// `-rw-r--r--  1     0     0        12345 name` (the name may hold spaces).
fn parse_ls_line(line: &str) -> Option<LsEntry> {
    let mut rest = line;
    let mut fields = Vec::new();
    for _ in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(' ')?;
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let name = rest.strip_prefix(' ')?;
    Some(LsEntry {
        mode: fields[0].to_string(),
        nlink: fields[1].parse().ok()?,
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        size: fields[4].parse().ok()?,
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nfs_ls_lines() {
        let e = parse_ls_line("-rw-r--r--  1     0     0        12345 f 1").unwrap();
        assert_eq!(e.mode, "-rw-r--r--");
        assert_eq!((e.nlink, e.uid, e.gid, e.size), (1, 0, 0, 12345));
        assert_eq!(e.name, "f 1");
        let e = parse_ls_line("drwx------ 12 65534 65534            0 d").unwrap();
        assert_eq!((e.nlink, e.uid, e.name.as_str()), (12, 65534, "d"));
        assert!(parse_ls_line("Failed to opendir(\"\") boom").is_none());
    }

    #[test]
    fn urls_follow_the_libnfs_rules() {
        assert_eq!(
            file_url(2049, "a.bin"),
            "nfs://127.0.0.1//a.bin?nfsport=2049&mountport=2049"
        );
        assert_eq!(root_url(7), "nfs://127.0.0.1/?nfsport=7&mountport=7");
    }
}
