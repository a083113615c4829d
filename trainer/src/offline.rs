//! Offline training from robot logs (docs/BAGS.md, "Training from
//! bags"): `dream-mpc-train train --offline <bag>... [--init DIR]`.
//!
//! [`load_logs`] reads rosbag2/MCAP bags with [`dream_mpc::bag::read`] and
//! turns each stretch of logged steps into agent steps: `g` consecutive
//! logged steps that applied the same action are one agent step (the
//! action, the summed reward, the observation after the `g`-th); where the
//! action changes inside a group (a controller whose ticks drift against
//! the robot's steps) the run ends there and a new one starts one logged
//! step later, so every agent step is one held action, as the model
//! assumes. Runs are cut into windows of `window` agent steps (the last one
//! aligned to the run's end, so no transition is lost) that become the
//! replay's equal-length episodes. Rewards are the logs' own, or computed
//! by the registry task named in `reward_from`.
//!
//! [`train_offline`] then runs the online trainer's update (TD-MPC2's
//! losses, [`crate::learner`]) on that replay for `--updates` updates,
//! with no environment: every `eval_every` updates it exports a bundle,
//! evaluates the policy mean and the robot's planner on the simulator when
//! the task is in the registry (else only the losses are logged), and
//! checkpoints. `--init` starts from a checkpoint or a bundle
//! ([`crate::init`]).

use crate::checkpoint::{self, State};
use crate::config::{TrainConfig, TrainError};
use crate::init::InitSource;
use crate::learner::{Learner, PendingLosses};
use crate::metrics::{write_csv, Losses, Metrics};
use crate::plot::{self, XAxis};
use crate::replay::Replay;
use crate::train::{evaluate, export_with, prepare_output, RunOptions, RunSummary};
use dream_mpc::bag::read::{read, Episode, ReadOptions};
use dream_mpc_sim::task::{Task, TaskSpec};
use std::fmt;
use std::path::{Path, PathBuf};

/// Which logs, and how they map onto agent steps.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Bag folders and/or `.mcap` files.
    pub paths: Vec<PathBuf>,
    /// Logged steps per agent step. `None`: from each log's period and the
    /// task's agent step (control timestep x `action_repeat`): 2 for the
    /// sim's recordings at real time, 1 for the node's at one plan per
    /// agent step.
    pub log_repeat: Option<usize>,
    /// Agent steps per replay window (must exceed the training horizon);
    /// `None`: [`default_window`].
    pub window: Option<usize>,
    /// Train even when fewer than half of the logged steps are usable
    /// (`--allow-partial-logs`); by default that stops with the counts.
    pub allow_partial: bool,
}

/// Largest magnitude of a logged observation or reward trained on. The
/// model computes in f32 and squares its inputs (LayerNorm's variance,
/// the losses) over rows of up to thousands of elements: 1e9 squared and
/// summed stays far below f32's 3.4e38, while a value such as 1e30 turns
/// the first LayerNorm into NaN and the value targets' two-hot bin index
/// into -2^63 (a panic inside libtorch). Robot data is many orders of
/// magnitude below it.
pub const LOG_VALUE_MAX: f64 = 1e9;

/// Two training subsequences (`horizon + 1` observations each) per
/// window: 8 at TD-MPC2's horizon 3. Short windows lose little where a
/// controller's ticks drift against the robot's steps and runs of held
/// actions are short (the sim's HIL recordings: one break every ~30
/// agent steps); the cost is one extra observation row per window.
pub fn default_window(horizon: usize) -> usize {
    2 * (horizon + 1)
}

/// What [`load_logs`] made of the logs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetReport {
    /// The reader's report (per source: episodes, gaps, truncation).
    pub read: String,
    /// Stretches of consecutive logged steps (episodes, or parts of one
    /// split at gaps).
    pub stretches: usize,
    pub logged_transitions: u64,
    /// Logged steps per agent step used for each source.
    pub log_repeat: Vec<(PathBuf, usize)>,
    /// Distinct agent steps in the replay, and its windows.
    pub agent_steps: u64,
    pub windows: usize,
    /// Places where the action changed inside an agent step (a logged step
    /// skipped and the run restarted).
    pub action_changes: u64,
    /// Agent steps in runs shorter than a window (not used).
    pub short_run_steps: u64,
    /// Logged steps at the ends of runs that did not fill an agent step.
    pub tail_steps: u64,
    /// Where the rewards came from.
    pub reward: String,
    /// Mean reward per agent step of the data.
    pub mean_reward: f64,
}

impl fmt::Display for DatasetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.read)?;
        let repeats: Vec<String> = self
            .log_repeat
            .iter()
            .map(|(p, g)| format!("{} x{g}", p.display()))
            .collect();
        writeln!(
            f,
            "dataset: {} logged transitions in {} stretches -> {} agent steps in {} windows \
             (logged steps per agent step: {}); rewards {}, mean {:.4} per agent step",
            self.logged_transitions,
            self.stretches,
            self.agent_steps,
            self.windows,
            repeats.join(", "),
            self.reward,
            self.mean_reward
        )?;
        write!(
            f,
            "not used: {} action changes inside an agent step, {} agent steps in runs shorter \
             than a window, {} logged steps at run ends",
            self.action_changes, self.short_run_steps, self.tail_steps
        )
    }
}

/// Logged steps per agent step for a log with period `period_s`.
fn auto_repeat(
    source: &Path,
    period_s: f64,
    spec: Option<&TaskSpec>,
    action_repeat: usize,
) -> Result<usize, TrainError> {
    let Some(spec) = spec else {
        return Err(TrainError::Config(
            "--log-repeat is needed when the task is not in the registry (how many logged \
             steps make one agent step)"
                .into(),
        ));
    };
    let agent_dt = spec.control_timestep * action_repeat as f64;
    let g = agent_dt / period_s;
    let r = g.round();
    if !(r >= 1.0 && (g - r).abs() <= 0.2) {
        return Err(TrainError::Logs(format!(
            "{}: logged every {period_s:.4} s, the task's agent step is {agent_dt:.4} s \
             ({action_repeat} x {} s): not a whole number of logged steps; pass --log-repeat",
            source.display(),
            spec.control_timestep
        )));
    }
    Ok(r as usize)
}

/// One stretch's rewards: computed by `judge` when given, else the log's.
fn rewards_of(ep: &Episode, judge: Option<&dyn Task>) -> Result<Vec<f64>, TrainError> {
    let Some(t) = judge else {
        return ep.rewards.clone().ok_or_else(|| {
            TrainError::Logs(format!(
                "{}: no reward for every step (topic /dream_mpc/reward); set `reward_from` in \
                 the config to a registry task whose reward the observation holds \
                 (docs/BAGS.md)",
                ep.source.display()
            ))
        });
    };
    (0..ep.len())
        .map(|k| {
            t.reward_from_observation(ep.action(k), ep.obs(k + 1))
                .ok_or_else(|| {
                    TrainError::Config(format!(
                        "reward_from '{}': this task's reward is not computable from its \
                         observation",
                        t.spec().name
                    ))
                })
        })
        .collect()
}

/// Read the logs into a replay of `opts.window`-step windows of agent
/// steps (see the module docs). `spec` is the task's when it is in the
/// registry (sizes, period check); the observation and action sizes must
/// match it, else the reader's error names the file, topic and time.
pub fn load_logs(
    opts: &LogOptions,
    cfg: &TrainConfig,
    spec: Option<&TaskSpec>,
) -> Result<(Replay, DatasetReport), TrainError> {
    if opts.paths.is_empty() {
        return Err(TrainError::Config("--offline names no bag".into()));
    }
    let w = opts.window.unwrap_or_else(|| default_window(cfg.horizon));
    if w <= cfg.horizon {
        return Err(TrainError::Config(format!(
            "--window {w} must exceed the horizon {}",
            cfg.horizon
        )));
    }
    if opts.log_repeat == Some(0) {
        return Err(TrainError::Config("--log-repeat 0 must be >= 1".into()));
    }
    let judge = match &cfg.reward_from {
        Some(name) => Some(crate::tasks::make(name).map_err(TrainError::Task)?),
        None => None,
    };
    let sizes = spec.or(judge.as_ref().map(|t| t.spec()));
    let ro = ReadOptions {
        obs_size: sizes.map(|s| s.obs_size),
        action_size: sizes.map(|s| s.action_size),
        ..ReadOptions::default()
    };
    let (episodes, read_report) =
        read(&opts.paths, &ro).map_err(|e| TrainError::Logs(e.to_string()))?;
    let first = episodes.first().ok_or_else(|| {
        TrainError::Logs(format!("no transition in {:?}\n{read_report}", opts.paths))
    })?;
    let (o, a) = (first.obs_size, first.action_size);
    let mut replay = Replay {
        obs_size: o,
        action_size: a,
        len: w,
        ..Default::default()
    };
    let mut rep = DatasetReport {
        read: read_report.to_string(),
        reward: match &cfg.reward_from {
            Some(t) => format!("computed by {t}'s reward function"),
            None => "as recorded".into(),
        },
        ..Default::default()
    };
    let mut reward_sum = 0.0;
    // Logged steps inside the agent steps trained on.
    let mut used_steps = 0u64;
    for ep in &episodes {
        if (ep.obs_size, ep.action_size) != (o, a) {
            return Err(TrainError::Logs(format!(
                "{}: observation {} / action {}, while {} has {o} / {a}",
                ep.source.display(),
                ep.obs_size,
                ep.action_size,
                first.source.display()
            )));
        }
        for (what, values, width) in [
            ("observation", &ep.observations, o),
            ("reward", ep.rewards.as_ref().unwrap_or(&Vec::new()), 1),
        ] {
            if let Some((k, v)) = values
                .iter()
                .enumerate()
                .find(|(_, v)| v.is_nan() || v.abs() > LOG_VALUE_MAX)
            {
                return Err(TrainError::Logs(format!(
                    "{}: {what} value {v:e} at step {} of the stretch starting at sequence {}                      (log_time {} ns) is beyond {LOG_VALUE_MAX:e}; the model cannot train on it",
                    ep.source.display(),
                    k / width.max(1),
                    ep.start_sequence,
                    ep.start_ns
                )));
            }
        }
        if let Some((k, v)) = ep
            .actions
            .iter()
            .enumerate()
            .find(|(_, v)| v.is_nan() || v.abs() > 1.0 + 1e-9)
        {
            return Err(TrainError::Logs(format!(
                "{}: action {v} at step {} of the stretch starting at sequence {} is outside \
                 [-1, 1]; the model learns normalized actions (record the sim, or a node \
                 with unit action scale and zero offset)",
                ep.source.display(),
                k / a,
                ep.start_sequence
            )));
        }
        let g = match opts.log_repeat {
            Some(g) => g,
            None => {
                let period = read_report
                    .sources
                    .iter()
                    .find(|s| s.source == ep.source)
                    .map(|s| s.period_s)
                    .unwrap_or(f64::NAN);
                auto_repeat(&ep.source, period, spec, cfg.action_repeat)?
            }
        };
        if !rep.log_repeat.iter().any(|(p, _)| *p == ep.source) {
            rep.log_repeat.push((ep.source.clone(), g));
        }
        let rewards = rewards_of(ep, judge.as_deref())?;
        rep.stretches += 1;
        rep.logged_transitions += ep.len() as u64;
        // runs of agent steps: (first logged step, agent steps)
        let n = ep.len();
        let mut runs = Vec::new();
        let (mut k, mut start, mut count) = (0usize, 0usize, 0usize);
        while k + g <= n {
            if (1..g).all(|j| ep.action(k + j) == ep.action(k)) {
                count += 1;
                k += g;
            } else {
                runs.push((start, count));
                rep.action_changes += 1;
                k += 1;
                (start, count) = (k, 0);
            }
        }
        runs.push((start, count));
        rep.tail_steps += (n - k) as u64;
        for (s, c) in runs {
            if c < w {
                rep.short_run_steps += c as u64;
                continue;
            }
            rep.agent_steps += c as u64;
            used_steps += (c * g) as u64;
            let mut starts: Vec<usize> = (0..=c - w).step_by(w).collect();
            if starts.last() != Some(&(c - w)) {
                starts.push(c - w);
            }
            for w0 in starts {
                let at = |i: usize| s + (w0 + i) * g;
                let obs: Vec<f32> = (0..=w)
                    .flat_map(|i| ep.obs(at(i)).iter().map(|&v| v as f32))
                    .collect();
                let acts: Vec<f32> = (0..w)
                    .flat_map(|i| ep.action(at(i)).iter().map(|&v| v as f32))
                    .collect();
                let rews: Vec<f32> = (0..w)
                    .map(|i| rewards[at(i)..at(i) + g].iter().sum::<f64>() as f32)
                    .collect();
                replay.push_episode(&obs, &acts, &rews);
                rep.windows += 1;
            }
            reward_sum += (0..c)
                .map(|i| rewards[s + i * g..s + (i + 1) * g].iter().sum::<f64>())
                .sum::<f64>();
        }
    }
    if rep.windows == 0 {
        return Err(TrainError::Logs(format!(
            "no run of {w} agent steps in the logs (lower --window)\n{rep}"
        )));
    }
    rep.mean_reward = reward_sum / rep.agent_steps as f64;
    // Most of the log unusable means the data is not what it seems (a
    // damaged file, the wrong repeat, a controller that never held its
    // actions): stop and say so unless asked to go on.
    let logged: u64 = read_report.sources.iter().map(|s| s.steps).sum();
    if 2 * used_steps < logged && !opts.allow_partial {
        return Err(TrainError::Logs(format!(
            "only {used_steps} of {logged} logged steps are usable (fewer than half);              pass --allow-partial-logs to train on them\n{rep}"
        )));
    }
    Ok((replay, rep))
}

/// Options of an offline run besides the configuration.
#[derive(Clone, Debug)]
pub struct OfflineOptions {
    pub logs: LogOptions,
    /// Starting weights: a checkpoint or run folder, or a bundle.
    pub init: Option<PathBuf>,
    /// Gradient updates in all.
    pub updates: u64,
    /// Evaluate, export and checkpoint every this many updates.
    pub eval_every: u64,
}

/// Updates between two training rows of metrics.csv (their mean losses).
const CHUNK: u64 = 100;

/// Train from logs: see the module docs. `task` is the registry task for
/// evaluation, `None` for a task the registry lacks (losses only).
pub fn train_offline(
    cfg: &TrainConfig,
    mut task: Option<Box<dyn Task>>,
    run: &RunOptions,
    off: &OfflineOptions,
) -> Result<RunSummary, TrainError> {
    let mut cfg = cfg.clone();
    let init = off.init.as_deref().map(InitSource::find).transpose()?;
    if let Some(src) = &init {
        cfg.model = src.model_config(&cfg.model)?;
    }
    cfg.validate()?;
    if run.resume {
        return Err(TrainError::Config(
            "--resume continues online runs; continue an offline run with --init <its --out>"
                .into(),
        ));
    }
    if off.updates == 0 || off.eval_every == 0 {
        return Err(TrainError::Config(format!(
            "--updates {} and --eval-every {} must be > 0",
            off.updates, off.eval_every
        )));
    }
    let spec = task.as_ref().map(|t| t.spec().clone());
    let (replay, report) = load_logs(&off.logs, &cfg, spec.as_ref())?;
    prepare_output(run)?;
    std::fs::write(run.out.join("dataset.txt"), format!("{report}\n"))
        .map_err(crate::config::io(&run.out))?;
    let say = |m: String| {
        if run.progress {
            eprintln!("{m}");
        }
    };
    say(report.to_string());
    let mut agent = Learner::new(
        &cfg,
        replay.obs_size,
        replay.action_size,
        replay.len * cfg.action_repeat,
        run.device,
    );
    agent.replay = replay;
    let mut planner = None;
    if let Some(src) = &init {
        say(format!("starting from {}", src.apply(&mut agent)?));
        planner = src.planner()?;
    } else {
        say(format!(
            "from scratch: latent {} hidden {} n_q {} bins {}",
            cfg.model.latent, cfg.model.hidden, cfg.model.n_q, cfg.model.num_bins
        ));
    }
    if task.is_none() {
        say(format!(
            "task '{}' is not in the registry: no evaluation, model losses only",
            cfg.task
        ));
    }
    let mut state = State::fresh(&cfg);
    state.env_step = report.logged_transitions;
    state.agent_step = report.agent_steps;
    let ckdir = run.out.join("checkpoint");
    let csv = run.out.join("metrics.csv");
    let t0 = std::time::Instant::now();
    let bar = run.progress.then(|| {
        let b = indicatif::ProgressBar::new(off.updates);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} updates {per_sec} eta {eta} {msg}",
            )
            .expect("template"),
        );
        b
    });
    let mut losses_all: Vec<Losses> = Vec::new();
    let mut bundle = run.out.join("bundle");
    let has_task = task.is_some();
    let mut evaluate_now = |agent: &Learner, state: &mut State, last: Losses| {
        let dir = run.out.join("bundle");
        bundle = export_with(
            agent,
            &dir,
            state.agent_step,
            &cfg,
            planner.as_ref(),
            run.revision.as_deref(),
        )?;
        let (eval, plan) = match task.as_mut() {
            Some(t) => {
                let (e, p) = evaluate(t.as_mut(), agent, &cfg, &bundle, agent.updates)?;
                (Some(e), Some(p))
            }
            None => (None, None),
        };
        state.metrics.push(Metrics {
            agent_step: state.agent_step,
            env_step: state.env_step,
            episode: state.episode,
            episode_return: None,
            eval_return: eval,
            eval_planner_return: plan,
            refresh_ms: None,
            consistency_loss: last.consistency,
            reward_loss: last.reward,
            value_loss: last.value,
            policy_loss: last.policy,
            pi_log_std: last.pi_log_std,
            q_scale: last.q_scale,
            updates: agent.updates,
            updates_per_s: None,
            wall_s: t0.elapsed().as_secs_f64(),
        });
        if let (Some(b), Some(e), Some(p)) = (&bar, eval, plan) {
            b.println(format!(
                "update {}: eval return policy {e:.1}, planner {p:.1}",
                agent.updates
            ));
        }
        state.wall_s = t0.elapsed().as_secs_f64();
        checkpoint::save(agent, &ckdir, state)?;
        write_csv(&csv, &state.metrics)?;
        if has_task {
            let _ = plot::learning_curve(
                &run.out.join("learning_curve.png"),
                &cfg.task,
                &state.metrics,
                XAxis::Updates,
            );
        }
        let _ = plot::loss_curve(&run.out.join("loss_curve.png"), &cfg.task, &state.metrics);
        Ok::<(), TrainError>(())
    };
    if has_task {
        // the starting point: a random model, or the one fine-tuned
        evaluate_now(&agent, &mut state, Losses::default())?;
    }
    let mut next_eval = off.eval_every;
    let mut t_chunk = std::time::Instant::now();
    while agent.updates < off.updates {
        let n = CHUNK.min(off.updates - agent.updates);
        let pending: Vec<PendingLosses> = (0..n).map(|_| agent.update_pending()).collect();
        let read = PendingLosses::read_all(&pending);
        let mean = |f: fn(&Losses) -> f64| read.iter().map(f).sum::<f64>() / read.len() as f64;
        let chunk = Losses {
            consistency: mean(|l| l.consistency),
            reward: mean(|l| l.reward),
            value: mean(|l| l.value),
            policy: mean(|l| l.policy),
            pi_log_std: mean(|l| l.pi_log_std),
            q_scale: read.last().map_or(0.0, |l| l.q_scale),
        };
        losses_all.extend(read);
        let chunk_s = t_chunk.elapsed().as_secs_f64();
        t_chunk = std::time::Instant::now();
        state.metrics.push(Metrics {
            agent_step: state.agent_step,
            env_step: state.env_step,
            episode: 0,
            episode_return: None,
            eval_return: None,
            eval_planner_return: None,
            refresh_ms: None,
            consistency_loss: chunk.consistency,
            reward_loss: chunk.reward,
            value_loss: chunk.value,
            policy_loss: chunk.policy,
            pi_log_std: chunk.pi_log_std,
            q_scale: chunk.q_scale,
            updates: agent.updates,
            updates_per_s: Some(n as f64 / chunk_s.max(1e-9)),
            wall_s: t0.elapsed().as_secs_f64(),
        });
        if let Some(b) = &bar {
            b.set_position(agent.updates);
            b.set_message(format!(
                "cons {:.4} rew {:.4} val {:.3} pi {:.3}",
                chunk.consistency, chunk.reward, chunk.value, chunk.policy
            ));
        }
        if agent.updates >= next_eval || agent.updates >= off.updates {
            state.episode += 1;
            evaluate_now(&agent, &mut state, chunk)?;
            while next_eval <= agent.updates {
                next_eval += off.eval_every;
            }
        }
    }
    if let Some(b) = &bar {
        b.finish();
    }
    let wall_s = t0.elapsed().as_secs_f64();
    Ok(RunSummary::of(state, &agent, losses_all, bundle, wall_s))
}
