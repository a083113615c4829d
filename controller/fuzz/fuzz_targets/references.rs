//! The references reader and checker: any bytes give an error or a report
//! on a fixed tiny bundle; never a panic, a hang or an unbounded allocation.
#![no_main]

use dream_mpc::bundle::files::parse_references;
use dream_mpc::load::Bundle;
use dream_mpc_testkit::bundles::write_random_tdmpc_bundle;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// A tiny bundle (obs 3, action 1, latent 8, hidden 8, 2 Q heads, 3 bins),
/// written once per process.
fn bundle() -> &'static Bundle {
    static B: OnceLock<Bundle> = OnceLock::new();
    B.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dream-mpc-fuzz-refs-{}", std::process::id()));
        write_random_tdmpc_bundle(&dir, 3, 1, 8, 8, 2, 3).expect("write the tiny bundle");
        let b = Bundle::load(&dir).expect("load the tiny bundle");
        let _ = std::fs::remove_dir_all(&dir);
        b
    })
}

fuzz_target!(|data: &[u8]| {
    let b = bundle();
    if let Ok(r) = parse_references("references.json", data) {
        if let Ok(report) = b.check_references(&r) {
            let _ = report.passed();
        }
    }
});
