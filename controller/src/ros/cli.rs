//! The `dream-mpc run` subcommand: parse parameters, build the action
//! source and controller, install the Ctrl-C / SIGTERM handler, run the
//! node, print the final report. The binary only forwards to [`main`].
//!
//! Names and parameters come as ROS users pass them (`ros2 run`, launch_ros):
//! `--ros-args -r __node:=NAME -r __ns:=/NS -r from:=to --params-file FILE
//! -p name:=value` ([`super::names`]); the node name and namespace select
//! the parameter file's sections and resolve the topic names. A `--params-file`
//! given before `--ros-args` is read first.

use crate::control::{self, Controller, SourceKind};
use crate::ros::names::{RosArgs, DEFAULT_NODE};
use crate::ros::{self, share, Config, ConfigError, Params, StopHandle};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RunArgs {
    /// ROS 2 parameter file (`dream_mpc: ros__parameters: ...`).
    #[arg(long)]
    pub params_file: Option<PathBuf>,
    /// Stop by itself after this many seconds (benchmarks, tests).
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Print the final report as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,
    /// `--ros-args [-r __node:=NAME] [-r __ns:=/NS] [-r from:=to]
    /// [--params-file FILE] [-p name:=value] ...`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ros_args: Vec<String>,
}

/// Exit code of a run stopped by a planner fault (`on_planner_fault: stop`).
pub const EXIT_PLANNER_FAULT: i32 = 3;

pub fn main(args: RunArgs) -> i32 {
    match run(args) {
        Ok(false) => 0,
        Ok(true) => {
            eprintln!("dream-mpc run: stopped by a planner fault (on_planner_fault: stop); the safe action was published last");
            EXIT_PLANNER_FAULT
        }
        Err(e) => {
            eprintln!("dream-mpc run: error: {e}");
            2
        }
    }
}

/// Runs the node; `Ok(true)` when a planner fault stopped it.
fn run(args: RunArgs) -> Result<bool, Box<dyn std::error::Error>> {
    // Before any thread exists: per-thread arenas made resident memory
    // creep in the soak benchmark.
    let heap = ros::heap::bound_allocator();
    let mut argv = Vec::with_capacity(args.ros_args.len() + 1);
    if args.ros_args.first().is_some_and(|a| a != "--ros-args") {
        argv.push("--ros-args".to_string());
    }
    argv.extend(args.ros_args.iter().cloned());
    let (ros_args, rest) = RosArgs::parse(&argv, DEFAULT_NODE)?;
    if !rest.is_empty() {
        return Err(format!("unexpected arguments after --ros-args ... --: {rest:?}").into());
    }
    let names = ros_args.names(DEFAULT_NODE)?;
    let mut params = match &args.params_file {
        Some(p) => Params::from_file_for(p, &names)?,
        None => Params::default(),
    };
    params.apply(&ros_args.params, &names)?;
    let mut cfg = Config::from_params_named(params, &names)?;
    if let Some(b) = &cfg.control.bundle {
        cfg.control.bundle = Some(share::find_bundle(b).map_err(ConfigError::Layout)?);
    }
    let domain = ros::dds::domain_id_from_env()?;
    let source: Box<dyn control::ActionSource> = match cfg.control.action_source {
        SourceKind::DreamMpc => {
            let t0 = std::time::Instant::now();
            let s = control::PlannerSource::new(&cfg.control)?;
            eprintln!(
                "dream-mpc run: bundle {} loaded in {:.2} s; {}",
                cfg.control
                    .bundle
                    .as_deref()
                    .unwrap_or(std::path::Path::new("?"))
                    .display(),
                t0.elapsed().as_secs_f64(),
                control::describe_planner(s.settings(), &cfg.control.budget, &cfg.control.options)
            );
            Box::new(s)
        }
        _ => control::make_source(&cfg.control)?,
    };
    let controller = Controller::new(&cfg.control, source);
    let stop = StopHandle::default();
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.stop())?;
    }
    if let Some(d) = args.duration_s {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs_f64(d));
            stop.stop();
        });
    }
    eprintln!(
        "dream-mpc run: node {}, domain {domain}, {} Hz, {} -> {}, source {:?}",
        names.fqn(),
        cfg.control.control_rate_hz,
        cfg.observation_topic,
        cfg.action_topic,
        cfg.control.action_source
    );
    eprintln!(
        "dream-mpc run: malloc: {}",
        if heap.arena_max {
            format!("{} arena(s)", ros::heap::ARENA_MAX)
        } else {
            "arenas as the environment or glibc sets them".into()
        }
    );
    let r = ros::run(&cfg, controller, domain, stop)?;
    let (t, c) = (&r.control, r.control.counts);
    let line = format!(
        concat!(
            "{{\"ticks\":{},\"planned\":{},\"no_observation\":{},\"stale\":{},",
            "\"wrong_size\":{},\"non_finite\":{},\"implausible\":{},\"source_failed\":{},\"planner_faults\":{},",
            "\"cut_by_deadline\":{},\"deadline_misses\":{},\"overruns\":{},\"clamped\":{},",
            "\"observations_received\":{},\"actions_published\":{},\"actions_dropped\":{},",
            "\"diagnostics_published\":{},\"elapsed_s\":{},\"rate_hz\":{},",
            "\"latency_p50_s\":{},\"latency_p99_s\":{},\"latency_max_s\":{},\"jitter_p99_s\":{},",
            "\"jitter_max_s\":{},\"stopped_by_fault\":{},\"rt_priority\":{},\"rt_cpu\":{},\"rt_memory_locked\":{},",
            "\"rt_stack_prefaulted_kib\":{},\"dds_oversized_dropped\":{},\"dds_unmatched_fragments\":{},",
            "\"records_dropped\":{},\"parameter_requests_refused\":{}}}"
        ),
        c.ticks,
        c.planned,
        c.no_observation,
        c.stale,
        c.wrong_size,
        c.non_finite,
        c.implausible,
        c.source_failed,
        c.planner_faults,
        c.cut_by_deadline,
        c.deadline_misses,
        c.overruns,
        c.clamped,
        r.observations_received,
        r.actions_published,
        r.actions_dropped,
        r.diagnostics_published,
        t.elapsed_s,
        c.ticks as f64 / t.elapsed_s.max(1e-9),
        t.latency_p50_s,
        t.latency_p99_s,
        t.latency_max_s,
        t.jitter_p99_s,
        t.jitter_max_s,
        t.stopped_by_fault,
        r.realtime.priority,
        r.realtime.cpu.map_or("null".to_string(), |c| c.to_string()),
        r.realtime.memory_locked,
        r.realtime.stack_prefaulted_kib,
        r.dds_oversized_dropped,
        r.dds_unmatched_fragments,
        r.records_dropped,
        r.parameter_requests_refused
    );
    if args.json {
        println!("{line}");
    } else {
        eprintln!("dream-mpc run: stopped: {line}");
    }
    Ok(r.control.stopped_by_fault)
}
