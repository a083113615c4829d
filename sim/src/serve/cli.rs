//! The `dream-mpc-sim serve` subcommand; the binary only forwards to [`main`].

use super::{make_task, serve, ServeOptions};
use dream_mpc::ros::node::{domain_id_from_env, StopHandle};

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
