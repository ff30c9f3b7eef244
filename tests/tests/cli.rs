//! The command line as a new user meets it: `cairn --help` names the
//! subcommands, and `cairn up` starts a usable gateway with defaults, says how
//! to reach it, and finds its files again when started a second time.

use std::time::{Duration, Instant};

use cairn_tests::gateway::run_cairn;
use cairn_tests::{command, libnfs, sha256_file, write_random_file, Gateway};

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

    gw.stop();
    gw.restart();
    let back = gw.scratch().join("hello.out");
    libnfs::download(gw.port(), "hello.bin", &back)
        .unwrap_or_else(|e| panic!("nfs-cp out after a second `cairn up`: {e}"));
    assert_eq!(sha256_file(&back).unwrap(), want);
}
