//! The training run: collect an episode, update, evaluate, export and
//! checkpoint, until `steps` agent steps (TD-MPC2's unit, `action_repeat`
//! control steps each). A run stops cleanly on a stop request (SIGINT or
//! SIGTERM through [`RunOptions::stop`]): it finishes the update under way,
//! writes a checkpoint (the updates still owed included) and returns.
//!
//! The roles live in their own modules: [`crate::config`] (configuration,
//! errors, device), [`crate::replay`], [`crate::learner`] (losses and the
//! update), [`crate::optim`], [`crate::checkpoint`], [`crate::collect`]
//! (episodes), [`crate::metrics`] and [`crate::plot`]. This module only
//! sequences them.

use crate::checkpoint::{self, State};
use crate::collect::{run_episode, EpisodeMode};
use crate::export::{default_planner, export_bundle, ExportMeta};
use crate::learner::{seeded, PendingLosses, STREAM_EPISODE, STREAM_EVAL};
use crate::metrics::{write_csv, Losses, Metrics};
use dream_mpc::agent::Agent as PlannerAgent;
use dream_mpc::bundle::manifest::{PlannerDefaults, Provenance};
use dream_mpc::load::Bundle;
use dream_mpc::planner::PlannerKind;
use dream_mpc_sim::task::Task;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tch::Device;

pub use crate::config::{Collect, DeviceChoice, TrainConfig, TrainError};
pub use crate::learner::{Learner, UpdatePath};
pub use crate::replay::Replay;

/// Options of one run besides the configuration.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out: PathBuf,
    pub resume: bool,
    pub progress: bool,
    /// Stop after this many agent steps of THIS invocation (for tests of
    /// resume); `None` runs to `steps`.
    pub stop_after: Option<u64>,
    /// Learner device (resolved from `--device`); acting and export
    /// references stay on the CPU.
    pub device: Device,
    /// Set (by a signal handler) to stop: the run finishes the update
    /// under way, checkpoints and returns. `None`: never asked.
    pub stop: Option<Arc<AtomicBool>>,
    /// Source revision recorded in exported bundles' provenance.
    pub revision: Option<String>,
}

impl RunOptions {
    /// Options for a run into `out` on the CPU: no resume, no progress
    /// bar, no stop flag, no revision.
    pub fn new(out: impl Into<PathBuf>) -> RunOptions {
        RunOptions {
            out: out.into(),
            resume: false,
            progress: false,
            stop_after: None,
            device: Device::Cpu,
            stop: None,
            revision: None,
        }
    }

    /// Whether a stop was requested.
    pub fn stopping(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// Result of a run.
#[derive(Debug)]
pub struct RunSummary {
    pub agent_steps: u64,
    pub env_steps: u64,
    /// Whether the run stopped on a stop request before `steps`.
    pub interrupted: bool,
    pub updates: u64,
    pub metrics: Vec<Metrics>,
    /// Losses of every update of this invocation, in order.
    pub losses: Vec<Losses>,
    pub bundle: PathBuf,
    pub wall_s: f64,
}

impl RunSummary {
    /// The summary of a run that ended in `state` with `agent`.
    pub(crate) fn of(
        state: State,
        agent: &Learner,
        losses: Vec<Losses>,
        bundle: PathBuf,
        wall_s: f64,
    ) -> RunSummary {
        RunSummary {
            agent_steps: state.agent_step,
            env_steps: state.env_step,
            interrupted: false,
            updates: agent.updates,
            metrics: state.metrics,
            losses,
            bundle,
            wall_s,
        }
    }
}

/// Check the output folder before anything runs: creatable, writable, and
/// not holding a run unless resuming. Nothing is overwritten on error.
pub(crate) fn prepare_output(opts: &RunOptions) -> Result<(), TrainError> {
    let out = &opts.out;
    let ckdir = out.join("checkpoint");
    let found = checkpoint::existing(&ckdir);
    if found.is_some() && !opts.resume {
        return Err(TrainError::Output {
            path: out.clone(),
            why: "holds a training run (checkpoint/state.json); pass --resume or choose another --out"
                .into(),
        });
    }
    if opts.resume && found.is_none() {
        return Err(TrainError::Resume(format!(
            "no checkpoint at {}",
            ckdir.join("state.json").display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::Output {
        path: out.clone(),
        why: format!("cannot create: {e}"),
    })?;
    let probe = out.join(".write-probe");
    std::fs::write(&probe, b"ok").map_err(|e| TrainError::Output {
        path: out.clone(),
        why: format!("not writable: {e}"),
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The planner evaluated during training: the one that runs on the robot.
pub const EVAL_PLANNER: PlannerKind = PlannerKind::DreamMpc;

/// Export the current weights (through a CPU copy) as a bundle in `dir`,
/// with the trainer's planner defaults.
pub fn export(
    agent: &Learner,
    dir: &Path,
    agent_step: u64,
    cfg: &TrainConfig,
    revision: Option<&str>,
) -> Result<PathBuf, TrainError> {
    export_with(agent, dir, agent_step, cfg, None, revision)
}

/// [`export`] with the manifest's planner section given (fine-tuning keeps
/// the one its starting bundle was shipped and tested with); `None`: the
/// trainer's defaults. `agent_step` goes into the provenance's
/// `training_steps` (agent steps).
pub fn export_with(
    agent: &Learner,
    dir: &Path,
    agent_step: u64,
    cfg: &TrainConfig,
    planner: Option<&PlannerDefaults>,
    revision: Option<&str>,
) -> Result<PathBuf, TrainError> {
    let (o, a) = (agent.model.obs_size, agent.model.action_size);
    let mut meta = ExportMeta::plain(&cfg.task, o, a);
    meta.discount = cfg.discount as f32;
    meta.action_repeat = cfg.action_repeat;
    meta.obs_range = agent.replay.obs_range();
    meta.planner = planner.cloned().unwrap_or_else(default_planner);
    meta.provenance = Provenance {
        producer: format!("dream-mpc-train {}", env!("CARGO_PKG_VERSION")),
        training_steps: agent_step,
        seed: cfg.seed,
        revision: revision.map(str::to_string),
        notes: Some(format!(
            "TD-MPC2-style, latent {} hidden {} n_q {}, action_repeat {}; training_steps in agent steps",
            cfg.model.latent, cfg.model.hidden, cfg.model.n_q, cfg.action_repeat
        )),
    };
    agent.with_cpu_model(|m| export_bundle(m, &meta, dir, cfg.seed))?;
    Ok(dir.to_path_buf())
}

/// Mean returns of `cfg.eval_episodes` episodes of `task` acted by the
/// policy mean and by [`EVAL_PLANNER`] on the bundle in `bundle` (the
/// controller's own code), seeded from `key` (the same seeds for both).
pub fn evaluate(
    task: &mut dyn Task,
    agent: &Learner,
    cfg: &TrainConfig,
    bundle: &Path,
    key: u64,
) -> Result<(f64, f64), TrainError> {
    let b = Bundle::load(bundle).map_err(|e| TrainError::Agent(e.to_string()))?;
    let (mut total, mut total_plan) = (0.0, 0.0);
    for e in 0..cfg.eval_episodes {
        let s = seeded(cfg.seed, STREAM_EVAL, key * 1000 + e as u64).next_u64();
        let (_, _, _, r) = run_episode(task, agent, cfg, s, EpisodeMode::Eval, 0)?;
        total += r;
        let mut p = PlannerAgent::with_defaults(&b, EVAL_PLANNER, s)
            .map_err(|e| TrainError::Agent(e.to_string()))?;
        let (_, _, _, r) = run_episode(task, agent, cfg, s, EpisodeMode::Planner(&mut p), 0)?;
        total_plan += r;
    }
    let n = cfg.eval_episodes as f64;
    Ok((total / n, total_plan / n))
}

/// Train online on `task` (made by the caller from `cfg.task`).
///
/// Cost: one episode of acting (the planner on a bundle exported from the
/// current weights, or the policy), then `agent steps x updates_per_step`
/// updates, per loop; a checkpoint at every evaluation and at least every
/// `checkpoint_minutes`.
pub fn train(
    cfg: &TrainConfig,
    mut task: Box<dyn Task>,
    opts: &RunOptions,
) -> Result<RunSummary, TrainError> {
    cfg.validate()?;
    let spec = task.spec().clone();
    if spec.name != cfg.task {
        return Err(TrainError::Config(format!(
            "task '{}' was requested but the task given is '{}'",
            cfg.task, spec.name
        )));
    }
    let agent_len = cfg.agent_episode_len(spec.episode_len);
    if cfg.horizon >= agent_len {
        return Err(TrainError::Config(format!(
            "horizon = {} must be below the episode's {agent_len} agent steps",
            cfg.horizon
        )));
    }
    prepare_output(opts)?;
    let mut agent = Learner::new(
        cfg,
        spec.obs_size,
        spec.action_size,
        spec.episode_len,
        opts.device,
    );
    let ckdir = opts.out.join("checkpoint");
    let mut state = if opts.resume {
        checkpoint::restore(&mut agent, &ckdir, cfg)?
    } else {
        State::fresh(cfg)
    };
    let csv_path = opts.out.join("metrics.csv");
    let t0 = std::time::Instant::now();
    let wall0 = state.wall_s;
    let revision = opts.revision.as_deref();
    let agent_per_episode = agent_len as u64;
    let env_per_episode = cfg.env_episode_len(spec.episode_len) as u64;
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(cfg.steps);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} agent steps {per_sec} eta {eta} {msg}",
            )
            .expect("template"),
        );
        b.set_position(state.agent_step);
        Some(b)
    } else {
        None
    };
    let start_step = state.agent_step;
    let seed_steps = cfg.seed_agent_steps(spec.episode_len);
    let mut losses_all = Vec::new();
    let mut last = Losses::default();
    let mut bundle = opts.out.join("bundle");
    // The run's bundle (evaluated, and shipped when the run ends).
    let export_run =
        |agent: &Learner, step: u64| export(agent, &opts.out.join("bundle"), step, cfg, revision);
    let ck_every = std::time::Duration::from_secs_f64(cfg.checkpoint_minutes * 60.0);
    let mut last_ck = std::time::Instant::now();
    let (mut rate_t, mut rate_u) = (std::time::Instant::now(), agent.updates);
    let save = |agent: &Learner, state: &mut State| -> Result<(), TrainError> {
        state.wall_s = wall0 + t0.elapsed().as_secs_f64();
        checkpoint::save(agent, &ckdir, state)?;
        write_csv(&csv_path, &state.metrics)
    };
    // Updates owed when the last invocation was stopped mid-burst.
    let mut interrupted = pay_updates(&mut agent, &mut state, opts, &mut losses_all, &mut last);
    while !interrupted && state.agent_step < cfg.steps {
        if let Some(n) = opts.stop_after {
            if state.agent_step - start_step >= n {
                break;
            }
        }
        if opts.stopping() {
            interrupted = true;
            break;
        }
        let ep_seed = seeded(cfg.seed, STREAM_EPISODE, state.episode).next_u64();
        let k0 = state.episode * agent.replay.len as u64;
        let seeding = state.agent_step < seed_steps;
        let mut refresh_ms = None;
        let (obs, acts, rews, ret) = match cfg.collect.planner() {
            Some(kind) if !seeding => {
                // Refresh the robot-side agent from the current weights.
                let t = std::time::Instant::now();
                let dir = export(
                    &agent,
                    &opts.out.join("collect-bundle"),
                    state.agent_step,
                    cfg,
                    revision,
                )?;
                let b = Bundle::load(&dir).map_err(|e| TrainError::Agent(e.to_string()))?;
                let mut p = PlannerAgent::with_defaults(&b, kind, ep_seed)
                    .map_err(|e| TrainError::Agent(e.to_string()))?;
                refresh_ms = Some(t.elapsed().as_secs_f64() * 1e3);
                let mode = EpisodeMode::Planner(&mut p);
                run_episode(task.as_mut(), &agent, cfg, ep_seed, mode, k0)?
            }
            _ => {
                let mode = if seeding {
                    EpisodeMode::Random
                } else {
                    EpisodeMode::Policy
                };
                run_episode(task.as_mut(), &agent, cfg, ep_seed, mode, k0)?
            }
        };
        agent.replay.push_episode(&obs, &acts, &rews);
        let before = state.agent_step;
        state.agent_step += agent_per_episode;
        state.env_step += env_per_episode;
        state.episode += 1;
        // Updates owed for this episode's agent steps once past the seed
        // phase; the first time, one update per seed agent step as well.
        if state.agent_step >= seed_steps {
            let ups = cfg.updates_per_step as u64;
            state.owed_updates += if before < seed_steps {
                state.agent_step * ups
            } else {
                agent_per_episode * ups
            };
            interrupted = pay_updates(&mut agent, &mut state, opts, &mut losses_all, &mut last);
        }
        let wall = wall0 + t0.elapsed().as_secs_f64();
        let rate = (agent.updates - rate_u) as f64 / rate_t.elapsed().as_secs_f64().max(1e-9);
        (rate_t, rate_u) = (std::time::Instant::now(), agent.updates);
        state.metrics.push(Metrics {
            agent_step: state.agent_step,
            env_step: state.env_step,
            episode: state.episode,
            episode_return: Some(ret),
            eval_return: None,
            eval_planner_return: None,
            refresh_ms,
            consistency_loss: last.consistency,
            reward_loss: last.reward,
            value_loss: last.value,
            policy_loss: last.policy,
            pi_log_std: last.pi_log_std,
            q_scale: last.q_scale,
            updates: agent.updates,
            updates_per_s: Some(rate),
            wall_s: wall,
        });
        if let Some(b) = &bar {
            b.set_position(state.agent_step.min(cfg.steps));
            b.set_message(format!(
                "ret {ret:.1} cons {:.4} rew {:.4} val {:.3} pi {:.3} logstd {:.2}",
                last.consistency, last.reward, last.value, last.policy, last.pi_log_std
            ));
        }
        if interrupted {
            break;
        }
        let done = state.agent_step >= cfg.steps;
        if state.agent_step >= state.next_eval || done {
            // Export first: the planner evaluation acts on this bundle.
            bundle = export_run(&agent, state.agent_step)?;
            let (eval, eval_plan) =
                evaluate(task.as_mut(), &agent, cfg, &bundle, state.agent_step)?;
            state.metrics.push(Metrics {
                episode_return: None,
                eval_return: Some(eval),
                eval_planner_return: Some(eval_plan),
                refresh_ms: None,
                updates_per_s: None,
                ..state.metrics.last().cloned().expect("row")
            });
            while state.next_eval <= state.agent_step {
                state.next_eval += cfg.eval_every;
            }
            if let Some(b) = &bar {
                b.println(format!(
                    "agent step {}: eval return ({} episodes) policy {eval:.1}, planner {eval_plan:.1}",
                    state.agent_step, cfg.eval_episodes
                ));
            }
            save(&agent, &mut state)?;
            last_ck = std::time::Instant::now();
            let _ = crate::plot::learning_curve(
                &opts.out.join("learning_curve.png"),
                &cfg.task,
                &state.metrics,
                crate::plot::XAxis::AgentSteps,
            );
            (rate_t, rate_u) = (std::time::Instant::now(), agent.updates);
        } else if last_ck.elapsed() >= ck_every {
            save(&agent, &mut state)?;
            last_ck = std::time::Instant::now();
        }
    }
    if let Some(b) = &bar {
        b.finish();
    }
    // A stop before `steps` (a signal, or tests) leaves a resumable
    // checkpoint.
    save(&agent, &mut state)?;
    if !bundle.join("manifest.json").exists() {
        bundle = export_run(&agent, state.agent_step)?;
    }
    let wall_s = state.wall_s;
    let mut summary = RunSummary::of(state, &agent, losses_all, bundle, wall_s);
    summary.interrupted = interrupted;
    Ok(summary)
}

/// Run the updates `state` owes, stopping early (and returning `true`)
/// when a stop is requested; what is left stays owed.
fn pay_updates(
    agent: &mut Learner,
    state: &mut State,
    opts: &RunOptions,
    losses: &mut Vec<Losses>,
    last: &mut Losses,
) -> bool {
    // Losses stay on the device until the burst ends: one read (one device
    // sync) per burst, not per update.
    let mut pending: Vec<PendingLosses> = Vec::with_capacity(state.owed_updates as usize);
    let mut stopped = false;
    while state.owed_updates > 0 {
        if opts.stopping() {
            stopped = true;
            break;
        }
        pending.push(agent.update_pending());
        state.owed_updates -= 1;
    }
    let read = PendingLosses::read_all(&pending);
    if let Some(l) = read.last() {
        *last = *l;
    }
    losses.extend(read);
    stopped
}
