//! `dream-mpc`: the robot-side command line.
fn main() {
    eprintln!("dream-mpc: no subcommands yet");
    std::process::exit(2);
}
