//! Whole-file tests: the shipped example, defaults, and the error messages an
//! operator sees for the common mistakes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{ByteSize, ConfigError, GatewayConfig, LogLevel, Squash, DEFAULT_LISTEN};

const EXAMPLE: &str = include_str!("../examples/gateway.toml");
const EXAMPLE_DATA_DIR: &str = "/var/lib/cairn/gateway";

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `text` loaded from a file, expected to fail; returns the error and its message.
fn load_err(dir: &Path, text: &str) -> (ConfigError, String) {
    let path = write_config(dir, text);
    let err = GatewayConfig::load(&path).expect_err("config should be rejected");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "error names the file: {message}"
    );
    (err, message)
}

fn minimal(data_dir: &Path) -> String {
    format!("data_dir = {:?}\n", data_dir.display().to_string())
}

#[test]
fn shipped_example_parses_and_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().display().to_string();
    let text = EXAMPLE.replace(EXAMPLE_DATA_DIR, &data_dir);
    assert_ne!(text, EXAMPLE, "example sets data_dir to {EXAMPLE_DATA_DIR}");
    let path = write_config(tmp.path(), &text);

    let config = GatewayConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.data_dir, tmp.path());
    assert_eq!(config.cache_dir(), tmp.path().join("cache"));
    assert_eq!(config.metadata_path(), tmp.path().join("meta.db"));
}

#[test]
fn shipped_example_shows_the_defaults() {
    let parsed = GatewayConfig::parse(EXAMPLE, Path::new("examples/gateway.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let defaults = GatewayConfig::with_defaults(EXAMPLE_DATA_DIR.into(), DEFAULT_LISTEN);
    assert_eq!(parsed, defaults);
}

#[test]
fn the_example_with_only_data_dir_changed_keeps_everything_under_it() {
    let tmp = tempfile::tempdir().unwrap();
    let text = EXAMPLE.replace(EXAMPLE_DATA_DIR, &tmp.path().display().to_string());
    assert_eq!(
        text.matches(&tmp.path().display().to_string()).count(),
        1,
        "the example names {EXAMPLE_DATA_DIR} in one place only"
    );
    let cfg =
        GatewayConfig::load(&write_config(tmp.path(), &text)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.cache_dir(), tmp.path().join("cache"));
    assert_eq!(cfg.metadata_path(), tmp.path().join("meta.db"));
}

#[test]
fn defaults_fill_every_omitted_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_config(tmp.path(), &minimal(tmp.path()));
    let config = GatewayConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        config.nfs.listen,
        "127.0.0.1:2049".parse::<SocketAddr>().unwrap()
    );
    let networks: Vec<String> = config
        .nfs
        .allowed_networks
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(networks, ["127.0.0.0/8", "::1/128"]);
    assert_eq!(config.nfs.squash, Squash::None);
    assert_eq!((config.nfs.anon_uid, config.nfs.anon_gid), (65534, 65534));
    assert_eq!(config.cache.dir, None);
    assert_eq!(config.cache.max_size, ByteSize::gib(64));
    assert_eq!(config.metadata.path, None);
    assert_eq!(config.log.level, LogLevel::Info);
    assert_eq!(config.cache_dir(), tmp.path().join("cache"));
    assert_eq!(config.metadata_path(), tmp.path().join("meta.db"));
    assert_eq!(
        config,
        GatewayConfig::with_defaults(tmp.path().to_owned(), DEFAULT_LISTEN)
    );
}

#[test]
fn every_key_can_be_set() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[nfs]\nlisten = \"[::1]:12049\"\nallowed_networks = [\"192.168.1.0/24\", \"10.0.0.5\"]\n\
         squash = \"all\"\nanon_uid = 1000\nanon_gid = 100\n\
         [cache]\ndir = {:?}\nmax_size = 4294967296\n\
         [metadata]\npath = {:?}\n[log]\nlevel = \"trace\"\n",
        minimal(tmp.path()),
        tmp.path().join("c").display().to_string(),
        tmp.path().join("m.db").display().to_string(),
    );
    let config =
        GatewayConfig::load(&write_config(tmp.path(), &text)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.nfs.listen,
        "[::1]:12049".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.nfs.allowed_networks[1].to_string(), "10.0.0.5/32");
    assert_eq!(config.nfs.squash, Squash::All);
    assert_eq!((config.nfs.anon_uid, config.nfs.anon_gid), (1000, 100));
    assert_eq!(config.cache_dir(), tmp.path().join("c"));
    assert_eq!(config.cache.max_size, ByteSize::gib(4));
    assert_eq!(config.metadata_path(), tmp.path().join("m.db"));
    assert_eq!(config.log.level, LogLevel::Trace);
}

#[test]
fn serialized_config_parses_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config =
        GatewayConfig::with_defaults(tmp.path().to_owned(), "0.0.0.0:2049".parse().unwrap());
    config.nfs.squash = Squash::Root;
    config.cache.max_size = ByteSize::mib(1536);
    config.log.level = LogLevel::Debug;
    let text = toml::to_string(&config).unwrap();
    assert!(text.contains("max_size = \"1536 MiB\""), "{text}");
    assert!(text.contains("squash = \"root\""), "{text}");
    assert!(
        !text.contains("\ndir =") && !text.contains("\npath ="),
        "implicit paths stay implicit: {text}"
    );
    let back =
        GatewayConfig::load(&write_config(tmp.path(), &text)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, config);
}

#[test]
fn unknown_key_is_rejected_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!("{}[nfs]\nlisten_port = 2049\n", minimal(tmp.path()));
    let (err, message) = load_err(tmp.path(), &text);
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    assert!(message.contains("listen_port"), "{message}");
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("\nfix: "), "{message}");

    let (_, message) = load_err(
        tmp.path(),
        &format!("{}colour = \"blue\"\n", minimal(tmp.path())),
    );
    assert!(message.contains("colour"), "{message}");

    let (_, message) = load_err(tmp.path(), &format!("{}[nfs.extra]\n", minimal(tmp.path())));
    assert!(message.contains("extra"), "{message}");
}

#[test]
fn data_dir_under_a_section_gets_a_targeted_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, message) = load_err(tmp.path(), &format!("[log]\n{}", minimal(tmp.path())));
    assert!(
        message.contains("move data_dir above the first [section]"),
        "{message}"
    );
}

#[test]
fn bad_port_is_rejected_naming_nfs_listen() {
    let tmp = tempfile::tempdir().unwrap();
    for listen in ["127.0.0.1:99999", "127.0.0.1", "localhost:2049", "2049"] {
        let text = format!("{}[nfs]\nlisten = {listen:?}\n", minimal(tmp.path()));
        let (err, message) = load_err(tmp.path(), &text);
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
        assert!(message.contains("nfs.listen"), "{message}");
        assert!(message.contains("port 1-65535"), "{message}");
    }
    let text = format!("{}[nfs]\nlisten = 2049\n", minimal(tmp.path()));
    let (_, message) = load_err(tmp.path(), &text);
    assert!(message.contains("nfs.listen"), "{message}");
}

#[test]
fn port_zero_is_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!("{}[nfs]\nlisten = \"127.0.0.1:0\"\n", minimal(tmp.path()));
    let (err, message) = load_err(tmp.path(), &text);
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("{message}")
    };
    assert_eq!(problems.len(), 1, "{message}");
    assert_eq!(problems[0].field, "nfs.listen");
    assert!(
        message.contains("  nfs.listen = \"127.0.0.1:0\": port 0"),
        "{message}"
    );
    assert!(
        message.contains("fix: choose a port such as 2049"),
        "{message}"
    );
}

#[test]
fn readahead_defaults_to_64_mib_turns_off_with_0_and_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let config = GatewayConfig::load(&write_config(tmp.path(), &minimal(tmp.path()))).unwrap();
    assert_eq!(config.read.readahead, ByteSize::mib(64));

    let text = format!("{}[read]\nreadahead = \"0\"\n", minimal(tmp.path()));
    let config = GatewayConfig::load(&write_config(tmp.path(), &text)).unwrap();
    assert_eq!(config.read.readahead, ByteSize(0));

    let text = format!("{}[read]\nreadahead = \"2 GiB\"\n", minimal(tmp.path()));
    let (err, message) = load_err(tmp.path(), &text);
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("{message}")
    };
    assert_eq!(problems.len(), 1, "{message}");
    assert_eq!(problems[0].field, "read.readahead");
    assert!(message.contains("at most 1 GiB"), "{message}");
}

#[test]
fn read_limits_are_checked_against_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[read]\nstall = \"5s\"\ntimeout = \"1s\"\n",
        minimal(tmp.path())
    );
    let (err, message) = load_err(tmp.path(), &text);
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("{message}")
    };
    assert_eq!(problems.len(), 1, "{message}");
    assert_eq!(problems[0].field, "read.timeout");
    assert!(message.contains("at least read.stall"), "{message}");

    let text = format!("{}[read]\nstall = \"0s\"\n", minimal(tmp.path()));
    let (_, message) = load_err(tmp.path(), &text);
    assert!(message.contains("read.stall"), "{message}");

    let text = format!(
        "{}[read]\nstall = \"500ms\"\ntimeout = \"10s\"\nhedge = \"50ms\"\n",
        minimal(tmp.path())
    );
    let config = GatewayConfig::load(&write_config(tmp.path(), &text)).unwrap();
    assert_eq!(
        config.read.hedge.map(|d| d.get()),
        Some(std::time::Duration::from_millis(50))
    );
    assert_eq!(
        config.read.stall.get(),
        std::time::Duration::from_millis(500)
    );
    assert_eq!(
        config.read.timeout.get(),
        std::time::Duration::from_secs(10)
    );
}

#[test]
fn missing_data_dir_key_is_rejected_naming_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let (err, message) = load_err(tmp.path(), "[log]\nlevel = \"info\"\n");
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    assert!(message.contains("data_dir"), "{message}");
    assert!(
        message.contains("fix: add a line such as data_dir"),
        "{message}"
    );
}

#[test]
fn nonexistent_data_dir_is_rejected_naming_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let gone = tmp.path().join("not-mounted");
    let (err, message) = load_err(tmp.path(), &minimal(&gone));
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("{message}")
    };
    assert_eq!(problems.len(), 1, "{message}");
    assert_eq!(problems[0].field, "data_dir");
    assert!(message.contains("data_dir = \""), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("mount the disk"), "{message}");

    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let (_, message) = load_err(tmp.path(), &minimal(&file));
    assert!(message.contains("is not a directory"), "{message}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[nfs]\nlisten = \"0.0.0.0:0\"\nallowed_networks = []\n\
         [cache]\ndir = \"/nonexistent-cairn-parent/cache\"\nmax_size = \"16 MiB\"\n\
         [metadata]\npath = \"/nonexistent-cairn-parent/meta.db\"\n",
        minimal(&tmp.path().join("missing"))
    );
    let (err, message) = load_err(tmp.path(), &text);
    let ConfigError::Invalid { problems, .. } = &err else {
        panic!("{message}")
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "data_dir",
            "nfs.listen",
            "nfs.allowed_networks",
            "cache.max_size",
            "cache.dir",
            "metadata.path"
        ],
        "{message}"
    );
    assert!(message.contains("has 6 problems:"), "{message}");
    for problem in problems {
        let line = format!("\n  {problem}");
        assert!(message.contains(&line), "{message}");
        assert!(line.contains(&format!("{} = ", problem.field)), "{line}");
        assert!(line.contains("; fix: "), "{line}");
    }
    assert!(
        message.contains("cache.max_size = \"16 MiB\": is below the minimum of 64 MiB"),
        "{message}"
    );
    assert!(
        message.contains("parent folder /nonexistent-cairn-parent does not exist"),
        "{message}"
    );
}

#[test]
fn every_type_error_and_unknown_key_is_reported_in_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    // Seven mistakes that once took six runs to find, one each.
    let text = format!(
        "{}[nfs]\nlisten = 2049\nsquash = \"sometimes\"\nmax_connections = \"many\"\n\
         [cache]\nmax_size = 64\n\
         [drain]\nquiet = 5\nbogus = 1\n\
         [bogus_section]\nx = 1\ny = 2\n\
         [read]\nstall = \"0s\"\n",
        minimal(tmp.path())
    );
    let (err, message) = load_err(tmp.path(), &text);
    assert!(matches!(err, ConfigError::Parse { .. }), "{message}");
    for needle in [
        "listen = 2049",
        "squash = \"sometimes\"",
        "max_connections = \"many\"",
        "cache.max_size = \"64 B\": is below the minimum",
        "quiet = 5",
        "bogus = 1",
        "bogus_section",
        "read.stall",
    ] {
        assert!(
            message.contains(needle),
            "{needle} missing from:\n{message}"
        );
    }
    assert!(
        message.starts_with(&format!(
            "cannot parse config file {}:\n6 errors",
            tmp.path().join("gateway.toml").display()
        )),
        "{message}"
    );
    // The keys of the unknown section are not reported a second time.
    assert!(
        !message.contains("`x`") && !message.contains("`y`"),
        "{message}"
    );
    assert_eq!(message.matches("fix: ").count(), 8, "{message}");
    // In file order.
    let listen = message.find("listen = 2049").unwrap();
    let quiet = message.find("quiet = 5").unwrap();
    assert!(listen < quiet, "{message}");
}

#[test]
fn validate_without_a_file_says_config() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig::with_defaults(tmp.path().to_owned(), DEFAULT_LISTEN);
    config.validate().unwrap();
    config.cache.max_size = ByteSize::mib(63);
    let message = config.validate().unwrap_err().to_string();
    assert!(
        message.starts_with("config has 1 problem:\n  cache.max_size"),
        "{message}"
    );
}

#[test]
fn explicit_paths_of_the_wrong_kind_are_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let mut config = GatewayConfig::with_defaults(tmp.path().to_owned(), DEFAULT_LISTEN);
    config.cache.dir = Some(file);
    config.metadata.path = Some(tmp.path().to_owned());
    let message = config.validate().unwrap_err().to_string();
    assert!(
        message.contains("cache.dir = ") && message.contains("not a directory"),
        "{message}"
    );
    assert!(
        message.contains("metadata.path = ") && message.contains("is a directory"),
        "{message}"
    );
}

#[test]
fn unreadable_file_error_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("absent.toml");
    let err = GatewayConfig::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn bad_enum_and_network_values_are_parse_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, message) = load_err(
        tmp.path(),
        &format!("{}[nfs]\nsquash = \"Root\"\n", minimal(tmp.path())),
    );
    assert!(
        message.contains("Root") && message.contains("root"),
        "{message}"
    );
    let (_, message) = load_err(
        tmp.path(),
        &format!("{}[log]\nlevel = \"verbose\"\n", minimal(tmp.path())),
    );
    assert!(message.contains("verbose"), "{message}");
    let text = format!(
        "{}[nfs]\nallowed_networks = [\"10.0.0.0/33\"]\n",
        minimal(tmp.path())
    );
    let (_, message) = load_err(tmp.path(), &text);
    assert!(
        message.contains("nfs.allowed_networks") && message.contains("10.0.0.0/33"),
        "{message}"
    );
    let (_, message) = load_err(
        tmp.path(),
        &format!("{}[cache]\nmax_size = \"64 GB!\"\n", minimal(tmp.path())),
    );
    assert!(
        message.contains("max_size") && message.contains("unknown unit"),
        "{message}"
    );
}

#[test]
fn smb_section_parses_and_bad_shares_are_all_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let good = format!(
        "{}[smb]\nlisten = \"127.0.0.1:4445\"\n[[smb.shares]]\nname = \"media\"\npath = \"/media\"\n",
        minimal(tmp.path())
    );
    let path = write_config(tmp.path(), &good);
    let cfg = GatewayConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.smb.listen, Some("127.0.0.1:4445".parse().unwrap()));
    assert_eq!(cfg.smb.shares[0].path, "/media");

    let bad = format!(
        "{}[smb]\nlisten = \"127.0.0.1:0\"\n[[smb.shares]]\nname = \"bad name\"\npath = \"media\"\n[[smb.shares]]\nname = \"x\"\npath = \"/\"\n[[smb.shares]]\nname = \"X\"\npath = \"/a/../b\"\n",
        minimal(tmp.path())
    );
    let (_, message) = load_err(tmp.path(), &bad);
    for needle in [
        "smb.shares[0].name",
        "smb.shares[0].path",
        "smb.shares[2].name",
        "listed twice",
        "smb.shares[2].path",
        "smb.listen",
    ] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }
}

#[test]
fn http_beyond_loopback_needs_a_private_token_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let loopback = format!(
        "{}[http]\nlisten = \"127.0.0.1:9470\"\n",
        minimal(tmp.path())
    );
    let cfg =
        GatewayConfig::load(&write_config(tmp.path(), &loopback)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.http.listen, Some("127.0.0.1:9470".parse().unwrap()));

    let open = format!("{}[http]\nlisten = \"0.0.0.0:9470\"\n", minimal(tmp.path()));
    let (_, message) = load_err(tmp.path(), &open);
    assert!(
        message.contains("http.listen") && message.contains("token_file"),
        "{message}"
    );

    let token = tmp.path().join("http.token");
    std::fs::write(&token, "short\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let with_token = format!("{open}token_file = {:?}\n", token.display().to_string());
    let (_, message) = load_err(tmp.path(), &with_token);
    assert!(
        message.contains("http.token_file") && message.contains("chmod 600"),
        "{message}"
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, message) = load_err(tmp.path(), &with_token);
    assert!(message.contains("at least 16 characters"), "{message}");
    std::fs::write(&token, "0123456789abcdef0123\n").unwrap();
    let cfg = GatewayConfig::load(&write_config(tmp.path(), &with_token))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        crate::read_token(cfg.http.token_file.as_deref().unwrap()).unwrap(),
        "0123456789abcdef0123"
    );
}

#[test]
fn share_and_user_name_rules() {
    use crate::{share_name_problem, user_name_problem};
    for ok in ["media", "Photos-2024", "a.b_c"] {
        assert_eq!(share_name_problem(ok), None, "{ok}");
    }
    for bad in ["", "-x", "a b", "IPC$", "homes", &"x".repeat(81)] {
        assert!(share_name_problem(bad).is_some(), "{bad:?}");
    }
    for ok in ["alice", "_svc", "bob-2"] {
        assert_eq!(user_name_problem(ok), None, "{ok}");
    }
    for bad in ["", "Alice", "9x", "a.b", "a b", &"x".repeat(33)] {
        assert!(user_name_problem(bad).is_some(), "{bad:?}");
    }
}

/// A secret file and a 0600 credentials file in `dir`, for bucket tables.
fn bucket_files(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let secret = dir.join("cluster.secret");
    std::fs::write(&secret, "00".repeat(32)).unwrap();
    let creds = dir.join("bucket.credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = GK0123\naws_secret_access_key = \"s3cr3t\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    (secret, creds)
}

#[test]
fn a_bucket_store_table_parses_with_its_defaults_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let (secret, creds) = bucket_files(tmp.path());
    let text = format!(
        "{}[cluster]\nsecret_file = {secret:?}\n\
         [[stores]]\nname = \"a\"\naddress = \"10.0.0.5:7070\"\n\
         [[stores]]\nname = \"wasabi\"\nkind = \"s3\"\nendpoint = \"https://s3.wasabisys.com:443/\"\n\
         bucket = \"cairn-data\"\ncredentials_file = {creds:?}\ncapacity = \"2 TiB\"\nlabels = [\"s3\"]\n",
        minimal(tmp.path())
    );
    let cfg = GatewayConfig::load(&write_config(tmp.path(), &text)).unwrap();
    let (local, bucket) = (&cfg.stores[0], &cfg.stores[1]);
    assert_eq!(
        (local.kind, local.location()),
        (crate::StoreKind::Cairn, "10.0.0.5:7070".to_owned())
    );
    assert_eq!(bucket.kind, crate::StoreKind::S3);
    assert_eq!(bucket.bucket_region(), crate::DEFAULT_REGION);
    assert_eq!(bucket.bucket_prefix(), crate::DEFAULT_PREFIX);
    // Every prefix of one bucket is one failure domain unless told.
    assert_eq!(bucket.bucket_zone(), "s3.wasabisys.com");
    assert_eq!(bucket.bucket_host(), "s3.wasabisys.com/cairn-data");
    assert_eq!(
        bucket.location(),
        "s3 https://s3.wasabisys.com:443/cairn-data/cairn"
    );
    assert_eq!(bucket.capacity, Some(ByteSize::tib(2)));
    assert_eq!(
        crate::read_credentials(&creds).unwrap(),
        ("GK0123".to_owned(), "s3cr3t".to_owned())
    );
    let again: GatewayConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(again, cfg);
}

#[test]
fn every_bucket_store_mistake_is_reported_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (secret, creds) = bucket_files(tmp.path());
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!(
        "{}[cluster]\nsecret_file = {secret:?}\n\
         [[stores]]\nname = \"a\"\naddress = \"10.0.0.5:7070\"\nbucket = \"x\"\n\
         [[stores]]\nname = \"b\"\nkind = \"s3\"\nendpoint = \"s3.example.com\"\n\
         bucket = \"Cairn/Data\"\nprefix = \"/c1/\"\ncredentials_file = {creds:?}\n\
         [[stores]]\nname = \"c\"\nkind = \"s3\"\naddress = \"10.0.0.6:7070\"\ncapacity = \"0\"\n",
        minimal(tmp.path())
    );
    let (err, message) = load_err(tmp.path(), &text);
    let ConfigError::Invalid { problems, .. } = &err else {
        panic!("{message}")
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "stores[0].bucket",
            "stores[1].endpoint",
            "stores[1].bucket",
            "stores[1].prefix",
            "stores[1].credentials_file",
            "stores[1].capacity",
            "stores[2].address",
            "stores[2].endpoint",
            "stores[2].bucket",
            "stores[2].capacity",
        ],
        "{message}"
    );
    assert!(message.contains("has mode 644"), "{message}");
    assert!(message.contains("is for kind = \"s3\" only"), "{message}");
    assert_eq!(
        crate::read_credentials(&creds).unwrap_err(),
        format!(
            "{}: has mode 644: others than its owner may read the keys",
            creds.display()
        )
    );
}
