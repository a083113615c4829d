//! Fault injection over DDS on localhost, shared by the
//! test `tests/ros_faults.rs` (asserts with generous margins) and the
//! benchmark `benches/ros_faults.rs` (reports the recovery times).
//!
//! The controller runs `config/plumbing.yaml` (linear law a = -4 x0 - 2 x1
//! at 100 Hz, watchdog 0.1 s) with the safe action 0.25, so every action
//! received tells whether the controller planned (-4 x0 clamped to
//! [-1, 1]) or fell back (0.25). A peer on its own participant publishes
//! observations and timestamps every action it receives; the fault
//! scenarios measure:
//!
//! - `to_safe`: from the fault (the last good observation before a gap or
//!   a killed robot; the first bad one of an interleaved stream) to the
//!   first safe action received;
//! - `to_planning`: from the end of the fault (the first good observation
//!   after it) to the first planned action received.

use crate::peer::{participant, topic};
use crate::{bins, root, spawn_on, wait_bounded};
use dream_mpc::msgs::{self, Float64MultiArray};
use dream_mpc::ros::config::{Durability, Reliability, TopicQos};
use dream_mpc::ros::qos::profile;
use ros2_client::{Context, Publisher};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The safe action the scenarios configure.
pub const SAFE: f64 = 0.25;
/// Control period and watchdog of `config/plumbing.yaml`.
pub const PERIOD: Duration = Duration::from_millis(10);
pub const WATCHDOG: Duration = Duration::from_millis(100);

/// One measured fault.
#[derive(Clone, Debug)]
pub struct Recovery {
    pub fault: &'static str,
    /// Fault start to the first safe action (None: none seen).
    pub to_safe: Option<Duration>,
    /// Fault end to the first planned action (None: none seen).
    pub to_planning: Option<Duration>,
}

/// The controller's final JSON line, parsed.
pub type Summary = serde_json::Value;

/// Start `dream-mpc run` on `domain` with the plumbing law, safe action
/// 0.25 and `extra` parameters.
pub fn controller(domain: u16, extra: &[&str]) -> Child {
    controller_with(domain, "config/plumbing.yaml", extra)
}

/// [`controller`] on another parameter file (safe action 0.25 still).
pub fn controller_with(domain: u16, params_file: &str, extra: &[&str]) -> Child {
    let mut args = vec![
        "run",
        "--json",
        "--params-file",
        params_file,
        "--ros-args",
        "-p",
        "action.safe:=[0.25]",
    ];
    args.extend_from_slice(extra);
    spawn_on(&bins().0, domain, &args)
}

/// SIGINT the controller and read its JSON summary (exit 0 expected).
pub fn stop(ctl: Child) -> (Summary, String) {
    let _ = Command::new("kill")
        .args(["-INT", &ctl.id().to_string()])
        .status();
    let (st, out, err, _) = wait_bounded(ctl, Duration::from_secs(10));
    assert!(st.success(), "controller failed: {err}");
    let line = out.trim().lines().last().unwrap_or("").to_string();
    (
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}\n{err}")),
        err,
    )
}

/// Actions (arrival time, first element) and observations (arrival time)
/// seen by the peer, collected by a thread polling every 0.5 ms.
pub struct Recorder {
    pub actions: Arc<Mutex<Vec<(Instant, f64)>>>,
    pub observations: Arc<Mutex<Vec<Instant>>>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    pub fn new(domain: u16) -> Recorder {
        let actions = Arc::new(Mutex::new(Vec::new()));
        let observations = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (a, o, d) = (actions.clone(), observations.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let (_ctx, mut node) = participant(domain, "fault_recorder");
            let reliable = TopicQos {
                reliability: Reliability::Reliable,
                durability: Durability::Volatile,
                depth: 100,
            };
            let best_effort = TopicQos {
                reliability: Reliability::BestEffort,
                ..reliable
            };
            let float = msgs::float64_multi_array_type;
            let t = topic(&mut node, "/action", float(), &profile(&reliable));
            let act = node
                .create_subscription::<Float64MultiArray>(&t, None)
                .unwrap();
            let t = topic(&mut node, "/observation", float(), &profile(&best_effort));
            let obs = node
                .create_subscription::<Float64MultiArray>(&t, None)
                .unwrap();
            while !d.load(Ordering::SeqCst) {
                while let Ok(Some((m, _))) = act.take() {
                    let x = m.data.first().copied().unwrap_or(f64::NAN);
                    a.lock().unwrap().push((Instant::now(), x));
                }
                while let Ok(Some(_)) = obs.take() {
                    o.lock().unwrap().push(Instant::now());
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        Recorder {
            actions,
            observations,
            done,
            thread: Some(thread),
        }
    }

    /// First action after `t` that satisfies `f`, as time since `t`.
    pub fn first_after(&self, t: Instant, f: impl Fn(f64) -> bool) -> Option<Duration> {
        self.actions
            .lock()
            .unwrap()
            .iter()
            .find(|(at, x)| *at >= t && f(*x))
            .map(|(at, _)| *at - t)
    }

    /// Wait up to `limit` for an action after `t` satisfying `f`.
    pub fn wait_for(
        &self,
        t: Instant,
        limit: Duration,
        f: impl Fn(f64) -> bool + Copy,
    ) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Some(d) = self.first_after(t, f) {
                return Some(d);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    /// Actions received in [from, to).
    pub fn between(&self, from: Instant, to: Instant) -> Vec<f64> {
        self.actions
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, x)| *x)
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A publisher of observations on its own participant (a robot).
pub struct Robot {
    _ctx: Context,
    pub publisher: Publisher<Float64MultiArray>,
}

impl Robot {
    pub fn new(domain: u16) -> Robot {
        let (ctx, mut node) = participant(domain, "fault_robot");
        let q = TopicQos {
            reliability: Reliability::Reliable,
            durability: Durability::Volatile,
            depth: 100,
        };
        let ty = msgs::float64_multi_array_type();
        let t = topic(&mut node, "/observation", ty, &profile(&q));
        let publisher = node.create_publisher(&t, None).unwrap();
        Robot {
            _ctx: ctx,
            publisher,
        }
    }

    pub fn send(&self, data: &[f64]) {
        let _ = self
            .publisher
            .publish(Float64MultiArray::vector("obs", data.to_vec()));
    }

    /// Send `data` every `every` for `dur`; returns the first send time.
    pub fn stream(&self, data: &[f64], every: Duration, dur: Duration) -> Instant {
        let t0 = Instant::now();
        let mut next = t0;
        while t0.elapsed() < dur {
            self.send(data);
            next += every;
            if let Some(s) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(s);
            }
        }
        t0
    }
}

/// The planned action for x0 (x1 = 0): -4 x0 clamped.
pub fn planned(x0: f64) -> impl Fn(f64) -> bool + Copy {
    let a = (-4.0 * x0).clamp(-1.0, 1.0);
    move |x| (x - a).abs() < 1e-6
}

pub fn safe(x: f64) -> bool {
    (x - SAFE).abs() < 1e-9
}

/// What the observation-stream scenario injected (for the counters).
#[derive(Clone, Copy, Debug, Default)]
pub struct Injected {
    pub nan: u64,
    pub wrong_size: u64,
    pub gap: Duration,
}

/// The observation faults against one controller: a gap of 5 watchdog
/// periods, a burst at 10x the control rate, duplicated and out-of-order
/// messages, NaN and wrong-sized messages interleaved with good ones.
/// Returns the recoveries, what was injected, the controller's summary
/// and its stderr.
pub fn observation_faults(domain: u16) -> (Vec<Recovery>, Injected, Summary, String, Vec<String>) {
    let rec = Recorder::new(domain);
    let robot = Robot::new(domain);
    let ctl = controller(domain, &[]);
    let mut notes = Vec::new();
    let mut out = Vec::new();
    let mut inj = Injected::default();
    // warm up until planning (discovery can take a while on a busy machine)
    let t0 = Instant::now();
    while rec.first_after(t0, planned(0.1)).is_none() && t0.elapsed() < Duration::from_secs(20) {
        robot.stream(&[0.1, 0.0], PERIOD, Duration::from_millis(50));
    }
    robot.stream(&[0.1, 0.0], PERIOD, Duration::from_millis(300));

    // 1. gap longer than the watchdog
    robot.send(&[0.1, 0.0]);
    let last = Instant::now();
    inj.gap = WATCHDOG * 5;
    std::thread::sleep(inj.gap);
    let to_safe = rec.first_after(last, safe);
    let resumed = Instant::now();
    robot.stream(&[0.1, 0.0], PERIOD, Duration::from_millis(300));
    out.push(Recovery {
        fault: "observation gap (5 x watchdog)",
        to_safe,
        to_planning: rec.first_after(resumed, planned(0.1)),
    });

    // 2. burst at 10x the control rate
    let b0 = robot.stream(&[0.2, 0.0], PERIOD / 10, Duration::from_millis(500));
    let b1 = Instant::now();
    let during = rec.between(b0 + PERIOD * 3, b1);
    let safe_in_burst = during.iter().filter(|x| safe(**x)).count();
    notes.push(format!(
        "burst: {} actions during 0.5 s at 1 kHz input, {} safe",
        during.len(),
        safe_in_burst
    ));
    out.push(Recovery {
        fault: "burst at 10 x control rate",
        to_safe: (safe_in_burst > 0).then_some(Duration::ZERO),
        to_planning: rec.first_after(b0, planned(0.2)),
    });

    // 3. duplicated and out-of-order: each message twice, an older value
    //    after a newer one (the node plans on the newest received)
    let d0 = Instant::now();
    for k in 0..50 {
        let (newer, older) = if k % 2 == 0 { (0.1, 0.15) } else { (0.15, 0.1) };
        robot.send(&[newer, 0.0]);
        robot.send(&[newer, 0.0]);
        robot.send(&[older, 0.0]);
        std::thread::sleep(PERIOD);
    }
    let d1 = Instant::now();
    let dup = rec.between(d0 + PERIOD * 3, d1);
    let dup_bad = dup
        .iter()
        .filter(|x| !(planned(0.1)(**x) || planned(0.15)(**x)))
        .count();
    notes.push(format!(
        "duplicated/out-of-order: {} actions, {} neither planned value",
        dup.len(),
        dup_bad
    ));
    out.push(Recovery {
        fault: "duplicated and out-of-order",
        to_safe: (dup_bad > 0).then_some(Duration::ZERO),
        to_planning: rec.first_after(d0, |x| planned(0.1)(x) || planned(0.15)(x)),
    });

    // 4. NaN and wrong-sized messages interleaved with good ones, one
    //    message per period: good, NaN, good, wrong size, ...
    let mut first_bad = None;
    for k in 0..100u64 {
        match k % 4 {
            1 => {
                robot.send(&[f64::NAN, 0.0]);
                first_bad.get_or_insert(Instant::now());
                inj.nan += 1;
            }
            3 => {
                robot.send(&[0.1, 0.0, 0.0]);
                inj.wrong_size += 1;
            }
            _ => robot.send(&[0.1, 0.0]),
        }
        std::thread::sleep(PERIOD);
    }
    let ended = Instant::now();
    robot.stream(&[0.1, 0.0], PERIOD, Duration::from_millis(300));
    out.push(Recovery {
        fault: "NaN / wrong size interleaved",
        to_safe: first_bad.and_then(|t| rec.first_after(t, safe)),
        to_planning: rec.first_after(ended, planned(0.1)),
    });
    let (summary, err) = stop(ctl);
    (out, inj, summary, err, notes)
}

/// The robot process (`dream-mpc-sim serve`, plumbing point mass) killed
/// with SIGKILL mid-episode and restarted; the controller keeps running.
/// Returns (killed: last observation -> first safe action; restarted: its
/// first observation -> first planned action).
pub fn robot_killed_and_restarted(domain: u16) -> (Recovery, Summary) {
    let rec = Recorder::new(domain);
    let ctl = controller(domain, &[]);
    let sim = || {
        Command::new(&bins().1)
            .current_dir(root())
            .env("ROS_DOMAIN_ID", domain.to_string())
            .args([
                "serve",
                "--task",
                "plumbing/point-mass",
                "--episodes",
                "1",
                "--max-steps",
                "100000",
                "--wait-for-controller-s",
                "30",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dream-mpc-sim serve")
    };
    let not_safe = |x: f64| !safe(x);
    let mut robot = sim();
    let t0 = Instant::now();
    rec.wait_for(t0, Duration::from_secs(30), not_safe);
    std::thread::sleep(Duration::from_millis(500));
    let _ = robot.kill(); // SIGKILL: no DDS goodbye
    let _ = robot.wait();
    let last_obs = *rec
        .observations
        .lock()
        .unwrap()
        .last()
        .expect("the robot published");
    let to_safe = rec.wait_for(last_obs, Duration::from_secs(5), safe);
    std::thread::sleep(Duration::from_millis(300));
    let restart = Instant::now();
    let mut robot = sim();
    let t = Instant::now();
    let first_obs = loop {
        let seen = rec
            .observations
            .lock()
            .unwrap()
            .iter()
            .copied()
            .find(|o| *o >= restart);
        if seen.is_some() || t.elapsed() > Duration::from_secs(30) {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let to_planning = first_obs.and_then(|o| rec.wait_for(o, Duration::from_secs(5), not_safe));
    let _ = robot.kill();
    let _ = robot.wait();
    let (summary, _) = stop(ctl);
    (
        Recovery {
            fault: "robot process killed (SIGKILL) and restarted",
            to_safe,
            to_planning,
        },
        summary,
    )
}

/// The controller process killed with SIGKILL mid-episode and restarted
/// while the robot keeps publishing. Returns the restarted controller's
/// time from process start to its first planned action (`to_planning`).
pub fn controller_killed_and_restarted(domain: u16) -> (Recovery, Summary) {
    let rec = Recorder::new(domain);
    let robot = Robot::new(domain);
    let go = Arc::new(AtomicBool::new(true));
    let pumping = {
        let go = go.clone();
        std::thread::spawn(move || {
            while go.load(Ordering::SeqCst) {
                robot.send(&[0.1, 0.0]);
                std::thread::sleep(PERIOD);
            }
        })
    };
    let mut first = controller(domain, &[]);
    let t0 = Instant::now();
    rec.wait_for(t0, Duration::from_secs(30), planned(0.1));
    std::thread::sleep(Duration::from_millis(300));
    let _ = first.kill();
    let _ = first.wait();
    let killed = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let silent = rec.between(killed + Duration::from_millis(50), Instant::now());
    let restart = Instant::now();
    let second = controller(domain, &[]);
    let to_planning = rec.wait_for(restart, Duration::from_secs(30), planned(0.1));
    std::thread::sleep(Duration::from_millis(300));
    go.store(false, Ordering::SeqCst);
    let _ = pumping.join();
    let (summary, _) = stop(second);
    assert!(
        silent.is_empty(),
        "actions after the controller was killed: {silent:?}"
    );
    (
        Recovery {
            fault: "controller process killed (SIGKILL) and restarted",
            to_safe: None,
            to_planning,
        },
        summary,
    )
}

/// A CPU-bound process pinned to the controller's core (the control
/// thread pinned with `realtime.cpu`) for `dur` while a good observation
/// streams at the control rate. Returns the controller's summary.
pub fn cpu_hog(domain: u16, dur: Duration) -> Summary {
    let rec = Recorder::new(domain);
    let robot = Robot::new(domain);
    let ctl = controller(domain, &["-p", "realtime.cpu:=0"]);
    let t0 = Instant::now();
    while rec.first_after(t0, planned(0.1)).is_none() && t0.elapsed() < Duration::from_secs(20) {
        robot.stream(&[0.1, 0.0], PERIOD, Duration::from_millis(50));
    }
    let mut hog = Command::new("taskset")
        .args(["-c", "0", "sh", "-c", "while :; do :; done"])
        .spawn()
        .expect("start the CPU hog");
    robot.stream(&[0.1, 0.0], PERIOD, dur);
    let _ = hog.kill();
    let _ = hog.wait();
    let (summary, _) = stop(ctl);
    summary
}
