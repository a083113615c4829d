//! Helpers shared by the end-to-end tests in `tests/tests/`: the
//! repository root, the two binaries (built once per test process), bounded
//! waits on child processes and the controller's JSON summary line.

pub mod bags;
pub mod faults;
pub mod hostile;
pub mod peer;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Build the two binaries once (same profile and target dir as this test
/// or benchmark: `target/debug`, `target/release` or a named profile).
pub fn bins() -> &'static (PathBuf, PathBuf) {
    static BINS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINS.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap().to_path_buf(); // target/<profile>
        let profile = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
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
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            p => {
                cmd.args(["--profile", p]);
            }
        }
        let st = cmd.status().expect("run cargo build");
        assert!(st.success(), "building the binaries failed");
        (dir.join("dream-mpc"), dir.join("dream-mpc-sim"))
    })
}

/// Node arguments for a `sensor_msgs/JointState` observation of the
/// test robot's one joint, `slider`: its position then its velocity.
pub const JOINT_STATE_SLIDER: [&str; 6] = [
    "-p",
    "observation.type:=JointState",
    "-p",
    "observation.joints:=[slider]",
    "-p",
    "observation.fields:=[position, velocity]",
];

/// Start `dream-mpc run --json` on `domain` with the parameter file
/// `config` (relative to the repository root), safe action 0.25 and the
/// `--ros-args` in `extra`; stdout and stderr piped.
pub fn spawn_controller(domain: u16, config: &str, extra: &[&str]) -> Child {
    spawn_controller_with(&bins().0, domain, config, extra)
}

/// [`spawn_controller`] with another controller binary `bin`.
pub fn spawn_controller_with(bin: &Path, domain: u16, config: &str, extra: &[&str]) -> Child {
    let mut args = vec!["run", "--json", "--params-file", config];
    args.extend(["--ros-args", "-p", "action.safe:=[0.25]"]);
    args.extend(extra);
    spawn_on(bin, domain, &args)
}

/// Start `dream-mpc-sim serve --task <task> --seed <seed> --max-steps
/// <steps> <extra>` on `domain`.
pub fn spawn_sim(domain: u16, task: &str, seed: u64, steps: usize, extra: &[&str]) -> Child {
    let (seed, steps) = (seed.to_string(), steps.to_string());
    let mut args = vec![
        "serve",
        "--task",
        task,
        "--seed",
        &seed,
        "--max-steps",
        &steps,
    ];
    args.extend(extra);
    spawn_on(&bins().1, domain, &args)
}

/// Start `bin args` from the repository root on ROS domain `domain`, with
/// stdout and stderr piped.
pub fn spawn_on<S: AsRef<std::ffi::OsStr>>(bin: &Path, domain: u16, args: &[S]) -> Child {
    Command::new(bin)
        .current_dir(root())
        .env("ROS_DOMAIN_ID", domain.to_string())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()))
}

/// Read what an exited child wrote to its piped stdout and stderr.
pub fn read_output(child: &mut Child) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut out).unwrap();
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).unwrap();
    }
    (out, err)
}

pub type Exit = (std::process::ExitStatus, String, String, Duration);

/// Wait for exit (bounded); returns (exit status, stdout, stderr, time).
pub fn wait_bounded(mut child: Child, limit: Duration) -> Exit {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let took = t0.elapsed();
            let (out, err) = read_output(&mut child);
            return (st, out, err, took);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The Python an interop test runs: `$env_var` when set, else the
/// project's `.venv/bin/python3`. `Ok` when it can `import {modules}`
/// (Python's comma-separated list), else `Err` with the path, for the
/// caller to skip or fail naming its setup step.
pub fn python_with(env_var: &str, modules: &str) -> Result<PathBuf, PathBuf> {
    let py = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python3"));
    let ok = Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(py)
    } else {
        Err(py)
    }
}

/// Run `cmd` to its end and return its stdout; panics naming `what` (and
/// with the child's stderr) when it cannot start or exits unsuccessfully.
pub fn stdout_of(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
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

/// A benchmark setting from the environment variable `name`; `default`
/// when it is unset or does not parse.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The CPU's model name from /proc/cpuinfo (empty if unreadable), for
/// naming the machine next to a benchmark's figures.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}
