//! No import circle among the controller's source files: each file's
//! `crate::` and `super::` paths (comments excluded) point one way, so a
//! module can be read, tested and moved without the ones that use it.

use std::path::Path;

#[test]
fn no_import_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = dream_mpc_testkit::imports::graph(&src);
    let edges: usize = g.values().map(|e| e.len()).sum();
    assert!(
        g.len() > 10 && edges > 15,
        "{} files, {edges} edges: is the scan broken?",
        g.len()
    );
    let c = dream_mpc_testkit::imports::circles(&g);
    assert!(
        c.is_empty(),
        "import circles:\n{}",
        dream_mpc_testkit::imports::describe(&g, &c)
    );
}
