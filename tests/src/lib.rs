//! Helpers shared by the end-to-end tests in `tests/tests/`: the
//! repository root, the two binaries (built once per test process), bounded
//! waits on child processes and the controller's JSON summary line.

pub mod faults;
pub mod hostile;
pub mod peer;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Build the two binaries once (same profile and target dir as this test).
pub fn bins() -> &'static (PathBuf, PathBuf) {
    static BINS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINS.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap().to_path_buf(); // target/<profile>
        let release = dir.file_name().map(|n| n == "release").unwrap_or(false);
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root()).args([
            "build",
            "-q",
            "-p",
            "dream-mpc",
            "-p",
            "dream-mpc-sim",
            "--bins",
        ]);
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build");
        assert!(st.success(), "building the binaries failed");
        (dir.join("dream-mpc"), dir.join("dream-mpc-sim"))
    })
}

pub type Exit = (std::process::ExitStatus, String, String, Duration);

/// Wait for exit (bounded); returns (exit status, stdout, stderr, time).
pub fn wait_bounded(mut child: Child, limit: Duration) -> Exit {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let took = t0.elapsed();
            let (mut out, mut err) = (String::new(), String::new());
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (st, out, err, took);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A field of the last line of `text`, parsed as JSON.
pub fn json_field(text: &str, key: &str) -> f64 {
    let line = text.trim().lines().last().unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no '{key}' in {line}"))
}
