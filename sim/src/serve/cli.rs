//! The `dream-mpc-sim serve` subcommand; the binary only forwards to [`main`].

use super::{make_task, serve, ServeOptions, DEFAULT_NODE};
use dream_mpc::ros::dds::domain_id_from_env;
use dream_mpc::ros::names::RosArgs;
use dream_mpc::ros::node::StopHandle;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub opts: ServeOptions,
    /// `--ros-args -r __node:=NAME -r __ns:=/NS -r from:=to`, as `ros2
    /// launch` passes them (parameters are not used by the robot node).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub ros_args: Vec<String>,
}

/// `opts` with the node name, namespace and remapping of `ros_args`
/// applied: every topic name resolved to its absolute form.
pub fn apply_ros_args(
    mut opts: ServeOptions,
    ros_args: &[String],
) -> Result<ServeOptions, Box<dyn std::error::Error>> {
    let (ros, rest) = RosArgs::parse(ros_args, DEFAULT_NODE)?;
    if !rest.is_empty() {
        return Err(format!("unexpected arguments: {rest:?}").into());
    }
    if !ros.params.is_empty() {
        eprintln!("dream-mpc-sim serve: note: parameters (-p, --params-file) are not used by the robot node; ignored");
    }
    let names = ros.names(DEFAULT_NODE)?;
    opts.observation_topic = names.resolve(&opts.observation_topic)?;
    opts.action_topic = names.resolve(&opts.action_topic)?;
    opts.return_topic = names.resolve(&opts.return_topic)?;
    opts.reward_topic = names.resolve(&opts.reward_topic)?;
    opts.episode_topic = names.resolve(&opts.episode_topic)?;
    opts.node_name = names.node().to_string();
    opts.namespace = names.namespace().to_string();
    Ok(opts)
}

pub fn main(args: ServeArgs) -> i32 {
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let opts = apply_ros_args(args.opts.clone(), &args.ros_args)?;
        let args = ServeArgs {
            opts,
            ros_args: Vec::new(),
        };
        let task = make_task(&args.opts.task)?;
        let domain = domain_id_from_env()?;
        let stop = StopHandle::default();
        {
            let stop = stop.clone();
            ctrlc::set_handler(move || stop.stop())?;
        }
        eprintln!(
            "dream-mpc-sim serve: {} on domain {domain}, {} episode(s), speed {}; {} -> {}",
            args.opts.task,
            args.opts.episodes,
            args.opts.speed,
            args.opts.observation_topic,
            args.opts.action_topic
        );
        if let Some(dir) = &args.opts.record {
            eprintln!("dream-mpc-sim serve: recording into {}", dir.display());
        }
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
