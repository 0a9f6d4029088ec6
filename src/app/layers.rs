//! The arrow rule of `app/`, checked mechanically: every `super::…` / `crate::app::…`
//! path in `src/app/**` (outside test modules) is an edge to the module it names, and
//! every edge must point to a strictly lower layer of [`LAYERS`]; so there is no cycle
//! and no sideways import between command modules. A new module must be given a layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module of `app/` and its layer; an import must go to a lower number.
const LAYERS: &[(&str, u8)] = &[
    ("app", 0),
    ("reporter", 0),
    ("discover", 1),
    ("shrink", 1),
    ("session", 2),
    ("recorder", 3),
    ("health", 3),
    ("verify::hash", 3),
    ("verify::rawfiles", 3),
    ("quiesce", 4),
    ("reconcile", 4),
    ("dump::pump", 3),
    ("dump::leftover", 3),
    ("dump", 4),
    ("verify::common", 4),
    ("verify::encryption", 4),
    ("verify::files", 4),
    ("verify::rotation", 4),
    ("verify::deliver", 4),
    ("verify::scratch", 5),
    ("vouch", 5),
    ("attest", 5),
    ("verify::database", 6),
    ("startup", 7),
    ("restore_copy", 7),
    ("backup", 8),
    ("maintain", 8),
    ("copy", 8),
    ("fleet", 8),
    ("query", 8),
    ("report", 8),
    ("restore", 8),
    // A part of `restore` that uses its selection helpers (`super::*`).
    ("restore::into", 9),
    ("proxy_rules", 8),
    ("schedule", 8),
    ("verify", 8),
    ("kit", 9),
    ("task", 9),
    ("control", 1),
    ("daemon", 10),
];

/// Known exceptions, each with the reason it is not fixed here.
const EXEMPT: &[(&str, &str)] = &[];

/// The module a file under `src/app` defines (`verify/mod.rs` → `verify`).
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.is_empty() {
        "app".into()
    } else {
        parts.join("::")
    }
}

/// The edges one file's text makes, resolved against the known modules.
fn edges(module: &str, text: &str, known: &BTreeSet<&str>) -> BTreeSet<String> {
    let body = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let parent: Vec<&str> = if module == "app" {
        vec![]
    } else {
        let mut p: Vec<&str> = module.split("::").collect();
        p.pop();
        p
    };
    let mut out = BTreeSet::new();
    for (prefix, base) in [("crate::app::", Vec::new()), ("super::", parent)] {
        let mut rest = body;
        while let Some(i) = rest.find(prefix) {
            let before = &rest[..i];
            rest = &rest[i + prefix.len()..];
            // `x::super::` is not ours to resolve; `crate::app::` is matched above.
            if before.ends_with("::") {
                continue;
            }
            // The path after the prefix: `a::b::c` up to the first non-path character.
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let mut path: Vec<&str> = base.clone();
            path.extend(rest[..end].split("::").filter(|s| !s.is_empty()));
            // The longest prefix of it that names a module (else the parent itself).
            let to = (0..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|m| known.contains(m.as_str()))
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "app".to_string());
            if to != module {
                out.insert(to);
            }
        }
    }
    out
}

fn all_edges() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/app");
    let known: BTreeSet<&str> = LAYERS.iter().map(|l| l.0).collect();
    let mut files = vec![root.clone()];
    let mut graph = BTreeMap::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                files.push(e.path());
            }
            continue;
        }
        if p.extension().is_none_or(|x| x != "rs") || p.ends_with("layers.rs") {
            continue;
        }
        let module = module_of(p.strip_prefix(&root).unwrap());
        assert!(
            known.contains(module.as_str()),
            "src/app module `{module}` has no layer: add it to LAYERS in {}",
            file!()
        );
        let text = std::fs::read_to_string(&p).unwrap();
        graph.insert(module.clone(), edges(&module, &text, &known));
    }
    graph
}

#[test]
fn every_import_in_app_points_down() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut bad = Vec::new();
    for (from, tos) in all_edges() {
        for to in tos {
            if EXEMPT.contains(&(from.as_str(), to.as_str())) {
                continue;
            }
            let (a, b) = (layer[from.as_str()], layer[to.as_str()]);
            if a <= b {
                bad.push(format!("{from} (layer {a}) -> {to} (layer {b})"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports that do not point down:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_edge_parser_sees_use_lines_and_inline_paths() {
    let known: BTreeSet<&str> = LAYERS.iter().map(|l| l.0).collect();
    let text = "use super::session::Session;\nuse super::{Globals, now_ms};\nfn f() { super::backup::run(); crate::app::verify::database::x(); }\n#[cfg(test)]\nmod tests { use super::*; use crate::app::daemon; }";
    let got = edges("task", text, &known);
    let want: BTreeSet<String> = ["session", "app", "backup", "verify::database"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
    let inner = edges("verify::database", "use super::common::Running;", &known);
    assert!(inner.contains("verify::common"), "{inner:?}");
}
