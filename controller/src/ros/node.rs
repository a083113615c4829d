//! `dream-mpc run`: the ROS 2 node. Three threads:
//! - DDS in: takes observations (Float64MultiArray or JointState), maps them
//!   to the observation vector, stores them in a [`Latest`] cell;
//! - control: fixed period with absolute deadlines (`next += period`, no
//!   sleep-after-work drift), one [`Controller::tick`] per period, the action
//!   into a second [`Latest`] cell, then wakes the publisher;
//! - DDS out: publishes each new action, and diagnostics every period.
//!
//! Stop (Ctrl-C / SIGTERM or [`StopHandle::stop`]): the control thread
//! writes the safe action, the publisher sends it as the last action
//! message, and [`run`] returns.

use super::config::{Config, JointField, ObsKind, Reliability};
use super::control::{summary, Controller};
use super::msgs::{
    self, DiagnosticArray, DiagnosticStatus, Float64MultiArray, Header, JointState, KeyValue,
};
use super::slot::Latest;
use ros2_client::dds::rustdds::mio1::{Events, Interest, Poll, Token};
use ros2_client::{
    qos::{Durability, History, WhenFull},
    Context, ContextOptions, Name, NodeName, NodeOptions, QosProfile,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Shared stop flag plus the threads to wake.
#[derive(Clone, Default)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    wake: Arc<Mutex<Vec<thread::Thread>>>,
}

impl StopHandle {
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Ok(w) = self.wake.lock() {
            w.iter().for_each(|t| t.unpark());
        }
    }
    pub fn stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
    fn register(&self, t: thread::Thread) {
        if let Ok(mut w) = self.wake.lock() {
            w.push(t);
        }
    }
}

/// Why the node could not run.
#[derive(Debug)]
pub struct NodeError(pub String);

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NodeError {}

fn err<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> NodeError + '_ {
    move |e| NodeError(format!("{what}: {e:?}"))
}

/// Totals reported when the node stops.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunReport {
    pub counts: super::control::Counts,
    pub observations_received: u64,
    pub actions_published: u64,
    pub diagnostics_published: u64,
    pub elapsed_s: f64,
    pub latency_p50_s: f64,
    pub latency_p99_s: f64,
    pub latency_max_s: f64,
    pub jitter_p99_s: f64,
}

/// ROS domain id from `ROS_DOMAIN_ID` (0 when unset).
pub fn domain_id_from_env() -> Result<u16, NodeError> {
    match std::env::var("ROS_DOMAIN_ID") {
        Err(_) => Ok(0),
        Ok(s) if s.is_empty() => Ok(0),
        Ok(s) => {
            s.parse::<u16>().ok().filter(|d| *d <= 232).ok_or_else(|| {
                NodeError(format!("ROS_DOMAIN_ID='{s}' is not an integer in [0, 232]"))
            })
        }
    }
}

/// QoS profile of the configured reliability and depth.
pub fn qos(rel: Reliability, depth: usize) -> QosProfile {
    let q = QosProfile::publisher_default()
        .durability(Durability::Volatile)
        .history(History::KeepLast { depth });
    match rel {
        Reliability::Reliable => q.reliability_reliable(WhenFull::DEFAULT),
        Reliability::BestEffort => q.reliability_best_effort(),
    }
}

fn topic_name(t: &str) -> Result<Name, NodeError> {
    Name::parse(t).map_err(err("topic name"))
}

/// Run the node until `stop` fires. `controller` is built by the caller
/// (all allocation happens before the control thread starts).
pub fn run(
    cfg: &Config,
    mut controller: Controller,
    domain: u16,
    stop: StopHandle,
) -> Result<RunReport, NodeError> {
    let ctx = Context::with_options(ContextOptions::new().domain_id(domain))
        .map_err(err("DDS context"))?;
    let mut node = ctx
        .new_node(
            NodeName::new("/", super::config::NODE_NAME).map_err(err("node name"))?,
            NodeOptions::new().enable_rosout(false),
        )
        .map_err(err("ROS 2 node"))?;
    let q = qos(cfg.reliability, cfg.qos_depth);
    let obs_type = match cfg.observation_type {
        ObsKind::Float64MultiArray => msgs::float64_multi_array_type(),
        ObsKind::JointState => msgs::joint_state_type(),
    };
    let obs_topic = node
        .create_topic(&topic_name(&cfg.observation_topic)?, obs_type, &q)
        .map_err(err("observation topic"))?;
    // Bounded reception (issue 19 item 6, docs/rustdds-patch.md): RustDDS
    // drops observations larger than this before buffering them, and counts.
    let obs_rx_stats = {
        use ros2_client::dds::rustdds::{ReceptionLimits, TopicDescription};
        ctx.domain_participant().set_reception_limits(
            &obs_topic.name(),
            ReceptionLimits::with_max_sample_size(max_observation_bytes(cfg)),
        )
    };
    let act_topic = node
        .create_topic(
            &topic_name(&cfg.action_topic)?,
            msgs::float64_multi_array_type(),
            &q,
        )
        .map_err(err("action topic"))?;
    let diag_topic = node
        .create_topic(
            &topic_name(&cfg.diagnostics_topic)?,
            msgs::diagnostic_array_type(),
            &qos(Reliability::Reliable, 10),
        )
        .map_err(err("diagnostics topic"))?;
    let act_pub = node
        .create_publisher::<Float64MultiArray>(&act_topic, None)
        .map_err(err("action publisher"))?;
    let diag_pub = node
        .create_publisher::<DiagnosticArray>(&diag_topic, None)
        .map_err(err("diagnostics publisher"))?;

    let epoch = Instant::now();
    let obs_cell = Arc::new(Latest::new(controller.obs_capacity(), epoch));
    let act_cell = Arc::new(Latest::new(cfg.action_size, epoch));
    let sum_cell = Arc::new(Latest::new(summary::LEN, epoch));
    let received = Arc::new(AtomicU64::new(0));
    let mapping_errors = Arc::new(AtomicU64::new(0));
    let final_written = Arc::new(AtomicBool::new(false));

    // --- DDS in -------------------------------------------------------
    let sub_thread = {
        let stop = stop.clone();
        let obs_cell = obs_cell.clone();
        let received = received.clone();
        let mapping_errors = mapping_errors.clone();
        let kind = cfg.observation_type;
        let joints = cfg.joints.clone();
        let fields = cfg.fields.clone();
        let size = cfg.observation_size;
        enum Sub {
            Array(ros2_client::Subscription<Float64MultiArray>),
            Joints(ros2_client::Subscription<JointState>),
        }
        let mut sub = match kind {
            ObsKind::Float64MultiArray => Sub::Array(
                node.create_subscription::<Float64MultiArray>(&obs_topic, None)
                    .map_err(err("observation subscription"))?,
            ),
            ObsKind::JointState => Sub::Joints(
                node.create_subscription::<JointState>(&obs_topic, None)
                    .map_err(err("observation subscription"))?,
            ),
        };
        let mut poll = Poll::new().map_err(err("poll"))?;
        match &mut sub {
            Sub::Array(s) => poll.registry().register(s, Token(1), Interest::READABLE),
            Sub::Joints(s) => poll.registry().register(s, Token(1), Interest::READABLE),
        }
        .map_err(err("poll register"))?;
        thread::Builder::new()
            .name("dds-in".into())
            .spawn(move || {
                let mut events = Events::with_capacity(8);
                let mut vec = vec![0.0f64; size];
                while !stop.stopped() {
                    let _ = poll.poll(&mut events, Some(Duration::from_millis(20)));
                    loop {
                        let got = match &sub {
                            Sub::Array(s) => match s.take() {
                                Ok(Some((m, _))) => {
                                    obs_cell.write(&m.data, Instant::now());
                                    true
                                }
                                _ => false,
                            },
                            Sub::Joints(s) => match s.take() {
                                Ok(Some((m, _))) => {
                                    if map_joint_state(&m, &joints, &fields, &mut vec) {
                                        obs_cell.write(&vec, Instant::now());
                                    } else {
                                        mapping_errors.fetch_add(1, Ordering::Relaxed);
                                        // a vector of the wrong size: refused and counted by the tick
                                        obs_cell.write(&[], Instant::now());
                                    }
                                    true
                                }
                                _ => false,
                            },
                        };
                        if !got {
                            break;
                        }
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .map_err(err("spawn dds-in"))?
    };

    // --- DDS out (actions + diagnostics) ------------------------------
    let published = Arc::new(AtomicU64::new(0));
    let diag_count = Arc::new(AtomicU64::new(0));
    let pub_thread = {
        let act_cell = act_cell.clone();
        let sum_cell = sum_cell.clone();
        let final_written = final_written.clone();
        let published = published.clone();
        let diag_count = diag_count.clone();
        let mapping_errors = mapping_errors.clone();
        let received = received.clone();
        let n = cfg.action_size;
        let diag_period = Duration::from_secs_f64(cfg.diagnostics_period_s);
        let source_name = cfg_source_name(cfg);
        let rate_cfg = cfg.control_rate_hz;
        thread::Builder::new()
            .name("dds-out".into())
            .spawn(move || {
                let mut buf = vec![0.0f64; n];
                let mut last_seq = 0;
                let mut next_diag = Instant::now() + diag_period;
                let mut sum = vec![0.0f64; summary::LEN];
                loop {
                    let done = final_written.load(Ordering::SeqCst);
                    let snap = act_cell.read(&mut buf);
                    if snap.seq != last_seq {
                        last_seq = snap.seq;
                        if act_pub
                            .publish(Float64MultiArray::vector("action", buf.clone()))
                            .is_ok()
                        {
                            published.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if done {
                        break;
                    }
                    let now = Instant::now();
                    if now >= next_diag {
                        next_diag += diag_period;
                        if sum_cell.read(&mut sum).seq > 0 {
                            let d = diagnostics(
                                &sum,
                                source_name,
                                rate_cfg,
                                received.load(Ordering::Relaxed),
                                mapping_errors.load(Ordering::Relaxed),
                            );
                            if diag_pub.publish(d).is_ok() {
                                diag_count.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    thread::park_timeout(next_diag.saturating_duration_since(Instant::now()));
                }
                // Give the reliable writer a moment to put the last sample
                // on the wire before the process exits.
                thread::sleep(Duration::from_millis(30));
            })
            .map_err(err("spawn dds-out"))?
    };
    let pub_handle = pub_thread.thread().clone();

    // --- control ------------------------------------------------------
    let period = cfg.period();
    let plan_budget = period.mul_f64(cfg.plan_fraction);
    let diag_ticks = ((cfg.diagnostics_period_s * cfg.control_rate_hz).round() as u64).max(1);
    let ctl_thread = {
        let stop = stop.clone();
        let obs_cell = obs_cell.clone();
        let act_cell = act_cell.clone();
        let sum_cell = sum_cell.clone();
        let final_written = final_written.clone();
        let pub_handle = pub_handle.clone();
        thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                let mut sum = vec![0.0f64; summary::LEN];
                let start = Instant::now();
                let mut next = start + period;
                let mut window_start = start;
                let mut window_ticks = 0u64;
                while !stop.stopped() {
                    // sleep until the absolute release time (park so stop wakes us)
                    loop {
                        let now = Instant::now();
                        if now >= next || stop.stopped() {
                            break;
                        }
                        thread::park_timeout(next - now);
                    }
                    if stop.stopped() {
                        break;
                    }
                    let woke = Instant::now();
                    let jit = woke.saturating_duration_since(next).as_secs_f64();
                    controller.jitter.push(jit);
                    controller.jitter_total.push(jit);
                    let deadline = next + plan_budget;
                    controller.tick(woke, deadline, &obs_cell);
                    act_cell.write(controller.output(), Instant::now());
                    pub_handle.unpark();
                    let end = Instant::now();
                    let lat = (end - woke).as_secs_f64();
                    controller.latency.push(lat);
                    controller.latency_total.push(lat);
                    if end > deadline {
                        controller.counts.deadline_misses += 1;
                    }
                    window_ticks += 1;
                    next += period;
                    if end > next {
                        // overran whole periods: skip them rather than burst
                        let behind = (end - next).as_nanos() / period.as_nanos().max(1) + 1;
                        controller.counts.overruns += behind as u64;
                        next += period * behind as u32;
                    }
                    if window_ticks >= diag_ticks {
                        let secs = (end - window_start).as_secs_f64();
                        controller.summarize(window_ticks as f64 / secs, &mut sum);
                        sum_cell.write(&sum, end);
                        window_start = end;
                        window_ticks = 0;
                    }
                }
                // stop: the safe action is the last word
                act_cell.write(controller.safe_action(), Instant::now());
                final_written.store(true, Ordering::SeqCst);
                pub_handle.unpark();
                let elapsed = start.elapsed().as_secs_f64();
                let lt = &controller.latency_total;
                let (p50, p99, max) = (lt.quantile(0.5), lt.quantile(0.99), lt.max());
                let jp99 = controller.jitter_total.quantile(0.99);
                (controller.counts, elapsed, p50, p99, max, jp99)
            })
            .map_err(err("spawn control"))?
    };
    stop.register(ctl_thread.thread().clone());
    stop.register(pub_handle);
    if stop.stopped() {
        stop.stop();
    }

    let (counts, elapsed_s, p50, p99, max, jp99) = ctl_thread
        .join()
        .map_err(|_| NodeError("control thread panicked".into()))?;
    pub_thread
        .join()
        .map_err(|_| NodeError("publisher thread panicked".into()))?;
    sub_thread
        .join()
        .map_err(|_| NodeError("subscriber thread panicked".into()))?;
    drop(node);
    if obs_rx_stats.oversized_samples() + obs_rx_stats.unmatched_fragments() > 0 {
        eprintln!(
            "dds: observation reader dropped {} oversized samples (over {} bytes) and {} \
             fragments from unmatched writers",
            obs_rx_stats.oversized_samples(),
            max_observation_bytes(cfg),
            obs_rx_stats.unmatched_fragments()
        );
    }
    Ok(RunReport {
        counts,
        observations_received: received.load(Ordering::Relaxed),
        actions_published: published.load(Ordering::Relaxed),
        diagnostics_published: diag_count.load(Ordering::Relaxed),
        elapsed_s,
        latency_p50_s: p50,
        latency_p99_s: p99,
        latency_max_s: max,
        jitter_p99_s: jp99,
    })
}

/// Largest serialized observation message DDS accepts, in bytes: the
/// configured observation as f64 (times 3 for JointState's position,
/// velocity and effort), twice over, plus 64 KiB for headers, layout and
/// joint names. Computed once at start-up.
pub fn max_observation_bytes(cfg: &Config) -> usize {
    65_536 + 2 * 3 * 8 * cfg.observation_size
}

fn cfg_source_name(cfg: &Config) -> &'static str {
    match cfg.action_source {
        super::config::SourceKind::DreamMpc => "dream_mpc",
        super::config::SourceKind::Linear => "linear",
        super::config::SourceKind::Zero => "zero",
    }
}

/// Map a JointState to the observation vector: for each field, that field
/// of each configured joint. False if a joint or field value is missing.
pub fn map_joint_state(
    m: &JointState,
    joints: &[String],
    fields: &[JointField],
    out: &mut [f64],
) -> bool {
    let mut k = 0;
    for f in fields {
        let src = match f {
            JointField::Position => &m.position,
            JointField::Velocity => &m.velocity,
            JointField::Effort => &m.effort,
        };
        for j in joints {
            let Some(i) = m.name.iter().position(|n| n == j) else {
                return false;
            };
            let Some(v) = src.get(i) else {
                return false;
            };
            out[k] = *v;
            k += 1;
        }
    }
    true
}

const KIND_NAMES: [&str; 6] = [
    "planned",
    "no_observation",
    "stale",
    "wrong_size",
    "non_finite",
    "source_failed",
];
const STATUS_NAMES: [&str; 3] = ["done", "out_of_time", "failed"];

/// Build the `/diagnostics` message from a control summary (DDS-out thread).
pub fn diagnostics(
    sum: &[f64],
    source: &str,
    rate_cfg: f64,
    received: u64,
    mapping_errors: u64,
) -> DiagnosticArray {
    use summary::*;
    let kind = KIND_NAMES
        .get(sum[LAST_KIND] as usize)
        .copied()
        .unwrap_or("?");
    let status = STATUS_NAMES
        .get(sum[LAST_STATUS] as usize)
        .copied()
        .unwrap_or("?");
    let rate = sum[RATE_HZ];
    let (level, message) = if kind != "planned" {
        (
            DiagnosticStatus::ERROR,
            format!("not planning: {kind}; publishing the safe action"),
        )
    } else if rate < 0.9 * rate_cfg {
        (
            DiagnosticStatus::WARN,
            format!("control rate {rate:.1} Hz below {rate_cfg:.1} Hz"),
        )
    } else {
        (DiagnosticStatus::OK, "planning".to_string())
    };
    let kv = |k: &str, v: String| KeyValue {
        key: k.to_string(),
        value: v,
    };
    let ms = |x: f64| format!("{:.3}", x * 1e3);
    DiagnosticArray {
        header: Header {
            stamp: msgs::Time::now(),
            frame_id: String::new(),
        },
        status: vec![DiagnosticStatus {
            level,
            name: "dream_mpc: controller".into(),
            message,
            hardware_id: "dream_mpc".into(),
            values: vec![
                kv("action_source", source.to_string()),
                kv("rate_hz", format!("{rate:.2}")),
                kv("rate_configured_hz", format!("{rate_cfg:.2}")),
                kv("ticks", format!("{}", sum[TICKS] as u64)),
                kv("planner_latency_p50_ms", ms(sum[LAT_P50])),
                kv("planner_latency_p99_ms", ms(sum[LAT_P99])),
                kv("planner_latency_max_ms", ms(sum[LAT_MAX])),
                kv("period_jitter_p99_ms", ms(sum[JITTER_P99])),
                kv(
                    "deadline_misses",
                    format!("{}", sum[DEADLINE_MISSES] as u64),
                ),
                kv("overruns", format!("{}", sum[OVERRUNS] as u64)),
                kv("observations_received", format!("{received}")),
                kv("no_observation", format!("{}", sum[NO_OBSERVATION] as u64)),
                kv("stale_observations", format!("{}", sum[STALE] as u64)),
                kv(
                    "wrong_size_observations",
                    format!("{}", sum[WRONG_SIZE] as u64),
                ),
                kv(
                    "non_finite_observations",
                    format!("{}", sum[NON_FINITE] as u64),
                ),
                kv("joint_mapping_errors", format!("{mapping_errors}")),
                kv("source_failures", format!("{}", sum[SOURCE_FAILED] as u64)),
                kv("clamped_elements", format!("{}", sum[CLAMPED] as u64)),
                kv("predicted_return", format!("{}", sum[PREDICTED_RETURN])),
                kv("planner_status", status.to_string()),
                kv("last_tick", kind.to_string()),
            ],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joint_state_maps_by_name_field_major() {
        let m = JointState {
            name: vec!["b".into(), "a".into()],
            position: vec![2.0, 1.0],
            velocity: vec![20.0, 10.0],
            ..Default::default()
        };
        let joints = vec!["a".to_string(), "b".to_string()];
        let mut out = [0.0; 4];
        assert!(map_joint_state(
            &m,
            &joints,
            &[JointField::Position, JointField::Velocity],
            &mut out
        ));
        assert_eq!(out, [1.0, 2.0, 10.0, 20.0]);
        assert!(!map_joint_state(
            &m,
            &joints,
            &[JointField::Effort],
            &mut out[..2]
        ));
        let missing = vec!["c".to_string()];
        assert!(!map_joint_state(
            &m,
            &missing,
            &[JointField::Position],
            &mut out[..1]
        ));
    }
}
