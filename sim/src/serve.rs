//! `dream-mpc-sim serve`: a simulated robot speaking the controller's ROS 2
//! topics. Each control step it publishes the task's observation
//! (`std_msgs/msg/Float64MultiArray`), waits one control timestep of wall
//! time (divided by `speed`; 1 = real time, the default), applies the latest
//! received action (`std_msgs/msg/Float64MultiArray`) — holding the last one,
//! or the safe action, when none is fresh — and at each episode end prints
//! and publishes the return (`std_msgs/msg/Float64`).
//!
//! Each step it also publishes the reward the applied action earned
//! (`std_msgs/msg/Float64`, before the next observation), and before every
//! observation the index of the episode it belongs to
//! (`std_msgs/msg/Int64`; before the first one repeated while it waits for
//! the controller), so a subscriber discovered late still learns the
//! episode (a receiver counts an episode start when the index changes).
//!
//! Robustness knobs: Gaussian observation noise, and an action latency of a
//! whole number of control steps.
//!
//! With `--record <dir>` every step goes into a rosbag2/MCAP bag
//! (docs/BAGS.md): the observation published at step k (noise included),
//! the action applied at step k (after latency and hold), the reward it
//! earned, and the episode start; each episode's last observation is
//! written as a step without an action. Written in the stepping thread:
//! a step costs a CDR serialization and a copy into the MCAP chunk, a
//! zstd compression every ~1 MiB.

pub mod cli;
pub mod point_mass;

use crate::task::{Task, TaskError};
use dream_mpc::bag::write::{now_ns, BagOptions, BagWriter, Step};
use dream_mpc::msgs::{self, Float64, Float64MultiArray, Int64};
use dream_mpc::rng::Rng;
use dream_mpc::ros::config::Reliability;
use dream_mpc::ros::dds::{create_publisher, create_subscription, max_array_bytes, qos, NodeError};
use dream_mpc::ros::node::StopHandle;
use ros2_client::{Context, ContextOptions, NodeName, NodeOptions, Publisher, Subscription};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Tasks the robot node can serve: every task of [`crate::registry`] plus
/// the plumbing point mass used by the ROS 2 tests.
pub fn make_task(name: &str) -> Result<Box<dyn Task>, TaskError> {
    match name {
        point_mass::PointMass::NAME => Ok(Box::new(point_mass::PointMass::new())),
        _ => crate::registry::make(name).map_err(|e| match e {
            TaskError::UnknownTask { name, mut known } => {
                known.push(point_mass::PointMass::NAME.to_string());
                TaskError::UnknownTask { name, known }
            }
            other => other,
        }),
    }
}

/// What to do when no fresh action arrived for a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WhenStale {
    /// Keep applying the last action received.
    Hold,
    /// Apply the safe action (zeros).
    Safe,
}

/// Options of `serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeOptions {
    /// Task name (see `make_task`).
    #[arg(long)]
    pub task: String,
    /// Number of episodes; the node exits after the last.
    #[arg(long, default_value_t = 1)]
    pub episodes: usize,
    /// Seed of the first episode (episode i uses seed + i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop an episode after this many steps (default: the task's length).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Wall-clock speed-up (1 = real time; > 1 is faster than real time).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Standard deviation of Gaussian noise added to published observations.
    #[arg(long, default_value_t = 0.0)]
    pub obs_noise: f64,
    /// Standard deviation of Gaussian noise added to each received action
    /// (once per message, so a held action stays one action), the sum
    /// clipped to [-1, 1]; what is applied and recorded is the noisy
    /// action. Makes a weaker, more exploratory controller out of a good
    /// one, e.g. for offline-training data (docs/BAGS.md).
    #[arg(long, default_value_t = 0.0)]
    pub action_noise: f64,
    /// Extra delay, in control steps, before a received action is applied.
    #[arg(long, default_value_t = 0)]
    pub action_latency_steps: usize,
    /// An action older than this (seconds of wall time) is not fresh
    /// (default: 3 control periods).
    #[arg(long)]
    pub action_timeout_s: Option<f64>,
    /// What to apply when the action is not fresh.
    #[arg(long, value_enum, default_value_t = WhenStale::Hold)]
    pub when_stale: WhenStale,
    /// Wait up to this long (seconds) for the first action before each
    /// episode starts, republishing the first observation meanwhile.
    #[arg(long, default_value_t = 10.0)]
    pub wait_for_controller_s: f64,
    /// Topic names: relative ones resolve in the node's namespace
    /// (`--ros-args -r __ns:=/robot1`), and `--ros-args -r from:=to` rules
    /// apply (see `dream_mpc::ros::names`).
    #[arg(long, default_value = "observation")]
    pub observation_topic: String,
    #[arg(long, default_value = "action")]
    pub action_topic: String,
    #[arg(long, default_value = "episode_return")]
    pub return_topic: String,
    /// Per-step reward (`std_msgs/msg/Float64`), published before the next
    /// observation.
    #[arg(long, default_value = "reward")]
    pub reward_topic: String,
    /// Episode index (`std_msgs/msg/Int64`), published before every
    /// observation (a change of index starts an episode).
    #[arg(long, default_value = "episode")]
    pub episode_topic: String,
    /// Record every step into a new rosbag2/MCAP bag folder (docs/BAGS.md).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Node name and namespace (set from `--ros-args`, not flags).
    #[arg(skip = String::from(DEFAULT_NODE))]
    pub node_name: String,
    #[arg(skip = String::from("/"))]
    pub namespace: String,
}

/// Name of the robot node when no `-r __node:=` is given.
pub const DEFAULT_NODE: &str = "dream_mpc_sim";

/// One finished episode.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeReport {
    pub episode: usize,
    pub seed: u64,
    pub steps: usize,
    pub episode_return: f64,
    /// Steps where no fresh action was available.
    pub stale_steps: usize,
    /// Actions refused (wrong size or non-finite).
    pub rejected_actions: usize,
    pub actions_received: usize,
    /// Wall time of the episode.
    pub wall_s: f64,
}

impl EpisodeReport {
    pub fn to_json(&self) -> String {
        format!(
            "{{\"episode\":{},\"seed\":{},\"steps\":{},\"return\":{},\"stale_steps\":{},\"rejected_actions\":{},\"actions_received\":{},\"wall_s\":{}}}",
            self.episode,
            self.seed,
            self.steps,
            self.episode_return,
            self.stale_steps,
            self.rejected_actions,
            self.actions_received,
            self.wall_s
        )
    }
}

/// Why serving failed.
#[derive(Debug)]
pub enum ServeError {
    Dds(String),
    Task(TaskError),
    Options(String),
    /// Recording failed (the bag error names the file or topic).
    Record(dream_mpc::bag::write::BagError),
    /// No action arrived within `wait_for_controller_s`.
    NoController(f64),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Dds(m) => write!(f, "DDS: {m}"),
            ServeError::Task(e) => write!(f, "task: {e}"),
            ServeError::Options(m) => write!(f, "{m}"),
            ServeError::Record(e) => write!(f, "record: {e}"),
            ServeError::NoController(s) => {
                write!(
                    f,
                    "no action received within {s} s; is the controller running?"
                )
            }
        }
    }
}

impl std::error::Error for ServeError {}

impl From<NodeError> for ServeError {
    fn from(e: NodeError) -> Self {
        ServeError::Dds(e.0)
    }
}

fn dds<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> ServeError {
    move |e| ServeError::Dds(format!("{what}: {e:?}"))
}

/// Serve `task` on ROS domain `domain` until the episodes are done or
/// `stop` fires; `on_episode` sees each finished episode.
pub fn serve(
    mut task: Box<dyn Task>,
    opts: &ServeOptions,
    domain: u16,
    stop: &StopHandle,
    mut on_episode: impl FnMut(&EpisodeReport),
) -> Result<Vec<EpisodeReport>, ServeError> {
    if !(opts.speed.is_finite() && opts.speed > 0.0) {
        return Err(ServeError::Options(format!(
            "--speed {} must be a positive number",
            opts.speed
        )));
    }
    for (flag, v) in [
        ("--obs-noise", opts.obs_noise),
        ("--action-noise", opts.action_noise),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(ServeError::Options(format!("{flag} {v} must be >= 0")));
        }
    }
    let spec = task.spec().clone();
    let dt = Duration::from_secs_f64(spec.control_timestep / opts.speed);
    let timeout = Duration::from_secs_f64(opts.action_timeout_s.unwrap_or(3.0 * dt.as_secs_f64()));
    let steps = opts
        .max_steps
        .unwrap_or(spec.episode_len)
        .min(spec.episode_len);

    let ctx =
        Context::with_options(ContextOptions::new().domain_id(domain)).map_err(dds("context"))?;
    let mut node = ctx
        .new_node(
            NodeName::new(&opts.namespace, &opts.node_name).map_err(dds("node name"))?,
            NodeOptions::new().enable_rosout(false),
        )
        .map_err(dds("node"))?;
    let (q, q10) = (
        qos(Reliability::Reliable, 1),
        qos(Reliability::Reliable, 10),
    );
    let n = &mut node;
    let (array, float64) = (msgs::float64_multi_array_type(), msgs::float64_type());
    let obs_pub: Publisher<Float64MultiArray> =
        create_publisher(n, &opts.observation_topic, array.clone(), &q, "observation")?;
    // The robot's one reader: actions of the task's size, bounded so a
    // forged or oversized sample is dropped before it is buffered.
    let (act_sub, act_rx): (Subscription<Float64MultiArray>, _) = create_subscription(
        &ctx,
        n,
        &opts.action_topic,
        array,
        &q,
        "action",
        max_array_bytes(spec.action_size),
    )?;
    let ret_pub: Publisher<Float64> =
        create_publisher(n, &opts.return_topic, float64.clone(), &q10, "return")?;
    let reward_pub: Publisher<Float64> =
        create_publisher(n, &opts.reward_topic, float64, &q10, "reward")?;
    let episode_pub: Publisher<Int64> =
        create_publisher(n, &opts.episode_topic, msgs::int64_type(), &q10, "episode")?;
    let mut bag = match &opts.record {
        Some(dir) => {
            let mut o = BagOptions::new(spec.obs_size, spec.action_size);
            o.source = format!("dream-mpc-sim serve --task {}", opts.task);
            Some(BagWriter::create(dir, o).map_err(ServeError::Record)?)
        }
        None => None,
    };

    let mut noise = Rng::new(opts.seed ^ 0x5eed_0b5e);
    let mut obs = vec![0.0; spec.obs_size];
    // what was last published (noise included): the recorded observation
    let mut published = vec![0.0; spec.obs_size];
    let safe = vec![0.0; spec.action_size];
    let publish_obs = |obs: &[f64], published: &mut Vec<f64>, noise: &mut Rng| {
        for (p, x) in published.iter_mut().zip(obs) {
            *p = x + if opts.obs_noise > 0.0 {
                opts.obs_noise * noise.normal()
            } else {
                0.0
            };
        }
        let _ = obs_pub.publish(Float64MultiArray::vector("observation", published.clone()));
    };
    let mut act_noise = Rng::new(opts.seed ^ 0xac7_0b5e);
    // a received action with the configured noise (a wrong-sized or
    // non-finite one is kept as it is, to be rejected below)
    let mut perturb = |mut a: Vec<f64>| {
        if opts.action_noise > 0.0 && a.iter().all(|x| x.is_finite()) {
            for x in a.iter_mut() {
                *x = (*x + opts.action_noise * act_noise.normal()).clamp(-1.0, 1.0);
            }
        }
        a
    };
    let mut reports = Vec::new();
    // the bag's step index: counted from 0, never reset
    let mut record_index = 0u64;
    let mut run = || -> Result<(), ServeError> {
        for ep in 0..opts.episodes {
            if stop.stopped() {
                break;
            }
            let seed = opts.seed + ep as u64;
            task.reset(seed, &mut obs).map_err(ServeError::Task)?;
            // drop actions computed for a previous episode
            while let Ok(Some(_)) = act_sub.take() {}
            // wait for the controller: republish the episode index and the first
            // observation until an action comes back (a subscriber discovered late
            // still sees the episode start; receivers count a change of index)
            let wait_end = Instant::now() + Duration::from_secs_f64(opts.wait_for_controller_s);
            let mut last: Option<(Vec<f64>, Instant)> = None;
            let mut received = 0usize;
            while last.is_none() {
                if stop.stopped() {
                    return Ok(());
                }
                if Instant::now() > wait_end {
                    return Err(ServeError::NoController(opts.wait_for_controller_s));
                }
                let _ = episode_pub.publish(Int64 { data: ep as i64 });
                publish_obs(&obs, &mut published, &mut noise);
                std::thread::sleep(dt.min(Duration::from_millis(20)));
                while let Ok(Some((m, _))) = act_sub.take() {
                    received += 1;
                    last = Some((perturb(m.data), Instant::now()));
                }
            }
            // the controller has answered the first observation: step 0 applies
            // that answer, like the in-process loop does
            let mut queue: VecDeque<Vec<f64>> =
                VecDeque::with_capacity(opts.action_latency_steps + 1);
            let mut held = safe.clone();
            let (mut ret, mut stale, mut rejected) = (0.0, 0usize, 0usize);
            let start = Instant::now();
            publish_obs(&obs, &mut published, &mut noise);
            let mut next = start + dt;
            let mut done_steps = 0;
            for _ in 0..steps {
                if stop.stopped() {
                    break;
                }
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                next += dt;
                while let Ok(Some((m, _))) = act_sub.take() {
                    received += 1;
                    last = Some((perturb(m.data), Instant::now()));
                }
                let fresh = match &last {
                    Some((a, at)) if at.elapsed() <= timeout => Some(a.clone()),
                    _ => None,
                };
                let chosen = match fresh {
                    Some(a) if a.len() == spec.action_size && a.iter().all(|x| x.is_finite()) => a,
                    Some(_) => {
                        rejected += 1;
                        if opts.when_stale == WhenStale::Safe {
                            safe.clone()
                        } else {
                            held.clone()
                        }
                    }
                    None => {
                        stale += 1;
                        if opts.when_stale == WhenStale::Safe {
                            safe.clone()
                        } else {
                            held.clone()
                        }
                    }
                };
                held = chosen.clone();
                queue.push_back(chosen);
                let apply = if queue.len() > opts.action_latency_steps {
                    queue.pop_front().unwrap_or_else(|| safe.clone())
                } else {
                    safe.clone()
                };
                let t = now_ns();
                let r = task.step(&apply, &mut obs).map_err(ServeError::Task)?;
                if let Some(bag) = bag.as_mut() {
                    bag.write_step(&Step {
                        index: record_index,
                        time_ns: t,
                        observation: &published,
                        action: Some(&apply),
                        reward: Some(r.reward),
                        episode_start: (done_steps == 0).then_some(ep as i64),
                    })
                    .map_err(ServeError::Record)?;
                    record_index += 1;
                }
                ret += r.reward;
                done_steps += 1;
                let _ = reward_pub.publish(Float64 { data: r.reward });
                // the current index with every observation: a subscriber that
                // matched late still learns which episode it is in
                let _ = episode_pub.publish(Int64 { data: ep as i64 });
                publish_obs(&obs, &mut published, &mut noise);
                if r.done {
                    break;
                }
            }
            // the episode's last observation: no action followed it
            if let Some(bag) = bag.as_mut() {
                bag.write_step(&Step {
                    index: record_index,
                    time_ns: now_ns(),
                    observation: &published,
                    action: None,
                    reward: None,
                    episode_start: (done_steps == 0).then_some(ep as i64),
                })
                .map_err(ServeError::Record)?;
                record_index += 1;
            }
            let report = EpisodeReport {
                episode: ep,
                seed,
                steps: done_steps,
                episode_return: ret,
                stale_steps: stale,
                rejected_actions: rejected,
                actions_received: received,
                wall_s: start.elapsed().as_secs_f64(),
            };
            let _ = ret_pub.publish(Float64 { data: ret });
            on_episode(&report);
            reports.push(report);
        }
        Ok(())
    };
    let result = run();
    act_rx.report();
    // close the bag whatever ended the run, so it has its summary and metadata.yaml
    let closed = match bag.take() {
        Some(b) => b.close().map(|_| ()).map_err(ServeError::Record),
        None => Ok(()),
    };
    result?;
    closed?;
    std::thread::sleep(Duration::from_millis(30));
    Ok(reports)
}

/// The same episode in-process, without DDS: `policy(obs, action)` is
/// called at every step on the exact observation. Returns (return, steps).
pub fn episode_in_process(
    task: &mut dyn Task,
    seed: u64,
    max_steps: usize,
    mut policy: impl FnMut(&[f64], &mut [f64]),
) -> Result<(f64, usize), TaskError> {
    let spec = task.spec().clone();
    let mut obs = vec![0.0; spec.obs_size];
    let mut act = vec![0.0; spec.action_size];
    task.reset(seed, &mut obs)?;
    let (mut ret, mut n) = (0.0, 0);
    for _ in 0..max_steps.min(spec.episode_len) {
        policy(&obs, &mut act);
        let r = task.step(&act, &mut obs)?;
        ret += r.reward;
        n += 1;
        if r.done {
            break;
        }
    }
    Ok((ret, n))
}
