//! The shape of `gateway/src`, checked: no import cycle between its
//! top-level modules (a file `x.rs` or a folder `x/`), the core and the
//! stores do not reach up into the control plane, and no file is over 600
//! lines. Reads the `crate::…` paths in the source text (imports, paths in
//! code and doc links alike).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The longest a source file may be.
const MAX_LINES: usize = 600;

/// Files waiting for their split in another room of issue 12.
const LONG_FOR_NOW: &[&str] = &[];

/// Edges of known cycles still to be cut: the workers import their status
/// types from `admin::proto`. Move each type to the worker that produces it
/// and re-export it from the proto (as `fsck::DeepProblem` and
/// `smb::SmbStatus` are), then delete the edge here.
const KNOWN_CYCLE_EDGES: &[(&str, &str)] = &[];

/// Modules a lower room must not import: (room, what it must not reach).
const LAYERS: &[(&str, &[&str])] = &[
    (
        "core",
        &[
            "admin", "cli", "drain", "fsck", "fuse", "mounts", "nfs", "repair", "restore", "run",
            "ship", "smb", "store", "work",
        ],
    ),
    (
        "store",
        &[
            "admin", "cli", "drain", "repair", "restore", "run", "ship", "work",
        ],
    ),
    ("catalog", &["admin", "cli", "core", "run", "work"]),
    ("health", &["admin", "cli", "core", "run", "work"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for `lib.rs`/`main.rs`).
fn room_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a source text names through `crate::`.
fn named_rooms(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::X, b}`: the first name of each item at depth one.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        out.insert(ident(&group[i..]).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest).to_owned());
        }
    }
    out
}

/// room -> rooms it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let rooms: BTreeSet<String> = files.iter().filter_map(|f| room_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(room) = room_of(file) else { continue };
        let text = fs::read_to_string(file).expect("read source");
        let deps = graph.entry(room.clone()).or_default();
        deps.extend(
            named_rooms(&text)
                .into_iter()
                .filter(|d| *d != room && rooms.contains(d)),
        );
    }
    graph
}

/// A path `from` → … → `to` in `graph`, if any.
fn path(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if from == to {
        return Some(vec![to.to_owned()]);
    }
    if !seen.insert(from.to_owned()) {
        return None;
    }
    for next in graph.get(from).into_iter().flatten() {
        if let Some(mut rest) = path(graph, next, to, seen) {
            rest.insert(0, from.to_owned());
            return Some(rest);
        }
    }
    None
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let mut graph = graph();
    for (from, to) in KNOWN_CYCLE_EDGES {
        if let Some(deps) = graph.get_mut(*from) {
            deps.remove(*to);
        }
    }
    let mut cycles = Vec::new();
    for (from, deps) in &graph {
        for to in deps {
            if let Some(back) = path(&graph, to, from, &mut BTreeSet::new()) {
                cycles.push(format!("{from} -> {}", back.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn lower_rooms_do_not_import_upper_ones() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (room, banned) in LAYERS {
        for dep in graph.get(*room).into_iter().flatten() {
            if banned.contains(&dep.as_str()) {
                wrong.push(format!("{room} imports {dep}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut long = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src()).expect("under src");
        if LONG_FOR_NOW.iter().any(|f| rel == Path::new(f)) {
            continue;
        }
        let lines = fs::read_to_string(&file)
            .expect("read source")
            .lines()
            .count();
        if lines > MAX_LINES {
            long.push(format!("{}: {lines} lines", rel.display()));
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_and_plain_paths() {
    let text = "use crate::core::Fs;\nuse crate::{store::{A, B}, health};\n[`crate::drain`]";
    let rooms: Vec<String> = named_rooms(text).into_iter().collect();
    assert_eq!(rooms, ["core", "drain", "health", "store"]);
}
