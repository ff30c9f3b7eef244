//! [`GatewayConfig::validate`]: checks that a parsed config can work on this
//! machine and reports every problem at once, each with the field, the value
//! and the fix. It only looks at the filesystem; it never creates or changes
//! anything.

use std::io;
use std::path::Path;

use crate::error::{ConfigError, Problem};
use crate::gateway::{GatewayConfig, MAX_NFS_MAX_CONNECTIONS, MAX_READAHEAD, MIN_CACHE_SIZE};

impl GatewayConfig {
    /// Checks every value; returns [`ConfigError::Invalid`] (with `path: None`)
    /// listing all problems found, in file order.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut report = |field: &str, value: String, reason: String, fix: &str| {
            problems.push(Problem {
                field: field.to_owned(),
                value,
                reason,
                fix: fix.to_owned(),
            });
        };

        if !self.stores.is_empty() {
            match &self.cluster.secret_file {
                None => report(
                    "cluster.secret_file",
                    "(missing)".to_owned(),
                    "is required when stores are listed".to_owned(),
                    "point it at the cluster secret the stores use (cairn up writes DIR/cluster.secret)",
                ),
                Some(p) if !p.is_file() => report(
                    "cluster.secret_file",
                    quoted_path(p),
                    "does not exist".to_owned(),
                    "copy the cluster secret there, readable only by cairn (chmod 600)",
                ),
                Some(_) => {}
            }
            let mut names = std::collections::HashSet::new();
            let mut places = std::collections::HashMap::new();
            for (i, s) in self.stores.iter().enumerate() {
                if !names.insert(s.name.as_str()) {
                    report(
                        &format!("stores[{i}].name"),
                        format!("{:?}", s.name),
                        "is listed twice".to_owned(),
                        "give every store its own name",
                    );
                }
                if let Some(j) = places.insert(s.location(), i) {
                    report(
                        &format!("stores[{i}]"),
                        format!("{:?}", s.location()),
                        format!("is the same store as stores[{j}]"),
                        "list each store once (two prefixes of one bucket are two stores)",
                    );
                }
            }
        }
        // Each table's own problems, after the cross-table ones above.
        let table_problems: Vec<_> = self
            .stores
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.problems(i))
            .collect();
        for p in table_problems {
            report(&p.field, p.value, p.reason, &p.fix);
        }
        let mut share_names = std::collections::HashSet::new();
        for (i, share) in self.smb.shares.iter().enumerate() {
            if let Some(why) = crate::share_name_problem(&share.name) {
                report(
                    &format!("smb.shares[{i}].name"),
                    format!("{:?}", share.name),
                    why,
                    "use letters, digits, '_', '-' and '.', e.g. \"media\"",
                );
            } else if !share_names.insert(share.name.to_ascii_lowercase()) {
                report(
                    &format!("smb.shares[{i}].name"),
                    format!("{:?}", share.name),
                    "is listed twice (share names ignore case)".to_owned(),
                    "give every share its own name",
                );
            }
            if let Some(why) = crate::share_path_problem(&share.path) {
                report(
                    &format!("smb.shares[{i}].path"),
                    format!("{:?}", share.path),
                    why,
                    "write the folder from the root of the cairn tree, e.g. \"/media\"",
                );
            }
        }
        if let Some(listen) = self.smb.listen {
            if listen.port() == 0 {
                report(
                    "smb.listen",
                    quoted(&listen),
                    "port 0 is not allowed (clients must know the port)".to_owned(),
                    "use 445, SMB's standard port, or another fixed port",
                );
            }
        }
        if let Some(listen) = self.http.listen {
            if !listen.ip().is_loopback() && self.http.token_file.is_none() {
                report(
                    "http.listen",
                    quoted(&listen),
                    "is beyond loopback, where anyone who reaches it would see the cluster's state"
                        .to_owned(),
                    "set http.token_file to a 0600 file holding a token, or listen on 127.0.0.1",
                );
            }
        }
        if let Some(path) = &self.http.token_file {
            if let Err(why) = crate::http::read_token(path) {
                report(
                    "http.token_file",
                    quoted_path(path),
                    why.to_string(),
                    "see the README's HTTP section",
                );
            }
        }
        if self.read.stall.get().is_zero() {
            report(
                "read.stall",
                quoted(&self.read.stall),
                "must be more than 0".to_owned(),
                "use \"2s\", or more on links that pause for longer",
            );
        }
        if self.read.timeout.get() < self.read.stall.get() || self.read.timeout.get().is_zero() {
            report(
                "read.timeout",
                quoted(&self.read.timeout),
                format!(
                    "must be at least read.stall ({}), or no second copy is ever tried",
                    self.read.stall
                ),
                "use \"30s\", or a few times read.stall",
            );
        }
        if self.read.readahead > MAX_READAHEAD {
            report(
                "read.readahead",
                quoted(&self.read.readahead),
                format!("must be at most {MAX_READAHEAD} (twice it is held in memory)"),
                "use \"64 MiB\", or \"0\" to turn readahead off",
            );
        }
        if self.drain.store_concurrency == 0 {
            report(
                "drain.store_concurrency",
                "0".to_owned(),
                "must be at least 1".to_owned(),
                "use 4 unless the links are very slow",
            );
        }

        match std::fs::metadata(&self.data_dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => report(
                "data_dir",
                quoted_path(&self.data_dir),
                "is not a directory".to_owned(),
                "point data_dir at the gateway's state folder, or mount the disk that holds it",
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => report(
                "data_dir",
                quoted_path(&self.data_dir),
                "does not exist".to_owned(),
                "create it (mkdir -p) or mount the disk that holds it; cairn never creates data_dir",
            ),
            Err(err) => report(
                "data_dir",
                quoted_path(&self.data_dir),
                format!("cannot be checked: {err}"),
                "make it readable by the user cairn runs as",
            ),
        }

        let nfs = &self.nfs;
        if nfs.listen.port() == 0 {
            report(
                "nfs.listen",
                quoted(&nfs.listen),
                "port 0 is not allowed (clients must know the port)".to_owned(),
                "choose a port such as 2049",
            );
        }
        if nfs.allowed_networks.is_empty() {
            report(
                "nfs.allowed_networks",
                "[]".to_owned(),
                "an empty list lets no client in".to_owned(),
                "list the client networks, e.g. [\"127.0.0.0/8\", \"192.168.1.0/24\"], or remove the key for loopback only",
            );
        }

        if !(1..=MAX_NFS_MAX_CONNECTIONS).contains(&nfs.max_connections) {
            report(
                "nfs.max_connections",
                nfs.max_connections.to_string(),
                format!("must be between 1 and {MAX_NFS_MAX_CONNECTIONS}"),
                "set it to the number of client connections to serve at once, e.g. 1024",
            );
        }

        if self.cache.max_size < MIN_CACHE_SIZE {
            report(
                "cache.max_size",
                quoted(&self.cache.max_size),
                format!("is below the minimum of {MIN_CACHE_SIZE}"),
                "set it to at least \"64 MiB\"",
            );
        }
        if let Some(dir) = &self.cache.dir {
            match std::fs::metadata(dir) {
                Ok(meta) if !meta.is_dir() => report(
                    "cache.dir",
                    quoted_path(dir),
                    "exists but is not a directory".to_owned(),
                    "point cache.dir at a folder, or remove the key to use <data_dir>/cache",
                ),
                Ok(_) => {}
                Err(_) => {
                    if let Some(reason) = missing_parent(dir) {
                        report(
                            "cache.dir",
                            quoted_path(dir),
                            reason,
                            "create the parent folder, or remove the key to use <data_dir>/cache",
                        );
                    }
                }
            }
        }

        if let Some(path) = &self.metadata.path {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_dir() => report(
                    "metadata.path",
                    quoted_path(path),
                    "is a directory, not a database file".to_owned(),
                    "name a file, e.g. \"<folder>/meta.db\", or remove the key to use <data_dir>/meta.db",
                ),
                Ok(_) => {}
                Err(_) => {
                    if let Some(reason) = missing_parent(path) {
                        report(
                            "metadata.path",
                            quoted_path(path),
                            reason,
                            "create the parent folder, or remove the key to use <data_dir>/meta.db",
                        );
                    }
                }
            }
        }

        ConfigError::from_problems(problems)
    }
}

/// Why `path` cannot be created, if its parent folder is missing or not a folder.
fn missing_parent(path: &Path) -> Option<String> {
    let parent = match path.parent() {
        None => return None,
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
    };
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => None,
        Ok(_) => Some(format!("parent {} is not a directory", parent.display())),
        Err(_) => Some(format!("parent folder {} does not exist", parent.display())),
    }
}

/// A value shown as a TOML string.
fn quoted(value: &impl std::fmt::Display) -> String {
    format!("{:?}", value.to_string())
}

/// A path shown as a TOML string.
fn quoted_path(path: &Path) -> String {
    quoted(&path.display())
}
