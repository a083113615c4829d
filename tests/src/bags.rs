//! Reading our bags with the Python tools (`tests/interop/bag_dump.py`:
//! `mcap` + `mcap-ros2-support`, and `rosbags`), for the bag tests.

use crate::{python_with, root, stdout_of};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python that has the bag readers: `DREAM_MPC_BAGS_PYTHON`, else
/// `.venv/bin/python3`. `None` (with the reason printed) when it lacks
/// them, unless `DREAM_MPC_BAGS=1` says they were installed (scripts/test.sh
/// sets it): then a missing package fails the test.
pub fn python() -> Option<PathBuf> {
    let py = match python_with("DREAM_MPC_BAGS_PYTHON", "mcap, mcap_ros2, rosbags") {
        Ok(py) => return Some(py),
        Err(py) => py,
    };
    let why = format!(
        "{} cannot import mcap, mcap_ros2 and rosbags: run `DREAM_MPC_BAGS=1 bash scripts/setup.sh` \
         (scripts/test.sh does) or set DREAM_MPC_BAGS_PYTHON",
        py.display()
    );
    assert!(
        std::env::var("DREAM_MPC_BAGS").as_deref() != Ok("1"),
        "{why}"
    );
    eprintln!("SKIPPED: {why}");
    None
}

/// The bag folder as both Python readers see it (see bag_dump.py).
pub fn dump(py: &Path, bag: &Path) -> Value {
    let mut cmd = Command::new(py);
    cmd.arg(root().join("tests/interop/bag_dump.py")).arg(bag);
    let out = stdout_of(&mut cmd, &format!("bag_dump.py {}", bag.display()));
    serde_json::from_slice(&out).expect("bag_dump.py prints JSON")
}

/// A fresh scratch folder path under the target dir (removed first).
pub fn scratch(name: &str) -> PathBuf {
    let d = root()
        .join("target")
        .join("bags-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.parent().unwrap()).unwrap();
    d
}

/// The f64 vector of a decoded Float64MultiArray value.
pub fn data(v: &Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .expect("an array value")
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}
