//! `dream-mpc-sim`: run, list and benchmark the simulated tasks, and serve
//! one as a ROS 2 robot node.
//!
//! ```text
//! dream-mpc-sim run --task pendulum-swingup --episodes 3 --seed 0 --policy swing
//! dream-mpc-sim list
//! dream-mpc-sim bench --steps 200000
//! dream-mpc-sim serve --task pendulum-swingup --episodes 1
//! ```

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use dream_mpc_sim::closed_loop::run_episode;
use dream_mpc_sim::policy::{self, PolicyKind};
use dream_mpc_sim::{registry, Backend};

#[derive(Parser)]
#[command(
    name = "dream-mpc-sim",
    about = "Simulated DeepMind Control Suite tasks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run episodes of a task with a built-in policy; prints each return.
    Run {
        /// Task name (see `list`).
        #[arg(long, default_value = "pendulum-swingup")]
        task: String,
        /// Number of episodes.
        #[arg(long, default_value_t = 1)]
        episodes: u64,
        /// Seed of the first episode; episode i uses seed + i.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Policy: zero, random or swing (scripted energy pumping).
        #[arg(long, default_value = "swing")]
        policy: String,
    },
    /// List the tasks with backend, observation/action sizes and timestep.
    List,
    /// Simulated steps per second per task, single thread (zero actions
    /// plus resets every 1000 steps).
    Bench {
        /// Steps per task per repetition.
        #[arg(long, default_value_t = 100_000)]
        steps: u64,
        /// Repetitions per task (median and min/max reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Only this task.
        #[arg(long)]
        task: Option<String>,
    },
    /// Evaluate planners on a model bundle: return mean ± std over seeded
    /// episodes and per-tick compute, one row per planner (Markdown table).
    Eval {
        /// Bundle folder (holding manifest.json), e.g. models/pendulum-swingup.
        #[arg(long)]
        bundle: std::path::PathBuf,
        /// Task (default: the task the bundle was trained on).
        #[arg(long)]
        task: Option<String>,
        /// Comma-separated planners, or `all` (policy, cem, mppi, grad_mpc,
        /// policy_grad_mpc, dream_mpc).
        #[arg(long, default_value = "all")]
        planners: String,
        /// Episodes per planner (seeds seed, seed + 1, ...).
        #[arg(long, default_value_t = 10)]
        episodes: usize,
        /// Seed of the first episode (also the planners' seed).
        #[arg(long, default_value_t = 1000)]
        seed: u64,
        /// Override the bundle's candidates N.
        #[arg(long)]
        candidates: Option<usize>,
        /// Override the bundle's horizon H.
        #[arg(long)]
        horizon: Option<usize>,
        /// Override the bundle's iterations K.
        #[arg(long)]
        iterations: Option<usize>,
        /// Override the uncertainty weight beta.
        #[arg(long)]
        beta: Option<f32>,
        /// Override CEM/MPPI samples per iteration (elites: 1 in 8).
        #[arg(long)]
        samples: Option<usize>,
        /// Override CEM/MPPI iterations per tick (default 6); with
        /// --samples, what sets a sampling planner's compute per tick.
        #[arg(long)]
        sampling_iterations: Option<usize>,
        /// Per-tick deadline in milliseconds (default: none).
        #[arg(long)]
        deadline_ms: Option<f64>,
        /// Weight storage of the compiled bundle: f32 (as trained) or bf16
        /// (half the bytes; see the controller README).
        #[arg(long, default_value = "f32", value_parser = dream_mpc::kernels::Weights::parse)]
        weights: dream_mpc::kernels::Weights,
    },
    /// Choose the Dream-MPC budget of a bundle: evaluate each candidates N
    /// x iterations K pair of the grid on tuning seeds (not the reported
    /// ones) and keep, within a compute cap per tick, the cheapest pair
    /// whose mean return is within one standard error of the best; with
    /// --write store it in the bundle's manifest (planner section).
    Budget {
        /// Bundle folder (holding manifest.json).
        #[arg(long)]
        bundle: std::path::PathBuf,
        /// Task (default: the task the bundle was trained on).
        #[arg(long)]
        task: Option<String>,
        /// Candidates N to try, comma-separated.
        #[arg(long, default_value = "5,8,16,32")]
        candidates: String,
        /// Iterations K to try, comma-separated.
        #[arg(long, default_value = "1,2,3,4")]
        iterations: String,
        /// Compute cap per tick in MFLOP (2 x multiply-adds).
        #[arg(long, default_value_t = 50.0)]
        max_mflop: f64,
        /// Episodes per pair (seeds seed, seed + 1, ...).
        #[arg(long, default_value_t = 10)]
        episodes: usize,
        /// Seed of the first tuning episode: keep it away from the seeds
        /// the results are reported on (1000-1009).
        #[arg(long, default_value_t = 2000)]
        seed: u64,
        /// Write the chosen N and K into the bundle's manifest.json.
        #[arg(long)]
        write: bool,
    },
    /// Serve a task as a ROS 2 robot node (observation out, action in,
    /// episode return out).
    Serve(dream_mpc_sim::serve::cli::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            task,
            episodes,
            seed,
            policy,
        } => run(&task, episodes, seed, &policy),
        Command::List => list(),
        Command::Bench { steps, reps, task } => bench(steps, reps, task.as_deref()),
        Command::Eval {
            bundle,
            task,
            planners,
            episodes,
            seed,
            candidates,
            horizon,
            iterations,
            beta,
            samples,
            sampling_iterations,
            deadline_ms,
            weights,
        } => eval(
            &bundle,
            weights,
            task.as_deref(),
            &planners,
            episodes,
            seed,
            &dream_mpc_sim::evaluate::Overrides {
                budget: dream_mpc::ros::config::Budget {
                    candidates,
                    horizon,
                    iterations,
                    beta: beta.map(f64::from),
                    ..Default::default()
                },
                samples,
                sampling_iterations,
                deadline: deadline_ms.map(|ms| std::time::Duration::from_secs_f64(ms / 1e3)),
            },
        ),
        Command::Budget {
            bundle,
            task,
            candidates,
            iterations,
            max_mflop,
            episodes,
            seed,
            write,
        } => budget(
            &bundle,
            task.as_deref(),
            &candidates,
            &iterations,
            max_mflop,
            episodes,
            seed,
            write,
        ),
        Command::Serve(args) => {
            return match dream_mpc_sim::serve::cli::main(args) {
                0 => ExitCode::SUCCESS,
                c => ExitCode::from(u8::try_from(c).unwrap_or(1)),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

fn run(task_name: &str, episodes: u64, seed: u64, policy_name: &str) -> Result<(), AnyError> {
    if episodes == 0 {
        return Err("--episodes must be at least 1".into());
    }
    let kind: PolicyKind = policy_name.parse()?;
    let mut task = registry::make(task_name)?;
    let mut pol = policy::make(kind, task_name)?;
    let mut returns = Vec::with_capacity(episodes as usize);
    for i in 0..episodes {
        let s = seed + i;
        let r = run_episode(task.as_mut(), pol.as_mut(), s)?;
        println!(
            "episode {i} seed {s} return {:.1} steps {} wall {:.4}s",
            r.ret,
            r.steps,
            r.wall.as_secs_f64()
        );
        returns.push(r.ret);
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    println!(
        "task {task_name} policy {} episodes {episodes}: return {mean:.1} ± {std:.1} (mean ± std)",
        kind.name()
    );
    Ok(())
}

fn list() -> Result<(), AnyError> {
    println!(
        "{:<20} {:<8} {:>4} {:>4} {:>9} {:>8} {:>6}",
        "task", "backend", "obs", "act", "dt (s)", "substeps", "steps"
    );
    for name in registry::names() {
        let t = registry::make(&name)?;
        let s = t.spec();
        let backend = match s.backend {
            Backend::Native => "native",
            Backend::Mujoco => "mujoco",
        };
        println!(
            "{:<20} {:<8} {:>4} {:>4} {:>9} {:>8} {:>6}",
            s.name,
            backend,
            s.obs_size,
            s.action_size,
            s.control_timestep,
            s.physics_substeps,
            s.episode_len
        );
    }
    Ok(())
}

fn bench(steps: u64, reps: usize, only: Option<&str>) -> Result<(), AnyError> {
    if steps == 0 || reps == 0 {
        return Err("--steps and --reps must be at least 1".into());
    }
    let names = match only {
        Some(n) => vec![n.to_string()],
        None => registry::names(),
    };
    println!(
        "single thread, {steps} steps x {reps} reps per task (zero action, reset every episode)"
    );
    println!(
        "{:<20} {:>14} {:>14} {:>14} {:>10}",
        "task", "median steps/s", "min steps/s", "max steps/s", "ns/step"
    );
    for name in names {
        let mut task = registry::make(&name)?;
        let spec = task.spec().clone();
        let mut obs = vec![0.0; spec.obs_size];
        let action = vec![0.0; spec.action_size];
        let mut rates = Vec::with_capacity(reps);
        let mut sink = 0.0;
        for rep in 0..reps {
            task.reset(rep as u64, &mut obs)?;
            let start = Instant::now();
            for k in 0..steps {
                let st = task.step(&action, &mut obs)?;
                sink += st.reward;
                if st.done {
                    task.reset(k, &mut obs)?;
                }
            }
            rates.push(steps as f64 / start.elapsed().as_secs_f64());
        }
        std::hint::black_box(sink);
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        println!(
            "{:<20} {:>14.0} {:>14.0} {:>14.0} {:>10.1}",
            name,
            median,
            rates[0],
            rates[rates.len() - 1],
            1e9 / median
        );
    }
    Ok(())
}

/// A comma-separated list of positive integers named `what`.
fn positive_list(what: &str, s: &str) -> Result<Vec<usize>, AnyError> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| match x.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "--{what} '{s}': expected positive integers separated by commas"
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
fn budget(
    dir: &std::path::Path,
    task: Option<&str>,
    candidates: &str,
    iterations: &str,
    max_mflop: f64,
    episodes: usize,
    seed: u64,
    write: bool,
) -> Result<(), AnyError> {
    use dream_mpc::planner::PlannerKind;
    let ns = positive_list("candidates", candidates)?;
    let ks = positive_list("iterations", iterations)?;
    if episodes == 0 {
        return Err("--episodes must be at least 1".into());
    }
    if !(max_mflop.is_finite() && max_mflop > 0.0) {
        return Err(format!("--max-mflop {max_mflop} must be > 0").into());
    }
    let bundle = dream_mpc::load::Bundle::load(dir)?;
    let task_name = task.unwrap_or(&bundle.manifest.task).to_string();
    let mut task = registry::make(&task_name)?;
    let default = (
        bundle.manifest.planner.candidates,
        bundle.manifest.planner.iterations,
    );
    println!(
        "| N | K | return on seeds {seed}-{} (mean ± std) | MFLOP/tick | tick p50 ms | within {max_mflop} MFLOP |\n|---|---|---|---|---|---|",
        seed + episodes as u64 - 1
    );
    // (mean, standard error, MFLOP, N, K) of each pair within the cap
    let mut fitting: Vec<(f64, f64, f64, usize, usize)> = Vec::new();
    for &n in &ns {
        for &k in &ks {
            let o = dream_mpc_sim::evaluate::Overrides {
                budget: dream_mpc::ros::config::Budget {
                    candidates: Some(n),
                    iterations: Some(k),
                    ..Default::default()
                },
                ..Default::default()
            };
            let row = dream_mpc_sim::evaluate::evaluate(
                &bundle,
                task.as_mut(),
                PlannerKind::DreamMpc,
                episodes,
                seed,
                &o,
                |_, _| {},
            )?;
            let mflop = row.flops * 2.0 / 1e6;
            let fits = mflop <= max_mflop;
            println!(
                "| {n} | {k} | {:.1} ± {:.1} | {mflop:.2} | {:.2} | {} |",
                row.mean(),
                row.std(),
                row.tick_percentile(0.5),
                if fits { "yes" } else { "no" }
            );
            if fits {
                let se = row.std() / (episodes as f64).sqrt();
                fitting.push((row.mean(), se, mflop, n, k));
            }
        }
    }
    // The best mean within the cap, then the cheapest pair whose mean is
    // within one standard error of it: a difference the tuning episodes
    // cannot tell from noise does not buy compute.
    let Some(&(best_mean, best_se, ..)) = fitting.iter().max_by(|a, b| a.0.total_cmp(&b.0)) else {
        return Err(format!("no pair of the grid fits within {max_mflop} MFLOP per tick").into());
    };
    let &(mean, _, mflop, n, k) = fitting
        .iter()
        .filter(|p| p.0 >= best_mean - best_se)
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .expect("the best pair qualifies");
    println!(
        "\nchosen: N {n}, K {k} ({mean:.1} on the tuning seeds, {mflop:.2} MFLOP/tick): the cheapest pair within one standard error ({best_se:.1}) of the best mean ({best_mean:.1}); the bundle has N {}, K {}",
        default.0, default.1
    );
    if write && (n, k) == default {
        println!("the bundle already has N {n}, K {k}: manifest.json left as it is");
    } else if write {
        let path = dir.join("manifest.json");
        let text = std::fs::read(&path)?;
        let mut m: serde_json::Value = serde_json::from_slice(&text)?;
        m["planner"]["candidates"] = n.into();
        m["planner"]["iterations"] = k.into();
        let mut out = serde_json::to_vec_pretty(&m)?;
        out.push(b'\n');
        std::fs::write(&path, out)?;
        // The edited manifest must still load like the original.
        dream_mpc::load::Bundle::load(dir)?;
        println!("wrote N {n}, K {k} into {}", path.display());
    }
    Ok(())
}

fn eval(
    dir: &std::path::Path,
    weights: dream_mpc::kernels::Weights,
    task: Option<&str>,
    planners: &str,
    episodes: usize,
    seed: u64,
    overrides: &dream_mpc_sim::evaluate::Overrides,
) -> Result<(), AnyError> {
    use dream_mpc::planner::PlannerKind;
    if episodes == 0 {
        return Err("--episodes must be at least 1".into());
    }
    let limits = dream_mpc::bundle::Limits::default();
    let bundle = dream_mpc::load::Bundle::load_as(dir, limits, weights)?;
    let task_name = task.unwrap_or(&bundle.manifest.task).to_string();
    let kinds: Vec<PlannerKind> = if planners == "all" {
        PlannerKind::ALL.to_vec()
    } else {
        planners
            .split(',')
            .map(|p| dream_mpc::agent::planner_kind(p.trim()))
            .collect::<Result<_, _>>()?
    };
    let mut task = registry::make(&task_name)?;
    let mut rows = Vec::new();
    for kind in kinds {
        let start = Instant::now();
        let row = dream_mpc_sim::evaluate::evaluate(
            &bundle,
            task.as_mut(),
            kind,
            episodes,
            seed,
            overrides,
            |e, r| {
                eprintln!(
                    "{} episode {e} seed {} return {r:.1}",
                    kind.name(),
                    seed + e as u64
                )
            },
        )?;
        eprintln!(
            "{}: {:.1} ± {:.1} ({:.1} s)",
            kind.name(),
            row.mean(),
            row.std(),
            start.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    print!(
        "{}",
        dream_mpc_sim::evaluate::markdown_table(&task_name, episodes, &rows)
    );
    Ok(())
}
