//! The `cairn` command line: the commands behind the arguments of
//! [`args`]. `main.rs` only calls [`main`].

mod args;
mod chunkstore;
mod fsck;
mod restore;
mod show;
mod smb;
mod spawn;
mod up;

pub use args::Cli;
use args::{CacheCmd, ClassCmd, Command, StoreCmd};
pub(crate) use args::{ShareCmd, SmbCmd, Target, UserCmd};
use show::{human, print_status, print_stores};

use std::net::SocketAddr;
use std::process::ExitCode;

use cairn_config::{ConfigError, GatewayConfig};
use clap::Parser;

use serde_json::{json, Value};

use crate::run::{self, StartError};

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            data,
            nfs,
            stores,
            grace,
            smb,
        } => up::up(&data, nfs, stores, grace, smb),
        Command::Mount { dir, target } => {
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            admin_call(&target, json!({"cmd": "mount", "dir": dir}), false, |v| {
                println!(
                    "cairn view mounted on {}",
                    v["mounted"].as_str().unwrap_or("")
                )
            })
        }
        Command::Umount { dir, target } => {
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            admin_call(&target, json!({"cmd": "unmount", "dir": dir}), false, |v| {
                println!("unmounted {}", v["unmounted"].as_str().unwrap_or(""))
            })
        }
        Command::Smb { action } => smb::smb(action),
        Command::Chunkstore { action, config } => chunkstore::chunkstore(action, config),
        Command::Status { target, json } => {
            admin_call(&target, json!({"cmd": "status"}), json, print_status)
        }
        Command::Store {
            action: StoreCmd::List { target, json },
        } => admin_call(&target, json!({"cmd": "store_list"}), json, print_stores),
        Command::Store {
            action: StoreCmd::Drain { name, target },
        } => store_life(&target, "store_drain", &name),
        Command::Store {
            action: StoreCmd::Undrain { name, target },
        } => store_life(&target, "store_undrain", &name),
        Command::Store {
            action: StoreCmd::Remove { name, target },
        } => store_life(&target, "store_remove", &name),
        Command::Store {
            action: StoreCmd::Chunks { target, json },
        } => admin_call(&target, json!({"cmd": "chunks"}), json, |v| {
            for c in v["chunks"].as_array().into_iter().flatten() {
                let stores: Vec<&str> = c["stores"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{} {:<12} {:<9} {}",
                    c["key"].as_str().unwrap_or(""),
                    c["class"].as_str().unwrap_or(""),
                    c["layout"].as_str().unwrap_or(""),
                    stores.join(",")
                );
            }
        }),
        Command::Class { action } => class(action),
        Command::Cache {
            action: CacheCmd::Drop { target },
        } => admin_call(&target, json!({"cmd": "cache_drop"}), false, |v| {
            println!(
                "evicted {} from the cache ({} slots); {} not yet drained stays",
                human(v["evicted_bytes"].as_u64().unwrap_or(0)),
                v["evicted_slots"],
                human(v["undrained_bytes"].as_u64().unwrap_or(0))
            );
        }),
        Command::Gateway { config } => match GatewayConfig::load(&config) {
            Ok(cfg) => serve(cfg, None),
            Err(e) => config_error(&e),
        },
        Command::Restore {
            stores,
            secret_file,
            data,
            list,
        } => restore::restore(stores, secret_file, data, list),
        Command::Fsck {
            config,
            data,
            json,
            deep: true,
            repair,
        } => {
            let target = Target { data, config };
            let mut bad = false;
            let code = admin_call(
                &target,
                json!({"cmd": "fsck_deep", "repair": repair}),
                json,
                |v| {
                    let problems = v["problems"].as_array().cloned().unwrap_or_default();
                    bad = !problems.is_empty();
                    println!("checked {} copies or shards on the stores", v["checked"]);
                    for p in &problems {
                        println!(
                            "  chunk {} shard {} on {} ({}): {}",
                            p["chunk"],
                            p["shard"],
                            p["store"].as_str().unwrap_or(""),
                            p["key"].as_str().unwrap_or(""),
                            p["problem"].as_str().unwrap_or("")
                        );
                    }
                    if repair {
                        println!(
                            "{} handed to the repair; `cairn status` shows its progress",
                            v["queued_for_repair"]
                        );
                    } else if bad {
                        println!(
                            "rerun with --repair to rebuild them from the other copies or shards"
                        );
                    } else {
                        println!("every copy and shard is present and matches its checksum");
                    }
                },
            );
            // Found and not handed to the repair: a failure.
            if code == ExitCode::SUCCESS && bad && !repair {
                ExitCode::from(1)
            } else {
                code
            }
        }
        Command::Fsck {
            config, data, json, ..
        } => fsck::local(config, data, json),
    }
}

pub(crate) fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("cairn: bad config: {e}");
    ExitCode::from(2)
}

pub(crate) fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},cairn_gateway={level}"))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}

pub(crate) type Banner = Box<dyn FnOnce(SocketAddr) + Send>;

pub(crate) fn serve(cfg: GatewayConfig, banner: Option<Banner>) -> ExitCode {
    init_logging(cfg.log.level.as_str());
    let result = runtime().block_on(run::run(cfg, |addr| {
        if let Some(b) = banner {
            b(addr);
        }
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ StartError::Locked { .. }) => {
            eprintln!("cairn: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("cairn: {e}");
            ExitCode::from(1)
        }
    }
}

/// Sends one admin request; prints the reply with `show`, or as JSON.
pub(crate) fn admin_call(
    target: &Target,
    req: Value,
    json: bool,
    show: impl FnOnce(&Value),
) -> ExitCode {
    let dir = match target.data_dir() {
        Ok(d) => d,
        Err(e) => return config_error(&e),
    };
    match runtime().block_on(crate::admin::request(&dir, &req)) {
        Ok(mut reply) => {
            if json {
                if let Some(o) = reply.as_object_mut() {
                    o.remove("ok");
                }
                println!("{reply:#}");
            } else {
                show(&reply);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cairn: {e}");
            ExitCode::from(1)
        }
    }
}

fn class(action: ClassCmd) -> ExitCode {
    match action {
        ClassCmd::Create {
            name,
            replicas,
            ec,
            labels,
            spread,
            strict,
            loose,
            archive_after,
            archive_ec,
            archive_spread,
            archive_labels,
            durability,
            target,
        } => admin_call(
            &target,
            json!({"cmd": "class_create", "name": name, "replicas": replicas, "ec": ec, "labels": labels,
                   "spread": spread, "strict": strict, "loose": loose, "archive_after": archive_after,
                   "archive_ec": archive_ec, "archive_spread": archive_spread, "archive_labels": archive_labels,
                   "durability": durability}),
            false,
            |v| {
                println!(
                    "class {} created: {}\n{}",
                    v["class"].as_str().unwrap_or(""),
                    v["describe"].as_str().unwrap_or(""),
                    v["note"].as_str().unwrap_or("")
                )
            },
        ),
        ClassCmd::List { target, json } => {
            admin_call(&target, json!({"cmd": "class_list"}), json, |v| {
                for c in v["classes"].as_array().into_iter().flatten() {
                    println!(
                        "{:<16} {}",
                        c["name"].as_str().unwrap_or(""),
                        c["describe"].as_str().unwrap_or("")
                    );
                }
            })
        }
        ClassCmd::Show { name, target, json } => admin_call(
            &target,
            json!({"cmd": "class_show", "name": name}),
            json,
            |v| {
                println!(
                    "{}: {}",
                    v["name"].as_str().unwrap_or(""),
                    v["describe"].as_str().unwrap_or("")
                );
            },
        ),
        ClassCmd::Delete { name, target } => admin_call(
            &target,
            json!({"cmd": "class_delete", "name": name}),
            false,
            |v| {
                println!("class {} deleted", v["deleted"].as_str().unwrap_or(""));
            },
        ),
        ClassCmd::Set { path, name, target } => admin_call(
            &target,
            json!({"cmd": "class_set", "path": path, "name": name}),
            false,
            |v| {
                println!(
                    "{} now has class {} ({})",
                    v["path"].as_str().unwrap_or(""),
                    v["class"].as_str().unwrap_or(""),
                    v["note"].as_str().unwrap_or("")
                );
            },
        ),
        ClassCmd::Get { path, target, json } => admin_call(
            &target,
            json!({"cmd": "class_get", "path": path}),
            json,
            |v| {
                println!(
                    "{}: {}",
                    v["path"].as_str().unwrap_or(""),
                    v["class"].as_str().unwrap_or("")
                );
            },
        ),
    }
}

/// `cairn store drain|undrain|remove NAME`.
fn store_life(target: &Target, cmd: &str, name: &str) -> ExitCode {
    admin_call(target, json!({"cmd": cmd, "name": name}), false, |v| {
        println!(
            "store {} is {}; it holds {} copies or shards the metadata needs",
            v["store"].as_str().unwrap_or(""),
            v["state"].as_str().unwrap_or(""),
            v["holds"]
        )
    })
}
