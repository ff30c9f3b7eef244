//! The `cairn` commands the running gateway answers over its admin socket
//! (status, store, class, cache, mount, fsck --deep): each sends one typed
//! [`Request`] and prints the typed reply, as a table or (`--json`) as the
//! reply type itself.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::args::{ClassCmd, StoreCmd, Target};
use super::show::{human, print_chunks, print_status, print_stores};
use super::{config_error, runtime};
use crate::admin::proto::{
    AdminError, CacheDropped, ClassCreate, ClassCreated, ClassDeleted, ClassGet, ClassList,
    ClassSet, ClassShow, FsckDeep, Mounted, Reply, Request, Status, StoreLife, StoreLifeState,
    Unmounted,
};

/// Sends one admin request; prints the reply of kind `T` with `show`, or
/// as JSON.
pub(crate) fn admin_call<T>(
    target: &Target,
    req: Request,
    json: bool,
    show: impl FnOnce(&T),
) -> ExitCode
where
    T: TryFrom<Reply, Error = AdminError> + Serialize,
{
    let dir = match target.data_dir() {
        Ok(d) => d,
        Err(e) => return config_error(&e),
    };
    match runtime().block_on(crate::admin::call::<T>(&dir, &req)) {
        Ok(reply) if json => match json_text(&reply) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cairn: cannot write the reply as JSON: {e}");
                ExitCode::from(1)
            }
        },
        Ok(reply) => {
            show(&reply);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cairn: {e}");
            ExitCode::from(1)
        }
    }
}

/// What `--json` prints: the reply type, pretty.
pub(super) fn json_text<T: Serialize>(reply: &T) -> serde_json::Result<String> {
    serde_json::to_string_pretty(reply)
}

/// `cairn mount DIR`.
pub(super) fn mount(dir: PathBuf, target: &Target) -> ExitCode {
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    admin_call(target, Request::Mount { dir }, false, |v: &Mounted| {
        println!("cairn view mounted on {}", v.mounted)
    })
}

/// `cairn umount DIR`.
pub(super) fn umount(dir: PathBuf, target: &Target) -> ExitCode {
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    admin_call(target, Request::Unmount { dir }, false, |v: &Unmounted| {
        println!("unmounted {}", v.unmounted)
    })
}

/// `cairn status`.
pub(super) fn status(target: &Target, json: bool) -> ExitCode {
    admin_call(target, Request::Status, json, |v: &Status| print_status(v))
}

/// `cairn cache drop`.
pub(super) fn cache_drop(target: &Target) -> ExitCode {
    admin_call(target, Request::CacheDrop, false, |v: &CacheDropped| {
        println!(
            "evicted {} from the cache ({} slots); {} not yet drained stays",
            human(v.evicted_bytes),
            v.evicted_slots,
            human(v.undrained_bytes)
        );
    })
}

/// `cairn store …`.
pub(super) fn store(action: StoreCmd) -> ExitCode {
    match action {
        StoreCmd::List { target, json } => admin_call(
            &target,
            Request::StoreList,
            json,
            |v: &crate::admin::proto::StoreList| print_stores(&v.stores),
        ),
        StoreCmd::Chunks { target, json } => admin_call(
            &target,
            Request::Chunks,
            json,
            |v: &crate::admin::proto::Chunks| print_chunks(&v.chunks),
        ),
        StoreCmd::Drain { name, target } => store_life(&target, Request::StoreDrain { name }),
        StoreCmd::Undrain { name, target } => store_life(&target, Request::StoreUndrain { name }),
        StoreCmd::Remove { name, target } => store_life(&target, Request::StoreRemove { name }),
        StoreCmd::Start { name, target } => super::up::start_again(&name, &target),
    }
}

/// `cairn store drain|undrain|remove NAME`. A store of a `cairn up`
/// folder (`--data DIR`) that is removed gets a mark in its folder, so
/// `cairn up` starts it no more.
fn store_life(target: &Target, req: Request) -> ExitCode {
    admin_call(target, req, false, |v: &StoreLife| {
        println!(
            "store {} is {}; it holds {} copies or shards the metadata needs",
            v.store, v.state, v.holds
        );
        let folder = target
            .data
            .as_ref()
            .map(|d| d.join("stores").join(&v.store))
            .filter(|f| f.is_dir());
        if let (StoreLifeState::Removed, Some(folder)) = (v.state, folder) {
            let mark = folder.join(super::up::REMOVED_MARK);
            match cairn_config::write_durable(&mark, b"removed with cairn store remove\n") {
                Ok(()) => println!(
                    "cairn up will not start it again (its folder {} can go)",
                    folder.display()
                ),
                Err(e) => eprintln!(
                    "cairn: warning: cannot mark {} removed for cairn up: {e}",
                    folder.display()
                ),
            }
        }
    })
}

/// `cairn fsck --deep [--repair]`: exit 1 when it found bad objects and
/// did not hand them to the repair.
pub(super) fn fsck_deep(target: &Target, json: bool, repair: bool) -> ExitCode {
    let mut bad = false;
    let code = admin_call(
        target,
        Request::FsckDeep { repair },
        json,
        |v: &FsckDeep| {
            bad = !v.problems.is_empty();
            println!("checked {} copies or shards on the stores", v.checked);
            for p in &v.problems {
                println!(
                    "  chunk {} shard {} on {} ({}): {}",
                    p.chunk, p.shard, p.store, p.key, p.problem
                );
            }
            if repair {
                println!(
                    "{} handed to the repair; `cairn status` shows its progress",
                    v.queued_for_repair
                );
            } else if bad {
                println!("rerun with --repair to rebuild them from the other copies or shards");
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

/// `cairn class …`.
pub(super) fn class(action: ClassCmd) -> ExitCode {
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
        } => {
            let req = Request::ClassCreate(ClassCreate {
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
            });
            admin_call(&target, req, false, |v: &ClassCreated| {
                println!("class {} created: {}\n{}", v.class, v.describe, v.note)
            })
        }
        ClassCmd::List { target, json } => {
            admin_call(&target, Request::ClassList, json, |v: &ClassList| {
                for c in &v.classes {
                    println!("{:<16} {}", c.name, c.describe);
                }
            })
        }
        ClassCmd::Show { name, target, json } => admin_call(
            &target,
            Request::ClassShow { name },
            json,
            |v: &ClassShow| {
                println!("{}: {}", v.name, v.describe);
            },
        ),
        ClassCmd::Delete { name, target } => admin_call(
            &target,
            Request::ClassDelete { name },
            false,
            |v: &ClassDeleted| {
                println!("class {} deleted", v.deleted);
            },
        ),
        ClassCmd::Set { path, name, target } => admin_call(
            &target,
            Request::ClassSet { path, name },
            false,
            |v: &ClassSet| {
                println!("{} now has class {} ({})", v.path, v.class, v.note);
            },
        ),
        ClassCmd::Get { path, target, json } => {
            admin_call(&target, Request::ClassGet { path }, json, |v: &ClassGet| {
                println!("{}: {}", v.path, v.class);
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::json_text;
    use crate::admin::proto::Status;

    /// `cairn status --json` is the typed reply, with the fields the
    /// end-to-end tests and the README read, under the names they use.
    #[test]
    fn status_json_is_the_typed_reply() {
        let status = crate::admin::tests::example_status();
        let text = json_text(&status).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["backlog_bytes"], 4096);
        assert_eq!(v["backlog"]["files"], 2);
        assert_eq!(v["cache"]["used_bytes"], 10);
        assert_eq!(v["chunks"], 10);
        assert_eq!(v["classes"][0]["name"], "default");
        assert_eq!(v["classes"][0]["chunks"]["healthy"], 7);
        assert_eq!(v["classes"][0]["chunks"]["endangered"], 2);
        assert_eq!(v["classes"][0]["why"], Value::Null);
        assert_eq!(v["stores"][0]["state"], "online");
        assert_eq!(v["stores"][0]["fill_percent"], 25.0);
        assert_eq!(v["stores"][0]["labels"], serde_json::json!(["hdd"]));
        assert_eq!(v["stores"][0]["rtt_ms"], 42.0);
        assert_eq!(v["stores"][0]["up_mb_s"], 1.2);
        assert_eq!(v["stores"][0]["down_mb_s"], Value::Null);
        assert_eq!(v["repair"]["repaired_chunks"], 5);
        assert_eq!(v["repair"]["eta_seconds"], Value::Null);
        assert_eq!(v["repair"]["rebalance"]["moved_chunks"], 4);
        assert_eq!(v["backup"]["generation"], "0000000000000007");
        assert_eq!(v["smb"]["pid"], 42);
        assert_eq!(v["smb"]["view_mounted"], true);
        assert_eq!(v["smb"]["shares"][0]["name"], "cairn");
        assert_eq!(v["mounts"][0], "/mnt/x");
        // And the JSON reads back as the same reply: one schema.
        assert_eq!(serde_json::from_str::<Status>(&text).unwrap(), status);
    }
}
