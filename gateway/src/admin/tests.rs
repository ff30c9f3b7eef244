//! The admin protocol on its own: requests and replies survive serde, a
//! bad request line becomes a typed error, and the client reads the
//! gateway's typed error back.

use std::path::PathBuf;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::proto::*;
use super::{bind, call, socket_path};

/// A status reply with every part filled in.
pub(crate) fn example_status() -> Status {
    Status {
        backlog_bytes: 4096,
        backlog: Backlog {
            bytes: 4096,
            files: 2,
            slots: 3,
            oldest_seconds: Some(1.5),
        },
        stores: vec![StoreRow {
            id: 1,
            name: "s1".into(),
            online: true,
            state: StoreStanding::Online,
            zone: "z1".into(),
            host: "h1".into(),
            labels: vec!["hdd".into()],
            capacity: 1000,
            used: 250,
            free: 750,
            fill_percent: 25.0,
            stored: 200,
            rtt_ms: Some(42.0),
            up_mb_s: Some(1.2),
            down_mb_s: None,
            queued_bytes: 0,
            idle_seconds: Some(0.5),
            why: None,
        }],
        classes: vec![ClassHealth {
            name: "default".into(),
            describe: "2 replicas".into(),
            domains_needed: 2,
            domains_available: 3,
            why: None,
            chunks: ChunkCounts {
                healthy: 7,
                undergoal: 1,
                at_risk: 0,
                missing: 0,
                endangered: 2,
            },
            logical_bytes: 100,
            stored_bytes: 200,
            stored_ratio: 2.0,
        }],
        repair: Some(RepairProgress {
            waiting_chunks: 1,
            waiting_bytes: 2,
            stuck_chunks: 0,
            unplaceable_chunks: 0,
            repaired_chunks: 5,
            repaired_bytes: 6,
            bytes_per_second: 0.0,
            eta_seconds: None,
            last_audit_seconds_ago: Some(3),
            orphans_trashed: 0,
            rebalance: Rebalance {
                fill_spread_points: 1.5,
                target_points: 5.0,
                moved_chunks: 4,
                moved_bytes: 8,
            },
        }),
        backup: Some(BackupState {
            generation: format!("{:016x}", 7),
            changesets: 3,
            recovery_point_seconds: Some(0.4),
            warning: None,
            stores: vec!["s1".into()],
            last_error: None,
            shipped_bytes: 99,
        }),
        cache: CacheUse {
            used_bytes: 10,
            max_bytes: 20,
        },
        files: Files {
            inodes: 3,
            logical_bytes: 30,
        },
        chunks: 10,
        smb: Some(SmbStatus {
            listen: "127.0.0.1:4450".into(),
            running: true,
            pid: Some(42),
            restarts: 0,
            view_mounted: true,
            view: "/tmp/view".into(),
            shares: vec![ShareRow {
                name: "cairn".into(),
                path: "/".into(),
            }],
            clients: None,
        }),
        mounts: vec!["/mnt/x".into()],
        jobs: [(
            "drain".to_owned(),
            crate::work::runner::JobStatus {
                state: crate::work::runner::JobState::Busy,
                steps: 3,
                failures: 0,
                last_error: None,
            },
        )]
        .into(),
    }
}

fn every_request() -> Vec<Request> {
    let name = || "n".to_owned();
    vec![
        Request::Status,
        Request::Mount { dir: "/a".into() },
        Request::Unmount { dir: "/a".into() },
        Request::SmbShareAdd {
            name: name(),
            path: "/p".into(),
        },
        Request::StoreList,
        Request::StoreDrain { name: name() },
        Request::StoreUndrain { name: name() },
        Request::StoreRemove { name: name() },
        Request::Chunks,
        Request::FsckDeep { repair: true },
        Request::CacheDrop,
        Request::ClassCreate(ClassCreate {
            name: name(),
            replicas: Some(3),
            ec: Some("4+2".into()),
            strict: true,
            archive_after: Some("30d".into()),
            ..ClassCreate::default()
        }),
        Request::ClassList,
        Request::ClassShow { name: name() },
        Request::ClassDelete { name: name() },
        Request::ClassSet {
            path: "/p".into(),
            name: name(),
        },
        Request::ClassGet { path: "/p".into() },
    ]
}

#[test]
fn every_request_survives_serde() {
    for req in every_request() {
        let line = serde_json::to_string(&req).unwrap();
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(Request::parse(&line), Ok(req), "{line}");
    }
}

#[test]
fn requests_read_as_the_cli_writes_them() {
    assert_eq!(Request::parse(r#"{"cmd":"status"}"#), Ok(Request::Status));
    assert_eq!(
        Request::parse(r#"{"cmd":"fsck_deep"}"#),
        Ok(Request::FsckDeep { repair: false })
    );
    assert_eq!(
        Request::parse(r#"{"cmd":"class_create","name":"x","replicas":2}"#),
        Ok(Request::ClassCreate(ClassCreate {
            name: "x".into(),
            replicas: Some(2),
            ..ClassCreate::default()
        }))
    );
}

#[test]
fn a_bad_request_is_a_typed_error() {
    assert_eq!(
        Request::parse(r#"{"cmd":"frobnicate"}"#),
        Err(AdminError::UnknownCommand {
            cmd: "frobnicate".into()
        })
    );
    assert_eq!(
        Request::parse(r#"{"cmd":"frobnicate"}"#)
            .unwrap_err()
            .to_string(),
        "unknown command \"frobnicate\""
    );
    assert_eq!(
        Request::parse(r#"{"name":"x"}"#),
        Err(AdminError::NoCommand)
    );
    assert!(matches!(
        Request::parse("status please"),
        Err(AdminError::NotJson { .. })
    ));
    assert!(matches!(
        Request::parse("[1]"),
        Err(AdminError::NotJson { .. })
    ));
    match Request::parse(r#"{"cmd":"class_show"}"#) {
        Err(AdminError::BadRequest { cmd, why }) => {
            assert_eq!(cmd, "class_show");
            assert!(why.contains("name"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Request::parse(r#"{"cmd":"store_drain","name":7}"#),
        Err(AdminError::BadRequest { .. })
    ));
}

#[test]
fn answers_survive_serde() {
    let answers: Vec<Answer> = vec![
        Ok(example_status().into()),
        Ok(ClassGet {
            path: "/a".into(),
            class: "default".into(),
        }
        .into()),
        Ok(FsckDeep {
            checked: 3,
            problems: vec![DeepProblem {
                chunk: 1,
                shard: 0,
                store: "s1".into(),
                store_id: 1,
                key: "k".into(),
                problem: "missing".into(),
                offline: false,
            }],
            queued_for_repair: 1,
        }
        .into()),
        Err(AdminError::StoreHolds {
            name: "s1".into(),
            held: 4,
        }),
        Err(AdminError::Unreachable {
            socket: PathBuf::from("/x/admin.sock"),
            why: "gone".into(),
        }),
    ];
    for a in answers {
        let line = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Answer>(&line).unwrap(), a, "{line}");
    }
}

#[test]
fn a_reply_of_the_wrong_kind_is_an_error() {
    let reply: Reply = ClassDeleted {
        deleted: "x".into(),
    }
    .into();
    assert_eq!(
        Status::try_from(reply.clone()),
        Err(AdminError::UnexpectedReply {
            want: "Status".into(),
            got: "ClassDeleted".into()
        })
    );
    assert_eq!(
        ClassDeleted::try_from(reply),
        Ok(ClassDeleted {
            deleted: "x".into()
        })
    );
}

/// A stand-in gateway answers one request with `answer`; the client
/// gets back what the gateway sent, typed.
async fn ask_fake_gateway(
    answer: Answer,
    req: Request,
) -> (Request, Result<ClassShow, AdminError>) {
    let dir = tempfile::tempdir().unwrap();
    let listener = bind(&socket_path(dir.path())).unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = stream.into_split();
        let line = BufReader::new(rd)
            .lines()
            .next_line()
            .await
            .unwrap()
            .unwrap();
        let text = serde_json::to_string(&answer).unwrap() + "\n";
        wr.write_all(text.as_bytes()).await.unwrap();
        Request::parse(&line).unwrap()
    });
    let got = call::<ClassShow>(dir.path(), &req).await;
    (server.await.unwrap(), got)
}

#[tokio::test]
async fn the_client_reads_the_gateways_typed_error() {
    let req = Request::ClassShow {
        name: "gold".into(),
    };
    let (seen, got) = ask_fake_gateway(
        Err(AdminError::NoClass {
            name: "gold".into(),
        }),
        req.clone(),
    )
    .await;
    assert_eq!(seen, req);
    let err = got.unwrap_err();
    assert_eq!(err.to_string(), "no class named \"gold\"");
    assert_eq!(
        err,
        AdminError::NoClass {
            name: "gold".into()
        }
    );
}

#[tokio::test]
async fn the_client_refuses_a_reply_of_the_wrong_kind() {
    let (_, got) = ask_fake_gateway(
        Ok(ClassDeleted {
            deleted: "x".into(),
        }
        .into()),
        Request::ClassShow { name: "x".into() },
    )
    .await;
    assert!(
        matches!(got, Err(AdminError::UnexpectedReply { .. })),
        "{got:?}"
    );
}

#[tokio::test]
async fn no_gateway_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let got = call::<Status>(dir.path(), &Request::Status).await;
    match got {
        Err(e @ AdminError::Unreachable { .. }) => {
            assert!(e.to_string().contains("is the gateway running"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn store_states_are_the_words_of_the_json_era() {
    let life = serde_json::to_value(StoreLife {
        store: "s1".into(),
        state: StoreLifeState::Draining,
        holds: 3,
    })
    .unwrap();
    assert_eq!(life["state"], "draining");
    assert_eq!(StoreLifeState::Removed.to_string(), "removed");
    for (s, word) in [
        (StoreStanding::Online, "online"),
        (StoreStanding::Suspect, "suspect"),
        (StoreStanding::Offline, "offline"),
        (StoreStanding::Draining, "draining"),
        (StoreStanding::Removed, "removed"),
    ] {
        assert_eq!(serde_json::to_value(s).unwrap(), word);
        assert_eq!(s.name(), word);
    }
}
