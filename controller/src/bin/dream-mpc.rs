//! `dream-mpc`: the robot-side command line.
//!
//! `dream-mpc run --params-file config/controller.yaml [--ros-args -p k:=v ...]`
//! runs the ROS 2 controller node until Ctrl-C / SIGTERM.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "dream-mpc", about = "Dream-MPC robot controller")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ROS 2 controller node (see config/controller.yaml).
    Run(dream_mpc::ros::cli::RunArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => dream_mpc::ros::cli::main(args),
    };
    std::process::exit(code);
}
