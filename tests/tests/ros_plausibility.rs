//! Plausibility over real DDS on localhost: `dream-mpc
//! run` on the shipped pendulum bundle with an `observation.range` added
//! to its manifest plans on observations inside the range, and answers a
//! finite but implausible one ([1e30, -1e30, 1e30]) with the safe action,
//! counted in /diagnostics and the run summary. Without the range (the
//! shipped, older manifest) the node says at start that the check is off
//! and plans on the same observation; under `plausibility.action: warn` it
//! counts and plans on. Domains 225..=227.

use dream_mpc::msgs::{DiagnosticArray, Float64MultiArray};
use dream_mpc_tests::peer::Peer;
use dream_mpc_tests::{bins, json_field, root, wait_bounded};
use ros2_client::{Publisher, Subscription};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Safe action the test configures (the planner's outputs differ).
const SAFE: f64 = 0.25;
const PLAUSIBLE: [f64; 3] = [1.0, 0.0, 0.0];
const IMPLAUSIBLE: [f64; 3] = [1e30, -1e30, 1e30];

/// The shipped pendulum bundle copied to a temporary folder, with
/// `observation.range` set to [-1.5, 1.5] per element when `range`, and
/// removed otherwise: the fixture is a bundle without a range whatever the
/// shipped model records (a retrained one records its range).
fn bundle(tag: &str, range: bool) -> PathBuf {
    let src = root().join("models/pendulum-swingup");
    let dir = std::env::temp_dir().join(format!("dmpc-plaus-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let mp = dir.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
    let obs = v["observation"].as_object_mut().unwrap();
    if range {
        obs.insert(
            "range".into(),
            serde_json::json!({ "low": [-1.5, -1.5, -1.5], "high": [1.5, 1.5, 1.5] }),
        );
    } else {
        obs.remove("range");
    }
    std::fs::write(&mp, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    dir
}

fn spawn(domain: u16, bundle: &Path, extra: &[&str]) -> Child {
    let b = format!("bundle:={}", bundle.display());
    let mut args = vec![
        "run",
        "--json",
        "--params-file",
        "config/controller.yaml",
        "--ros-args",
        "-p",
        &b,
        "-p",
        "action.safe:=[0.25]",
        "-p",
        "diagnostics_period_s:=0.2",
        "-p",
        "watchdog_timeout_s:=0.5",
    ];
    args.extend_from_slice(extra);
    Command::new(&bins().0)
        .current_dir(root())
        .env("ROS_DOMAIN_ID", domain.to_string())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dream-mpc run")
}

/// Publish `obs` every 10 ms for `d`, collecting the actions.
fn feed(
    obs: &Publisher<Float64MultiArray>,
    actions: &Subscription<Float64MultiArray>,
    data: &[f64],
    d: Duration,
) -> Vec<Vec<f64>> {
    let mut got = vec![];
    let t0 = Instant::now();
    while t0.elapsed() < d {
        let _ = obs.publish(Float64MultiArray::vector("observation", data.to_vec()));
        while let Ok(Some((m, _))) = actions.take() {
            got.push(m.data);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    got
}

/// The largest value of diagnostics key `key` seen so far.
fn diag_max(diags: &Subscription<DiagnosticArray>, key: &str, seen: &mut f64) {
    while let Ok(Some((m, _))) = diags.take() {
        for s in &m.status {
            for kv in &s.values {
                if kv.key == key {
                    *seen = seen.max(kv.value.parse().unwrap_or(0.0));
                }
            }
        }
    }
}

/// Run the node on `bundle`: plausible observations for 3 s (the bundle
/// loads and verifies first), then implausible ones for 1.5 s; returns
/// (actions in the implausible phase, stdout, stderr, diagnostics max).
fn scenario(domain: u16, bundle: &Path, extra: &[&str]) -> (Vec<Vec<f64>>, String, String, f64) {
    let mut peer = Peer::new(domain, "ros_plausibility_test");
    let actions = peer.actions();
    let diags = peer.diagnostics();
    let obs = peer.observations();
    let mut ctl = spawn(domain, bundle, extra);
    let before = feed(&obs, &actions, &PLAUSIBLE, Duration::from_secs(6));
    assert!(
        before.iter().any(|a| a != &vec![SAFE]),
        "the node never planned on a plausible observation ({} actions)",
        before.len()
    );
    let mut seen = 0.0;
    diag_max(&diags, "implausible_observations", &mut seen);
    let during = feed(&obs, &actions, &IMPLAUSIBLE, Duration::from_millis(1500));
    std::thread::sleep(Duration::from_millis(300));
    diag_max(&diags, "implausible_observations", &mut seen);
    let st = Command::new("kill")
        .args(["-INT", &ctl.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let _ = ctl.try_wait();
    let (st, out, err, _) = wait_bounded(ctl, Duration::from_secs(10));
    assert!(st.success(), "{err}");
    (during, out, err, seen)
}

#[test]
fn implausible_observation_gets_the_safe_action_and_is_counted() {
    let b = bundle("range", true);
    let (during, out, err, diag) = scenario(225, &b, &[]);
    assert!(err.contains("plausibility check on"), "{err}");
    assert!(during.len() > 10, "only {} actions", during.len());
    // after the first tick that saw it, only the safe action
    assert!(
        during[3..].iter().all(|a| a == &vec![SAFE]),
        "an implausible observation was planned on: {:?}",
        &during[..during.len().min(20)]
    );
    let n = json_field(&out, "implausible");
    assert!(n > 10.0, "run summary counts {n} implausible:\n{out}");
    assert!(diag > 5.0, "/diagnostics counted {diag} implausible");
    assert!(json_field(&out, "planned") > 10.0, "{out}");
    std::fs::remove_dir_all(&b).ok();
}

#[test]
fn old_bundle_without_range_skips_the_check_and_says_so() {
    let b = bundle("norange", false);
    let (during, out, err, _) = scenario(226, &b, &[]);
    assert!(
        err.contains("records no observation range") && err.contains("plausibility check off"),
        "{err}"
    );
    assert_eq!(json_field(&out, "implausible"), 0.0, "{out}");
    assert!(
        during.iter().filter(|a| *a != &vec![SAFE]).count() > 10,
        "without a range the observation is planned on"
    );
    std::fs::remove_dir_all(&b).ok();
}

#[test]
fn warn_only_counts_and_plans_on() {
    let b = bundle("warn", true);
    let (during, out, err, _) = scenario(227, &b, &["-p", "plausibility.action:=warn"]);
    assert!(err.contains("plausibility.action: warn"), "{err}");
    assert!(json_field(&out, "implausible") > 10.0, "{out}");
    assert!(
        during.iter().filter(|a| *a != &vec![SAFE]).count() > 10,
        "under warn the observation is planned on"
    );
    std::fs::remove_dir_all(&b).ok();
}
