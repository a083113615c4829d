//! The import graph of a crate's sources, file by file, and its circles.
//!
//! Each source file is a node named by its module path (`ros::node` for
//! `src/ros/node.rs`, `ros` for `src/ros/mod.rs`; `lib.rs`, `main.rs` and
//! `bin/` sit above everything and are left out). An edge goes from a file
//! to the deepest module file a path in its code names (comments, doc
//! links included, are not code): a `crate::`, `$crate::`, `super::` or
//! `self::` path, each item of a group after one (`super::{a::B, C}` names
//! `a` and the parent), and a path through a child module the file
//! declares (`mod a; pub use a::B;` in `x/mod.rs` names `x::a`). Inside an
//! inline module (`mod tests { use super::*; }`) `super::` is the file
//! itself. A circle is a strongly connected set of two or more files: a
//! `mod.rs` that re-exports a child while the child takes items from the
//! `mod.rs` is one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path -> the module paths its code names.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of `file` under `src` (`None` for the crate root and
/// binaries).
fn module_path(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    let last = parts.pop()?;
    let stem = last.trim_end_matches(".rs").to_string();
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem);
    }
    Some(parts)
}

/// The identifiers of a path starting right after `::` at `rest`.
fn segments(rest: &str) -> Vec<String> {
    let mut out = vec![];
    let mut s = rest;
    loop {
        let name: String = s
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            break;
        }
        s = &s[name.len()..];
        out.push(name);
        match s.strip_prefix("::") {
            Some(r) => s = r,
            None => break,
        }
    }
    out
}

/// Where a path starts: `crate::` (`None`) or `levels` modules up from
/// the file (`Some(0)`: the file itself, for `self::` and child paths).
type Base = Option<usize>;

/// Each item of a group starting right after `{` at `rest` (up to its
/// matching `}`), as the segments before any nested group.
fn group_items(rest: &str) -> Vec<Vec<String>> {
    let mut out = vec![];
    let (mut depth, mut item_start) = (0usize, 0usize);
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                out.push(segments(rest[item_start..i].trim_start()));
                return out;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(segments(rest[item_start..i].trim_start()));
                item_start = i + 1;
            }
            _ => {}
        }
    }
    out.push(segments(rest[item_start..].trim_start()));
    out
}

/// The paths a line of code names: (where the path starts, segments after
/// the prefix). `children` are the modules the file declares (`mod a;`):
/// a path starting with one of them is relative to the file.
fn paths_in(code: &str, children: &BTreeSet<String>) -> Vec<(Base, Vec<String>)> {
    let mut out = vec![];
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let word_start = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        let prefix = if !word_start {
            None
        } else if let Some(r) = rest.strip_prefix("crate::") {
            Some((None, r))
        } else if let Some(r) = rest.strip_prefix("self::") {
            Some((Some(0), r))
        } else if rest.starts_with("super::") {
            let mut levels = 0;
            let mut r = rest;
            while let Some(x) = r.strip_prefix("super::") {
                levels += 1;
                r = x;
            }
            Some((Some(levels), r))
        } else {
            let first = segments(rest);
            match first.first() {
                Some(name) if children.contains(name) && rest[name.len()..].starts_with("::") => {
                    Some((Some(0), rest))
                }
                _ => None,
            }
        };
        match prefix {
            Some((base, r)) => {
                if let Some(group) = r.strip_prefix('{') {
                    for item in group_items(group) {
                        out.push((base, item));
                    }
                } else {
                    out.push((base, segments(r)));
                }
                i += (rest.len() - r.len()).max(1);
            }
            None => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

/// The child modules a file declares: `mod a;`, `pub mod a;`,
/// `pub(crate) mod a;` (not inline modules).
fn declared_children(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut statements: Vec<&str> = code.split(';').collect();
        statements.pop(); // what follows the last `;` is no declaration
        for st in statements {
            let st = st.trim();
            let st = st
                .strip_prefix("pub(crate) ")
                .or_else(|| st.strip_prefix("pub(super) "))
                .or_else(|| st.strip_prefix("pub "))
                .unwrap_or(st);
            if let Some(name) = st.strip_prefix("mod ") {
                out.insert(name.trim().to_string());
            }
        }
    }
    out
}

/// Whether a code line opens an inline module (`mod name {`).
fn opens_inline_mod(code: &str) -> bool {
    let t = code.trim_start();
    let t = t
        .strip_prefix("pub(crate) ")
        .or_else(|| t.strip_prefix("pub(super) "))
        .or_else(|| t.strip_prefix("pub "))
        .unwrap_or(t);
    t.strip_prefix("mod ")
        .is_some_and(|r| r.trim_end().ends_with('{'))
}

/// The import graph of the sources under `src` (see the module doc).
pub fn graph(src: &Path) -> Graph {
    let mut files = vec![];
    rust_files(src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .filter_map(|f| module_path(src, f).map(|m| (m, f.clone())))
        .collect();
    let known: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    let mut g = Graph::new();
    for (me, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        let children = declared_children(&text);
        let edges = g.entry(me.join("::")).or_default();
        let mut inline = false;
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            if opens_inline_mod(code) {
                inline = true;
            }
            for (levels, segs) in paths_in(code, &children) {
                let mut target: Vec<String> = match levels {
                    None => vec![],
                    Some(n) => {
                        // In an inline module the first `super` is the file.
                        let up = if inline { n.saturating_sub(1) } else { n };
                        if up > me.len() {
                            continue;
                        }
                        me[..me.len() - up].to_vec()
                    }
                };
                target.extend(segs);
                // The deepest module file the path names.
                while !target.is_empty() && !known.contains(&target) {
                    target.pop();
                }
                if !target.is_empty() && &target != me {
                    edges.insert(target.join("::"));
                }
            }
        }
    }
    g
}

/// The circles of `g`: its strongly connected sets of two or more modules
/// (Tarjan), each sorted, in a stable order.
pub fn circles(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut set = vec![];
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                set.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                t.out.push(set);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        next: 0,
        out: vec![],
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out.sort();
    t.out
}

/// The test each crate runs on its `src`: the scan found more than
/// `min_files` files and `min_edges` edges (so a broken scan fails), and
/// no circle (the panic lists each one with its edges).
pub fn assert_no_circles(src: &Path, min_files: usize, min_edges: usize) {
    let g = graph(src);
    let edges: usize = g.values().map(|e| e.len()).sum();
    assert!(
        g.len() > min_files && edges > min_edges,
        "{} files, {edges} edges under {}: is the scan broken?",
        g.len(),
        src.display()
    );
    let c = circles(&g);
    assert!(c.is_empty(), "import circles:\n{}", describe(&g, &c));
}

/// For a failing test: each circle with the edges inside it.
pub fn describe(g: &Graph, circles: &[Vec<String>]) -> String {
    let mut s = String::new();
    for c in circles {
        s += &format!("circle: {}\n", c.join(", "));
        for a in c {
            for b in g[a].iter().filter(|b| c.contains(b)) {
                s += &format!("  {a} -> {b}\n");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_a_line() {
        let none = BTreeSet::new();
        let p = paths_in(
            "use crate::a::b::{C, D}; let x = super::super::e::F; // crate::z",
            &none,
        );
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(p[0], (None, vec!["a".into(), "b".into()]));
        assert_eq!(p[1].0, Some(2));
        assert_eq!(p[1].1, vec!["e".to_string(), "F".to_string()]);
        assert!(paths_in("my_crate::x", &none).is_empty());
        // groups: each item names its own path
        let p = paths_in("use super::{lower::Builder, simd, Kernel};", &none);
        let segs: Vec<Vec<String>> = p.iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(
            segs,
            [vec!["lower", "Builder"], vec!["simd"], vec!["Kernel"]]
        );
        assert!(p.iter().all(|(b, _)| *b == Some(1)));
        // a declared child and self:: are relative to the file
        let kids: BTreeSet<String> = ["rollout".to_string()].into();
        let p = paths_in("use rollout::{Fill, Terms}; self::x::Y; other::Z;", &kids);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0], (Some(0), vec!["rollout".to_string()]));
        assert_eq!(p[1], (Some(0), vec!["x".to_string(), "Y".to_string()]));
        assert_eq!(
            declared_children("pub mod a;\nmod b; // c\nmod tests {\n"),
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn a_circle_through_super_and_crate_is_found() {
        let dir = std::env::temp_dir().join(format!("dmpc-imports-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ros")).unwrap();
        let w = |p: &str, s: &str| std::fs::write(dir.join(p), s).unwrap();
        w("lib.rs", "pub mod ros; pub mod rng;\n");
        w("rng.rs", "//! uses crate::ros in a comment only\n");
        w("ros/mod.rs", "pub mod node; pub mod params;\n");
        w(
            "ros/node.rs",
            "use super::params::Table;\nuse crate::rng::Rng;\n",
        );
        w(
            "ros/params.rs",
            "use crate::ros::node::Node;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        );
        let g = graph(&dir);
        assert_eq!(
            g["ros::node"].iter().collect::<Vec<_>>(),
            ["rng", "ros::params"]
        );
        assert!(g["rng"].is_empty(), "comments are not code");
        let c = circles(&g);
        assert_eq!(
            c,
            vec![vec!["ros::node".to_string(), "ros::params".to_string()]]
        );
        assert!(describe(&g, &c).contains("ros::params -> ros::node"));
        // Break it: no circle left.
        w("ros/params.rs", "pub struct Table;\n");
        assert!(circles(&graph(&dir)).is_empty());
        // A mod.rs re-exporting a child that takes an item from the mod.rs.
        w(
            "ros/mod.rs",
            "pub mod node; pub mod params;\npub use node::Node;\npub struct Names;\n",
        );
        w("ros/node.rs", "use super::{params::Table, Names};\n");
        let g = graph(&dir);
        assert_eq!(
            circles(&g),
            vec![vec!["ros".to_string(), "ros::node".to_string()]],
            "{g:?}"
        );
        // The item in a file of its own: no circle.
        w(
            "ros/mod.rs",
            "pub mod names; pub mod node; pub mod params;\npub use node::Node;\n",
        );
        w("ros/names.rs", "pub struct Names;\n");
        w("ros/node.rs", "use super::{names::Names, params::Table};\n");
        assert!(circles(&graph(&dir)).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
