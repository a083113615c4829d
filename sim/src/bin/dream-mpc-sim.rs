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
    Serve(dream_mpc_sim::serve::cli::ServeArgs),
    // ---- end serve ----
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => dream_mpc_sim::serve::cli::main(args),
    };
    std::process::exit(code);
}
