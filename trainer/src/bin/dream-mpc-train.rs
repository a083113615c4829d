//! `dream-mpc-train`: train the world model and export bundles.
//!
//! ```text
//! dream-mpc-train export --out models/plumbing --obs-size 3 --action-size 1
//! dream-mpc-train train --task pendulum-swingup --config config/train-small.json --out runs/pendulum
//! dream-mpc-train train --task pendulum-swingup --out runs/pendulum --resume
//! ```

use clap::{Parser, Subcommand};
use dream_mpc_trainer::export::{export_bundle, ExportMeta};
use dream_mpc_trainer::model::{ModelConfig, WorldModel};
use dream_mpc_trainer::train::{train, DeviceChoice, RunOptions, TrainConfig};
use dream_mpc_trainer::verify::tract_forward_check;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Train online on a task, evaluating, exporting and checkpointing every
    /// `eval_every` environment steps; writes metrics.csv,
    /// learning_curve.png, checkpoint/ and bundle/ under --out.
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
        /// Override the config's total environment steps.
        #[arg(long)]
        steps: Option<u64>,
        /// Override the config's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Continue the run in --out from its checkpoint.
        #[arg(long)]
        resume: bool,
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
    },
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
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
        Cmd::Train {
            task,
            config,
            out,
            steps,
            seed,
            resume,
            device,
            threads,
            quiet,
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
            cfg.validate().map_err(|e| e.to_string())?;
            let task = dream_mpc_trainer::tasks::make(&cfg.task).map_err(|e| e.to_string())?;
            let opts = RunOptions {
                out,
                resume,
                progress: !quiet,
                stop_after: None,
                device,
            };
            let s = train(&cfg, task, &opts).map_err(|e| e.to_string())?;
            let last_eval = s.metrics.iter().rev().find_map(|m| m.eval_return);
            println!(
                "{} env steps, {} updates in {:.1} s; last eval return {}; bundle {}",
                s.env_steps,
                s.updates,
                s.wall_s,
                last_eval
                    .map(|r| format!("{r:.1}"))
                    .unwrap_or_else(|| "-".into()),
                s.bundle.display()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
