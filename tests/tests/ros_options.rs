//! The gradient planners' named options reach the node as
//! parameters. `dream-mpc run` on the shipped pendulum bundle with a preset
//! and single options set on the command line prints where every setting
//! came from and plans with them (real DDS on localhost, no peer needed:
//! the node runs its fixed duration on the safe action until observations
//! arrive).

use dream_mpc_tests::{bins, json_field, root};
use std::process::Command;

fn run(domain: u16, params: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "run",
        "--json",
        "--duration-s",
        "0.3",
        "--params-file",
        "config/controller.yaml",
        "--ros-args",
    ];
    for p in params {
        args.extend(["-p", p]);
    }
    let out = Command::new(&bins().0)
        .current_dir(root())
        .env("ROS_DOMAIN_ID", domain.to_string())
        .args(&args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn domain() -> u16 {
    10 + (std::process::id() % 10) as u16 * 6
}

/// The planner budget keys are optional: absent ones take the bundle's
/// planner defaults, and `dream-mpc run` prints the settings in effect
/// with where each came from.
#[test]
fn run_prints_the_effective_planner_settings() {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("models/pendulum-swingup/manifest.json")).unwrap(),
    )
    .unwrap();
    let bundle = &manifest["planner"];
    let (ok, _, err) = run(domain() + 4, &["budget.horizon:=5"]);
    assert!(ok, "{err}");
    for (key, want) in [
        (
            "candidates",
            format!("candidates {} (bundle)", bundle["candidates"]),
        ),
        (
            "iterations",
            format!("iterations {} (bundle)", bundle["iterations"]),
        ),
        ("beta", format!("beta {} (bundle)", bundle["beta"])),
        ("horizon", "horizon 5 (parameter)".to_string()),
    ] {
        assert!(err.contains(&want), "{key}: expected '{want}' in: {err}");
    }
}

#[test]
fn preset_and_options_are_parameters_and_reported_with_their_source() {
    let d = domain();
    let (ok, out, err) = run(
        d,
        &[
            "options.preset:=sketch",
            "options.rho:=0.4",
            "options.choice:=last_eval",
        ],
    );
    assert!(ok, "{err}");
    assert!(json_field(&out, "ticks") > 0.0, "{out}");
    for want in [
        "candidates 8 (preset sketch)",
        "iterations 4 (preset sketch)",
        "optimizer adam (preset sketch)",
        "reuse candidate (preset sketch)",
        "rho 0.4 (parameter)",
        "choice last_eval (parameter)",
        "uncertainty_at current_state (preset sketch)",
    ] {
        assert!(err.contains(want), "expected '{want}' in: {err}");
    }
    // Without options: every option comes from the bundle.
    let (ok, _, err) = run(d + 1, &[]);
    assert!(ok, "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("options:"))
        .unwrap_or_else(|| panic!("no options line in: {err}"));
    assert!(
        !line.contains("(parameter)") && line.contains("choice"),
        "{line}"
    );
    // A bad value is refused before start, naming the key.
    let (ok, _, err) = run(d, &["options.uncertainty:=variance"]);
    assert!(!ok);
    assert!(
        err.contains("options.uncertainty") && err.contains("mean_std"),
        "{err}"
    );
}
