//! The controller must build on a robot computer with nothing but the Rust
//! toolchain: its dependency tree may never contain libtorch (`tch`,
//! `torch-sys`). The same query on the trainer must find them, which proves
//! the check can fail.

use dream_mpc_tests::stdout_of;
use std::process::Command;

fn tree(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "tree",
        "--offline",
        "-p",
        package,
        "-e",
        "normal,build",
        "--prefix",
        "none",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = stdout_of(&mut cmd, &format!("cargo tree -p {package}"));
    String::from_utf8(out).expect("utf-8")
}

/// The distinct libtorch crates (`tch`, `torch-sys`) in a `cargo tree`
/// listing (a crate reached by two paths is listed once per path).
fn has_libtorch(tree: &str) -> Vec<&str> {
    let mut found: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("tch ") || l.starts_with("torch-sys "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

#[test]
fn controller_is_free_of_libtorch() {
    let t = tree("dream-mpc");
    assert!(t.contains("tract-onnx"), "unexpected tree:\n{t}");
    let found = has_libtorch(&t);
    assert!(
        found.is_empty(),
        "controller depends on libtorch: {found:?}"
    );
}

#[test]
fn sim_is_free_of_libtorch() {
    let t = tree("dream-mpc-sim");
    let found = has_libtorch(&t);
    assert!(found.is_empty(), "sim depends on libtorch: {found:?}");
}

#[test]
fn the_check_finds_libtorch_in_the_trainer() {
    let t = tree("dream-mpc-trainer");
    assert_eq!(has_libtorch(&t).len(), 2, "tree:\n{t}");
}
