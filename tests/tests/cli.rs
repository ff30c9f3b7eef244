//! The command line as a new user meets it: `cairn --help` names the
//! subcommands, and `cairn up` starts a usable gateway with defaults, says how
//! to reach it, answers `cairn status | head` and a mistyped class name
//! cleanly, and finds its files again when started a second time.

use std::time::{Duration, Instant};

use cairn_tests::gateway::run_cairn;
use cairn_tests::{command, libnfs, poll_until, sha256_file, write_random_file, Gateway};

#[test]
fn help_names_the_subcommands() {
    let out = run_cairn(&["--help"], Duration::from_secs(30)).expect("cairn --help");
    assert!(
        out.status.success(),
        "cairn --help: {}",
        command::describe(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["up", "gateway", "fsck"] {
        assert!(
            text.contains(sub),
            "cairn --help should mention `{sub}`:\n{text}"
        );
    }
    // Each subcommand with its own line of help (fsck's once sat on restore).
    let line = |sub: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{sub} ")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("restore").contains("Rebuild a lost gateway"), "{text}");
    assert!(
        line("fsck").contains("Check the gateway's metadata"),
        "{text}"
    );
}

#[test]
fn cairn_up_serves_with_defaults_and_keeps_its_files() {
    let mut gw = Gateway::start_up();
    let port = gw.port().to_string();
    // It says how to reach the export (the URL or mount line names the port).
    let start = Instant::now();
    while !gw.logs().contains(&port) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "cairn up did not print how to reach it (no mention of port {port}):\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        gw.up_dir().join("gateway").is_dir(),
        "cairn up keeps its state in DIR/gateway/"
    );

    let src = gw.scratch().join("hello.bin");
    let want = write_random_file(&src, 42, 100_000).unwrap();
    libnfs::upload(gw.port(), &src, "hello.bin").unwrap_or_else(|e| panic!("nfs-cp in: {e}"));

    // `cairn status | head`: a reader gone before the reply ends the command
    // by SIGPIPE, as other Unix tools, not by a panic.
    let data = gw.up_dir().to_string_lossy().into_owned();
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(cairn_tests::gateway::cairn_bin())
        .args(["status", "--data", &data])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run cairn status");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("panicked"), "{said}");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(13),
        "ended by SIGPIPE: {:?} {said}",
        out.status
    );
    // A class that does not exist is not "deleted".
    let out = run_cairn(
        &["class", "delete", "nosuch", "--data", &data],
        Duration::from_secs(30),
    )
    .expect("cairn class delete");
    assert_eq!(out.status.code(), Some(1), "{}", command::describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no class named \"nosuch\""),
        "{}",
        command::describe(&out)
    );

    gw.stop();
    gw.restart();
    let back = gw.scratch().join("hello.out");
    libnfs::download(gw.port(), "hello.bin", &back)
        .unwrap_or_else(|e| panic!("nfs-cp out after a second `cairn up`: {e}"));
    assert_eq!(sha256_file(&back).unwrap(), want);
}

/// `cairn status --data DIR --json` of a `cairn up` folder.
fn up_status(dir: &std::path::Path) -> Option<serde_json::Value> {
    let d = dir.to_string_lossy().into_owned();
    let out = run_cairn(&["status", "--data", &d, "--json"], Duration::from_secs(30)).ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn cairn_restore_rebuilds_a_cairn_up_gateway_from_its_own_stores() {
    let mut gw = Gateway::start_up();
    let dir = gw.up_dir();
    let src = gw.scratch().join("kept.bin");
    let want = write_random_file(&src, 7, 300_000).unwrap();
    libnfs::upload(gw.port(), &src, "kept.bin").unwrap_or_else(|e| panic!("nfs-cp in: {e}"));
    // Drained first; then the metadata shipped after that.
    let status = || up_status(&dir).ok_or_else(|| "no status".to_owned());
    poll_until("drained", Duration::from_secs(90), || {
        let v = status()?;
        if v["backlog_bytes"] == 0 {
            Ok(())
        } else {
            Err(v["backlog"].to_string())
        }
    });
    let drained = Instant::now();
    poll_until("shipped since the drain", Duration::from_secs(90), || {
        let v = status()?;
        // The status rounds to 0.1 s: a margin.
        match v["backup"]["recovery_point_seconds"].as_f64() {
            Some(b) if b + 0.2 < drained.elapsed().as_secs_f64() => Ok(()),
            _ => Err(v["backup"].to_string()),
        }
    });
    // The gateway dies, and with it its stores (they follow their parent
    // within a second); its folder goes.
    gw.kill9();
    let ports: Vec<String> = std::fs::read_dir(dir.join("stores"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("store.toml")).ok())
        .filter_map(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("listen = \"")
                    .map(|a| a.trim_end_matches('"').to_owned())
            })
        })
        .collect();
    assert_eq!(ports.len(), 3, "three store configs");
    poll_until(
        "the stores follow cairn up",
        Duration::from_secs(30),
        || match ports
            .iter()
            .find(|a| std::net::TcpStream::connect(a).is_ok())
        {
            Some(a) => Err(format!("{a} still accepts connections")),
            None => Ok(()),
        },
    );
    std::fs::remove_dir_all(dir.join("gateway")).unwrap();

    let d = dir.to_string_lossy().into_owned();
    let out = run_cairn(&["restore", "--data", &d], Duration::from_secs(120)).expect("restore");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "cairn restore --data: {said}");
    assert!(said.contains("restored generation"), "{said}");
    assert!(
        said.contains("cairn up --data"),
        "it says how to go on: {said}"
    );

    gw.restart();
    let back = gw.scratch().join("kept.out");
    libnfs::download(gw.port(), "kept.bin", &back)
        .unwrap_or_else(|e| panic!("nfs-cp out after the restore: {e}"));
    assert_eq!(sha256_file(&back).unwrap(), want);
}

#[test]
fn fsck_without_metadata_says_it_could_not_check_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    // No flags: ./cairn-data, as every other command; --data: that folder.
    for args in [vec!["fsck"], vec!["fsck", "--data", "elsewhere"]] {
        let out = std::process::Command::new(cairn_tests::gateway::cairn_bin())
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("run cairn fsck");
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {said}");
        assert!(said.contains("no gateway metadata at"), "{args:?}: {said}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "fsck created {left:?}");
}
