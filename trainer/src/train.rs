//! The training run: collect an episode, update, evaluate, export and
//! checkpoint, until `steps` environment steps (issue 5, issue 11).
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
use tch::Device;

pub use crate::collect::Collect;
pub use crate::config::{DeviceChoice, TrainConfig, TrainError};
pub use crate::learner::{Agent, UpdatePath};
pub use crate::replay::Replay;

/// Options of one run besides the configuration.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out: PathBuf,
    pub resume: bool,
    pub progress: bool,
    /// Stop after this many environment steps of THIS invocation (for
    /// tests of resume); `None` runs to `steps`.
    pub stop_after: Option<u64>,
    /// Learner device (resolved from `--device`); acting and export
    /// references stay on the CPU.
    pub device: Device,
}

/// Result of a run.
#[derive(Debug)]
pub struct RunSummary {
    pub env_steps: u64,
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
        agent: &Agent,
        losses: Vec<Losses>,
        bundle: PathBuf,
        wall_s: f64,
    ) -> RunSummary {
        RunSummary {
            env_steps: state.env_step,
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
    let ckpt = out.join("checkpoint").join("state.json");
    if ckpt.exists() && !opts.resume {
        return Err(TrainError::Output {
            path: out.clone(),
            why: "holds a training run (checkpoint/state.json); pass --resume or choose another --out"
                .into(),
        });
    }
    if opts.resume && !ckpt.exists() {
        return Err(TrainError::Resume(format!(
            "no checkpoint at {}",
            ckpt.display()
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
    agent: &Agent,
    dir: &Path,
    env_step: u64,
    cfg: &TrainConfig,
) -> Result<PathBuf, TrainError> {
    export_with(agent, dir, env_step, cfg, None)
}

/// [`export`] with the manifest's planner section given (fine-tuning keeps
/// the one its starting bundle was shipped and tested with); `None`: the
/// trainer's defaults.
pub fn export_with(
    agent: &Agent,
    dir: &Path,
    env_step: u64,
    cfg: &TrainConfig,
    planner: Option<&PlannerDefaults>,
) -> Result<PathBuf, TrainError> {
    let (o, a) = (agent.model.obs_size, agent.model.action_size);
    let mut meta = ExportMeta::plain(&cfg.task, o, a);
    meta.discount = cfg.discount as f32;
    meta.action_repeat = cfg.action_repeat;
    meta.obs_range = agent.replay.obs_range();
    meta.planner = planner.cloned().unwrap_or_else(default_planner);
    meta.provenance = Provenance {
        producer: format!("dream-mpc-train {}", env!("CARGO_PKG_VERSION")),
        training_steps: env_step,
        seed: cfg.seed,
        revision: None,
        notes: Some(format!(
            "TD-MPC2-style, latent {} hidden {} n_q {}, action_repeat {}",
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
    agent: &Agent,
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
    let mut agent = Agent::new(
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
    let env_per_episode = (agent.replay.len * cfg.action_repeat).min(if cfg.max_episode_steps > 0 {
        cfg.max_episode_steps.min(spec.episode_len)
    } else {
        spec.episode_len
    }) as u64;
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(cfg.steps);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} env steps {per_sec} eta {eta} {msg}",
            )
            .expect("template"),
        );
        b.set_position(state.env_step);
        Some(b)
    } else {
        None
    };
    let start_step = state.env_step;
    let seed_steps = cfg.seed_env_steps(spec.episode_len);
    let mut losses_all = Vec::new();
    let mut last = Losses::default();
    let mut bundle = opts.out.join("bundle");
    while state.env_step < cfg.steps {
        if let Some(n) = opts.stop_after {
            if state.env_step - start_step >= n {
                break;
            }
        }
        let ep_seed = seeded(cfg.seed, STREAM_EPISODE, state.episode).next_u64();
        let k0 = state.episode * agent.replay.len as u64;
        let seeding = state.env_step < seed_steps;
        let mut refresh_ms = None;
        let (obs, acts, rews, ret) = match cfg.collect.planner() {
            Some(kind) if !seeding => {
                // Refresh the robot-side agent from the current weights.
                let t = std::time::Instant::now();
                let dir = export(
                    &agent,
                    &opts.out.join("collect-bundle"),
                    state.env_step,
                    cfg,
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
        let before = state.env_step;
        state.env_step += env_per_episode;
        state.episode += 1;
        // Updates owed for this episode's agent steps once past the seed
        // phase; the first time, one update per seed agent step as well.
        if state.env_step >= seed_steps {
            let agent_steps = agent.replay.len as u64;
            let mut n = agent_steps * cfg.updates_per_step as u64;
            if before < seed_steps {
                n = (state.env_step / cfg.action_repeat as u64) * cfg.updates_per_step as u64;
            }
            // Losses stay on the device until the burst ends: one read
            // (one device sync) per episode, not per update.
            let pending: Vec<PendingLosses> = (0..n).map(|_| agent.update_pending()).collect();
            let read = PendingLosses::read_all(&pending);
            if let Some(l) = read.last() {
                last = *l;
            }
            losses_all.extend(read);
        }
        let wall = wall0 + t0.elapsed().as_secs_f64();
        state.metrics.push(Metrics {
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
            updates: agent.updates,
            wall_s: wall,
        });
        if let Some(b) = &bar {
            b.set_position(state.env_step.min(cfg.steps));
            b.set_message(format!(
                "ret {ret:.1} cons {:.4} rew {:.4} val {:.3} pi {:.3}",
                last.consistency, last.reward, last.value, last.policy
            ));
        }
        let done = state.env_step >= cfg.steps;
        if state.env_step >= state.next_eval || done {
            // Export first: the planner evaluation acts on this bundle.
            bundle = export(&agent, &opts.out.join("bundle"), state.env_step, cfg)?;
            let (eval, eval_plan) = evaluate(task.as_mut(), &agent, cfg, &bundle, state.env_step)?;
            state.metrics.push(Metrics {
                episode_return: None,
                eval_return: Some(eval),
                eval_planner_return: Some(eval_plan),
                refresh_ms: None,
                ..state.metrics.last().cloned().expect("row")
            });
            while state.next_eval <= state.env_step {
                state.next_eval += cfg.eval_every;
            }
            if let Some(b) = &bar {
                b.println(format!(
                    "env step {}: eval return policy {eval:.1}, planner {eval_plan:.1}",
                    state.env_step
                ));
            }
            state.wall_s = wall0 + t0.elapsed().as_secs_f64();
            checkpoint::save(&agent, &ckdir, &mut state)?;
            write_csv(&csv_path, &state.metrics)?;
            let _ = crate::plot::learning_curve(
                &opts.out.join("learning_curve.png"),
                &cfg.task,
                &state.metrics,
                crate::plot::XAxis::EnvSteps,
            );
        }
    }
    if let Some(b) = &bar {
        b.finish();
    }
    // A stop before `steps` (tests) still leaves a resumable checkpoint.
    state.wall_s = wall0 + t0.elapsed().as_secs_f64();
    checkpoint::save(&agent, &ckdir, &mut state)?;
    write_csv(&csv_path, &state.metrics)?;
    if !bundle.join("manifest.json").exists() {
        bundle = export(&agent, &opts.out.join("bundle"), state.env_step, cfg)?;
    }
    let wall_s = state.wall_s;
    Ok(RunSummary::of(state, &agent, losses_all, bundle, wall_s))
}
