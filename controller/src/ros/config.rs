//! Node parameters, read from a YAML file in the ROS 2 parameter-file layout
//!
//! ```yaml
//! dream_mpc:
//!   ros__parameters:
//!     control_rate_hz: 100.0
//!     topics: { observation: /observation, action: /action }
//! ```
//!
//! plus `--ros-args -p name:=value` overrides (nested keys are dotted, as in
//! ROS 2: `-p topics.action:=/cmd`).
//!
//! One table, [`PARAMS`], declares every parameter once (key, type,
//! default, bounds or allowed values, doc line, run-time tunable or not),
//! as ros2_controllers' generate_parameter_library does from its YAML
//! schema. The table drives the known-keys check (an unknown key is named
//! with the closest known one, before any missing-key error), the type and
//! bounds checks, the defaults, and the parameter reference in
//! `config/controller.yaml` (printed by `dream-mpc params`; a test fails
//! when the file and the table disagree). Only checks that relate two keys
//! (list lengths, the safe action within the actuator range, JointState
//! mapping) are written out in [`Config::from_params`].
//!
//! Parsing is bounded before the YAML parser runs: a file over
//! [`MAX_FILE_BYTES`] or nested deeper than [`MAX_DEPTH`] is refused. Only
//! this node's section (`dream_mpc`, `/dream_mpc` or `/**`) is turned into
//! values; other nodes' sections are skipped without being built. Error
//! messages quote at most [`MAX_QUOTE`] characters of an offending value.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Section name of this node in a parameter file.
pub const NODE_NAME: &str = "dream_mpc";
/// Largest parameter file read (bytes); a larger one is refused before
/// parsing. A full parameter file for this node is about 2 KB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Deepest nesting (mappings, sequences, flow brackets) accepted; this
/// node's deepest key is two levels under `ros__parameters`.
pub const MAX_DEPTH: usize = 32;
/// Most characters of an offending value quoted in an error message.
pub const MAX_QUOTE: usize = 80;

/// What computes the action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The Dream-MPC planner on the model bundle.
    DreamMpc,
    /// `a = clamp(gain * obs + bias)`: a fixed linear feedback law, for
    /// plumbing tests and hardware bring-up (not a learned controller).
    Linear,
    /// Always the zero normalized action (bring-up only).
    Zero,
}

/// Message type of the observation topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObsKind {
    /// `std_msgs/msg/Float64MultiArray`, `data` is the observation vector.
    Float64MultiArray,
    /// `sensor_msgs/msg/JointState`, mapped by joint names and fields.
    JointState,
}

/// Which JointState field feeds the observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JointField {
    Position,
    Velocity,
    Effort,
}

/// DDS reliability of all topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reliability {
    Reliable,
    BestEffort,
}

/// What the node does after a fault inside planning (a panic, or an error
/// the action source returns): the safe action goes out for that tick and
/// the fault is counted either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPolicy {
    /// Publish the safe action as the last word and stop (exit code 3).
    Stop,
    /// Reset the planner and plan again from the next tick.
    Continue,
}

/// Planner budget overrides; `None` = the bundle manifest's planner
/// defaults (the values the model was shipped and tested with).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Budget {
    /// Candidates N.
    pub candidates: Option<usize>,
    /// Horizon H.
    pub horizon: Option<usize>,
    /// Iterations K per tick.
    pub iterations: Option<usize>,
    /// Step size of the action update.
    pub step_size: Option<f64>,
    /// Uncertainty weight beta.
    pub beta: Option<f64>,
}

/// All parameters of `dream-mpc run`.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub action_source: SourceKind,
    /// Model bundle folder (required for `action_source: dream_mpc`).
    pub bundle: Option<PathBuf>,
    /// Size cap of each bundle module and references file, in MiB.
    pub bundle_max_file_mib: u64,
    pub planner: String,
    pub budget: Budget,
    pub control_rate_hz: f64,
    /// Share of the control period the planner may use before its deadline.
    pub plan_fraction: f64,
    pub observation_topic: String,
    pub action_topic: String,
    pub diagnostics_topic: String,
    pub observation_type: ObsKind,
    pub observation_size: usize,
    /// JointState mapping: the vector is, for each field in order, that
    /// field of each joint in order (all positions, then all velocities).
    pub joints: Vec<String>,
    pub fields: Vec<JointField>,
    pub action_size: usize,
    /// Actuator command = offset + scale * normalized action.
    pub action_scale: Vec<f64>,
    pub action_offset: Vec<f64>,
    /// Published (in actuator units) whenever the observation cannot be
    /// trusted, and on shutdown.
    pub safe_action: Vec<f64>,
    /// Linear feedback (row-major action_size x observation_size).
    pub linear_gain: Vec<f64>,
    pub linear_bias: Vec<f64>,
    pub watchdog_timeout_s: f64,
    pub diagnostics_period_s: f64,
    pub reliability: Reliability,
    pub qos_depth: usize,
    pub on_planner_fault: FaultPolicy,
    /// `plausibility.margin`: fraction of each element's training range
    /// an observation may lie outside it.
    pub plausibility_margin: f64,
    /// `plausibility.action: warn`: count implausible observations but
    /// plan on them.
    pub plausibility_warn_only: bool,
    /// Test-only fault injection: the planned tick (1-based) at which the
    /// control thread raises a panic inside planning; `None` = never.
    pub inject_planner_fault_at_tick: Option<u64>,
    /// `realtime.*`: scheduling, pinning and memory locking.
    pub realtime: super::realtime::RtConfig,
}

/// Why the parameters were refused.
#[derive(Debug)]
pub enum ConfigError {
    Io {
        path: PathBuf,
        error: String,
    },
    /// The file is larger than [`MAX_FILE_BYTES`] (refused unread).
    TooLarge {
        path: PathBuf,
        bytes: u64,
    },
    /// Nesting deeper than [`MAX_DEPTH`] (refused before parsing).
    TooDeep {
        line: usize,
    },
    Yaml {
        path: PathBuf,
        error: String,
    },
    /// The file lacks `dream_mpc: ros__parameters:` (or `/**:`).
    Layout(String),
    UnknownKey {
        key: String,
        /// The closest known key, when one is close.
        suggestion: Option<&'static str>,
    },
    BadValue {
        key: String,
        value: String,
        expected: String,
    },
    Missing {
        key: String,
        why: String,
    },
    /// A malformed `--ros-args` argument.
    Argument(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            ConfigError::TooLarge { path, bytes } => write!(
                f,
                "{} is {bytes} bytes, over the {MAX_FILE_BYTES}-byte limit for parameter files",
                path.display()
            ),
            ConfigError::TooDeep { line } => write!(
                f,
                "parameters nested deeper than {MAX_DEPTH} levels (line {line}); refused before parsing"
            ),
            ConfigError::Yaml { path, error } => {
                write!(f, "{} is not valid YAML: {}", path.display(), clip(error))
            }
            ConfigError::Layout(m) => write!(f, "{m}"),
            ConfigError::UnknownKey {
                key,
                suggestion: Some(s),
            } => write!(f, "unknown parameter '{key}' (did you mean '{s}'?)"),
            ConfigError::UnknownKey {
                key,
                suggestion: None,
            } => write!(
                f,
                "unknown parameter '{key}'; known parameters: {}",
                PARAMS.iter().map(|p| p.key).collect::<Vec<_>>().join(", ")
            ),
            ConfigError::BadValue {
                key,
                value,
                expected,
            } => write!(
                f,
                "parameter '{key}' = {} is invalid: expected {expected}",
                clip(value)
            ),
            ConfigError::Missing { key, why } => write!(f, "parameter '{key}' is required: {why}"),
            ConfigError::Argument(m) => write!(f, "bad --ros-args argument: {m}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// At most [`MAX_QUOTE`] characters of `s`, marked when cut.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTE) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}... ({} bytes in all)", &s[..cut], s.len()),
    }
}

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
    /// An absolute ROS 2 topic name.
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
    /// May change while running (through the ROS 2 parameter services once
    /// they exist, issue 13); all others are fixed at start.
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
    p("control_rate_hz", Ty::Real, Dv("50.0"), Range(0.1, 10_000.0),
      "control ticks per second (one plan per model step)", false),
    p("plan_fraction", Ty::Real, Dv("0.7"), Range(0.05, 0.95),
      "share of the period the planner may use before its deadline", true),
    p("topics.observation", Ty::Str, Dv("/observation"), Topic, "observation topic", false),
    p("topics.action", Ty::Str, Dv("/action"), Topic, "action topic (Float64MultiArray)", false),
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
    p("qos.reliability", Ty::Str, Dv("reliable"), OneOf(&["reliable", "best_effort"]),
      "DDS reliability of the observation and action topics", false),
    p("qos.depth", Ty::Int, Dv("1"), Range(1.0, 1000.0), "DDS history depth (keep last)", false),
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
];

/// The table row of `key`.
pub fn param(key: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.key == key)
}

/// The known key closest to `key` (optimal-string-alignment distance, so a
/// swap of two letters counts one), if it is close enough to be a typo.
pub fn closest_key(key: &str) -> Option<&'static str> {
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
            Topic => "; absolute topic name".to_string(),
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

// ---------------------------------------------------------------------------
// Reading: bounded, this node's section only
// ---------------------------------------------------------------------------

/// Flat `dotted.key -> value` parameter map, as ROS 2 sees parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(BTreeMap<String, Value>);

/// Refuse nesting deeper than [`MAX_DEPTH`] before any parser runs, in
/// one linear pass: the depth of a line is its number of distinct
/// enclosing indentation levels, plus its leading `- ` markers, plus the
/// open flow brackets (`[`, `{`) outside quotes and comments.
pub fn check_depth(text: &str) -> Result<(), ConfigError> {
    let mut indents: Vec<usize> = Vec::new();
    let mut brackets = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches([' ', '\t']);
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        if brackets == 0 {
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut dashes = 0;
        let mut rest = body;
        while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
            dashes += 1;
            rest = r.trim_start();
        }
        let (mut quote, mut peak) = (None::<char>, brackets);
        for c in rest.chars() {
            match (quote, c) {
                (None, '#') => break,
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '[' | '{') => {
                    brackets += 1;
                    peak = peak.max(brackets);
                }
                (None, ']' | '}') => brackets = brackets.saturating_sub(1),
                _ => {}
            }
        }
        if indents.len() + dashes + peak > MAX_DEPTH {
            return Err(ConfigError::TooDeep { line: n + 1 });
        }
    }
    Ok(())
}

/// The top level of a parameter file: this node's sections as values,
/// every other node's section skipped (parsed as events, never built).
struct OurSections(Vec<(String, Value)>);

fn is_ours(name: &str) -> bool {
    name == NODE_NAME || name == "/**" || name.strip_prefix('/') == Some(NODE_NAME)
}

impl<'de> Deserialize<'de> for OurSections {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OurSections;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "a mapping '{NODE_NAME}: ros__parameters: ...' at the top level"
                )
            }
            fn visit_unit<E: de::Error>(self) -> Result<OurSections, E> {
                Ok(OurSections(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OurSections, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<Value>()? {
                    match name.as_str() {
                        Some(n) if is_ours(n) => out.push((n.to_string(), map.next_value()?)),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(OurSections(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Params {
    /// Read this node's section of a ROS 2 parameter file (refused unread
    /// when over [`MAX_FILE_BYTES`]; the read itself is bounded too, for
    /// files that grow or lie about their size).
    pub fn from_file(path: &Path) -> Result<Params, ConfigError> {
        let io = |e: std::io::Error| ConfigError::Io {
            path: path.to_path_buf(),
            error: e.to_string(),
        };
        // Check the type before opening: opening a FIFO blocks until a
        // writer appears, and a device can be endless.
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                error: "not a regular file".into(),
            });
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                bytes: meta.len(),
            });
        }
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                bytes: bytes.len() as u64,
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::Io {
            path: path.to_path_buf(),
            error: format!("not UTF-8 text: {e}"),
        })?;
        Params::from_yaml(&text).map_err(|e| match e {
            ConfigError::Yaml { error, .. } => ConfigError::Yaml {
                path: path.to_path_buf(),
                error,
            },
            ConfigError::Layout(m) => ConfigError::Layout(format!("{}: {m}", path.display())),
            ConfigError::TooDeep { line } => ConfigError::Layout(format!(
                "{}: {}",
                path.display(),
                ConfigError::TooDeep { line }
            )),
            other => other,
        })
    }

    /// Parse a parameter file's text (see the module docs for the layout).
    pub fn from_yaml(text: &str) -> Result<Params, ConfigError> {
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: PathBuf::from("<text>"),
                bytes: text.len() as u64,
            });
        }
        check_depth(text)?;
        let OurSections(sections) = serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml {
            path: PathBuf::from("<text>"),
            error: e.to_string(),
        })?;
        if sections.is_empty() {
            return Err(ConfigError::Layout(format!(
                "no '{NODE_NAME}: ros__parameters:' section"
            )));
        }
        let mut params = Params::default();
        for (name, section) in sections {
            let Some(inner) = section.get("ros__parameters") else {
                return Err(ConfigError::Layout(format!(
                    "section '{name}' has no 'ros__parameters' mapping"
                )));
            };
            flatten("", inner, &mut params.0)?;
        }
        Ok(params)
    }

    /// Apply `--ros-args` arguments: `-p name:=value` (value parsed as YAML,
    /// like `ros2 run`) and `--params-file FILE`. Returns an error on
    /// anything it does not understand.
    pub fn apply_ros_args(&mut self, args: &[String]) -> Result<(), ConfigError> {
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--ros-args" | "--" => {}
                "-p" | "--param" => {
                    let kv = it
                        .next()
                        .ok_or_else(|| ConfigError::Argument(format!("{a} needs name:=value")))?;
                    let (k, v) = kv.split_once(":=").ok_or_else(|| {
                        ConfigError::Argument(format!(
                            "'{}' is not of the form name:=value",
                            clip(kv)
                        ))
                    })?;
                    check_depth(v)?;
                    let value: Value = serde_yaml::from_str(v).map_err(|e| {
                        ConfigError::Argument(format!(
                            "value of '{}' ('{}') is not YAML: {}",
                            clip(k),
                            clip(v),
                            clip(&e.to_string())
                        ))
                    })?;
                    self.0.insert(k.to_string(), value);
                }
                "--params-file" => {
                    let f = it.next().ok_or_else(|| {
                        ConfigError::Argument("--params-file needs a path".into())
                    })?;
                    let more = Params::from_file(Path::new(f))?;
                    self.0.extend(more.0);
                }
                other => {
                    return Err(ConfigError::Argument(format!(
                        "'{}' (supported: -p name:=value, --params-file FILE)",
                        clip(other)
                    )))
                }
            }
        }
        Ok(())
    }

    pub fn set(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_string(), value);
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) -> Result<(), ConfigError> {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let Some(k) = k.as_str() else {
                    return Err(ConfigError::Layout(format!(
                        "parameter names must be strings, found {} under '{prefix}'",
                        clip(&show(k))
                    )));
                };
                let key = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out)?;
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
    Ok(())
}

fn show(v: &Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().replace('\n', " "))
        .unwrap_or_else(|_| format!("{v:?}"))
}

// ---------------------------------------------------------------------------
// Validation, driven by the table
// ---------------------------------------------------------------------------

/// Every table key with its checked value (given or default); absent keys
/// without a default are missing from the map.
struct Checked(BTreeMap<&'static str, Value>);

fn expected(p: &Param) -> String {
    let ty = match p.ty {
        Ty::Str => "a string",
        Ty::Real => "a number",
        Ty::Int => "an integer",
        Ty::Reals => "a list of finite numbers",
        Ty::Strs => "a list of strings",
        Ty::Bool => "true or false",
    };
    match p.rule {
        Any => ty.to_string(),
        Range(lo, hi) => format!("{ty} in [{lo}, {hi}]"),
        OneOf(v) => v.join(" | "),
        Topic => "an absolute ROS 2 topic name like /robot/observation".to_string(),
    }
}

fn topic_ok(t: &str) -> bool {
    t.starts_with('/')
        && t.len() > 1
        && t[1..]
            .split('/')
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// Type and rule check of one value against its table row.
fn check(p: &Param, v: &Value) -> Result<(), ConfigError> {
    let in_range = |x: f64| match p.rule {
        Range(lo, hi) => x >= lo && x <= hi,
        _ => true,
    };
    let allowed = |s: &str| match p.rule {
        OneOf(v) => v.contains(&s),
        Topic => topic_ok(s),
        _ => true,
    };
    let ok = match p.ty {
        Ty::Str => v.as_str().is_some_and(allowed),
        Ty::Real => v.as_f64().is_some_and(|x| x.is_finite() && in_range(x)),
        Ty::Int => v.as_u64().is_some_and(|x| in_range(x as f64)),
        Ty::Reals => v.as_sequence().is_some_and(|s| {
            s.iter()
                .all(|x| x.as_f64().is_some_and(|x| x.is_finite() && in_range(x)))
        }),
        Ty::Strs => v
            .as_sequence()
            .is_some_and(|s| s.iter().all(|x| x.as_str().is_some_and(allowed))),
        Ty::Bool => v.is_bool(),
    };
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadValue {
            key: p.key.to_string(),
            value: show(v),
            expected: expected(p),
        })
    }
}

impl Checked {
    /// Unknown keys first (named with the closest known key), then every
    /// given value and every default through its row's checks.
    fn new(mut given: Params) -> Result<Checked, ConfigError> {
        if let Some(key) = given.0.keys().find(|k| param(k).is_none()) {
            return Err(ConfigError::UnknownKey {
                suggestion: closest_key(key),
                key: key.clone(),
            });
        }
        let mut out = BTreeMap::new();
        for p in PARAMS {
            let v = match (given.0.remove(p.key), p.default) {
                (Some(v), _) => v,
                (None, Dv(text)) => serde_yaml::from_str(text).expect("table default is YAML"),
                (None, _) => continue,
            };
            check(p, &v)?;
            out.insert(p.key, v);
        }
        Ok(Checked(out))
    }
    fn str(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(Value::as_str)
    }
    fn real(&self, k: &str) -> Option<f64> {
        self.0.get(k).and_then(Value::as_f64)
    }
    fn int(&self, k: &str) -> Option<usize> {
        self.0.get(k).and_then(Value::as_u64).map(|x| x as usize)
    }
    fn bool(&self, k: &str) -> Option<bool> {
        self.0.get(k).and_then(Value::as_bool)
    }
    fn reals(&self, k: &str) -> Option<Vec<f64>> {
        self.0
            .get(k)
            .and_then(Value::as_sequence)
            .map(|s| s.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
    }
    fn strs(&self, k: &str) -> Vec<String> {
        self.0
            .get(k)
            .and_then(Value::as_sequence)
            .map(|s| {
                s.iter()
                    .map(|x| x.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
    fn required(&self, k: &str, why: &str) -> Result<usize, ConfigError> {
        self.int(k).ok_or_else(|| ConfigError::Missing {
            key: k.into(),
            why: why.into(),
        })
    }
}

fn check_len(key: &str, v: &[f64], n: usize) -> Result<(), ConfigError> {
    if v.len() != n {
        return Err(ConfigError::BadValue {
            key: key.to_string(),
            value: format!("a list of {} numbers", v.len()),
            expected: format!("{n} numbers"),
        });
    }
    Ok(())
}

impl Config {
    /// Validate and type every parameter. Sizes come from the parameters
    /// (`observation.size`, `action.size`); with a bundle the caller checks
    /// them against the manifest.
    pub fn from_params(p: Params) -> Result<Config, ConfigError> {
        let c = Checked::new(p)?;
        let action_source = match c.str("action_source") {
            Some("linear") => SourceKind::Linear,
            Some("zero") => SourceKind::Zero,
            _ => SourceKind::DreamMpc,
        };
        let bundle = c.str("bundle").filter(|b| !b.is_empty()).map(PathBuf::from);
        if action_source == SourceKind::DreamMpc && bundle.is_none() {
            return Err(ConfigError::Missing {
                key: "bundle".into(),
                why: "action_source is dream_mpc, which plans on a model bundle".into(),
            });
        }
        let budget = Budget {
            candidates: c.int("budget.candidates"),
            horizon: c.int("budget.horizon"),
            iterations: c.int("budget.iterations"),
            step_size: c.real("budget.step_size"),
            beta: c.real("budget.beta"),
        };
        let observation_type = match c.str("observation.type") {
            Some("JointState" | "sensor_msgs/msg/JointState") => ObsKind::JointState,
            _ => ObsKind::Float64MultiArray,
        };
        let joints = c.strs("observation.joints");
        let fields: Vec<JointField> = c
            .strs("observation.fields")
            .iter()
            .map(|f| match f.as_str() {
                "velocity" => JointField::Velocity,
                "effort" => JointField::Effort,
                _ => JointField::Position,
            })
            .collect();
        let observation_size = c.required(
            "observation.size",
            "the length of the model's observation vector",
        )?;
        if observation_type == ObsKind::JointState {
            if joints.is_empty() || fields.is_empty() {
                return Err(ConfigError::Missing {
                    key: "observation.joints".into(),
                    why: "JointState observations are mapped by observation.joints and observation.fields".into(),
                });
            }
            if joints.len() * fields.len() != observation_size {
                return Err(ConfigError::BadValue {
                    key: "observation.joints".into(),
                    value: format!("{} joints x {} fields", joints.len(), fields.len()),
                    expected: format!("joints x fields = observation.size = {observation_size}"),
                });
            }
        }
        let action_size = c.required("action.size", "the number of actuators")?;
        let action_scale = c.reals("action.scale").unwrap_or(vec![1.0; action_size]);
        check_len("action.scale", &action_scale, action_size)?;
        if action_scale.contains(&0.0) {
            return Err(ConfigError::BadValue {
                key: "action.scale".into(),
                value: format!("{action_scale:?}"),
                expected: "non-zero factors".into(),
            });
        }
        let action_offset = c.reals("action.offset").unwrap_or(vec![0.0; action_size]);
        check_len("action.offset", &action_offset, action_size)?;
        let safe_action = c
            .reals("action.safe")
            .unwrap_or_else(|| action_offset.clone());
        check_len("action.safe", &safe_action, action_size)?;
        for (i, s) in safe_action.iter().enumerate() {
            let (lo, hi) = (
                action_offset[i] - action_scale[i].abs(),
                action_offset[i] + action_scale[i].abs(),
            );
            if *s < lo || *s > hi {
                return Err(ConfigError::BadValue {
                    key: "action.safe".into(),
                    value: format!("{s} (element {i})"),
                    expected: format!("within the actuator range [{lo}, {hi}]"),
                });
            }
        }
        let linear_gain = c.reals("linear.gain").unwrap_or_default();
        let linear_bias = c.reals("linear.bias").unwrap_or(vec![0.0; action_size]);
        if action_source == SourceKind::Linear {
            if linear_gain.is_empty() {
                return Err(ConfigError::Missing {
                    key: "linear.gain".into(),
                    why: "action_source is linear".into(),
                });
            }
            check_len("linear.gain", &linear_gain, action_size * observation_size)?;
            check_len("linear.bias", &linear_bias, action_size)?;
        }
        let num = |k: &str| c.real(k).expect("table default");
        Ok(Config {
            action_source,
            bundle,
            bundle_max_file_mib: c.int("bundle_max_file_mib").expect("table default") as u64,
            planner: c.str("planner").unwrap_or_default().to_string(),
            budget,
            control_rate_hz: num("control_rate_hz"),
            plan_fraction: num("plan_fraction"),
            observation_topic: c.str("topics.observation").unwrap_or_default().into(),
            action_topic: c.str("topics.action").unwrap_or_default().into(),
            diagnostics_topic: c.str("topics.diagnostics").unwrap_or_default().into(),
            observation_type,
            observation_size,
            joints,
            fields,
            action_size,
            action_scale,
            action_offset,
            safe_action,
            linear_gain,
            linear_bias,
            watchdog_timeout_s: num("watchdog_timeout_s"),
            diagnostics_period_s: num("diagnostics_period_s"),
            reliability: match c.str("qos.reliability") {
                Some("best_effort") => Reliability::BestEffort,
                _ => Reliability::Reliable,
            },
            qos_depth: c.int("qos.depth").unwrap_or(1),
            plausibility_margin: num("plausibility.margin"),
            plausibility_warn_only: c.str("plausibility.action") == Some("warn"),
            on_planner_fault: match c.str("on_planner_fault") {
                Some("continue") => FaultPolicy::Continue,
                _ => FaultPolicy::Stop,
            },
            inject_planner_fault_at_tick: c
                .int("debug.inject_planner_fault_at_tick")
                .filter(|&t| t > 0)
                .map(|t| t as u64),
            realtime: super::realtime::RtConfig {
                priority: c.int("realtime.priority").unwrap_or(0) as u8,
                cpu: c.int("realtime.cpu"),
                lock_memory: c.bool("realtime.lock_memory").unwrap_or(false),
                prefault_stack_kib: c.int("realtime.prefault_stack_kib").unwrap_or(0),
                required: c.bool("realtime.required").unwrap_or(false),
            },
        })
    }

    /// Control period.
    pub fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(1.0 / self.control_rate_hz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
dream_mpc:
  ros__parameters:
    action_source: linear
    control_rate_hz: 100.0
    observation: { size: 2 }
    action: { size: 1, scale: [2.0], safe: [0.0] }
    linear: { gain: [-1.0, -0.5] }
other_node:
  ros__parameters:
    whatever: 1
";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_params(Params::from_yaml(text)?)
    }

    #[test]
    fn good_file_parses() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.action_source, SourceKind::Linear);
        assert_eq!(c.control_rate_hz, 100.0);
        assert_eq!(c.linear_gain, vec![-1.0, -0.5]);
        assert_eq!(c.action_scale, vec![2.0]);
        assert_eq!(c.observation_topic, "/observation");
    }

    #[test]
    fn unknown_key_is_named() {
        let text = GOOD.replace("control_rate_hz: 100.0", "control_rate: 100.0");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("unknown parameter 'control_rate'"), "{e}");
    }

    #[test]
    fn nested_unknown_key_is_named_dotted() {
        let text = GOOD.replace("size: 1,", "size: 1, gain: 3,");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("'action.gain'"), "{e}");
    }

    #[test]
    fn invalid_values_are_named() {
        for (from, to, key) in [
            (
                "control_rate_hz: 100.0",
                "control_rate_hz: -5",
                "control_rate_hz",
            ),
            (
                "control_rate_hz: 100.0",
                "control_rate_hz: fast",
                "control_rate_hz",
            ),
            (
                "action_source: linear",
                "action_source: magic",
                "action_source",
            ),
            ("safe: [0.0]", "safe: [3.0]", "action.safe"),
            ("gain: [-1.0, -0.5]", "gain: [-1.0]", "linear.gain"),
            ("scale: [2.0]", "scale: [0.0]", "action.scale"),
        ] {
            let e = parse(&GOOD.replace(from, to)).unwrap_err().to_string();
            assert!(e.contains(&format!("'{key}'")), "{to}: {e}");
        }
    }

    #[test]
    fn missing_section_is_refused() {
        let e = parse("someone_else:\n  ros__parameters: {a: 1}\n").unwrap_err();
        assert!(matches!(e, ConfigError::Layout(_)), "{e}");
    }

    #[test]
    fn ros_args_override_and_are_checked() {
        let mut p = Params::from_yaml(GOOD).unwrap();
        p.apply_ros_args(&[
            "--ros-args".into(),
            "-p".into(),
            "control_rate_hz:=250.0".into(),
            "-p".into(),
            "topics.action:=/cmd".into(),
        ])
        .unwrap();
        let c = Config::from_params(p).unwrap();
        assert_eq!(c.control_rate_hz, 250.0);
        assert_eq!(c.action_topic, "/cmd");
        let mut p = Params::from_yaml(GOOD).unwrap();
        assert!(p.apply_ros_args(&["-p".into(), "novalue".into()]).is_err());
        let mut p = Params::from_yaml(GOOD).unwrap();
        p.apply_ros_args(&["-p".into(), "topics.action:=cmd".into()])
            .unwrap();
        let e = Config::from_params(p).unwrap_err().to_string();
        assert!(e.contains("'topics.action'"), "{e}");
    }

    #[test]
    fn joint_state_mapping_must_cover_the_vector() {
        let text = GOOD.replace(
            "observation: { size: 2 }",
            "observation: { size: 2, type: JointState, joints: [hinge], fields: [position] }",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("'observation.joints'"), "{e}");
        let text = GOOD.replace(
            "observation: { size: 2 }",
            "observation: { size: 2, type: JointState, joints: [hinge], fields: [position, velocity] }",
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.fields, vec![JointField::Position, JointField::Velocity]);
    }

    #[test]
    fn unknown_key_is_named_with_the_closest_known_key_before_missing_keys() {
        // `bundel` instead of `bundle`: `bundle` is then missing too, but
        // the typo is what gets reported.
        let text = "dream_mpc:\n  ros__parameters:\n    bundel: models/x\n    observation: {size: 2}\n    action: {size: 1}\n";
        let e = parse(text).unwrap_err().to_string();
        assert_eq!(e, "unknown parameter 'bundel' (did you mean 'bundle'?)");
        // before a missing required key as well
        let text =
            "dream_mpc:\n  ros__parameters:\n    action_source: zero\n    watchdog_timeout: 0.1\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(
            e.contains("unknown parameter 'watchdog_timeout' (did you mean 'watchdog_timeout_s'?)"),
            "{e}"
        );
        // nothing close: the known keys are listed instead
        let e = parse(&GOOD.replace("control_rate_hz: 100.0", "zzzzzzzz: 1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("known parameters: action_source, bundle"), "{e}");
        assert_eq!(closest_key("qos.relability"), Some("qos.reliability"));
        assert_eq!(closest_key("budget.iteratoins"), Some("budget.iterations"));
    }

    #[test]
    fn budget_keys_are_optional_and_absent_means_the_bundle() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.budget, Budget::default());
        let c = parse(&GOOD.replace(
            "control_rate_hz: 100.0",
            "control_rate_hz: 100.0\n    budget: { horizon: 5, beta: 0.01 }",
        ))
        .unwrap();
        assert_eq!(c.budget.horizon, Some(5));
        assert_eq!(c.budget.beta, Some(0.01));
        assert_eq!(c.budget.candidates, None);
        let e = parse(&GOOD.replace(
            "control_rate_hz: 100.0",
            "control_rate_hz: 100.0\n    budget: { candidates: 0 }",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("'budget.candidates'"), "{e}");
    }

    #[test]
    fn every_default_passes_its_own_rule_and_keys_are_unique() {
        for (i, p) in PARAMS.iter().enumerate() {
            if let Def::Value(text) = p.default {
                let v: Value = serde_yaml::from_str(text).unwrap();
                check(p, &v).unwrap_or_else(|e| panic!("default of {}: {e}", p.key));
            }
            assert!(
                PARAMS[..i].iter().all(|q| q.key != p.key),
                "{} twice",
                p.key
            );
        }
    }

    /// The parameter reference in config/controller.yaml is generated from
    /// the table (`dream-mpc params --update config/controller.yaml`):
    /// this fails when a key, default, bound or doc line changes in one and
    /// not the other. Every key the shipped configs set is in the table.
    #[test]
    fn shipped_config_reference_matches_the_table() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let text = std::fs::read_to_string(dir.join("controller.yaml")).unwrap();
        assert_eq!(
            text,
            with_current_reference(&text),
            "config/controller.yaml's parameter reference is stale: run \
             `dream-mpc params --update config/controller.yaml`"
        );
        let block = &text[text.find(REFERENCE_BEGIN).unwrap()..text.find(REFERENCE_END).unwrap()];
        let listed: Vec<&str> = block
            .lines()
            .filter_map(|l| l.strip_prefix("#   "))
            .filter_map(|l| l.split_once(':').map(|(k, _)| k))
            .collect();
        let table: Vec<&str> = PARAMS.iter().map(|p| p.key).collect();
        assert_eq!(listed, table);
        for f in ["controller.yaml", "cartpole.yaml", "plumbing.yaml"] {
            let p = Params::from_file(&dir.join(f)).unwrap();
            for k in p.0.keys() {
                assert!(param(k).is_some(), "{f}: {k} not in the table");
            }
        }
        // and the check can fail: a changed doc line is seen
        let stale = text.replacen("candidates N", "candidates", 1);
        assert_ne!(stale, with_current_reference(&stale));
    }

    #[test]
    fn oversized_file_is_refused_unread() {
        let dir = std::env::temp_dir().join(format!("dmpc_cfg_big_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.yaml");
        // 100 MB: a valid section plus a huge list in another node's section
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(100 << 20).unwrap();
        let t = std::time::Instant::now();
        let e = Params::from_file(&path).unwrap_err();
        assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("over the 1048576-byte limit"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        // a FIFO (opening it would block) and a directory are refused
        let fifo = dir.join("fifo.yaml");
        if std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success())
        {
            let e = Params::from_file(&fifo).unwrap_err().to_string();
            assert!(e.contains("not a regular file"), "{e}");
        }
        let e = Params::from_file(&dir).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        let text = format!("{GOOD}\n# {}\n", "x".repeat(MAX_FILE_BYTES as usize));
        assert!(matches!(
            Params::from_yaml(&text),
            Err(ConfigError::TooLarge { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let text = GOOD.replace("whatever: 1", &format!("whatever: {deep}"));
        let t = std::time::Instant::now();
        let e = Params::from_yaml(&text).unwrap_err();
        assert!(matches!(e, ConfigError::TooDeep { .. }), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        // block nesting by indentation and by `- - -` markers too
        let mut block = String::from("dream_mpc:\n  ros__parameters:\n");
        for i in 0..40 {
            block.push_str(&format!("{}k{i}:\n", " ".repeat(4 + 2 * i)));
        }
        assert!(matches!(
            Params::from_yaml(&block),
            Err(ConfigError::TooDeep { .. })
        ));
        let dashes = format!("a:\n  {}x\n", "- ".repeat(40));
        assert!(matches!(
            check_depth(&dashes),
            Err(ConfigError::TooDeep { line: 2 })
        ));
        // brackets inside quotes or comments do not count
        check_depth(&format!("a: '{}' # {}\n", "[".repeat(50), "{".repeat(50))).unwrap();
        let mut p = Params::default();
        let e = p
            .apply_ros_args(&["-p".into(), format!("x:={}", "[".repeat(1000))])
            .unwrap_err();
        assert!(matches!(e, ConfigError::TooDeep { .. }), "{e}");
    }

    /// Other nodes' sections are skipped, not built: a section whose value
    /// could not even be represented as ours (a mapping with a mapping as
    /// key, a tag) does not matter.
    #[test]
    fn other_sections_are_not_interpreted() {
        let text = format!(
            "{GOOD}third:\n  ros__parameters:\n    ? {{a: 1}}\n    : !weird [1, 2]\n    big: [{}]\n",
            vec!["1"; 10_000].join(",")
        );
        let p = Params::from_yaml(&text).unwrap();
        assert!(p.0.keys().all(|k| param(k).is_some()), "{:?}", p.0.keys());
        Config::from_params(p).unwrap();
        // `/**` and `/dream_mpc` are ours
        let text = GOOD.replace("dream_mpc:\n", "/**:\n");
        assert_eq!(parse(&text).unwrap().control_rate_hz, 100.0);
    }

    #[test]
    fn errors_quote_at_most_80_characters_of_a_value() {
        let long = format!("/{}", "a".repeat(100_000));
        let text = GOOD.replace(
            "control_rate_hz: 100.0",
            &format!("planner: 1\n    topics: {{ action: '{long} x' }}"),
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("'planner'") || e.contains("'topics.action'"),
            "{e}"
        );
        assert!(e.len() < 400, "{} chars: {}", e.len(), &e[..200]);
        let text = GOOD.replace(
            "control_rate_hz: 100.0",
            &format!("topics: {{ action: '{long} x' }}"),
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("'topics.action'") && e.contains("bytes in all"),
            "{e}"
        );
        assert!(e.len() < 400, "{} chars", e.len());
        let list = format!("[{}]", vec!["1e400"; 50_000].join(","));
        let e = parse(&GOOD.replace("gain: [-1.0, -0.5]", &format!("gain: {list}")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'linear.gain'") && e.len() < 400, "{e}");
        let mut p = Params::default();
        let e = p
            .apply_ros_args(&["-p".into(), format!("x:='{}", "b".repeat(10_000))])
            .unwrap_err()
            .to_string();
        assert!(e.len() < 400, "{} chars", e.len());
    }

    #[test]
    fn planner_fault_policy_and_injection() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.on_planner_fault, FaultPolicy::Stop);
        assert_eq!(c.inject_planner_fault_at_tick, None);
        let c = parse(&GOOD.replace(
            "control_rate_hz: 100.0",
            "control_rate_hz: 100.0\n    on_planner_fault: continue\n    debug: { inject_planner_fault_at_tick: 7 }",
        ))
        .unwrap();
        assert_eq!(c.on_planner_fault, FaultPolicy::Continue);
        assert_eq!(c.inject_planner_fault_at_tick, Some(7));
        let e = parse(&GOOD.replace("control_rate_hz: 100.0", "on_planner_fault: ignore"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'on_planner_fault'") && e.contains("stop | continue"),
            "{e}"
        );
    }

    #[test]
    fn realtime_keys_default_off_parse_and_are_checked() {
        let c = parse(GOOD).unwrap();
        assert_eq!(
            c.realtime,
            super::super::realtime::RtConfig {
                priority: 0,
                cpu: None,
                lock_memory: false,
                prefault_stack_kib: 256,
                required: false,
            }
        );
        let c = parse(&GOOD.replace(
            "control_rate_hz: 100.0",
            "control_rate_hz: 100.0\n    realtime: { priority: 80, cpu: 1, lock_memory: true, prefault_stack_kib: 64, required: true }",
        ))
        .unwrap();
        assert_eq!(c.realtime.priority, 80);
        assert_eq!(c.realtime.cpu, Some(1));
        assert!(c.realtime.lock_memory && c.realtime.required);
        assert_eq!(c.realtime.prefault_stack_kib, 64);
        for (bad, key) in [
            ("realtime: { priority: 100 }", "'realtime.priority'"),
            ("realtime: { cpu: -1 }", "'realtime.cpu'"),
            ("realtime: { lock_memory: 'yes' }", "'realtime.lock_memory'"),
            ("realtime: { required: 1 }", "'realtime.required'"),
        ] {
            let e = parse(&GOOD.replace("control_rate_hz: 100.0", bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }
}
