//! `dream-mpc-sim`: simulated robots.
//!
//! `dream-mpc-sim serve --task plumbing/point-mass` serves a task as a ROS 2
//! robot (observation out, action in, episode return out).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "dream-mpc-sim", about = "Simulated robots for dream-mpc")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // ---- serve (issue 6, ROS 2 robot node) ----
    /// Serve a task as a ROS 2 robot node.
    Serve(serve_cmd::ServeArgs),
    // ---- end serve ----
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => serve_cmd::main(args),
    };
    std::process::exit(code);
}

/// The `serve` subcommand (issue 6), kept apart from the other subcommands.
mod serve_cmd {
    use dream_mpc::ros::node::{domain_id_from_env, StopHandle};
    use dream_mpc_sim::serve::{make_task, serve, ServeOptions};

    #[derive(clap::Args)]
    pub struct ServeArgs {
        #[command(flatten)]
        pub opts: ServeOptions,
        /// Ignored `--ros-args ...` (accepted so `ros2 launch` can start it).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        pub ros_args: Vec<String>,
    }

    pub fn main(args: ServeArgs) -> i32 {
        let run = || -> Result<(), Box<dyn std::error::Error>> {
            let task = make_task(&args.opts.task)?;
            let domain = domain_id_from_env()?;
            let stop = StopHandle::default();
            {
                let stop = stop.clone();
                ctrlc::set_handler(move || stop.stop())?;
            }
            eprintln!(
                "dream-mpc-sim serve: {} on domain {domain}, {} episode(s), speed {}",
                args.opts.task, args.opts.episodes, args.opts.speed
            );
            serve(task, &args.opts, domain, &stop, |r| {
                println!("{}", r.to_json())
            })?;
            Ok(())
        };
        match run() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("dream-mpc-sim serve: error: {e}");
                2
            }
        }
    }
}
