//! `dream-mpc run` over real DDS on localhost: a fault inside planning never
//! kills the control thread silently, and the planner settings in effect
//! are printed at start. Each test runs on its own private ROS domain
//! (30..69, apart from ros_e2e's 100..219 and the interop test's 80..89).

use dream_mpc::ros::config::Reliability;
use dream_mpc::ros::msgs::Float64MultiArray;
use dream_mpc_tests::peer::{float_topic, participant};
use dream_mpc_tests::{json_field, wait_bounded};
use ros2_client::{Context, Node, Publisher, Subscription};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The safe action the tests configure (distinct from the law's outputs).
const SAFE: f64 = 0.25;

fn domain(k: u16) -> u16 {
    30 + (std::process::id() % 20) as u16 * 2 + k
}

fn spawn_controller(domain: u16, extra: &[&str]) -> Child {
    dream_mpc_tests::spawn_controller(domain, "config/plumbing.yaml", extra)
}

fn peer(domain: u16) -> (Context, Node) {
    participant(domain, "ros_faults_test")
}

fn subscribe(node: &mut Node, name: &str) -> Subscription<Float64MultiArray> {
    let t = float_topic(node, name, Reliability::Reliable, 1);
    node.create_subscription(&t, None).unwrap()
}

fn publisher(node: &mut Node, name: &str) -> Publisher<Float64MultiArray> {
    let t = float_topic(node, name, Reliability::Reliable, 1);
    node.create_publisher(&t, None).unwrap()
}

fn drain(sub: &Subscription<Float64MultiArray>, out: &mut Vec<Vec<f64>>) {
    while let Ok(Some((m, _))) = sub.take() {
        out.push(m.data);
    }
}

/// Publish a valid observation every 5 ms while collecting actions, until
/// the controller exits or `limit` passes; returns the actions.
fn drive(
    node: &mut Node,
    ctl: &mut Child,
    limit: Duration,
) -> (Vec<Vec<f64>>, Subscription<Float64MultiArray>) {
    let actions = subscribe(node, "/action");
    let obs = publisher(node, "/observation");
    let mut got = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let _ = obs.publish(Float64MultiArray::vector("obs", vec![0.1, 0.0]));
        drain(&actions, &mut got);
        if ctl.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (got, actions)
}

fn json_bool(text: &str, key: &str) -> bool {
    let line = text.trim().lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v[key]
        .as_bool()
        .unwrap_or_else(|| panic!("no '{key}' in {line}"))
}

/// A panic injected inside planning (test-only parameter
/// `debug.inject_planner_fault_at_tick`): under the default
/// `on_planner_fault: stop` the node publishes the safe action as its last
/// message and exits 3 with the fault counted; under `continue` it sends
/// the safe action for that tick and plans again.
#[test]
fn planner_fault_stops_with_the_safe_action_or_continues() {
    // stop (the default)
    let d = domain(0);
    let (_ctx, mut node) = peer(d);
    let mut ctl = spawn_controller(d, &["-p", "debug.inject_planner_fault_at_tick:=20"]);
    let (mut got, actions) = drive(&mut node, &mut ctl, Duration::from_secs(20));
    let (st, out, err, _) = wait_bounded(ctl, Duration::from_secs(5));
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(err.contains("injected planner fault"), "{err}");
    assert!(err.contains("stopped by a planner fault"), "{err}");
    assert_eq!(json_field(&out, "planner_faults"), 1.0, "{out}");
    assert_eq!(json_field(&out, "planned"), 19.0, "{out}");
    assert!(json_bool(&out, "stopped_by_fault"), "{out}");
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(1) {
        drain(&actions, &mut got);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        got.iter().any(|a| (a[0] + 0.4).abs() < 1e-6),
        "never planned before the fault"
    );
    assert_eq!(
        got.last(),
        Some(&vec![SAFE]),
        "last action is not the safe one"
    );

    // continue
    let d = domain(1);
    let (_ctx2, mut node) = peer(d);
    let mut ctl = spawn_controller(
        d,
        &[
            "-p",
            "debug.inject_planner_fault_at_tick:=20",
            "-p",
            "on_planner_fault:=continue",
        ],
    );
    let (got, _) = drive(&mut node, &mut ctl, Duration::from_millis(1500));
    assert!(ctl.try_wait().unwrap().is_none(), "the node stopped");
    let st = Command::new("kill")
        .args(["-INT", &ctl.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let (st, out, err, _) = wait_bounded(ctl, Duration::from_secs(5));
    assert!(st.success(), "{err}");
    assert_eq!(json_field(&out, "planner_faults"), 1.0, "{out}");
    assert!(json_field(&out, "planned") > 40.0, "{out}");
    assert!(!json_bool(&out, "stopped_by_fault"), "{out}");
    // planning resumed after the fault: planned, then the fault's safe
    // action, then planned again
    let planned = |a: &Vec<f64>| (a[0] + 0.4).abs() < 1e-6;
    let first = got.iter().position(planned).expect("never planned");
    let fault = first
        + got[first..]
            .iter()
            .position(|a| a == &vec![SAFE])
            .expect("no safe action after planning started");
    assert!(
        got[fault..].iter().any(planned),
        "no planning after the fault"
    );
}
