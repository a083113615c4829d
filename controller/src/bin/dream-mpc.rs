//! `dream-mpc`: the robot-side command line.
//!
//! `dream-mpc check <bundle>` loads a bundle (manifest, checksums, ONNX type
//! check, compile), runs every module against tract on random rows and, when
//! the bundle ships `references.json`, against the libtorch references
//! (forward and VJP); prints a summary and exits 1 on any failure. Every
//! file is confined to the bundle folder and capped (`--max-file-mib`, see
//! `dream_mpc::bundle::confine`).
//!
//! `dream-mpc run --params-file config/controller.yaml [--ros-args -p k:=v ...]`
//! runs the ROS 2 controller node until Ctrl-C / SIGTERM.
//!
//! `dream-mpc params [--update FILE]` prints the parameter reference
//! generated from the node's parameter table, or rewrites it in FILE.
//!
//! `dream-mpc --ros-args ...` (no subcommand, as `ros2 run` and launch_ros
//! start a node) is `dream-mpc run --ros-args ...`.

use clap::{Parser, Subcommand};
use dream_mpc::load::Bundle;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "dream-mpc", version, about = "Dream-MPC robot controller")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a model bundle and print a summary.
    Check {
        /// Bundle folder (holding manifest.json).
        bundle: PathBuf,
        /// Rows of the random batch used for the tract comparison (1 to
        /// 4096: larger batches only allocate more).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=4096))]
        rows: u16,
        /// Seed of the random batch.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Size cap of each module and references file, in MiB (files over
        /// it are refused unread; manifest.json has its own 16 MiB cap).
        #[arg(long, default_value_t = dream_mpc::bundle::confine::DEFAULT_MAX_FILE_BYTES >> 20,
              value_parser = clap::value_parser!(u64).range(1..=65_536))]
        max_file_mib: u64,
        /// Weight storage to check: `f32` (as trained) or `bf16` (half the
        /// bytes; checked against a looser tolerance, see the README).
        #[arg(long, default_value = "f32", value_parser = dream_mpc::kernels::Weights::parse)]
        weights: dream_mpc::kernels::Weights,
    },
    /// Run the ROS 2 controller node (see config/controller.yaml).
    Run(dream_mpc::ros::cli::RunArgs),
    /// Print the node's parameter reference (generated from its table).
    Params {
        /// Rewrite the reference block of this YAML file instead.
        #[arg(long)]
        update: Option<PathBuf>,
    },
}

fn params(update: Option<PathBuf>) -> Result<(), String> {
    use dream_mpc::ros::config::{reference_comment, with_current_reference};
    let Some(path) = update else {
        print!("{}", reference_comment());
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let fresh = with_current_reference(&text);
    if fresh != text {
        std::fs::write(&path, fresh).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{}: parameter reference updated", path.display());
    } else {
        println!("{}: parameter reference is current", path.display());
    }
    Ok(())
}

fn check(
    dir: &std::path::Path,
    rows: usize,
    seed: u64,
    max_file_mib: u64,
    weights: dream_mpc::kernels::Weights,
) -> Result<bool, String> {
    let limits = dream_mpc::bundle::Limits::with_file_mib(max_file_mib);
    let b = Bundle::load_as(dir, limits, weights).map_err(|e| e.to_string())?;
    let tolerance = b.tolerance();
    let m = &b.manifest;
    println!(
        "bundle {}: task `{}`, format {} v{}",
        dir.display(),
        m.task,
        m.format,
        m.version
    );
    println!(
        "  observation {}, action {}, latent {} ({:?}), discount {}, Q heads {}",
        m.observation.size,
        m.action.size,
        m.latent.size(),
        m.latent,
        m.discount,
        m.q_ensemble
    );
    println!(
        "  producer `{}`, {} training steps, seed {}",
        m.provenance.producer, m.provenance.training_steps, m.provenance.seed
    );
    println!(
        "  weights {} ({} bytes each), tolerance {tolerance:.0e}",
        weights.name(),
        weights.bytes()
    );
    let tract = b
        .tract_agreement(rows.max(1), seed)
        .map_err(|e| e.to_string())?;
    println!();
    println!(
        "{:<10} {:<22} {:<22} {:>9} {:>7} {:>10} {:>10} {:>10}",
        "module", "inputs", "outputs", "params", "kernels", "MACs/row", "floats/row", "vs tract"
    );
    let mut ok = true;
    for (name, p) in &b.modules {
        let io = |v: &[dream_mpc::bundle::manifest::TensorSpec]| {
            v.iter()
                .map(|t| format!("{}[{}]", t.name, t.size))
                .collect::<Vec<_>>()
                .join(",")
        };
        let err = tract[name];
        ok &= err <= tolerance;
        println!(
            "{:<10} {:<22} {:<22} {:>9} {:>7} {:>10} {:>10} {:>10.2e}{}",
            name,
            io(p.inputs()),
            io(p.outputs()),
            p.params(),
            p.kernel_ops().count(),
            p.flops(1).0,
            p.frame_width(),
            err,
            if err <= tolerance { "" } else { "  FAIL" }
        );
    }
    println!();
    for (name, p) in &b.modules {
        let ops: Vec<String> = p
            .onnx_ops()
            .iter()
            .map(|(o, n)| format!("{o} x{n}"))
            .collect();
        println!("{name:<10} ops: {}", ops.join(", "));
    }
    println!();
    if m.references.is_some() {
        let r = b.verify_references().map_err(|e| e.to_string())?;
        println!("references (scaled error, tolerance {:.0e}):", r.tolerance);
        for a in &r.modules {
            let f: Vec<String> = a
                .forward
                .iter()
                .map(|(k, v)| format!("{k} {v:.2e}"))
                .collect();
            let g: Vec<String> = a.vjp.iter().map(|(k, v)| format!("d{k} {v:.2e}")).collect();
            println!(
                "  {:<10} {} cases  forward: {}  vjp: {}{}",
                a.module,
                a.cases,
                f.join(", "),
                g.join(", "),
                if a.worst() <= r.tolerance {
                    ""
                } else {
                    "  FAIL"
                }
            );
        }
    }
    // The verification `run` makes before it starts (shared): references
    // for every module, finite, within tolerance.
    if let Err(e) = b.verify() {
        println!("FAIL: {e}");
        ok = false;
    }
    // The bundle's planner settings must be valid for every planner `run`
    // can be configured with.
    for kind in [
        dream_mpc::planner::PlannerKind::DreamMpc,
        dream_mpc::planner::PlannerKind::Mppi,
    ] {
        let pc = dream_mpc::planner::PlannerConfig::for_kind(kind, &m.planner, m.discount);
        if let Err(e) = pc.validate() {
            println!("FAIL: the bundle's planner settings ({}): {e}", kind.name());
            ok = false;
            continue;
        }
        // `run` builds its agent from the bundle (the planner's modules,
        // their interfaces, the latent kind): what refuses it there fails
        // the check here.
        if let Err(e) = dream_mpc::agent::Agent::new(&b, pc) {
            println!("FAIL: `run` refuses this bundle ({}): {e}", kind.name());
            ok = false;
        }
    }
    Ok(ok)
}

/// `argv` with `run` inserted when no subcommand precedes `--ros-args`
/// (launch_ros runs `dream-mpc --ros-args -r __node:=... --params-file ...`).
fn with_default_subcommand(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    if argv.get(1).is_some_and(|a| a == "--ros-args") {
        argv.insert(1, "run".into());
    }
    argv
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(with_default_subcommand(std::env::args_os().collect()));
    match cli.cmd {
        Cmd::Check {
            bundle,
            rows,
            seed,
            max_file_mib,
            weights,
        } => match check(&bundle, rows as usize, seed, max_file_mib, weights) {
            Ok(true) => {
                println!("OK");
                ExitCode::SUCCESS
            }
            Ok(false) => {
                eprintln!("dream-mpc check: FAILED (an error above exceeds its tolerance)");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("dream-mpc check: {e}");
                ExitCode::from(1)
            }
        },
        Cmd::Params { update } => match params(update) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dream-mpc params: {e}");
                ExitCode::from(1)
            }
        },
        Cmd::Run(args) => match dream_mpc::ros::cli::main(args) {
            0 => ExitCode::SUCCESS,
            c => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        },
    }
}
