//! The architecture's import rules, read from the source itself (docs/architecture.md draws
//! them). Every module of `src/` sits in one layer:
//!
//! ```text
//! entry points   commands
//! start-up       server
//! HTTP           api, state, error
//! capabilities   auth, login, two_factor, orders, tenants, users, ws, demo (seed data)
//! core services  db, store, audit, rate_limit, telemetry, embedded_pg
//! leaves         config, ids, secret, net, page, timestamp
//! ```
//!
//! A module may name (`crate::…`, `super::…`) only modules of its own layer or below, and no
//! two modules may name each other through any chain: not between top-level modules, and not
//! between the files of one module. A module this table does not place fails the test, and so
//! does one that the module map of `src/lib.rs` does not describe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &["config", "ids", "secret", "net", "page", "timestamp"],
    ),
    (
        "core services",
        &[
            "db",
            "store",
            "audit",
            "rate_limit",
            "telemetry",
            "embedded_pg",
        ],
    ),
    (
        "capabilities",
        &[
            "auth",
            "login",
            "two_factor",
            "orders",
            "tenants",
            "users",
            "ws",
            "demo",
        ],
    ),
    ("HTTP", &["api", "state", "error"]),
    ("start-up", &["server"]),
    ("entry points", &["commands"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// The source without comments, string contents or character literals, so only code is read.
fn code_of(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'r' if b.get(i + 1) == Some(&b'#') || (b.get(i + 1) == Some(&b'"')) => {
                // A raw string r"…" or r#"…"#: skip to its closing quote and hashes.
                let start = i;
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                let identifier_char =
                    start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
                if b.get(j) != Some(&b'"') || identifier_char {
                    out.push('r');
                    i += 1;
                    continue;
                }
                j += 1;
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\') => {
                // A character literal ('x' or '\n', '\''); lifetimes have no closing quote.
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first segments of every path that starts with `prefix` (`crate::`, `super::`),
/// including each member of a `prefix{a, b::c}` group.
fn named_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = code[at + prefix.len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 0 => {
                        item_start = false;
                        let name = ident_at(&group[i..]);
                        if !name.is_empty() && name != "self" {
                            names.insert(name.to_string());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                names.insert(name.to_string());
            }
        }
    }
    names
}

struct Source {
    /// Path below `src/`, with `/` separators.
    rel: String,
    code: String,
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<Source>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap();
                let rel = rel.to_string_lossy().replace('\\', "/");
                let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                out.push(Source {
                    rel,
                    code: code_of(&text),
                });
            }
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// The top-level module a file belongs to (`None` for the crate roots).
fn module_of(rel: &str) -> Option<&str> {
    if rel == "lib.rs" || rel == "main.rs" {
        return None;
    }
    let first = rel.split('/').next().unwrap();
    Some(first.strip_suffix(".rs").unwrap_or(first))
}

/// For a file directly inside a module's folder (`ws/hub.rs`, `ws/hub/mod.rs`), the module and
/// its child (`ws`, `hub`); `mod.rs` itself is the module's root and has no child name.
fn child_of(rel: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.as_slice() {
        [m, "mod.rs"] => Some((m, "")),
        [m, file] => Some((m, file.strip_suffix(".rs").unwrap_or(file))),
        [m, child, "mod.rs"] => Some((m, child)),
        _ => None,
    }
}

/// The cycles of `graph`, one path per strongly connected group of more than one node.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for start in graph.keys() {
        if reported.contains(start) {
            continue;
        }
        // Depth-first search for a path from one of `start`'s targets back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    reported.extend(path.iter().cloned());
                    let mut cycle = path.clone();
                    cycle.push(start.clone());
                    found.push(cycle);
                    stack.clear();
                    break;
                }
                if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    found
}

#[test]
fn every_module_sits_in_a_layer_and_imports_only_downwards_or_sideways() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for src in sources() {
        let Some(module) = module_of(&src.rel) else {
            continue;
        };
        let Some(own) = layer_of(module) else {
            problems.push(format!(
                "`{module}` is in no layer: place it in tests/layers.rs"
            ));
            continue;
        };
        graph.entry(module.to_string()).or_default();
        for named in named_after(&src.code, "crate::") {
            if named == module {
                continue;
            }
            match layer_of(&named) {
                None => problems.push(format!("{}: `{named}` is in no layer", src.rel)),
                Some(l) if l > own => problems.push(format!(
                    "{}: `{module}` ({}) imports `{named}` ({}), a layer above it",
                    src.rel, LAYERS[own].0, LAYERS[l].0
                )),
                Some(_) => {
                    graph.entry(module.to_string()).or_default().insert(named);
                }
            }
        }
    }
    for cycle in cycles(&graph) {
        problems.push(format!("import cycle: {}", cycle.join(" -> ")));
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_files_of_a_module_name_each_other_without_cycles() {
    // module -> child -> children it names (the module's root, `mod.rs`, is left out: it
    // declares its children and they may use what it defines).
    let mut graphs: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let all = sources();
    for src in &all {
        let Some((module, child)) = child_of(&src.rel) else {
            continue;
        };
        if child.is_empty() {
            continue;
        }
        let siblings: BTreeSet<&str> = all
            .iter()
            .filter_map(|s| child_of(&s.rel))
            .filter(|(m, c)| *m == module && !c.is_empty())
            .map(|(_, c)| c)
            .collect();
        let mut named = named_after(&src.code, "super::");
        named.extend(named_after(&src.code, &format!("crate::{module}::")));
        let graph = graphs.entry(module.to_string()).or_default();
        let edges = graph.entry(child.to_string()).or_default();
        for n in named {
            if n != child && siblings.contains(n.as_str()) {
                edges.insert(n);
            }
        }
    }
    let mut problems = Vec::new();
    for (module, graph) in &graphs {
        for cycle in cycles(graph) {
            problems.push(format!(
                "import cycle in `{module}`: {}",
                cycle.join(" -> ")
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_module_map_in_lib_rs_describes_every_module() {
    let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs"))
        .expect("src/lib.rs");
    let doc: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
                .or_else(|| l.strip_prefix("mod "))?;
            l.strip_suffix(';')
        })
        .collect();
    let missing: Vec<&&str> = declared
        .iter()
        .filter(|m| !doc.contains(&format!("`{m}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "src/lib.rs's module map does not describe {missing:?}"
    );
    for (_, modules) in LAYERS {
        for m in *modules {
            assert!(
                declared.contains(m),
                "`{m}` is placed in a layer here but src/lib.rs does not declare it"
            );
        }
    }
}

#[test]
fn the_reader_finds_what_the_rules_are_about() {
    let code = code_of(
        "use crate::{a, b::{c, d}, self};\n// crate::commented\nlet s = \"crate::quoted\";\n\
         use super::sibling; let x = crate::e::f(); let c = '\"'; let r = r#\"crate::raw\"#;",
    );
    let named = named_after(&code, "crate::");
    assert_eq!(
        named,
        ["a", "b", "e"].iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(
        named_after(&code, "super::"),
        ["sibling".to_string()].into()
    );
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), ["a".to_string()].into());
    g.insert("d".into(), ["a".to_string()].into());
    let found = cycles(&g);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].first(), found[0].last());
}
