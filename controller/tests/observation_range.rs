//! The manifest's optional `observation.range`: written
//! by the one bundle writer and read back equal; a range of the wrong
//! length, with low > high or an infinite value is refused naming it; a
//! manifest without it (older bundles) still loads.

use dream_mpc::bundle::files::parse_manifest;
use dream_mpc::bundle::manifest::ObservationRange;
use dream_mpc::bundle::{read_manifest, write_bundle};
use dream_mpc_testkit::bundles::{TdmpcModel, TdmpcSpec};
use std::path::Path;

fn model() -> TdmpcModel {
    TdmpcModel::random(&TdmpcSpec::tiny(3, 1, 9))
}

#[test]
fn range_round_trips_through_the_bundle_writer() {
    let dir = std::env::temp_dir().join(format!("dmpc-range-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let m = model();
    let mut manifest = m.manifest();
    let range = ObservationRange {
        low: vec![-1.0, -0.5, -8.25],
        high: vec![1.0, 0.75, 8.0],
    };
    manifest.observation.range = Some(range.clone());
    let written = write_bundle(&dir, manifest, &m.modules(), None).unwrap();
    let read = read_manifest(&dir).unwrap();
    assert_eq!(read, written);
    assert_eq!(read.observation.range, Some(range));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn manifest_without_range_still_parses() {
    // A committed fixture (the pendulum manifest as shipped before bundles
    // recorded a range), not the shipped model, which a retrain replaces
    // with one that records its range.
    let text = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz_regressions/manifest/seed-pendulum.json"),
    )
    .unwrap();
    let m = parse_manifest(Path::new("manifest.json"), &text).unwrap();
    assert_eq!(m.observation.range, None);
    // and writes no `range` key back
    let out = serde_json::to_string(&m).unwrap();
    assert!(!out.contains("\"range\""), "{out}");
}

#[test]
fn bad_ranges_are_refused_naming_the_element() {
    let m = model();
    let base = serde_json::to_value(m.manifest()).unwrap();
    let cases: [(serde_json::Value, &str); 3] = [
        (
            serde_json::json!({"low": [0.0, 0.0], "high": [1.0, 1.0]}),
            "range.low/high have 2/2",
        ),
        (
            serde_json::json!({"low": [0.0, 2.0, 0.0], "high": [1.0, 1.0, 1.0]}),
            "element 1",
        ),
        (
            serde_json::json!({"low": [0.0, 0.0, -1e39], "high": [1.0, 1.0, 1.0]}),
            "element 2",
        ),
    ];
    for (range, says) in cases {
        let mut v = base.clone();
        v["observation"]["range"] = range;
        let e = parse_manifest(Path::new("manifest.json"), &serde_json::to_vec(&v).unwrap())
            .expect_err("a bad range must be refused")
            .to_string();
        // 1e39 reads as f32 inf (refused as not finite, naming the
        // element), or, with serde_json's `float_roundtrip` that the
        // workspace's test build unifies in, is refused as out of range.
        let overflow = says == "element 2" && e.contains("number out of range");
        assert!(e.contains(says) || overflow, "{e}");
    }
}
