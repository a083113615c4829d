//! `scripts/hil.sh` before it builds anything: the parameter file it picks
//! for a task, and a MuJoCo task on a checkout without the MuJoCo wheel,
//! which (with `DREAM_MPC_NO_INSTALL=1`) stops with exit status 3 and the
//! one command that installs it. The script runs for real, from a copy of
//! the checkout's `scripts/` in a scratch folder (the script finds the
//! project from its own path), so the wheel this machine may have does not
//! hide the path a fresh clone takes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// A scratch project holding `scripts/hil.sh` and `scripts/env.sh` and the
/// parameter files named in `configs` (copies of config/cartpole.yaml).
fn scratch(name: &str, configs: &[&str]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dmpc-hil-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("scripts")).expect("mkdir");
    std::fs::create_dir_all(d.join("config")).expect("mkdir");
    for f in ["hil.sh", "env.sh"] {
        std::fs::copy(repo().join("scripts").join(f), d.join("scripts").join(f)).expect("copy");
    }
    for c in configs {
        std::fs::copy(
            repo().join("config/cartpole.yaml"),
            d.join("config").join(c),
        )
        .expect("copy config");
    }
    d
}

fn hil(dir: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(dir.join("scripts/hil.sh"))
        .args(args)
        .env("DREAM_MPC_NO_INSTALL", "1")
        // Without cargo on the PATH a script that got past its checks
        // fails to build (status 127), never starts a real build here.
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run bash")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_mujoco_task_without_the_wheel_stops_with_the_install_command() {
    let d = scratch("nowheel", &["walker-run.yaml"]);
    let o = hil(&d, &["--task", "mujoco/walker-run", "--episodes", "1"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(t.contains("needs the MuJoCo wheel"), "{t}");
    assert!(
        t.contains("DREAM_MPC_MUJOCO=1 bash scripts/setup.sh"),
        "the one command: {t}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_parameter_file_follows_the_task_or_its_absence_is_named() {
    // No config/hopper-hop.yaml nor config/hopper.yaml: exit 2, both named.
    let d = scratch("noconfig", &[]);
    let o = hil(&d, &["--task", "mujoco/hopper-hop"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("config/hopper-hop.yaml") && t.contains("config/hopper.yaml"),
        "{t}"
    );
    // The family file (config/<before the first dash>.yaml) is taken: the
    // script goes on to the MuJoCo check, which stops it with status 3.
    std::fs::copy(
        repo().join("config/cartpole.yaml"),
        d.join("config/hopper.yaml"),
    )
    .expect("copy");
    let o = hil(&d, &["--task", "mujoco/hopper-hop"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // An explicit --config that does not exist is named.
    let o = hil(
        &d,
        &[
            "--task",
            "mujoco/hopper-hop",
            "--config",
            "config/nope.yaml",
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("config/nope.yaml"), "{t}");
    // An unknown argument is refused.
    let o = hil(&d, &["--tsak", "x"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}
