//! No import circle among the sim's source files: each file's
//! `crate::` and `super::` paths (comments excluded) point one way, so a
//! module can be read, tested and moved without the ones that use it.

#[test]
fn no_import_circles() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    dream_mpc_testkit::imports::assert_no_circles(&src, 10, 15);
}
