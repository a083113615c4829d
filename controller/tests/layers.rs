//! The controller's modules form a one-way stack; this test reads the
//! sources and fails on any `crate::` path (outside comments) that points
//! up or sideways:
//!
//! ```text
//! rng  <-  bundle (format)  <-  kernels  <-  load  <-  planner  <-  agent
//!      <-  control (the tick, no ROS)  <-  msgs  <-  bag  <-  ros (transport)
//! ```
//!
//! Each module may use only the modules left of it (and `rng`, which uses
//! nothing). The kernels may use only the bundle's format types
//! (`bundle::manifest`).

use std::path::{Path, PathBuf};

/// Modules in stack order, bottom first.
const STACK: [&str; 10] = [
    "rng", "bundle", "kernels", "load", "planner", "agent", "control", "msgs", "bag", "ros",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to (`None` for lib.rs and
/// the binaries, which sit above everything).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    STACK.contains(&name.as_str()).then_some(name)
}

/// Every `crate::<module>` a file names outside comments, with its line.
fn crate_paths(text: &str) -> Vec<(usize, String, String)> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(k) = rest.find("crate::") {
            rest = &rest[k + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push((i + 1, name, line.trim().to_string()));
        }
    }
    out
}

#[test]
fn no_module_imports_upward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    sources(&src, &mut files);
    let rank = |m: &str| STACK.iter().position(|s| *s == m);
    let mut bad = vec![];
    let mut checked = 0;
    for f in &files {
        let Some(module) = module_of(&src, f) else {
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (line, used, code) in crate_paths(&text) {
            checked += 1;
            let (Some(me), Some(it)) = (rank(&module), rank(&used)) else {
                continue;
            };
            let kernels_beyond_format = module == "kernels"
                && used == "bundle"
                && !code.contains("crate::bundle::manifest");
            if (it > me || kernels_beyond_format) && used != module {
                bad.push(format!(
                    "{}:{line}: {module} uses {used}: {code}",
                    f.display()
                ));
            }
        }
    }
    assert!(
        checked > 20,
        "found only {checked} crate paths: is the scan broken?"
    );
    assert!(
        bad.is_empty(),
        "imports against the stack:\n{}",
        bad.join("\n")
    );
}

/// Every module of the library is in the stack (a new module must be
/// placed in it), and the control core names no ROS type.
#[test]
fn every_module_is_in_the_stack_and_the_core_knows_no_ros() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_str().unwrap().to_string();
        if name == "lib" || name == "bin" {
            continue;
        }
        assert!(
            STACK.contains(&name.as_str()),
            "module `{name}` is not in the layer stack of tests/layers.rs"
        );
    }
    let mut files = vec![];
    sources(&src.join("control"), &mut files);
    assert!(files.len() >= 4, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            assert!(
                !code.contains("ros2_client") && !code.contains("rustdds"),
                "{}:{}: the control core uses ROS: {line}",
                f.display(),
                i + 1
            );
        }
    }
}

/// The scan itself catches an upward import (so the test above can fail).
#[test]
fn the_scan_sees_an_upward_import() {
    let found = crate_paths("use crate::kernels::Program; // crate::ros in a comment");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, "kernels");
}

/// The robot library holds no test fixtures: no `testing` module and no
/// native LQ model (they live in the `dream-mpc-testkit` dev-dependency).
#[test]
fn library_has_no_test_fixtures() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    sources(&src, &mut files);
    for f in &files {
        let name = f.file_stem().unwrap().to_str().unwrap();
        assert!(
            !["testing", "native"].contains(&name),
            "{} is a test fixture in the robot library",
            f.display()
        );
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains("LinearQuadratic") && !text.contains("TdmpcModel"),
            "{} mentions a test fixture",
            f.display()
        );
    }
}
