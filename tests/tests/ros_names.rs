//! Namespaces and remapping over real DDS on localhost:
//! two controller/robot pairs on one ROS domain, in `/robot1` and
//! `/robot2`, run side by side without cross-talk.
//!
//! - Pair 1: `dream-mpc run --ros-args -r __ns:=/robot1 ...` with the
//!   shipped plumbing config (relative topics), and the point-mass robot
//!   (observation of 2) in `/robot1`.
//! - Pair 2: the controller started as launch_ros starts it, without a
//!   subcommand, renamed `-r __node:=arm_mpc` so that the parameter file's
//!   `/robot2/arm_mpc` section applies (observation of 3, a constant law)
//!   and not its `dream_mpc` section (observation of 2); its action topic
//!   remapped `-r action:=cmd` on both sides; the pendulum robot
//!   (observation of 3) in `/robot2`.
//!
//! Cross-talk would show as wrong-sized observations at either controller
//! (2 vs 3), as pair 1's varying actions on `/robot2/cmd` (pair 2 only ever
//! sends 0.5 or its safe -0.5), or as anything on the root topics
//! `/observation` and `/action`, which a third participant watches.

use dream_mpc::msgs::Float64MultiArray;
use dream_mpc::ros::config::Reliability;
use dream_mpc_tests::peer::{float_topic, Peer};
use dream_mpc_tests::{bins, json_field, spawn_on, wait_bounded};
use ros2_client::Subscription;
use std::process::Command;
use std::time::{Duration, Instant};

fn domain() -> u16 {
    // distinct from the other ROS test files' ranges (100..=219, ...)
    220 + (std::process::id() % 12) as u16
}

fn sub(peer: &mut Peer, topic: &str, rel: Reliability) -> Subscription<Float64MultiArray> {
    let t = float_topic(&mut peer.node, topic, rel, 10);
    peer.node.create_subscription(&t, None).unwrap()
}

fn drain(s: &Subscription<Float64MultiArray>, out: &mut Vec<Vec<f64>>) {
    while let Ok(Some((m, _))) = s.take() {
        out.push(m.data);
    }
}

/// The controller's JSON summary: stdout with `--json`, else the
/// `dream-mpc run: stopped: {...}` line of stderr.
fn summary(out: &str, err: &str) -> String {
    if out.trim().starts_with('{') {
        return out.to_string();
    }
    err.lines()
        .rev()
        .find_map(|l| l.strip_prefix("dream-mpc run: stopped: "))
        .unwrap_or_else(|| panic!("no summary in: {err}"))
        .to_string()
}

#[test]
fn two_namespaced_pairs_share_a_domain_without_cross_talk() {
    let d = domain();
    let dir = std::env::temp_dir().join(format!("dmpc_ros_names_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let params = dir.join("two_nodes.yaml");
    std::fs::write(
        &params,
        "# the default-named node's section: must NOT apply to /robot2/arm_mpc\n\
         dream_mpc:\n  ros__parameters:\n    action_source: zero\n    observation: {size: 2}\n    action: {size: 1}\n\
         /robot2/arm_mpc:\n  ros__parameters:\n    action_source: linear\n    control_rate_hz: 100.0\n\
         \x20   observation: {size: 3}\n    action: {size: 1, safe: [-0.5]}\n\
         \x20   linear: {gain: [0.0, 0.0, 0.0], bias: [0.5]}\n",
    )
    .unwrap();
    let mut peer = Peer::new(d, "ros_names_test");
    let root_action = sub(&mut peer, "/action", Reliability::BestEffort);
    let root_obs = sub(&mut peer, "/observation", Reliability::BestEffort);
    let cmd2 = sub(&mut peer, "/robot2/cmd", Reliability::BestEffort);

    let (ctl_bin, sim_bin) = (&bins().0, &bins().1);
    let ctl1 = spawn_on(
        ctl_bin,
        d,
        &[
            "run",
            "--json",
            "--ros-args",
            "-r",
            "__ns:=/robot1",
            "--params-file",
            "config/plumbing.yaml",
            "-p",
            "action.safe:=[0.25]",
        ],
    );
    let params_s = params.to_str().unwrap();
    let ctl2 = spawn_on(
        ctl_bin,
        d,
        &[
            "--ros-args",
            "-r",
            "__node:=arm_mpc",
            "-r",
            "__ns:=/robot2",
            "--params-file",
            params_s,
            "-r",
            "action:=cmd",
        ],
    );
    let steps = "100";
    let sim1 = spawn_on(
        sim_bin,
        d,
        &[
            "serve",
            "--task",
            "plumbing/point-mass",
            "--max-steps",
            steps,
            "--ros-args",
            "-r",
            "__ns:=/robot1",
        ],
    );
    let sim2 = spawn_on(
        sim_bin,
        d,
        &[
            "serve",
            "--task",
            "pendulum-swingup",
            "--max-steps",
            steps,
            "--ros-args",
            "-r",
            "__node:=pendulum",
            "-r",
            "__ns:=/robot2",
            "-r",
            "action:=cmd",
        ],
    );
    let (mut on_root, mut on_cmd2) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    let mut sims = [Some(sim1), Some(sim2)];
    let mut outs = [None, None];
    while outs.iter().any(Option::is_none) && t0.elapsed() < Duration::from_secs(30) {
        drain(&root_action, &mut on_root);
        drain(&root_obs, &mut on_root);
        drain(&cmd2, &mut on_cmd2);
        for (s, o) in sims.iter_mut().zip(outs.iter_mut()) {
            if s.as_mut().is_some_and(|c| c.try_wait().unwrap().is_some()) {
                *o = Some(wait_bounded(s.take().unwrap(), Duration::from_secs(1)));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut ctl_out = Vec::new();
    for c in [ctl1, ctl2] {
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
        ctl_out.push(wait_bounded(c, Duration::from_secs(5)));
    }
    drain(&root_action, &mut on_root);
    drain(&root_obs, &mut on_root);
    drain(&cmd2, &mut on_cmd2);
    for s in sims.into_iter().flatten() {
        let _ = wait_bounded(s, Duration::from_millis(1)); // kills it
    }
    let _ = std::fs::remove_dir_all(&dir);

    for (i, (st, out, err, _)) in ctl_out.iter().enumerate() {
        assert!(st.success(), "controller {} exit {st:?}: {err}", i + 1);
        let s = summary(out, err);
        let f = |k: &str| json_field(&s, k);
        eprintln!("controller {}: {s}", i + 1);
        assert_eq!(
            f("wrong_size"),
            0.0,
            "controller {} saw the other robot's observations",
            i + 1
        );
        assert!(
            f("observations_received") >= 50.0,
            "controller {} heard its robot only {} times",
            i + 1,
            f("observations_received")
        );
        assert!(
            f("planned") >= 50.0,
            "controller {} planned too little",
            i + 1
        );
    }
    for (i, o) in outs.iter().enumerate() {
        let (st, out, err, _) = o
            .as_ref()
            .unwrap_or_else(|| panic!("robot {} did not finish within 30 s", i + 1));
        assert!(st.success(), "robot {} exit {st:?}: {err}", i + 1);
        eprintln!("robot {}: {}", i + 1, out.trim());
        assert_eq!(json_field(out, "steps"), 100.0);
        assert_eq!(json_field(out, "rejected_actions"), 0.0);
        assert!(
            json_field(out, "actions_received") >= 50.0,
            "robot {} heard its controller only {} times",
            i + 1,
            json_field(out, "actions_received")
        );
    }
    assert!(
        on_root.is_empty(),
        "{} messages on the root /action or /observation",
        on_root.len()
    );
    assert!(
        on_cmd2.len() >= 50,
        "only {} actions on /robot2/cmd",
        on_cmd2.len()
    );
    assert!(
        on_cmd2.iter().all(|a| a == &[0.5] || a == &[-0.5]),
        "a foreign action on /robot2/cmd: {:?}",
        on_cmd2.iter().find(|a| *a != &[0.5] && *a != &[-0.5])
    );
}
