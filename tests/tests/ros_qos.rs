//! QoS as ROS 2 does it, over real DDS on localhost:
//! the default observation subscription (best effort) hears a best-effort
//! publisher, the sensor-data profile most drivers use; a deliberately
//! incompatible peer (a best-effort writer against a reliable subscription,
//! a transient-local reader against our volatile action writer) is logged
//! with the topic, the peer and the policy, and counted in `/diagnostics`.
//! Domains 220..229 (other tests use 30..219 and 230..).

use dream_mpc::msgs::{self, DiagnosticArray, Float64MultiArray};
use dream_mpc::ros::config::{Durability, Reliability, TopicQos};
use dream_mpc::ros::dds::{create_publisher, create_subscription, max_array_bytes};
use dream_mpc::ros::qos::profile;
use dream_mpc_tests::peer::diagnostics;
use dream_mpc_tests::{bins, json_field, spawn_on, wait_bounded};
use ros2_client::{Context, Node, Publisher, Subscription};
use std::process::Child;
use std::time::{Duration, Instant};

fn domain(k: u16) -> u16 {
    220 + (std::process::id() % 5) as u16 * 2 + k
}

fn spawn(domain: u16, extra: &[&str]) -> Child {
    let mut args = vec![
        "run",
        "--json",
        "--params-file",
        "config/plumbing.yaml",
        "--duration-s",
        "4",
        "--ros-args",
        "-p",
        "diagnostics_period_s:=0.5",
    ];
    args.extend_from_slice(extra);
    spawn_on(&bins().0, domain, &args)
}

fn node(domain: u16) -> (Context, Node) {
    dream_mpc_tests::peer::participant(domain, "ros_qos_test")
}

fn q(reliability: Reliability, durability: Durability, depth: usize) -> TopicQos {
    TopicQos {
        reliability,
        durability,
        depth,
    }
}

fn obs_publisher(n: &mut Node, qos: TopicQos) -> Publisher<Float64MultiArray> {
    let ty = msgs::float64_multi_array_type();
    create_publisher(n, "/observation", ty, &profile(&qos), "observation").unwrap()
}

fn action_sub(ctx: &Context, n: &mut Node, qos: TopicQos) -> Subscription<Float64MultiArray> {
    let ty = msgs::float64_multi_array_type();
    let (sub, _) = create_subscription(
        ctx,
        n,
        "/action",
        ty,
        &profile(&qos),
        "action",
        max_array_bytes(1),
    )
    .unwrap();
    sub
}

/// Publish [0.1, 0] every 5 ms until the controller exits (at most 15 s);
/// returns the actions received and the last diagnostics values.
fn drive(
    ctl: &mut Child,
    obs: &Publisher<Float64MultiArray>,
    act: &Subscription<Float64MultiArray>,
    diag: &Subscription<DiagnosticArray>,
) -> (Vec<Vec<f64>>, Vec<(String, String)>) {
    let (mut actions, mut last) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15) && ctl.try_wait().unwrap().is_none() {
        let _ = obs.publish(Float64MultiArray::vector("obs", vec![0.1, 0.0]));
        while let Ok(Some((m, _))) = act.take() {
            actions.push(m.data);
        }
        while let Ok(Some((d, _))) = diag.take() {
            last = d.status[0]
                .values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (actions, last)
}

fn value(kv: &[(String, String)], key: &str) -> f64 {
    kv.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in diagnostics {kv:?}"))
        .1
        .parse()
        .unwrap()
}

/// The shipped default: a best-effort observation publisher is heard and
/// planned on; nothing is incompatible.
#[test]
fn best_effort_sensor_is_heard_by_default() {
    let d = domain(0);
    let (ctx, mut n) = node(d);
    let obs = obs_publisher(&mut n, q(Reliability::BestEffort, Durability::Volatile, 5));
    let act = action_sub(
        &ctx,
        &mut n,
        q(Reliability::Reliable, Durability::Volatile, 10),
    );
    let diag = diagnostics(&mut n);
    let mut ctl = spawn(d, &[]);
    let (actions, kv) = drive(&mut ctl, &obs, &act, &diag);
    let (st, out, err, _) = wait_bounded(ctl, Duration::from_secs(10));
    assert!(st.success(), "{err}");
    assert!(json_field(&out, "planned") > 50.0, "{out}\n{err}");
    assert!(
        actions.iter().any(|a| (a[0] + 0.4).abs() < 1e-6),
        "no planned action received: {} actions, last {:?}; {err}",
        actions.len(),
        actions.last()
    );
    assert_eq!(value(&kv, "qos_incompatible"), 0.0, "{kv:?}");
    assert!(!err.contains("incompatible QoS"), "{err}");
}

/// A reliable observation subscription (set by parameter) and a
/// best-effort publisher do not match: the controller says so, naming the
/// topic, the peer and the policy, counts it, and (watchdog) sends the safe
/// action. A reader requesting transient-local durability on /action is
/// reported the same way from the writer's side.
#[test]
fn incompatible_peers_are_reported_and_counted() {
    let d = domain(1);
    let (ctx, mut n) = node(d);
    let obs = obs_publisher(&mut n, q(Reliability::BestEffort, Durability::Volatile, 5));
    let latched = action_sub(
        &ctx,
        &mut n,
        q(Reliability::Reliable, Durability::TransientLocal, 1),
    );
    let diag = diagnostics(&mut n);
    let peer = format!("{:?}", obs.guid().prefix);
    let mut ctl = spawn(d, &["-p", "qos.observation.reliability:=reliable"]);
    let (actions, kv) = drive(&mut ctl, &obs, &latched, &diag);
    let (st, out, err, _) = wait_bounded(ctl, Duration::from_secs(10));
    assert!(st.success(), "{err}");
    assert_eq!(json_field(&out, "observations_received"), 0.0, "{out}");
    assert_eq!(json_field(&out, "planned"), 0.0, "{out}");
    assert!(actions.is_empty(), "an incompatible reader got actions");
    let report = |topic: &str| {
        err.lines()
            .find(|l| l.contains(&format!("incompatible QoS on {topic}")))
            .unwrap_or_else(|| panic!("no report for {topic} in: {err}"))
    };
    let obs_line = report("/observation");
    assert!(
        obs_line.contains("reliability reliable") && obs_line.contains("best_effort"),
        "{obs_line}"
    );
    assert!(
        obs_line.contains(&peer),
        "peer {peer} not named: {obs_line}"
    );
    let act_line = report("/action");
    assert!(
        act_line.contains("durability volatile") && act_line.contains("transient_local"),
        "{act_line}"
    );
    let reported = err.matches("incompatible QoS on").count() as f64;
    assert!(value(&kv, "qos_incompatible") >= 2.0, "{kv:?}");
    assert!(value(&kv, "qos_incompatible") <= reported, "{kv:?}\n{err}");
}
