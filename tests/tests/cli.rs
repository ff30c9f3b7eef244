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
    // The next command the banner prints works as printed, though `cairn`
    // is not on PATH here (as after the README's `cargo run`).
    let logs = gw.logs();
    let status_line = logs
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("status:"))
        .unwrap_or_else(|| panic!("no status: line in the banner:\n{logs}"));
    let words: Vec<&str> = status_line.split_whitespace().collect();
    let mut cmd = std::process::Command::new(words[0]);
    cmd.args(&words[1..]);
    let out = command::run(cmd, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("the banner's {status_line:?}: {e}"));
    assert!(
        out.status.success(),
        "{status_line}: {}",
        command::describe(&out)
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

    // SMB users on a gateway without the bridge: refused, no account made.
    let out = cairn_tests::smb::cairn_user_add(&gw, "cairnnosmb", "pw\n");
    assert_eq!(out.status.code(), Some(2), "{}", command::describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SMB bridge is off"),
        "{}",
        command::describe(&out)
    );
    let id = std::process::Command::new("id")
        .arg("cairnnosmb")
        .output()
        .expect("id");
    assert!(!id.status.success(), "a Unix account was made");

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
    // Progress, as plain lines when not on a terminal: the last says all
    // of the generation's objects were fetched.
    let last = said
        .lines()
        .filter_map(|l| l.split("metadata objects: ").nth(1))
        .next_back()
        .unwrap_or_else(|| panic!("no progress line: {said}"));
    let counts: Vec<&str> = last.split_whitespace().collect();
    assert!(
        counts.len() >= 3 && counts[1] == "of" && counts[0] == counts[2] && counts[0] != "0",
        "{last}"
    );
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

/// The `listen` line of each `cairn up` store's store.toml, by store name.
fn store_listens(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(dir.join("stores"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("store.toml")).ok()?;
            let listen = text.lines().find_map(|l| {
                l.strip_prefix("listen = \"")
                    .map(|a| a.trim_end_matches('"').to_owned())
            })?;
            Some((e.file_name().to_string_lossy().into_owned(), listen))
        })
        .collect()
}

/// `cairn up` after a crash and beside itself: a second `cairn up` on a
/// running folder says a gateway runs there and leaves every store config
/// alone; after kill -9 an immediate `cairn up` waits for the old stores to
/// let go and starts on the same store ports; a removed store is not
/// started again.
#[test]
fn cairn_up_after_a_crash_and_beside_itself() {
    let mut gw = Gateway::start_up();
    let dir = gw.up_dir();
    let d = dir.to_string_lossy().into_owned();
    let before = store_listens(&dir);
    assert_eq!(before.len(), 3, "{before:?}");
    let texts = |dir: &std::path::Path| -> Vec<String> {
        ["a", "b", "c"]
            .iter()
            .map(|s| {
                std::fs::read_to_string(dir.join("stores").join(s).join("store.toml")).unwrap()
            })
            .collect()
    };
    let configs = texts(&dir);

    let out = run_cairn(
        &["up", "--data", &d, "--nfs", "127.0.0.1:1"],
        Duration::from_secs(30),
    )
    .expect("second cairn up");
    let said = command::describe(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("a gateway already runs on"), "{said}");
    assert_eq!(
        texts(&dir),
        configs,
        "a refused cairn up rewrote store configs"
    );

    // Store b is drained (it holds nothing yet) and removed.
    for args in [["store", "drain", "b"], ["store", "remove", "b"]] {
        let mut all = args.to_vec();
        all.extend(["--data", &d]);
        let out = run_cairn(&all, Duration::from_secs(60)).expect("cairn store");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            command::describe(&out)
        );
    }
    assert!(
        dir.join("stores/b/removed").exists(),
        "no removed mark for cairn up"
    );

    gw.kill9();
    // At once, while the old stores may still hold their locks.
    gw.restart();
    let after = store_listens(&dir);
    assert_eq!(after["a"], before["a"], "store a moved");
    assert_eq!(after["c"], before["c"], "store c moved");
    assert!(gw.logs().contains("store b was removed"), "{}", gw.logs());
    poll_until(
        "store b stays down",
        Duration::from_secs(10),
        || match std::net::TcpStream::connect(&before["b"]) {
            Ok(_) => Err(format!("{} accepts connections", before["b"])),
            Err(_) => Ok(()),
        },
    );
    let src = gw.scratch().join("after.bin");
    let want = write_random_file(&src, 5, 50_000).unwrap();
    libnfs::upload(gw.port(), &src, "after.bin").unwrap_or_else(|e| panic!("nfs-cp in: {e}"));
    let back = gw.scratch().join("after.out");
    libnfs::download(gw.port(), "after.bin", &back).unwrap_or_else(|e| panic!("nfs-cp out: {e}"));
    assert_eq!(sha256_file(&back).unwrap(), want);
}

/// `cairn gateway --check` validates without starting; `cairn secret new`
/// writes a 0600 secret and never overwrites one; SIGHUP leaves the gateway
/// serving.
#[test]
fn config_check_secret_new_and_sighup() {
    let gw = Gateway::start();
    let config = gw.config_path().to_string_lossy().into_owned();
    let out = run_cairn(
        &["gateway", "--check", "--config", &config],
        Duration::from_secs(30),
    )
    .expect("cairn gateway --check");
    assert!(out.status.success(), "{}", command::describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("good"),
        "{}",
        command::describe(&out)
    );

    let bad = gw.scratch().join("bad.toml");
    let text: String = std::fs::read_to_string(gw.config_path())
        .unwrap()
        .lines()
        .map(|l| match l.starts_with("data_dir = ") {
            true => "data_dir = \"/nonexistent/cairn-check\"\n[bogus]\nx = 1\n".to_owned(),
            false => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&bad, text).unwrap();
    let b = bad.to_string_lossy().into_owned();
    let out = run_cairn(
        &["gateway", "--check", "--config", &b],
        Duration::from_secs(30),
    )
    .expect("cairn gateway --check bad");
    assert_eq!(out.status.code(), Some(2), "{}", command::describe(&out));
    assert!(!std::path::Path::new("/nonexistent/cairn-check").exists());

    let secret = gw.scratch().join("cluster.secret");
    let s = secret.to_string_lossy().into_owned();
    let out = run_cairn(&["secret", "new", &s], Duration::from_secs(30)).expect("secret new");
    assert!(out.status.success(), "{}", command::describe(&out));
    let first = std::fs::read_to_string(&secret).unwrap();
    assert_eq!(first.trim().len(), 64, "{first:?}");
    assert!(
        first.trim().bytes().all(|c| c.is_ascii_hexdigit()),
        "{first:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let out = run_cairn(&["secret", "new", &s], Duration::from_secs(30)).expect("secret new");
    assert_eq!(out.status.code(), Some(1), "{}", command::describe(&out));
    assert!(command::describe(&out).contains("never overwritten"));
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), first);

    // CAIRN_CONFIG names the gateway for every admin command, not only
    // `cairn gateway` and `cairn fsck`.
    let mut cmd = std::process::Command::new(cairn_tests::gateway::cairn_bin());
    cmd.args(["status", "--json"])
        .env("CAIRN_CONFIG", gw.config_path())
        .current_dir(gw.scratch());
    let out = command::run(cmd, Duration::from_secs(30)).expect("cairn status");
    assert!(
        out.status.success(),
        "CAIRN_CONFIG: {}",
        command::describe(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert!(v["files"]["inodes"].as_u64().is_some(), "{v}");

    let pid = rustix::process::Pid::from_raw(gw.pid() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    poll_until("SIGHUP logged", Duration::from_secs(10), || {
        if gw.logs().contains("SIGHUP: ignored") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    let src = gw.scratch().join("hup.bin");
    write_random_file(&src, 6, 10_000).unwrap();
    libnfs::upload(gw.port(), &src, "hup.bin").unwrap_or_else(|e| panic!("after SIGHUP: {e}"));
}

/// The packaging pieces: the shipped systemd units pass `systemd-analyze
/// verify` with their ExecStart pointing at this build and their man:
/// pages generated by `cairn manpages`; `cairn completions bash` loads in
/// bash and completes subcommands.
#[test]
fn systemd_units_man_pages_and_completions() {
    let tmp = tempfile::tempdir().unwrap();
    let man1 = tmp.path().join("man/man1");
    let m = man1.to_string_lossy().into_owned();
    let out = run_cairn(&["manpages", &m], Duration::from_secs(30)).expect("cairn manpages");
    assert!(out.status.success(), "{}", command::describe(&out));
    for page in [
        "cairn.1",
        "cairn-up.1",
        "cairn-gateway.1",
        "cairn-chunkstore.1",
        "cairn-store-drain.1",
    ] {
        let text =
            std::fs::read_to_string(man1.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }

    let units = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/examples/systemd");
    let bin = cairn_tests::gateway::cairn_bin();
    let mut names = Vec::new();
    for (file, as_name) in [
        ("cairn-gateway.service", "cairn-gateway.service"),
        (
            "cairn-chunkstore@.service",
            "cairn-chunkstore@disk1.service",
        ),
    ] {
        let text = std::fs::read_to_string(std::path::Path::new(units).join(file)).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/cairn "), "{file}");
        let text = text.replace("/usr/local/bin/cairn ", &format!("{} ", bin.display()));
        std::fs::write(tmp.path().join(as_name), text).unwrap();
        names.push(tmp.path().join(as_name));
    }
    let mut verify = std::process::Command::new("systemd-analyze");
    verify
        .arg("verify")
        .args(&names)
        .env("MANPATH", tmp.path().join("man"));
    let out = command::run(verify, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("systemd-analyze (apt-get install systemd man-db): {e}"));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        command::describe(&out)
    );

    let script = format!(
        "source <({} completions bash) && complete -p cairn && COMP_WORDS=(cairn st) && COMP_CWORD=1 \
         && _cairn cairn st cairn && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bin.display()
    );
    let mut bash = std::process::Command::new("bash");
    bash.args(["-c", &script]);
    let out = command::run(bash, Duration::from_secs(30)).expect("bash");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("-F _cairn cairn"),
        "{}",
        command::describe(&out)
    );
    for word in ["status", "store"] {
        assert!(
            said.lines().any(|l| l == word),
            "completing `cairn st` lacks {word}: {said}"
        );
    }
}

/// `[log] format = "json"`: every line the gateway logs is one JSON object
/// with a timestamp, a level and the message's fields.
#[test]
fn json_logs_are_one_object_per_line() {
    let mut gw = Gateway::start_with(cairn_tests::GatewayOptions {
        log_json: true,
        ..cairn_tests::GatewayOptions::default()
    });
    let src = gw.scratch().join("j.bin");
    write_random_file(&src, 9, 10_000).unwrap();
    libnfs::upload(gw.port(), &src, "j.bin").unwrap_or_else(|e| panic!("nfs-cp: {e}"));
    gw.stop();
    let logs = gw.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| {
            !l.starts_with("-----")
                && !l.starts_with("[cairn-tests harness]")
                && !l.trim().is_empty()
        })
        .collect();
    assert!(lines.len() >= 2, "{logs}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("gateway serving NFSv3")),
        "{logs}"
    );
}

/// `cairn store start NAME`: a store of a `cairn up` folder killed with -9
/// comes back on its port under the running `cairn up` and is online
/// again; a running one is not started twice.
#[test]
fn a_killed_store_of_cairn_up_starts_again() {
    let gw = Gateway::start_up();
    let dir = gw.up_dir();
    let d = dir.to_string_lossy().into_owned();
    let logs = gw.logs();
    let pid: i32 = logs
        .split("b (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid of store b in the banner:\n{logs}"));
    let state = |name: &str| -> String {
        up_status(&dir)
            .and_then(|v| {
                v["stores"]
                    .as_array()?
                    .iter()
                    .find(|s| s["name"] == name)
                    .map(|s| s["state"].as_str().unwrap_or("").to_owned())
            })
            .unwrap_or_default()
    };
    poll_until("b online", Duration::from_secs(30), || match state("b") {
        s if s == "online" => Ok(()),
        s => Err(s),
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    poll_until("b seen down", Duration::from_secs(30), || {
        match state("b") {
            s if s != "online" => Ok(()),
            s => Err(s),
        }
    });
    let out = run_cairn(
        &["store", "start", "b", "--data", &d],
        Duration::from_secs(60),
    )
    .expect("cairn store start");
    assert!(out.status.success(), "{}", command::describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("store b runs again"),
        "{}",
        command::describe(&out)
    );
    poll_until("b online again", Duration::from_secs(30), || {
        match state("b") {
            s if s == "online" => Ok(()),
            s => Err(s),
        }
    });
    let out = run_cairn(
        &["store", "start", "b", "--data", &d],
        Duration::from_secs(60),
    )
    .expect("cairn store start");
    assert_eq!(out.status.code(), Some(1), "{}", command::describe(&out));
    assert!(command::describe(&out).contains("already runs"));
    let out = run_cairn(
        &["store", "start", "zz", "--data", &d],
        Duration::from_secs(60),
    )
    .expect("cairn store start");
    assert_eq!(out.status.code(), Some(2), "{}", command::describe(&out));
}
