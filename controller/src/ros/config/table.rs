//! The parameter table ([`PARAMS`]: every parameter of `dream-mpc run`
//! once, with type, default, rule, doc line and whether it is tunable),
//! the closest-key suggestion, and the parameter reference generated from
//! the table into `config/controller.yaml`.

/// Longest unknown key that gets a closest-key suggestion, in bytes
/// (the longest known key is under 48).
pub const SUGGEST_MAX_BYTES: usize = 64;

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

/// Type of a parameter's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Str,
    Real,
    Int,
    Reals,
    Strs,
    Bool,
}

/// Per-key validation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    Any,
    /// Closed interval (numbers).
    Range(f64, f64),
    /// One of these strings (each element, for lists).
    OneOf(&'static [&'static str]),
    /// A ROS 2 topic name: absolute, relative (resolved in the node's
    /// namespace) or private (`~/name`).
    Topic,
}

/// What an absent key means.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Def {
    /// This value (YAML text).
    Value(&'static str),
    /// The key must be given.
    Required,
    /// No value; the text says what absent means.
    Absent(&'static str),
}

/// One row of the parameter table.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Dotted key, as `-p key:=value` names it.
    pub key: &'static str,
    pub ty: Ty,
    pub default: Def,
    pub rule: Rule,
    pub doc: &'static str,
    /// May change while running (through the ROS 2 parameter services);
    /// all others are fixed at start.
    pub tunable: bool,
}

const fn p(
    key: &'static str,
    ty: Ty,
    default: Def,
    rule: Rule,
    doc: &'static str,
    tunable: bool,
) -> Param {
    Param {
        key,
        ty,
        default,
        rule,
        doc,
        tunable,
    }
}

use Def::{Absent, Required, Value as Dv};
use Rule::{Any, OneOf, Range, Topic};

/// Every parameter of `dream-mpc run`, once.
pub const PARAMS: &[Param] = &[
    p("action_source", Ty::Str, Dv("dream_mpc"), OneOf(&["dream_mpc", "linear", "zero"]),
      "what computes the action: the planner on a bundle | a fixed linear law | zero (bring-up only)", false),
    p("bundle", Ty::Str, Absent("required when action_source is dream_mpc"), Any,
      "model bundle folder (holding manifest.json)", false),
    p("bundle_max_file_mib", Ty::Int, Dv("512"), Range(1.0, 65_536.0),
      "size cap of each bundle module and references file (MiB); larger files are refused unread", false),
    p("bundle_weights", Ty::Str, Dv("f32"), OneOf(&["f32", "bf16"]),
      "weight storage of the compiled bundle: f32 (as trained) | bf16 (half the bytes per tick, looser reference check)", false),
    p("planner", Ty::Str, Dv("dream-mpc"), Any,
      "planner kind of the planner table (dream-mpc, grad-mpc, cem, mppi, ...)", false),
    p("budget.candidates", Ty::Int, Absent("the bundle's planner.candidates"), Range(1.0, 4096.0),
      "candidates N", false),
    p("budget.horizon", Ty::Int, Absent("the bundle's planner.horizon"), Range(1.0, 256.0),
      "planning horizon H (steps)", false),
    p("budget.iterations", Ty::Int, Absent("the bundle's planner.iterations"), Range(0.0, 1000.0),
      "gradient iterations K per tick", true),
    p("budget.step_size", Ty::Real, Absent("the bundle's planner.step_size"), Range(1e-9, 100.0),
      "step size of the action update", true),
    p("budget.beta", Ty::Real, Absent("the bundle's planner.beta"), Range(0.0, 1000.0),
      "weight beta of the uncertainty term", true),
    p("options.preset", Ty::Str, Absent("the bundle's planner section"), OneOf(&["authors", "sketch"]),
      "named budget + options replacing the bundle's (budget.* and options.* still override)", false),
    p("options.optimizer", Ty::Str, Absent("the bundle's"), OneOf(&["sgd", "adam"]),
      "action update of the gradient planners", false),
    p("options.grad_clip_norm", Ty::Real, Absent("the bundle's"), Range(0.0, 1e6),
      "largest norm of the whole [H, N, A] gradient; 0 = off", false),
    p("options.extra_iterations_large_action", Ty::Int, Absent("the bundle's"), Range(0.0, 100.0),
      "iterations added to K when the action has >= 20 dimensions", false),
    p("options.clamp_each_step", Ty::Bool, Absent("the bundle's"), Any,
      "clamp the sequences to [-1, 1] after every step", false),
    p("options.policy_mean_row", Ty::Bool, Absent("the bundle's"), Any,
      "row 0 of the policy candidates is the mean rollout", false),
    p("options.reuse", Ty::Str, Absent("the bundle's"), OneOf(&["blend", "candidate"]),
      "how the previous tick's plan re-enters", false),
    p("options.rho", Ty::Real, Absent("the bundle's"), Range(0.0, 1.0),
      "blend weight of the previous tick's candidates (reuse: blend)", false),
    p("options.uncertainty", Ty::Str, Absent("the bundle's"), OneOf(&["mean_std", "std"]),
      "uncertainty u of the Q heads", false),
    p("options.uncertainty_at", Ty::Str, Absent("the bundle's"), OneOf(&["next_state", "current_state"]),
      "where u is measured (next_state: undiscounted, as the authors)", false),
    p("options.uncertainty_gradient", Ty::Bool, Absent("the bundle's"), Any,
      "differentiate u (else it only ranks the candidates)", false),
    p("options.value_heads", Ty::Str, Absent("the bundle's"), OneOf(&["two_random", "all"]),
      "Q heads of the terminal value", false),
    p("options.value_action", Ty::Str, Absent("the bundle's"), OneOf(&["sample", "mean"]),
      "action of the terminal value: a sample of pi or its mean", false),
    p("options.choice", Ty::Str, Absent("the bundle's"), OneOf(&["last_eval", "best_evaluated"]),
      "which candidate's first action a tick returns", false),
    p("control_rate_hz", Ty::Real, Dv("50.0"), Range(0.1, 10_000.0),
      "control ticks per second (one plan per model step)", false),
    p("plan_fraction", Ty::Real, Dv("0.7"), Range(0.05, 0.95),
      "share of the period the planner may use before its deadline", true),
    p("topics.observation", Ty::Str, Dv("observation"), Topic, "observation topic", false),
    p("topics.action", Ty::Str, Dv("action"), Topic, "action topic (Float64MultiArray)", false),
    p("topics.diagnostics", Ty::Str, Dv("/diagnostics"), Topic, "diagnostics topic (DiagnosticArray)", false),
    p("observation.type", Ty::Str, Dv("Float64MultiArray"),
      OneOf(&["Float64MultiArray", "JointState", "std_msgs/msg/Float64MultiArray", "sensor_msgs/msg/JointState"]),
      "observation message type", false),
    p("observation.size", Ty::Int, Required, Range(1.0, 65_536.0),
      "length of the model's observation vector", false),
    p("observation.joints", Ty::Strs, Absent("required for JointState"), Any,
      "JointState: joint names, in the observation's order", false),
    p("observation.fields", Ty::Strs, Absent("required for JointState"), OneOf(&["position", "velocity", "effort"]),
      "JointState: fields, each covering all joints in order", false),
    p("action.size", Ty::Int, Required, Range(1.0, 64.0), "number of actuators (at most control::MAX_ACTION)", false),
    p("action.scale", Ty::Reals, Absent("1 for each actuator"), Any,
      "actuator command = offset + scale * a, a in [-1, 1]; non-zero", false),
    p("action.offset", Ty::Reals, Absent("0 for each actuator"), Any, "see action.scale", false),
    p("action.safe", Ty::Reals, Absent("action.offset"), Any,
      "actuator units; sent on stale/invalid input, on a planner fault and on exit", false),
    p("linear.gain", Ty::Reals, Absent("required when action_source is linear"), Any,
      "linear law: row-major action.size x observation.size", false),
    p("linear.bias", Ty::Reals, Absent("0 for each actuator"), Any, "linear law: bias", false),
    p("watchdog_timeout_s", Ty::Real, Dv("0.1"), Range(1e-4, 60.0),
      "an older observation is stale: safe action", false),
    p("diagnostics_period_s", Ty::Real, Dv("1.0"), Range(0.01, 3600.0),
      "period of the /diagnostics summary", false),
    p("qos.reliability", Ty::Str, Absent("the per-topic keys"), OneOf(&["reliable", "best_effort"]),
      "older files: when set, the reliability of both the observation and the action topic (in place of qos.observation/action.reliability)", false),
    p("qos.depth", Ty::Int, Absent("the per-topic keys"), Range(1.0, 1000.0),
      "older files: when set, the history depth of both the observation and the action topic", false),
    p("qos.observation.reliability", Ty::Str, Dv("best_effort"), OneOf(&["reliable", "best_effort"]),
      "observation subscription (ROS 2 sensor-data profile): best_effort matches reliable and best-effort publishers; reliable matches only reliable ones", false),
    p("qos.observation.durability", Ty::Str, Dv("volatile"), OneOf(&["volatile", "transient_local"]),
      "observation subscription durability (transient_local matches only transient_local publishers)", false),
    p("qos.observation.depth", Ty::Int, Dv("5"), Range(1.0, 1000.0),
      "observation subscription history depth (keep last; the newest sample is planned on)", false),
    p("qos.action.reliability", Ty::Str, Dv("reliable"), OneOf(&["reliable", "best_effort"]),
      "action publisher (a reliable publisher serves reliable and best-effort subscribers)", false),
    p("qos.action.durability", Ty::Str, Dv("volatile"), OneOf(&["volatile", "transient_local"]),
      "action publisher durability", false),
    p("qos.action.depth", Ty::Int, Dv("1"), Range(1.0, 1000.0),
      "action publisher history depth (keep last; 1: a late or lossy reader gets the newest command, not a backlog)", false),
    p("qos.diagnostics.reliability", Ty::Str, Dv("reliable"), OneOf(&["reliable", "best_effort"]),
      "/diagnostics publisher (diagnostic_updater's QoS: reliable, volatile, keep last 1)", false),
    p("qos.diagnostics.durability", Ty::Str, Dv("volatile"), OneOf(&["volatile", "transient_local"]),
      "/diagnostics publisher durability", false),
    p("qos.diagnostics.depth", Ty::Int, Dv("1"), Range(1.0, 1000.0),
      "/diagnostics publisher history depth", false),
    p("parameter_services", Ty::Str, Dv("enhanced"), OneOf(&["enhanced", "cyclone", "off"]),
      "ROS 2 parameter services (list/get/describe/set) for the [tunable] keys: enhanced = the request-id mapping of rmw_fastrtps (ROS 2's default RMW) | cyclone = rmw_cyclonedds's | off", false),
    p("plausibility.margin", Ty::Real, Dv("0.5"), Range(0.0, 1e6),
      "an observation element outside the bundle's training range by more than this fraction of that range (at least its std) is implausible", false),
    p("plausibility.action", Ty::Str, Dv("reject"), OneOf(&["reject", "warn"]),
      "implausible observation: reject (safe action, counted) | warn (counted, planned on); bundles without observation.range skip the check", false),
    p("on_planner_fault", Ty::Str, Dv("stop"), OneOf(&["stop", "continue"]),
      "after a panic or error inside planning: stop with the safe action (exit 3) | reset and continue", false),
    p("debug.inject_planner_fault_at_tick", Ty::Int, Dv("0"), Range(0.0, 4_294_967_295.0),
      "TEST ONLY: panic inside planning at this planned tick (0 = never)", false),
    p("realtime.priority", Ty::Int, Dv("0"), Range(0.0, 99.0),
      "control thread only: 0 = normal scheduler, 1..99 = SCHED_FIFO at this priority (needs CAP_SYS_NICE or RLIMIT_RTPRIO)", false),
    p("realtime.cpu", Ty::Int, Absent("not pinned"), Range(0.0, 1023.0),
      "control thread only: pin it to this core (sched_setaffinity)", false),
    p("realtime.lock_memory", Ty::Bool, Dv("false"), Any,
      "process-wide mlockall(MCL_CURRENT | MCL_FUTURE) after start-up (needs CAP_IPC_LOCK or RLIMIT_MEMLOCK)", false),
    p("realtime.prefault_stack_kib", Ty::Int, Dv("256"), Range(0.0, 65_536.0),
      "KiB of the control thread's stack touched before the first tick", false),
    p("realtime.required", Ty::Bool, Dv("false"), Any,
      "false: a refused realtime setting is warned about and the node runs without it; true: exit 2 before the first tick", false),
    p("record", Ty::Str, Absent("not recording"), Any,
      "record each tick (observation planned on, action published) into this new rosbag2/MCAP bag folder (docs/BAGS.md)", false),
    p("record_reward_topic", Ty::Str, Absent("no reward recorded"), Topic,
      "with record: also record this std_msgs/Float64 reward topic (the sim's `reward`): the rewards received between two recorded ticks, summed, go with the earlier tick (docs/BAGS.md)", false),
    p("record_episode_topic", Ty::Str, Absent("no episode boundaries recorded"), Topic,
      "with record: also record episode boundaries from this std_msgs/Int64 topic (the sim's `episode`): the first recorded tick after a new index starts that episode", false),
    p("record_queue", Ty::Int, Dv("1024"), Range(1.0, 1_000_000.0),
      "records the control thread may queue for the bag writer thread; when full a record is dropped and counted (records_dropped), never the tick", false),
];

/// The table row of `key`.
pub fn param(key: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.key == key)
}

/// The known key closest to `key` (optimal-string-alignment distance, so a
/// swap of two letters counts one), if it is close enough to be a typo.
pub fn closest_key(key: &str) -> Option<&'static str> {
    // The edit distance costs key length x known-key length per known key:
    // a name far longer than every known key is no typo of one, and is not
    // worth that table.
    if key.len() > SUGGEST_MAX_BYTES {
        return None;
    }
    let (best, d) = PARAMS
        .iter()
        .map(|p| (p.key, edit_distance(key, p.key)))
        .min_by_key(|&(_, d)| d)?;
    (d <= 2.max(key.chars().count() / 3)).then_some(best)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let sub = d[(i - 1) * w + j - 1] + usize::from(a[i - 1] != b[j - 1]);
                let mut best = sub.min(d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * w + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * w + b.len()]
}

// ---------------------------------------------------------------------------
// The generated reference (docs in config/controller.yaml)
// ---------------------------------------------------------------------------

/// First line of the generated parameter reference in a YAML file.
pub const REFERENCE_BEGIN: &str =
    "# --- parameter reference (generated by `dream-mpc params` from controller/src/ros/config.rs) ---";
/// Last line of the generated parameter reference.
pub const REFERENCE_END: &str = "# --- end of parameter reference ---";

/// The parameter table as YAML comment lines, from [`REFERENCE_BEGIN`] to
/// [`REFERENCE_END`] (each line ends with a newline).
pub fn reference_comment() -> String {
    let mut s = format!("{REFERENCE_BEGIN}\n");
    s.push_str(
        "# key: type; default; allowed values. What it does. [tunable: may change at run time]\n",
    );
    for p in PARAMS {
        let ty = match p.ty {
            Ty::Str => "string",
            Ty::Real => "number",
            Ty::Int => "integer",
            Ty::Reals => "list of numbers",
            Ty::Strs => "list of strings",
            Ty::Bool => "bool",
        };
        let default = match p.default {
            Dv(v) => format!("default {v}"),
            Required => "required".to_string(),
            Absent(why) => format!("absent: {why}"),
        };
        let rule = match p.rule {
            Any => String::new(),
            Range(lo, hi) => format!("; in [{lo}, {hi}]"),
            OneOf(v) => format!("; one of {}", v.join(" | ")),
            Topic => "; topic name (relative: in the node's namespace)".to_string(),
        };
        let tun = if p.tunable { " [tunable]" } else { "" };
        s.push_str(&format!(
            "#   {}: {ty}; {default}{rule}. {}.{tun}\n",
            p.key, p.doc
        ));
    }
    s.push_str(REFERENCE_END);
    s.push('\n');
    s
}

/// `text` with its reference block replaced by [`reference_comment`]
/// (appended when it has none).
pub fn with_current_reference(text: &str) -> String {
    let fresh = reference_comment();
    match (text.find(REFERENCE_BEGIN), text.find(REFERENCE_END)) {
        (Some(b), Some(e)) if e > b => {
            let mut end = e + REFERENCE_END.len();
            if text[end..].starts_with('\n') {
                end += 1;
            }
            format!("{}{fresh}{}", &text[..b], &text[end..])
        }
        _ => {
            let sep = if text.ends_with('\n') { "" } else { "\n" };
            format!("{text}{sep}{fresh}")
        }
    }
}
