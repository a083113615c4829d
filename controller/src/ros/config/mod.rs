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
//! Which sections of a file are this node's follows ROS 2
//! ([`super::names::NodeNames::matches`]): a key names a node by its fully
//! qualified name (`dream_mpc` is read as `/dream_mpc`; `/robot1/dream_mpc`,
//! or the nested form `robot1: dream_mpc:`), `*` and `**` are wildcards
//! (`/**` = every node). Matching sections are merged, wildcard sections
//! first and the exact name last, so the exact section wins; files and
//! `-p` apply in command-line order. A node-name or namespace remapping
//! (`-r __node:=arm`, `-r __ns:=/robot1`) thus selects another section.
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

//!
//! Files: `table.rs` (the table and the generated reference), `file.rs`
//! (reading files and `-p` overrides into [`Params`]), `error.rs`
//! ([`ConfigError`] and the reading bounds), this file (the typed
//! [`Config`] and the checks driven by the table). None of the three
//! imports this one.

mod error;
mod file;
mod table;
pub use error::*;
use file::show;
pub use file::*;
pub use table::*;

use super::names::NodeNames;
pub use crate::control::settings::{Budget, FaultPolicy, OptionOverrides, Settings, SourceKind};
use serde::de;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use Def::Value as Dv;
use Rule::{Any, OneOf, Range, Topic};

/// Message type of the observation topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum ObsKind {
    /// `std_msgs/msg/Float64MultiArray`, `data` is the observation vector.
    #[serde(alias = "std_msgs/msg/Float64MultiArray")]
    Float64MultiArray,
    /// `sensor_msgs/msg/JointState`, mapped by joint names and fields.
    #[serde(alias = "sensor_msgs/msg/JointState")]
    JointState,
}

/// Which JointState field feeds the observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JointField {
    Position,
    Velocity,
    Effort,
}

/// DDS reliability of a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reliability {
    Reliable,
    BestEffort,
}

/// DDS durability of a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Only samples published while a reader is matched are delivered.
    Volatile,
    /// A late-joining reader gets the last `depth` samples (latched).
    TransientLocal,
}

/// QoS of one of the node's topics (`qos.<topic>.*`), as ROS 2 profiles
/// name the knobs. Defaults follow ROS 2: the observation subscription is
/// the sensor-data profile (best effort, so it matches reliable and
/// best-effort publishers alike), the action publisher reliable, and
/// `/diagnostics` as diagnostic_updater publishes it (reliable, volatile,
/// keep last 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicQos {
    pub reliability: Reliability,
    pub durability: Durability,
    /// History depth (keep last).
    pub depth: usize,
}

/// Request/reply mapping of the ROS 2 parameter services (how the request
/// id travels): as rmw_fastrtps does it (ROS 2's default RMW) or as
/// rmw_cyclonedds does it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceMappingKind {
    Enhanced,
    Cyclone,
}

/// `parameter_services`: a mapping, or no services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum ParameterServices {
    Enhanced,
    Cyclone,
    Off,
}

/// `plausibility.action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum PlausibilityAction {
    Reject,
    Warn,
}

/// All parameters of `dream-mpc run`.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// What the control core is configured with (action source, sizes,
    /// actuator mapping, safe action, watchdog, plausibility, fault
    /// policy, planner overrides, rate).
    pub control: Settings,
    /// The node's name and namespace (`-r __node:=`, `-r __ns:=`).
    pub node_name: String,
    pub namespace: String,
    /// Topic names, fully resolved (namespace, `~`, remapping rules).
    pub observation_topic: String,
    pub action_topic: String,
    pub diagnostics_topic: String,
    pub observation_type: ObsKind,
    /// JointState mapping: the vector is, for each field in order, that
    /// field of each joint in order (all positions, then all velocities).
    pub joints: Vec<String>,
    pub fields: Vec<JointField>,
    /// `qos.observation.*` (subscription).
    pub qos_observation: TopicQos,
    /// `qos.action.*` (publisher).
    pub qos_action: TopicQos,
    /// `qos.diagnostics.*` (publisher).
    pub qos_diagnostics: TopicQos,
    /// `parameter_services`: the service mapping, `None` = off.
    pub parameter_services: Option<ServiceMappingKind>,
    /// `realtime.*`: scheduling, pinning and memory locking.
    pub realtime: super::realtime::RtConfig,
    /// `record`: the bag folder each tick is recorded into (docs/BAGS.md).
    pub record: Option<PathBuf>,
    /// `record_reward_topic` / `record_episode_topic`, resolved: the sim's
    /// per-step reward and episode index, recorded with the ticks.
    pub record_reward_topic: Option<String>,
    pub record_episode_topic: Option<String>,
    /// `record_queue`: capacity of the control -> bag writer queue.
    pub record_queue: usize,
    /// Every checked parameter value (given or default) by key, as the
    /// parameter services report the keys fixed at start.
    pub values: BTreeMap<&'static str, Value>,
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
        Topic => "a ROS 2 topic name like observation, /robot1/observation or ~/debug".to_string(),
    }
}

fn topic_ok(t: &str) -> bool {
    super::names::topic_syntax_ok(t)
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

/// Check one value against its table row, as a parameter file's value is
/// checked: unknown keys are named with the closest known key. Used by the
/// parameter services for values set at run time.
pub fn check_value(key: &str, v: &Value) -> Result<&'static Param, ConfigError> {
    let p = param(key).ok_or_else(|| ConfigError::UnknownKey {
        key: key.to_string(),
        suggestion: closest_key(key),
    })?;
    check(p, v)?;
    Ok(p)
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
    /// A `OneOf` string parsed as the serde enum of the same names: the
    /// table's values are the only ones that get here, and a test parses
    /// every one of them, so a value added to the table without its variant
    /// fails that test (never a silent default).
    fn named<T: de::DeserializeOwned>(&self, k: &str) -> Option<T> {
        self.str(k).map(|s| named_value(k, s))
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

/// The variant named `s` of a `OneOf` row `k` ([`Checked::named`]).
fn named_value<T: de::DeserializeOwned>(k: &str, s: &str) -> T {
    serde_yaml::from_value(Value::String(s.into()))
        .unwrap_or_else(|e| panic!("{k}: table value `{s}` is not a variant: {e}"))
}

/// `qos.<topic>.*`; with `legacy`, the older topic-wide `qos.reliability`
/// and `qos.depth` replace the per-topic values when set.
fn topic_qos(c: &Checked, topic: &str, legacy: bool) -> TopicQos {
    let key = |k: &str| format!("qos.{topic}.{k}");
    let old = |k: &str| if legacy { c.0.get(k) } else { None };
    let rel = match old("qos.reliability").and_then(Value::as_str) {
        Some(r) => named_value("qos.reliability", r),
        None => c.named(&key("reliability")).expect("table default"),
    };
    let depth = old("qos.depth")
        .and_then(Value::as_u64)
        .map(|d| d as usize)
        .or(c.int(&key("depth")))
        .expect("table default");
    TopicQos {
        reliability: rel,
        durability: c.named(&key("durability")).expect("table default"),
        depth,
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
        Config::from_params_named(p, &NodeNames::default())
    }

    /// [`Config::from_params`] for the node `names`: its topic names are
    /// resolved against its namespace and remapping rules.
    pub fn from_params_named(p: Params, names: &NodeNames) -> Result<Config, ConfigError> {
        let c = Checked::new(p)?;
        let topic = |k: &str| {
            let t = c.str(k).unwrap_or_default();
            names.resolve(t).map_err(|e| ConfigError::BadValue {
                key: k.into(),
                value: t.into(),
                expected: format!("a valid ROS 2 topic name ({e})"),
            })
        };
        let action_source: SourceKind = c.named("action_source").expect("table default");
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
        let options = OptionOverrides {
            preset: c.named("options.preset"),
            optimizer: c.named("options.optimizer"),
            grad_clip_norm: c.real("options.grad_clip_norm"),
            extra_iterations_large_action: c.int("options.extra_iterations_large_action"),
            clamp_each_step: c.bool("options.clamp_each_step"),
            policy_mean_row: c.bool("options.policy_mean_row"),
            reuse: c.named("options.reuse"),
            rho: c.real("options.rho"),
            uncertainty: c.named("options.uncertainty"),
            uncertainty_at: c.named("options.uncertainty_at"),
            uncertainty_gradient: c.bool("options.uncertainty_gradient"),
            value_heads: c.named("options.value_heads"),
            value_action: c.named("options.value_action"),
            choice: c.named("options.choice"),
        };
        let observation_type: ObsKind = c.named("observation.type").expect("table default");
        let joints = c.strs("observation.joints");
        let fields: Vec<JointField> = c
            .strs("observation.fields")
            .iter()
            .map(|f| named_value("observation.fields", f))
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
            values: c.0.clone(),
            control: Settings {
                action_source,
                bundle,
                bundle_max_file_mib: c.int("bundle_max_file_mib").expect("table default") as u64,
                bundle_weights: crate::kernels::Weights::parse(
                    c.str("bundle_weights").unwrap_or("f32"),
                )
                .expect("checked by the table's OneOf rule"),
                planner: c.str("planner").unwrap_or_default().to_string(),
                budget,
                options,
                control_rate_hz: num("control_rate_hz"),
                plan_fraction: num("plan_fraction"),
                observation_size,
                action_size,
                action_scale,
                action_offset,
                safe_action,
                linear_gain,
                linear_bias,
                watchdog_timeout_s: num("watchdog_timeout_s"),
                diagnostics_period_s: num("diagnostics_period_s"),
                plausibility_margin: num("plausibility.margin"),
                plausibility_warn_only: c.named::<PlausibilityAction>("plausibility.action")
                    == Some(PlausibilityAction::Warn),
                on_planner_fault: c.named("on_planner_fault").expect("table default"),
                inject_planner_fault_at_tick: c
                    .int("debug.inject_planner_fault_at_tick")
                    .filter(|&t| t > 0)
                    .map(|t| t as u64),
            },
            node_name: names.node().into(),
            namespace: names.namespace().into(),
            observation_topic: topic("topics.observation")?,
            action_topic: topic("topics.action")?,
            diagnostics_topic: topic("topics.diagnostics")?,
            observation_type,
            joints,
            fields,
            qos_observation: topic_qos(&c, "observation", true),
            qos_action: topic_qos(&c, "action", true),
            qos_diagnostics: topic_qos(&c, "diagnostics", false),
            parameter_services: match c.named("parameter_services").expect("table default") {
                ParameterServices::Off => None,
                ParameterServices::Cyclone => Some(ServiceMappingKind::Cyclone),
                ParameterServices::Enhanced => Some(ServiceMappingKind::Enhanced),
            },
            realtime: super::realtime::RtConfig {
                priority: c.int("realtime.priority").unwrap_or(0) as u8,
                cpu: c.int("realtime.cpu"),
                lock_memory: c.bool("realtime.lock_memory").unwrap_or(false),
                prefault_stack_kib: c.int("realtime.prefault_stack_kib").unwrap_or(0),
                required: c.bool("realtime.required").unwrap_or(false),
            },
            record: c.str("record").filter(|d| !d.is_empty()).map(PathBuf::from),
            record_queue: c.int("record_queue").expect("table default"),
            record_reward_topic: match c.str("record_reward_topic") {
                Some(t) if !t.is_empty() => Some(topic("record_reward_topic")?),
                _ => None,
            },
            record_episode_topic: match c.str("record_episode_topic") {
                Some(t) if !t.is_empty() => Some(topic("record_episode_topic")?),
                _ => None,
            },
        })
    }

    /// Control period.
    pub fn period(&self) -> std::time::Duration {
        self.control.period()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::PlannerDefaults;
    use crate::bundle::planner_options::{Choice, Optimizer, Preset};
    use crate::ros::names::{ParamArg, RosArgs, DEFAULT_NODE};
    use std::path::Path;

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

    /// Every named option of the gradient planners is a
    /// parameter; each `OneOf` value of an `options.*` row parses into its
    /// enum, the preset replaces the bundle's section first and the other
    /// keys override it, and a bad value is refused naming the key.
    /// Every value a `OneOf` row allows parses into its typed
    /// configuration (a value added to the table without its variant
    /// panics here), and a value the table does not allow is refused
    /// naming the key.
    #[test]
    fn every_allowed_value_parses() {
        let y = |t: &str| serde_yaml::from_str::<Value>(t).unwrap();
        let mut n = 0;
        for row in PARAMS {
            let OneOf(values) = row.rule else { continue };
            for v in values {
                let mut p = Params::from_yaml(GOOD).unwrap();
                let value = if row.ty == Ty::Strs {
                    Value::Sequence(vec![Value::String(v.to_string())])
                } else {
                    Value::String(v.to_string())
                };
                p.0.insert(row.key.into(), value);
                // JointState needs its mapping; a planner source its bundle
                if row.key.starts_with("observation.") {
                    p.0.insert("observation.joints".into(), y("[a, b]"));
                    p.0.entry("observation.type".into())
                        .or_insert(y("JointState"));
                    p.0.entry("observation.fields".into())
                        .or_insert(y("[position]"));
                }
                if *v == "dream_mpc" {
                    p.0.insert("bundle".into(), y("/nonexistent"));
                }
                Config::from_params(p).unwrap_or_else(|e| panic!("{}: {v}: {e}", row.key));
                n += 1;
            }
            let mut p = Params::from_yaml(GOOD).unwrap();
            p.0.insert(row.key.into(), y("not_a_value_of_the_table"));
            let e = Config::from_params(p).unwrap_err().to_string();
            assert!(e.contains(&format!("'{}'", row.key)), "{}: {e}", row.key);
        }
        assert!(n > 40, "{n} allowed values");
    }

    #[test]
    fn planner_options_are_parameters() {
        for row in PARAMS.iter().filter(|p| p.key.starts_with("options.")) {
            if let OneOf(values) = row.rule {
                for v in values {
                    let text = GOOD.replace(
                        "control_rate_hz: 100.0",
                        &format!("control_rate_hz: 100.0\n    {}: {v}", row.key),
                    );
                    let c = parse(&text).unwrap_or_else(|e| panic!("{}: {v}: {e}", row.key));
                    assert!(c.control.options.any(), "{}: {v}", row.key);
                }
            }
        }
        let c = parse(&GOOD.replace(
            "control_rate_hz: 100.0",
            "control_rate_hz: 100.0\n    options: { preset: sketch, rho: 0.3, choice: last_eval, clamp_each_step: false }",
        ))
        .unwrap();
        let bundle = PlannerDefaults::preset(Preset::Authors);
        let d = c.control.options.apply(&bundle);
        let sketch = PlannerDefaults::preset(Preset::Sketch);
        assert_eq!((d.candidates, d.iterations, d.beta), (8, 4, 0.1));
        assert_eq!(d.options.optimizer, Optimizer::Adam);
        assert_eq!(d.options.reuse, sketch.options.reuse);
        assert_eq!(d.options.rho, 0.3);
        assert_eq!(d.options.choice, Choice::LastEval);
        assert!(!d.options.clamp_each_step);
        assert_eq!(parse(GOOD).unwrap().control.options.apply(&bundle), bundle);
        for (kv, key) in [
            ("options: { optimizer: lbfgs }", "options.optimizer"),
            ("options: { rho: 1.5 }", "options.rho"),
            ("options: { preset: paper }", "options.preset"),
            ("options: { clamp_each_step: 3 }", "options.clamp_each_step"),
        ] {
            let e = parse(&GOOD.replace(
                "control_rate_hz: 100.0",
                &format!("control_rate_hz: 100.0\n    {kv}"),
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains(&format!("'{key}'")), "{kv}: {e}");
        }
    }

    #[test]
    fn good_file_parses() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.control.action_source, SourceKind::Linear);
        assert_eq!(c.control.control_rate_hz, 100.0);
        assert_eq!(c.control.linear_gain, vec![-1.0, -0.5]);
        assert_eq!(c.control.action_scale, vec![2.0]);
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
        assert_eq!(c.control.control_rate_hz, 250.0);
        assert_eq!(c.action_topic, "/cmd");
        let mut p = Params::from_yaml(GOOD).unwrap();
        assert!(p.apply_ros_args(&["-p".into(), "novalue".into()]).is_err());
        let mut p = Params::from_yaml(GOOD).unwrap();
        p.apply_ros_args(&["-p".into(), "topics.action:=cmd//x".into()])
            .unwrap();
        let e = Config::from_params(p).unwrap_err().to_string();
        assert!(e.contains("'topics.action'"), "{e}");
    }

    /// Sections are chosen as ROS 2 does: by the fully qualified node name
    /// (plain, namespaced, nested) and wildcards, the exact name winning.
    #[test]
    fn sections_follow_node_name_namespace_and_wildcards() {
        let names = |node: &str, ns: &str| NodeNames::new(node, ns, &[]).unwrap();
        let text = "
/**:
  ros__parameters: { control_rate_hz: 10.0, action_source: zero, observation: {size: 1}, action: {size: 1} }
dream_mpc:
  ros__parameters: { control_rate_hz: 20.0 }
/robot1/dream_mpc:
  ros__parameters: { control_rate_hz: 30.0 }
robot2:
  arm_mpc:
    ros__parameters: { control_rate_hz: 40.0 }
/**/leg_mpc:
  ros__parameters: { control_rate_hz: 50.0 }
/robot3/*:
  ros__parameters: { plan_fraction: 0.5 }
";
        let rate = |node: &str, ns: &str| {
            let n = names(node, ns);
            Config::from_params_named(Params::from_yaml_for(text, &n).unwrap(), &n)
                .unwrap()
                .control
                .control_rate_hz
        };
        assert_eq!(rate("dream_mpc", "/"), 20.0);
        assert_eq!(rate("dream_mpc", "/robot1"), 30.0);
        assert_eq!(rate("arm_mpc", "/robot2"), 40.0);
        assert_eq!(rate("arm_mpc", "/"), 10.0); // only /** matches
        assert_eq!(rate("leg_mpc", "/a/b"), 50.0);
        let n = names("x", "/robot3");
        let c = Config::from_params_named(Params::from_yaml_for(text, &n).unwrap(), &n).unwrap();
        assert_eq!(
            (c.control.control_rate_hz, c.control.plan_fraction),
            (10.0, 0.5)
        );
        // topics resolve in the namespace; absolute ones stay
        assert_eq!(c.observation_topic, "/robot3/observation");
        assert_eq!(c.action_topic, "/robot3/action");
        assert_eq!(c.diagnostics_topic, "/diagnostics");
        assert_eq!(
            (c.node_name.as_str(), c.namespace.as_str()),
            ("x", "/robot3")
        );
        // no matching section: the error names the node and the sections
        let e = Params::from_yaml_for(GOOD, &names("arm_mpc", "/robot1"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/robot1/arm_mpc") && e.contains("dream_mpc") && e.contains("other_node"),
            "{e}"
        );
        // a matching key without ros__parameters is named
        let e = Params::from_yaml(
            "/**:\n  ros__parameters: {a: 1}\ndream_mpc:\n  control_rate_hz: 5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'dream_mpc' has no 'ros__parameters'"), "{e}");
    }

    /// `-r __node:=` selects the section of the new name, and remapping
    /// rules apply to the configured topic names.
    #[test]
    fn command_line_names_select_sections_and_remap_topics() {
        let dir = std::env::temp_dir().join(format!("dmpc_cfg_names_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("two.yaml");
        std::fs::write(
            &f,
            "dream_mpc:\n  ros__parameters: { action_source: zero, observation: {size: 1}, action: {size: 1} }\n\
             /robot1/arm_mpc:\n  ros__parameters: { action_source: zero, observation: {size: 2}, action: {size: 1}, topics: {action: ~/cmd} }\n",
        )
        .unwrap();
        let argv: Vec<String> = format!(
            "--ros-args -r __node:=arm_mpc -r __ns:=/robot1 --params-file {} -p control_rate_hz:=25.0 -r observation:=/sensors/joint_states",
            f.display()
        )
        .split_whitespace()
        .map(String::from)
        .collect();
        let (ros, rest) = RosArgs::parse(&argv, DEFAULT_NODE).unwrap();
        assert!(rest.is_empty());
        let n = ros.names(DEFAULT_NODE).unwrap();
        let mut p = Params::default();
        p.apply(&ros.params, &n).unwrap();
        let c = Config::from_params_named(p, &n).unwrap();
        assert_eq!(c.control.observation_size, 2);
        assert_eq!(c.control.control_rate_hz, 25.0);
        assert_eq!(c.observation_topic, "/sensors/joint_states");
        assert_eq!(c.action_topic, "/robot1/arm_mpc/cmd");
        // without the node remap the plain section applies
        let mut p = Params::default();
        p.apply(&[ParamArg::File(f.clone())], &NodeNames::default())
            .unwrap();
        assert_eq!(Config::from_params(p).unwrap().control.observation_size, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn qos_defaults_follow_ros2_and_keys_override() {
        let c = parse(GOOD).unwrap();
        let tq = |reliability, durability, depth| TopicQos {
            reliability,
            durability,
            depth,
        };
        use Durability::*;
        use Reliability::*;
        assert_eq!(c.qos_observation, tq(BestEffort, Volatile, 5));
        assert_eq!(c.qos_action, tq(Reliable, Volatile, 1));
        assert_eq!(c.qos_diagnostics, tq(Reliable, Volatile, 1));
        let c = parse(&GOOD.replace(
            "control_rate_hz: 100.0",
            "control_rate_hz: 100.0\n    qos: { observation: { reliability: reliable, depth: 2 }, \
             action: { durability: transient_local }, diagnostics: { depth: 7 } }",
        ))
        .unwrap();
        assert_eq!(c.qos_observation, tq(Reliable, Volatile, 2));
        assert_eq!(c.qos_action, tq(Reliable, TransientLocal, 1));
        assert_eq!(c.qos_diagnostics, tq(Reliable, Volatile, 7));
        // older files: topic-wide keys set observation and action alike
        let c = parse(&GOOD.replace(
            "control_rate_hz: 100.0",
            "control_rate_hz: 100.0\n    qos: { reliability: best_effort, depth: 3 }",
        ))
        .unwrap();
        assert_eq!(c.qos_observation, tq(BestEffort, Volatile, 3));
        assert_eq!(c.qos_action, tq(BestEffort, Volatile, 3));
        assert_eq!(c.qos_diagnostics, tq(Reliable, Volatile, 1));
        let e = parse(&GOOD.replace(
            "control_rate_hz: 100.0",
            "control_rate_hz: 100.0\n    qos: { action: { durability: latched } }",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("'qos.action.durability'"), "{e}");
    }

    #[test]
    fn bundle_weights_default_to_f32_and_take_bf16_only_by_name() {
        use crate::kernels::Weights;
        assert_eq!(parse(GOOD).unwrap().control.bundle_weights, Weights::F32);
        let with = |v: &str| {
            parse(&GOOD.replace(
                "control_rate_hz: 100.0",
                &format!("control_rate_hz: 100.0\n    bundle_weights: {v}"),
            ))
        };
        assert_eq!(with("bf16").unwrap().control.bundle_weights, Weights::Bf16);
        let e = with("fp16").unwrap_err().to_string();
        assert!(e.contains("'bundle_weights'") && e.contains("bf16"), "{e}");
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
    fn a_long_unknown_key_gets_no_suggestion_and_is_quoted_short() {
        assert!(PARAMS.iter().all(|p| p.key.len() < SUGGEST_MAX_BYTES));
        // 1 MB: without the length cap the suggestion alone builds a
        // 1M x 20 table per known key (seconds of CPU, hundreds of MiB)
        let key = "x".repeat(1 << 20);
        let t = std::time::Instant::now();
        assert_eq!(closest_key(&key), None);
        let e = check_value(&key, &Value::from(1)).unwrap_err().to_string();
        assert!(t.elapsed() < std::time::Duration::from_millis(500));
        assert!(e.len() < 2_000, "{} bytes", e.len());
        assert!(
            e.contains(&format!("({} bytes in all)", 1 << 20)),
            "{}",
            &e[..200]
        );
    }

    #[test]
    fn budget_keys_are_optional_and_absent_means_the_bundle() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.control.budget, Budget::default());
        let c = parse(&GOOD.replace(
            "control_rate_hz: 100.0",
            "control_rate_hz: 100.0\n    budget: { horizon: 5, beta: 0.01 }",
        ))
        .unwrap();
        assert_eq!(c.control.budget.horizon, Some(5));
        assert_eq!(c.control.budget.beta, Some(0.01));
        assert_eq!(c.control.budget.candidates, None);
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
        assert_eq!(parse(&text).unwrap().control.control_rate_hz, 100.0);
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
        assert_eq!(c.control.on_planner_fault, FaultPolicy::Stop);
        assert_eq!(c.control.inject_planner_fault_at_tick, None);
        let c = parse(&GOOD.replace(
            "control_rate_hz: 100.0",
            "control_rate_hz: 100.0\n    on_planner_fault: continue\n    debug: { inject_planner_fault_at_tick: 7 }",
        ))
        .unwrap();
        assert_eq!(c.control.on_planner_fault, FaultPolicy::Continue);
        assert_eq!(c.control.inject_planner_fault_at_tick, Some(7));
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
