//! The repository as a ROS 2 workspace, tested without ROS:
//!
//! 1. `colcon build` (colcon-core + colcon-ros + colcon-cargo +
//!    colcon-ros-cargo, and cargo-ament-build; installed by
//!    `DREAM_MPC_COLCON=1 bash scripts/setup.sh`, which scripts/test.sh runs)
//!    of a scratch workspace whose `src/` links to this repository. Its
//!    `build/<package>` folders link to this test's cargo target folder, so
//!    the binaries the suite already built are reused, not built twice.
//! 2. The install layout: `lib/<package>/<executable>`,
//!    `share/dream-mpc/{launch,config,models}`, package.xml, and the ament
//!    index, read back with the real `ament_index_python` after sourcing
//!    `install/setup.sh`.
//! 3. The launch file `hil.launch.py` (installed copy) expanded into the
//!    command lines launch_ros would run (tests/colcon/launch_cmds.py, under
//!    stand-in `launch`/`launch_ros` modules), and those exact commands run
//!    from `install/` in a folder without the repository's models: the
//!    controller, in namespace `/robot1`, finds its config's relative
//!    `bundle: models/pendulum-swingup` in the package share folder, and the
//!    two nodes close the loop over DDS for one episode.
//!
//! Not verified here: `ros2 run`/`ros2 launch` themselves (ROS 2 is not
//! installable on these machines), the real launch_ros's process handling,
//! and message-type compatibility with ROS-generated code beyond what the
//! Cyclone DDS interop test covers.

use dream_mpc_tests::{bins, json_field, root, wait_bounded};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the colcon tools are: `$DREAM_MPC_COLCON_VENV`, else `.venv`.
fn tools() -> (PathBuf, PathBuf) {
    let venv = std::env::var_os("DREAM_MPC_COLCON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"));
    let colcon = venv.join("bin/colcon");
    let ament_build = venv.join("cargo-tools/bin/cargo-ament-build");
    for p in [&colcon, &ament_build] {
        assert!(
            p.is_file(),
            "{} is missing: run `DREAM_MPC_COLCON=1 bash scripts/setup.sh` (scripts/test.sh does)",
            p.display()
        );
    }
    (colcon, ament_build.parent().unwrap().to_path_buf())
}

/// A Python that imports ament_index_python (Debian's python3-ament-index
/// installs it for the system Python).
fn ament_python() -> String {
    for py in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(py)
            .args(["-c", "import ament_index_python"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return py.to_string();
        }
    }
    panic!("no Python with ament_index_python: run `DREAM_MPC_COLCON=1 bash scripts/setup.sh` (installs python3-ament-index)");
}

fn link(target: &Path, at: &Path) {
    let _ = std::fs::remove_file(at);
    std::os::unix::fs::symlink(target, at).unwrap();
}

/// The ROS domain of this file's one test (ros_names uses 220..=231).
fn domain() -> u16 {
    232
}

#[test]
fn colcon_build_installs_packages_that_run_as_launched() {
    let t_all = Instant::now();
    let (colcon, tools_bin) = tools();
    let py = ament_python();
    let target_debug = bins().0.parent().unwrap().to_path_buf();
    let target = target_debug.parent().unwrap().to_path_buf();
    let profile = target_debug
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    // colcon must not crawl the target folder (it holds the workspace)
    std::fs::write(target.join("COLCON_IGNORE"), "").unwrap();
    let ws = target.join("colcon-ws");
    for d in ["install", "log", "src"] {
        let _ = std::fs::remove_dir_all(ws.join(d));
    }
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::create_dir_all(ws.join("build")).unwrap();
    link(&root(), &ws.join("src/dream-mpc"));
    for pkg in ["dream-mpc", "dream-mpc-sim"] {
        link(&target, &ws.join("build").join(pkg));
    }
    let path = format!(
        "{}:{}:{}",
        tools_bin.display(),
        colcon.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // 1. colcon build
    let t0 = Instant::now();
    let mut build = Command::new(&colcon);
    build
        .current_dir(&ws)
        .env("PATH", &path)
        .args(["build", "--executor", "sequential"]);
    if profile == "release" {
        build.args(["--cargo-args", "--release"]);
    }
    let out = build.output().expect("run colcon");
    let build_s = t0.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "colcon build failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // 2. layout and ament index
    let inst = ws.join("install");
    let share = inst.join("dream-mpc/share/dream-mpc");
    for p in [
        inst.join("dream-mpc/lib/dream-mpc/dream-mpc"),
        inst.join("dream-mpc-sim/lib/dream-mpc-sim/dream-mpc-sim"),
        share.join("package.xml"),
        share.join("launch/controller.launch.py"),
        share.join("launch/hil.launch.py"),
        share.join("config/controller.yaml"),
        share.join("config/cartpole.yaml"),
        share.join("models/pendulum-swingup/manifest.json"),
        inst.join("dream-mpc/share/ament_index/resource_index/packages/dream-mpc"),
        inst.join("dream-mpc-sim/share/ament_index/resource_index/packages/dream-mpc-sim"),
        inst.join("dream-mpc-sim/share/dream-mpc-sim/package.xml"),
    ] {
        assert!(p.exists(), "not installed: {}", p.display());
    }
    let setup = format!(". {}/setup.sh", inst.display());
    let index = Command::new("bash")
        .current_dir(&ws)
        .args([
            "-c",
            &format!(
                "{setup} && {py} -c '\
import json\n\
from ament_index_python.packages import get_package_share_directory as s, get_package_prefix as p\n\
from ament_index_python import get_resources\n\
print(json.dumps({{\"share\": s(\"dream-mpc\"), \"sim\": p(\"dream-mpc-sim\"), \"pkgs\": sorted(get_resources(\"packages\"))}}))'\
 && echo $AMENT_PREFIX_PATH"
            ),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&index.stdout).to_string();
    assert!(
        index.status.success(),
        "ament index: {text}{}",
        String::from_utf8_lossy(&index.stderr)
    );
    let mut lines = text.lines();
    let found: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let ament_prefix_path = lines.next().unwrap_or("").to_string();
    assert_eq!(found["share"].as_str().unwrap(), share.to_str().unwrap());
    assert_eq!(
        found["sim"].as_str().unwrap(),
        inst.join("dream-mpc-sim").to_str().unwrap()
    );
    let pkgs: Vec<&str> = found["pkgs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        pkgs.contains(&"dream-mpc") && pkgs.contains(&"dream-mpc-sim"),
        "{pkgs:?}"
    );

    // 3. the launch file's commands, run from install/ over DDS
    let launch = |file: &str, args: &[&str]| -> serde_json::Value {
        let out = Command::new("bash")
            .current_dir(&ws)
            .args([
                "-c",
                &format!(
                    "{setup} && {py} {} {} {}",
                    root().join("tests/colcon/launch_cmds.py").display(),
                    share.join("launch").join(file).display(),
                    args.join(" ")
                ),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let alone = launch("controller.launch.py", &["namespace:=robot2"]);
    let cmd = alone["nodes"][0]["cmd"].to_string();
    for want in [
        "__ns:=/robot2",
        "__node:=dream_mpc",
        "--params-file",
        "observation:=observation",
    ] {
        assert!(
            cmd.contains(want),
            "controller.launch.py: {cmd} lacks {want}"
        );
    }
    let hil = launch("hil.launch.py", &["namespace:=robot1", "speed:=2.0"]);
    let cmds: Vec<Vec<String>> = hil["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            n["cmd"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert_eq!(cmds.len(), 2, "{hil}");
    assert!(
        cmds[0][0].starts_with(inst.to_str().unwrap()),
        "{:?}",
        cmds[0]
    );
    // a folder without models/: the bundle must come from the share folder
    let run_dir = ws.join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let spawn = |cmd: &[String]| {
        Command::new(&cmd[0])
            .args(&cmd[1..])
            .current_dir(&run_dir)
            .env("AMENT_PREFIX_PATH", &ament_prefix_path)
            .env("ROS_DOMAIN_ID", domain().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // a bundle found nowhere: the error names every path tried
    let bad = run_dir.join("missing_bundle.yaml");
    std::fs::write(
        &bad,
        "/**:\n  ros__parameters: {bundle: models/none, observation: {size: 3}, action: {size: 1}}\n",
    )
    .unwrap();
    let miss = Command::new(&cmds[0][0])
        .args(["--ros-args", "--params-file", bad.to_str().unwrap()])
        .current_dir(&run_dir)
        .env("AMENT_PREFIX_PATH", &ament_prefix_path)
        .output()
        .unwrap();
    let miss_err = String::from_utf8_lossy(&miss.stderr);
    assert_eq!(miss.status.code(), Some(2), "{miss_err}");
    assert!(
        miss_err.contains("'models/none' not found")
            && miss_err.contains(share.join("models/none").to_str().unwrap()),
        "{miss_err}"
    );

    let t1 = Instant::now();
    let ctl = spawn(&cmds[0]);
    let robot = spawn(&cmds[1]);
    let (st, out, err, _) = wait_bounded(robot, Duration::from_secs(60));
    let _ = Command::new("kill")
        .args(["-INT", &ctl.id().to_string()])
        .status();
    let (cst, _, cerr, _) = wait_bounded(ctl, Duration::from_secs(10));
    let run_s = t1.elapsed().as_secs_f64();
    assert!(st.success(), "robot: {err}\ncontroller: {cerr}");
    assert!(cst.success(), "controller: {cerr}");
    assert!(
        cerr.contains("share/dream-mpc/models/pendulum-swingup"),
        "bundle not taken from the share folder: {cerr}"
    );
    assert!(cerr.contains("node /robot1/dream_mpc"), "{cerr}");
    assert_eq!(json_field(&out, "steps"), 1000.0);
    assert!(json_field(&out, "actions_received") >= 100.0, "{out}");
    let summary = cerr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("dream-mpc run: stopped: "))
        .unwrap_or_else(|| panic!("no summary: {cerr}"));
    assert!(json_field(summary, "planned") >= 100.0, "{summary}");
    assert_eq!(json_field(summary, "wrong_size"), 0.0, "{summary}");
    eprintln!(
        "colcon build {build_s:.1} s, HIL episode from install/ {run_s:.1} s, whole test {:.1} s; robot: {}",
        t_all.elapsed().as_secs_f64(),
        out.trim()
    );
}
