//! The layers of the house, enforced: which crate may depend on which, and no
//! module that imports another which imports it back.
//!
//! - The store's driver stays inside `schema/`: the listener, both outbound halves
//!   and the binary reach the database only through the store's own types, so that
//!   changing how a backend is driven touches one crate.
//! - Composing (`outbound/compose`) and delivering (`outbound/deliver`) know only
//!   the store, never each other: the queued delivery is all they share. The
//!   listener composes (a reply goes through the one submit path) and never
//!   delivers. Only the binary wires them all.
//! - Inside every crate, following imports from any module never leads back to it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The repository.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The dependency names a crate's manifest lists, in any of its dependency tables.
fn dependencies(manifest: &str) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line.trim_matches(['[', ']']).ends_with("dependencies");
            continue;
        }
        if in_dependencies && let Some((name, _)) = line.split_once(['=', '.']) {
            names.push(name.trim().to_owned());
        }
    }
    anyhow::ensure!(
        !names.is_empty(),
        "no dependencies found: is this a manifest?"
    );
    Ok(names)
}

/// Each crate of the product, and the product crates it may depend on.
const LAYERS: [(&str, &[&str]); 5] = [
    ("schema", &[]),
    ("outbound/compose", &["maskrelay-schema"]),
    ("outbound/deliver", &["maskrelay-schema"]),
    ("inbound", &["maskrelay-schema", "maskrelay-compose"]),
    (
        "gateway",
        &[
            "maskrelay-schema",
            "maskrelay-compose",
            "maskrelay-deliver",
            "maskrelay-inbound",
        ],
    ),
];

#[test]
fn only_the_store_depends_on_the_database_driver() -> anyhow::Result<()> {
    let store = std::fs::read_to_string(root().join("schema/Cargo.toml"))?;
    assert!(dependencies(&store)?.iter().any(|d| d == "sqlx"));
    for (krate, _) in LAYERS.iter().skip(1) {
        let manifest = std::fs::read_to_string(root().join(krate).join("Cargo.toml"))?;
        let deps = dependencies(&manifest)?;
        assert!(
            !deps.iter().any(|d| d == "sqlx" || d.starts_with("sqlx-")),
            "{krate}/Cargo.toml depends on sqlx: reach the database through maskrelay-schema"
        );
    }
    Ok(())
}

#[test]
fn crates_depend_only_on_the_layers_below_them() -> anyhow::Result<()> {
    for (krate, allowed) in LAYERS {
        let manifest = std::fs::read_to_string(root().join(krate).join("Cargo.toml"))?;
        let ours: BTreeSet<String> = dependencies(&manifest)?
            .into_iter()
            .filter(|d| d.starts_with("maskrelay"))
            .collect();
        let allowed: BTreeSet<String> = allowed.iter().map(|d| (*d).to_owned()).collect();
        assert!(
            ours.is_subset(&allowed),
            "{krate} depends on {:?}; it may depend on {allowed:?} only",
            ours.difference(&allowed).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// The `.rs` files under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            sources(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The module a file of `src` defines, as its path segments (`[]` for the crate's
/// root; `a/mod.rs` and `a.rs` are both `[a]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut segments: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        segments.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segments.pop();
    }
    segments
}

/// A file's code without comments and without its unit tests (which follow
/// `#[cfg(test)]` at the end of a file, and may reach anywhere).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file's code names: `crate::a::b`, `super::c`, and paths through
/// the child modules it declares, each as whole segments from the crate's root,
/// with `{…}` groups of a `use` spread out one level.
fn paths(module: &[String], code: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let tokens: Vec<String> = tokenize(code);
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let start: Option<Vec<String>> = match tokens[i].as_str() {
            "crate" | "$crate" => Some(Vec::new()),
            "super" => module.split_last().map(|(_, parent)| parent.to_vec()),
            name if children.contains(name) && tokens.get(i + 1).is_some_and(|t| t == "::") => {
                let mut child = module.to_vec();
                child.push(name.to_owned());
                found.push(child.clone());
                Some(child)
            }
            _ => None,
        };
        let Some(mut path) = start else {
            i += 1;
            continue;
        };
        // `pub(crate)` and `pub(super)` name no path: only `crate::…` does.
        let mut named = false;
        i += 1;
        while tokens.get(i).is_some_and(|t| t == "::") {
            named = true;
            match tokens.get(i + 1).map(String::as_str) {
                Some("super") => {
                    path.pop();
                }
                Some("{") => {
                    // Each item of the group: its first segment, joined to the path.
                    let mut j = i + 2;
                    let mut depth = 1;
                    let mut item_start = true;
                    while j < tokens.len() && depth > 0 {
                        match tokens[j].as_str() {
                            "{" => depth += 1,
                            "}" => depth -= 1,
                            "," if depth == 1 => item_start = true,
                            ident if item_start && depth == 1 => {
                                let mut item = path.clone();
                                item.push(ident.to_owned());
                                found.push(item);
                                item_start = false;
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                    i = j;
                    break;
                }
                Some(ident) => path.push(ident.to_owned()),
                None => break,
            }
            i += 2;
        }
        if named {
            found.push(path);
        }
    }
    found
}

/// Identifiers, `::`, braces and commas; everything else is a separator.
fn tokenize(code: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' || c == '$' {
            word.push(c);
        } else {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if c == ':' && chars.get(i + 1) == Some(&':') {
                tokens.push("::".to_owned());
                i += 1;
            } else if matches!(c, '{' | '}' | ',') {
                tokens.push(c.to_string());
            }
        }
        i += 1;
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

/// The imports between the modules of the crate whose sources are in `src`: for
/// each module, the other modules its code names.
fn module_graph(src: &Path) -> anyhow::Result<BTreeMap<Vec<String>, BTreeSet<Vec<String>>>> {
    let mut files = Vec::new();
    sources(src, &mut files)?;
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let code = code(&std::fs::read_to_string(file)?);
        let children: BTreeSet<String> = modules
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .filter_map(|m| m.last().cloned())
            .collect();
        let mut names = BTreeSet::new();
        for path in paths(module, &code, &children) {
            // The longest prefix of the path that is a module of this crate.
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|prefix| modules.contains_key(prefix));
            if let Some(target) = target
                && &target != module
            {
                names.insert(target);
            }
        }
        graph.insert(module.clone(), names);
    }
    Ok(graph)
}

/// A cycle of imports, if the graph has one, as the modules along it.
fn a_cycle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|m| name(m)).collect();
            cycle.push(name(node));
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    fn name(module: &[String]) -> String {
        if module.is_empty() {
            "crate".to_owned()
        } else {
            module.join("::")
        }
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_one_that_imports_it_back() -> anyhow::Result<()> {
    for (krate, _) in LAYERS {
        let graph = module_graph(&root().join(krate).join("src"))?;
        assert!(graph.len() > 3, "{krate}: no modules found");
        if let Some(cycle) = a_cycle(&graph) {
            panic!("{krate} has an import cycle: {}", cycle.join(" -> "));
        }
    }
    Ok(())
}

#[test]
fn the_cycle_check_sees_cycles() {
    let src = std::env::temp_dir().join(format!("layering-{}", std::process::id()));
    let write = |file: &str, text: &str| -> anyhow::Result<()> {
        let path = src.join(file);
        std::fs::create_dir_all(path.parent().unwrap_or(&src))?;
        Ok(std::fs::write(path, text)?)
    };
    let made = write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n")
        .and_then(|()| write("a/mod.rs", "mod inner;\nuse crate::b::Thing;\n"))
        .and_then(|()| write("a/inner.rs", "use super::super::c::{self, X};\n"))
        .and_then(|()| {
            write(
                "b.rs",
                "// crate::a is only named in a comment\nuse crate::{c::Y};\n",
            )
        })
        .and_then(|()| write("c.rs", "pub fn f() { crate::a::inner::g() }\n"));
    assert!(made.is_ok(), "{made:?}");
    let graph = module_graph(&src);
    let _ = std::fs::remove_dir_all(&src);
    let graph = graph.unwrap_or_default();
    let module = |m: &str| m.split("::").map(str::to_owned).collect::<Vec<_>>();
    assert!(graph[&module("a")].contains(&module("b")), "{graph:?}");
    assert!(graph[&module("b")].contains(&module("c")), "{graph:?}");
    assert!(!graph[&module("b")].contains(&module("a")), "{graph:?}");
    let cycle = a_cycle(&graph).unwrap_or_default();
    assert_eq!(cycle.first(), cycle.last(), "{cycle:?}");
    assert!(
        cycle.iter().any(|m| m == "c") && cycle.iter().any(|m| m == "a::inner"),
        "{cycle:?}"
    );
    // Without c's call back into a::inner, there is none.
    let mut acyclic = graph.clone();
    if let Some(c) = acyclic.get_mut(&module("c")) {
        c.clear();
    }
    assert_eq!(a_cycle(&acyclic), None);
}
