//! The manifest parser and its checks: any bytes give an error or a
//! manifest that survives a write/read round trip; never a panic or a hang.
#![no_main]

use dream_mpc::bundle::files::parse_manifest;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/manifest.json");
    match parse_manifest(path, data) {
        Ok(m) => {
            let text = serde_json::to_vec(&m).expect("a parsed manifest serializes");
            let again = parse_manifest(path, &text).expect("a written manifest parses");
            assert_eq!(again, m, "manifest round trip");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
