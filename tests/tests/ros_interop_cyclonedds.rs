//! Interop with a second DDS implementation (Eclipse Cyclone DDS through its
//! Python binding): `dream-mpc run` and `tests/interop/cyclonedds_peer.py`
//! exchange observations (Float64MultiArray from a reliable and from a
//! best-effort writer, JointState from a best-effort writer), actions and
//! diagnostics with ROS 2 wire type names; a best-effort Cyclone writer
//! against a reliable subscription is reported as incompatible QoS; and a
//! Cyclone client of the ROS 2 parameter services (rcl_interfaces types
//! defined in Python) lists, gets, describes and sets the planner's
//! tunables and sees the planner run with the new iteration count, with
//! the request/reply layout of rmw_fastrtps (the default) and of
//! rmw_cyclonedds.
//!
//! Runs in CI: `scripts/test.sh` installs the pinned `cyclonedds` wheel
//! (it ships the C library) into `.venv` through `scripts/setup.sh`. The
//! Python used is `DREAM_MPC_CYCLONEDDS_PYTHON` when set, else
//! `.venv/bin/python3`; without `cyclonedds` there the test fails naming
//! the setup step (it does not pretend). The five cases run side by side
//! on their own domains (10..29) and take a few seconds each.

use dream_mpc_tests::{bins, python_with, root, spawn_on, wait_bounded, JOINT_STATE_SLIDER};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn python() -> PathBuf {
    python_with("DREAM_MPC_CYCLONEDDS_PYTHON", "cyclonedds").unwrap_or_else(|py| {
        panic!(
            "{} cannot import cyclonedds: run `DREAM_MPC_CYCLONEDDS=1 bash scripts/setup.sh` \
             (scripts/test.sh does) or set DREAM_MPC_CYCLONEDDS_PYTHON",
            py.display()
        )
    })
}

/// One controller (plumbing law, `extra` parameters) and one Cyclone DDS
/// peer in `mode` on `domain`; the controller is stopped with SIGINT once
/// the peer is done. Returns the peer's JSON line and the controller's
/// stderr.
fn case(domain: u16, mode: &str, extra: &[&str]) -> (bool, String, String) {
    let file = if mode.starts_with("params") {
        "config/controller.yaml"
    } else {
        "config/plumbing.yaml"
    };
    let mut args = vec![
        "run",
        "--json",
        "--params-file",
        file,
        "--duration-s",
        "50",
        "--ros-args",
        "-p",
        "diagnostics_period_s:=0.25",
    ];
    args.extend_from_slice(extra);
    let ctl = spawn_on(&bins().0, domain, &args);
    let peer = Command::new(python())
        .current_dir(root())
        .args([
            "tests/interop/cyclonedds_peer.py",
            &domain.to_string(),
            mode,
        ])
        .output()
        .expect("run the Cyclone DDS peer");
    let _ = Command::new("kill")
        .args(["-INT", &ctl.id().to_string()])
        .status();
    let (st, _, err, _) = wait_bounded(ctl, Duration::from_secs(10));
    assert!(st.success(), "controller ({mode}) failed: {err}");
    let out =
        String::from_utf8_lossy(&peer.stdout).to_string() + &String::from_utf8_lossy(&peer.stderr);
    (peer.status.success(), out, err)
}

#[test]
fn cyclonedds_peer_talks_to_the_controller() {
    let base = 10 + (std::process::id() % 4) as u16 * 5;
    let joints = JOINT_STATE_SLIDER;
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("array", vec![]),
        ("joints", joints.to_vec()),
        (
            "incompatible",
            vec!["-p", "qos.observation.reliability:=reliable"],
        ),
        ("params", vec![]),
        ("params_cyclone", vec!["-p", "parameter_services:=cyclone"]),
    ];
    let handles: Vec<_> = cases
        .into_iter()
        .enumerate()
        .map(|(k, (mode, extra))| {
            let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            std::thread::spawn(move || {
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                (mode, case(base + k as u16, mode, &extra))
            })
        })
        .collect();
    let mut failed = Vec::new();
    for h in handles {
        let (mode, (ok, out, err)) = h.join().unwrap();
        eprintln!("[{mode}] peer: {out}");
        if !ok {
            failed.push(format!("{mode}: {out}\ncontroller: {err}"));
        }
        if mode == "incompatible" && !err.contains("incompatible QoS on /observation") {
            failed.push(format!("{mode}: the controller did not report it: {err}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
