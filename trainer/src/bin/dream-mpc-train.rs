//! `dream-mpc-train`: train the world model and export bundles.
//!
//! ```text
//! dream-mpc-train export --out models/plumbing --obs-size 3 --action-size 1
//! ```

use clap::{Parser, Subcommand};
use dream_mpc_trainer::export::{export_bundle, ExportMeta};
use dream_mpc_trainer::model::{ModelConfig, WorldModel};
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
