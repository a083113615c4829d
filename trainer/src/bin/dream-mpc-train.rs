//! `dream-mpc-train`: train the world model and export bundles.
//!
//! ```text
//! dream-mpc-train export --out models/plumbing --obs-size 3 --action-size 1
//! dream-mpc-train train --task pendulum-swingup --config config/train-small.json --out runs/pendulum
//! dream-mpc-train train --task pendulum-swingup --out runs/pendulum --resume
//! dream-mpc-train train --task cartpole-swingup --offline bags/run1 bags/run2 \
//!     --config config/train-offline-cartpole.json --out runs/offline --updates 20000
//! dream-mpc-train train --task cartpole-swingup --offline bags/run1 \
//!     --init models/cartpole-swingup --out runs/finetune --updates 5000
//! dream-mpc-train import --checkpoint walker-run-5.pt --size 5M --task walker-run \
//!     --obs-size 24 --action-size 6 --episode-length 500 --action-repeat 2 --out models/walker-run
//! ```

use clap::{Parser, Subcommand};
use dream_mpc_sim::task::TaskError;
use dream_mpc_trainer::export::{export_bundle, ExportMeta};
use dream_mpc_trainer::import::layout::Dims;
use dream_mpc_trainer::import::{import_checkpoint, ImportOptions};
use dream_mpc_trainer::metrics::Metrics;
use dream_mpc_trainer::model::{ModelConfig, WorldModel};
use dream_mpc_trainer::offline::{train_offline, LogOptions, OfflineOptions};
use dream_mpc_trainer::plot::{seeds_curve, RunCurve};
use dream_mpc_trainer::train::{train, DeviceChoice, RunOptions, TrainConfig};
use dream_mpc_trainer::verify::tract_forward_check;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "dream-mpc-train", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write an untrained (randomly initialized) bundle, for plumbing tests,
    /// and check it with tract against the libtorch references.
    Export {
        /// Bundle folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Task name recorded in the manifest.
        #[arg(long, default_value = "untrained")]
        task: String,
        #[arg(long)]
        obs_size: usize,
        #[arg(long)]
        action_size: usize,
        #[arg(long, default_value_t = 64)]
        latent: usize,
        #[arg(long, default_value_t = 256)]
        hidden: usize,
        #[arg(long, default_value_t = 5)]
        n_q: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Train online on a task, evaluating and exporting every `eval_every`
    /// agent steps, checkpointing then and every `checkpoint_minutes`;
    /// writes metrics.csv, learning_curve.png, run.json, checkpoint/ and
    /// bundle/ under --out. SIGINT/SIGTERM: checkpoint and exit 130/143
    /// (resume with --resume).
    Train {
        /// Task name (overrides the config file's `task`).
        #[arg(long)]
        task: Option<String>,
        /// JSON training configuration (see `TrainConfig` for fields and
        /// defaults); missing fields take their defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Override the config's total agent steps.
        #[arg(long)]
        steps: Option<u64>,
        /// Override the config's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Continue the run in --out from its checkpoint.
        #[arg(long)]
        resume: bool,
        /// Source revision to record in run.json and the bundles'
        /// provenance (default: the DREAM_MPC_REVISION environment
        /// variable; scripts/train.sh sets it to the checkout's commit).
        #[arg(long)]
        revision: Option<String>,
        /// cpu | cuda | auto: where the learner (model, optimizer state,
        /// replay sampling) lives. `cuda` without a CUDA device is an
        /// error; `auto` falls back to the CPU and says so. Acting and the
        /// exported references are computed on the CPU either way.
        #[arg(long, default_value = "auto")]
        device: String,
        /// libtorch intra-op threads (CPU work of the learner and acting).
        #[arg(long, default_value_t = 1)]
        threads: i32,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Train offline from robot logs (rosbag2 bag folders or `.mcap`
        /// files, docs/BAGS.md) instead of online from the simulator;
        /// evaluation still runs on the simulator when the task is in the
        /// registry.
        #[arg(long, num_args = 1.., value_name = "BAG")]
        offline: Vec<PathBuf>,
        /// Offline: start from these weights, a checkpoint (or run folder)
        /// or a bundle; the model sizes are the source's.
        #[arg(long, value_name = "DIR")]
        init: Option<PathBuf>,
        /// Offline: gradient updates in all.
        #[arg(long, default_value_t = 20_000)]
        updates: u64,
        /// Offline: evaluate, export and checkpoint every this many updates
        /// (default: updates / 10).
        #[arg(long)]
        eval_every: Option<u64>,
        /// Offline: logged steps per agent step (default: from the logs'
        /// period and the task's control timestep x action_repeat).
        #[arg(long)]
        log_repeat: Option<usize>,
        /// Offline: agent steps per replay window (default: 2 x (horizon + 1)).
        #[arg(long)]
        window: Option<usize>,
        /// Offline: train even when fewer than half of the logged steps
        /// are usable (by default that stops with the counts).
        #[arg(long)]
        allow_partial_logs: bool,
    },
    /// Draw the evaluation returns of several runs (seeds of one task)
    /// against agent steps on one plot, from their metrics.csv files.
    Curves {
        /// PNG to write.
        #[arg(long)]
        out: PathBuf,
        /// Title of the plot (default: the first run's task).
        #[arg(long)]
        title: Option<String>,
        /// A horizontal reference line, `LABEL=RETURN` (repeatable), e.g.
        /// `--reference "TD-MPC2 100k=724"`.
        #[arg(long, value_name = "LABEL=RETURN")]
        reference: Vec<String>,
        /// Run folders (holding metrics.csv) or metrics.csv files; each is
        /// labelled by its folder name.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
    },
    /// Import a TD-MPC2 single-task checkpoint (`.pt` holding
    /// `{"model": state_dict}`) into a bundle, checked like
    /// `dream-mpc check` (see README, "Bring your own TD-MPC2 model").
    Import(ImportArgs),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The checkpoint (`.pt`, read with the project's torch; or a
    /// `.safetensors` file of the same state dict).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Bundle folder to write (must not exist, or be empty).
    #[arg(long)]
    out: PathBuf,
    /// Task name recorded in the manifest.
    #[arg(long)]
    task: String,
    #[arg(long)]
    obs_size: usize,
    #[arg(long)]
    action_size: usize,
    /// TD-MPC2 model size: 1M, 5M, 19M, 48M or 317M; the dimension flags
    /// below override single fields.
    #[arg(long, default_value = "5M")]
    size: String,
    /// Episode length in agent steps (TD-MPC2's `episode_length`, after
    /// the action repeat; 500 for the DeepMind Control Suite): sets the
    /// discount by TD-MPC2's rule.
    #[arg(long)]
    episode_length: usize,
    /// Environment steps per agent step (TD-MPC2 uses 2 on DMC).
    #[arg(long)]
    action_repeat: usize,
    /// Override the discount rule.
    #[arg(long)]
    discount: Option<f32>,
    #[arg(long)]
    latent: Option<usize>,
    #[arg(long)]
    mlp: Option<usize>,
    #[arg(long)]
    enc: Option<usize>,
    #[arg(long)]
    enc_layers: Option<usize>,
    #[arg(long)]
    num_q: Option<usize>,
    #[arg(long)]
    num_bins: Option<usize>,
    #[arg(long)]
    simnorm_dim: Option<usize>,
    /// Actuator value of model action -1: one number, or one per action
    /// separated by commas (default -1).
    #[arg(long, allow_hyphen_values = true)]
    action_low: Option<String>,
    /// Actuator value of model action +1 (default 1).
    #[arg(long, allow_hyphen_values = true)]
    action_high: Option<String>,
    /// Python with torch that reads the pickle (default: $DREAM_MPC_PYTHON,
    /// $VIRTUAL_ENV/bin/python3, python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Seed of the reference inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// `--action-low/high`: one number for every action, or `n` numbers.
fn bounds(arg: Option<&str>, n: usize, default: f32, what: &str) -> Result<Vec<f32>, String> {
    let Some(s) = arg else {
        return Ok(vec![default; n]);
    };
    let v = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<Vec<f32>, _>>()
        .map_err(|e| format!("--{what} `{s}`: {e}"))?;
    match v.len() {
        1 => Ok(vec![v[0]; n]),
        k if k == n => Ok(v),
        k => Err(format!("--{what} has {k} values for {n} actions")),
    }
}

fn import(a: ImportArgs) -> Result<(), String> {
    let mut dims = Dims::named(&a.size).map_err(|e| e.to_string())?;
    let explicit = [
        (&mut dims.latent, a.latent),
        (&mut dims.mlp, a.mlp),
        (&mut dims.enc, a.enc),
        (&mut dims.enc_layers, a.enc_layers),
        (&mut dims.num_q, a.num_q),
        (&mut dims.num_bins, a.num_bins),
        (&mut dims.simnorm, a.simnorm_dim),
    ];
    let mut custom = false;
    for (field, v) in explicit {
        if let Some(v) = v {
            custom |= *field != v;
            *field = v;
        }
    }
    if custom {
        dims.name = format!("{} with explicit dims", dims.name);
    }
    let mut opts = ImportOptions::new(
        &a.checkpoint,
        &a.out,
        &a.task,
        a.obs_size,
        a.action_size,
        dims,
        a.episode_length,
        a.action_repeat,
    );
    opts.discount = a.discount;
    opts.action_low = bounds(a.action_low.as_deref(), a.action_size, -1.0, "action-low")?;
    opts.action_high = bounds(a.action_high.as_deref(), a.action_size, 1.0, "action-high")?;
    opts.python = a.python;
    opts.seed = a.seed;
    let t0 = std::time::Instant::now();
    let m = import_checkpoint(&opts).map_err(|e| e.to_string())?;
    println!(
        "imported {} ({}, {} Q heads, latent {}), discount {:.4}, action repeat {}: references verified, {:.1} s",
        a.checkpoint.display(),
        opts.dims.name,
        m.q_ensemble,
        m.latent.size(),
        m.discount,
        m.action_repeat,
        t0.elapsed().as_secs_f64()
    );
    println!("wrote {}", a.out.display());
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Import(a) => import(a),
        Cmd::Export {
            out,
            task,
            obs_size,
            action_size,
            latent,
            hidden,
            n_q,
            seed,
        } => {
            if obs_size == 0 || action_size == 0 {
                return Err(format!(
                    "--obs-size ({obs_size}) and --action-size ({action_size}) must be > 0"
                ));
            }
            let cfg = ModelConfig {
                latent,
                hidden,
                n_q,
                ..Default::default()
            };
            cfg.validate().map_err(|e| e.to_string())?;
            tch::manual_seed(seed as i64);
            let vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let model = WorldModel::new(&vs.root(), &cfg, obs_size, action_size);
            let mut meta = ExportMeta::plain(&task, obs_size, action_size);
            meta.provenance.seed = seed;
            meta.provenance.notes = Some(std::env::args().collect::<Vec<_>>().join(" "));
            export_bundle(&model, &meta, &out, seed).map_err(|e| e.to_string())?;
            for r in tract_forward_check(&out)? {
                println!(
                    "{:<9} {} cases, tract vs libtorch max |err| {:.2e}",
                    r.module, r.cases, r.max_abs_err
                );
            }
            println!("wrote {}", out.display());
            Ok(())
        }
        Cmd::Curves {
            out,
            title,
            reference,
            runs,
        } => {
            let mut curves = Vec::new();
            for r in &runs {
                let csv = if r.is_dir() {
                    r.join("metrics.csv")
                } else {
                    r.clone()
                };
                let text =
                    std::fs::read_to_string(&csv).map_err(|e| format!("{}: {e}", csv.display()))?;
                let dir = if r.is_dir() {
                    r.as_path()
                } else {
                    r.parent().unwrap_or(r)
                };
                let label = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| r.display().to_string());
                curves.push(
                    RunCurve::from_csv(&label, &text)
                        .map_err(|e| format!("{}: {e}", csv.display()))?,
                );
            }
            let refs = reference
                .iter()
                .map(|s| {
                    s.rsplit_once('=')
                        .and_then(|(l, v)| v.trim().parse::<f64>().ok().map(|v| (l.to_string(), v)))
                        .filter(|(_, v)| v.is_finite())
                        .ok_or_else(|| format!("--reference '{s}': expected LABEL=RETURN"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let title = title.unwrap_or_else(|| "evaluation returns by seed".into());
            seeds_curve(&out, &title, &curves, &refs)?;
            println!("wrote {} ({} runs)", out.display(), curves.len());
            Ok(())
        }
        Cmd::Train {
            task,
            config,
            out,
            steps,
            seed,
            resume,
            revision,
            device,
            threads,
            quiet,
            offline,
            init,
            updates,
            eval_every,
            log_repeat,
            window,
            allow_partial_logs,
        } => {
            let mut cfg = match &config {
                Some(p) => {
                    let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
                    TrainConfig::from_json(&bytes).map_err(|e| format!("{}: {e}", p.display()))?
                }
                None => TrainConfig::default(),
            };
            if let Some(t) = task {
                cfg.task = t;
            }
            if let Some(s) = steps {
                cfg.steps = s;
            }
            if let Some(s) = seed {
                cfg.seed = s;
            }
            let (device, note) = device
                .parse::<DeviceChoice>()
                .and_then(|d| d.resolve())
                .map_err(|e| e.to_string())?;
            if let Some(n) = note {
                eprintln!("{n}");
            }
            if threads < 1 {
                return Err(format!("--threads {threads} must be >= 1"));
            }
            tch::set_num_threads(threads);
            let stop = Arc::new(AtomicBool::new(false));
            {
                let stop = stop.clone();
                // SIGINT and SIGTERM (ctrlc's `termination` feature). A
                // repeated signal changes nothing: the run is already
                // stopping (a terminal's Ctrl-C and a campaign script's
                // SIGTERM may both arrive); SIGKILL still ends it, and the
                // atomic checkpoint survives that.
                ctrlc::set_handler(move || {
                    if !stop.swap(true, Ordering::SeqCst) {
                        eprintln!(
                            "stop requested: finishing the update under way and checkpointing"
                        );
                    }
                })
                .map_err(|e| format!("cannot install the signal handler: {e}"))?;
            }
            let revision = revision.or_else(|| std::env::var("DREAM_MPC_REVISION").ok());
            let opts = RunOptions {
                out,
                resume,
                progress: !quiet,
                stop_after: None,
                device,
                stop: Some(stop),
                revision,
            };
            if offline.is_empty() {
                if init.is_some() {
                    return Err("--init is for offline training (--offline <bag>...)".into());
                }
                cfg.validate().map_err(|e| e.to_string())?;
            }
            let task = match dream_mpc_trainer::tasks::make(&cfg.task) {
                Ok(t) => Some(t),
                Err(TaskError::UnknownTask { .. })
                    if !offline.is_empty() && !cfg.task.is_empty() =>
                {
                    None
                }
                Err(e) => return Err(e.to_string()),
            };
            // The record is written once the folder is known to be usable
            // as asked (a run to resume, or none to overwrite).
            let has_run =
                dream_mpc_trainer::checkpoint::existing(&opts.out.join("checkpoint")).is_some();
            if offline.is_empty() && has_run == opts.resume {
                record_invocation(&opts, &cfg)?;
            }
            let s = if offline.is_empty() {
                train(&cfg, task.expect("known task"), &opts)
            } else {
                let off = OfflineOptions {
                    logs: LogOptions {
                        paths: offline,
                        log_repeat,
                        window,
                        allow_partial: allow_partial_logs,
                    },
                    init,
                    updates,
                    eval_every: eval_every.unwrap_or((updates / 10).max(1)),
                };
                train_offline(&cfg, task, &opts, &off)
            }
            .map_err(|e| e.to_string())?;
            let last = |f: fn(&Metrics) -> Option<f64>| {
                s.metrics
                    .iter()
                    .rev()
                    .find_map(f)
                    .map(|r| format!("{r:.1}"))
                    .unwrap_or_else(|| "-".into())
            };
            if s.interrupted {
                println!(
                    "stopped at {} agent steps ({} updates, {:.1} s); checkpoint in {}; continue with --resume",
                    s.agent_steps,
                    s.updates,
                    s.wall_s,
                    opts.out.join("checkpoint").display()
                );
                return Err(Interrupted.to_string());
            }
            println!(
                "{} agent steps ({} env steps), {} updates in {:.1} s; last eval return policy {}, planner {}; bundle {}",
                s.agent_steps,
                s.env_steps,
                s.updates,
                s.wall_s,
                last(|m| m.eval_return),
                last(|m| m.eval_planner_return),
                s.bundle.display()
            );
            Ok(())
        }
    }
}

/// The error text of a run stopped by a signal (exit status 130).
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

/// Append this invocation (command line, revision, host CPU, start time,
/// configuration) to `<out>/run.json`, the run's training record.
fn record_invocation(opts: &RunOptions, cfg: &TrainConfig) -> Result<(), String> {
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let path = opts.out.join("run.json");
    let mut record: serde_json::Value = match std::fs::read(&path) {
        Ok(b) if opts.resume => serde_json::from_slice(&b).unwrap_or(serde_json::json!({})),
        _ => serde_json::json!({}),
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let entry = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "revision": opts.revision,
        "cpu": cpu,
        "started_unix_s": now,
        "resume": opts.resume,
    });
    record["config"] = serde_json::to_value(cfg).map_err(|e| e.to_string())?;
    match record.get_mut("invocations").and_then(|v| v.as_array_mut()) {
        Some(a) => a.push(entry),
        None => record["invocations"] = serde_json::json!([entry]),
    }
    let text = serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e == Interrupted.to_string() => ExitCode::from(130),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
