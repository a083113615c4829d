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
//! ROS 2: `-p topics.action:=/cmd`). Every key is checked at start-up:
//! unknown keys and invalid values are refused with the key named. Other
//! nodes' sections in the same file (e.g. `dream_mpc_sim`) are ignored, so
//! one file can serve a whole launch.

use serde_yaml::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Section name of this node in a parameter file.
pub const NODE_NAME: &str = "dream_mpc";

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

/// Planner budget: candidates N, horizon H, iterations K.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub candidates: usize,
    pub horizon: usize,
    pub iterations: usize,
}

/// All parameters of `dream-mpc run`.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub action_source: SourceKind,
    /// Model bundle folder (required for `action_source: dream_mpc`).
    pub bundle: Option<PathBuf>,
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
}

/// Why the parameters were refused.
#[derive(Debug)]
pub enum ConfigError {
    Io {
        path: PathBuf,
        error: String,
    },
    Yaml {
        path: PathBuf,
        error: String,
    },
    /// The file lacks `dream_mpc: ros__parameters:` (or `/**:`).
    Layout(String),
    UnknownKey {
        key: String,
        known: Vec<&'static str>,
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
            ConfigError::Yaml { path, error } => {
                write!(f, "{} is not valid YAML: {error}", path.display())
            }
            ConfigError::Layout(m) => write!(f, "{m}"),
            ConfigError::UnknownKey { key, known } => write!(
                f,
                "unknown parameter '{key}'; known parameters: {}",
                known.join(", ")
            ),
            ConfigError::BadValue {
                key,
                value,
                expected,
            } => write!(
                f,
                "parameter '{key}' = {value} is invalid: expected {expected}"
            ),
            ConfigError::Missing { key, why } => write!(f, "parameter '{key}' is required: {why}"),
            ConfigError::Argument(m) => write!(f, "bad --ros-args argument: {m}"),
        }
    }
}

impl std::error::Error for ConfigError {}

const KNOWN: &[&str] = &[
    "action_source",
    "bundle",
    "planner",
    "budget.candidates",
    "budget.horizon",
    "budget.iterations",
    "control_rate_hz",
    "plan_fraction",
    "topics.observation",
    "topics.action",
    "topics.diagnostics",
    "observation.type",
    "observation.size",
    "observation.joints",
    "observation.fields",
    "action.size",
    "action.scale",
    "action.offset",
    "action.safe",
    "linear.gain",
    "linear.bias",
    "watchdog_timeout_s",
    "diagnostics_period_s",
    "qos.reliability",
    "qos.depth",
];

/// Flat `dotted.key -> value` parameter map, as ROS 2 sees parameters.
#[derive(Clone, Debug, Default)]
pub struct Params(BTreeMap<String, Value>);

impl Params {
    /// Read this node's section of a ROS 2 parameter file.
    pub fn from_file(path: &Path) -> Result<Params, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.to_path_buf(),
            error: e.to_string(),
        })?;
        Params::from_yaml(&text).map_err(|e| match e {
            ConfigError::Yaml { error, .. } => ConfigError::Yaml {
                path: path.to_path_buf(),
                error,
            },
            ConfigError::Layout(m) => ConfigError::Layout(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parse a parameter file's text (see the module docs for the layout).
    pub fn from_yaml(text: &str) -> Result<Params, ConfigError> {
        let root: Value = serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml {
            path: PathBuf::from("<text>"),
            error: e.to_string(),
        })?;
        let Value::Mapping(nodes) = root else {
            return Err(ConfigError::Layout(format!(
                "expected a mapping '{NODE_NAME}: ros__parameters: ...' at the top level"
            )));
        };
        let mut params = Params::default();
        let mut found = false;
        for (name, section) in nodes {
            let name = name.as_str().unwrap_or("");
            if name != NODE_NAME && name != "/**" && name != format!("/{NODE_NAME}") {
                continue;
            }
            let Some(inner) = section.get("ros__parameters") else {
                return Err(ConfigError::Layout(format!(
                    "section '{name}' has no 'ros__parameters' mapping"
                )));
            };
            found = true;
            flatten("", inner, &mut params.0)?;
        }
        if !found {
            return Err(ConfigError::Layout(format!(
                "no '{NODE_NAME}: ros__parameters:' section"
            )));
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
                        ConfigError::Argument(format!("'{kv}' is not of the form name:=value"))
                    })?;
                    let value: Value = serde_yaml::from_str(v).map_err(|e| {
                        ConfigError::Argument(format!("value of '{k}' ('{v}') is not YAML: {e}"))
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
                        "'{other}' (supported: -p name:=value, --params-file FILE)"
                    )))
                }
            }
        }
        Ok(())
    }

    pub fn set(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_string(), value);
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) -> Result<(), ConfigError> {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let Some(k) = k.as_str() else {
                    return Err(ConfigError::Layout(format!(
                        "parameter names must be strings, found {k:?} under '{prefix}'"
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

fn bad(key: &str, v: &Value, expected: &str) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_string(),
        value: show(v),
        expected: expected.to_string(),
    }
}

fn get_str(p: &mut Params, key: &str, default: &str) -> Result<String, ConfigError> {
    match p.take(key) {
        None => Ok(default.to_string()),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(bad(key, &v, "a string")),
    }
}

fn get_f64(p: &mut Params, key: &str, default: f64, lo: f64, hi: f64) -> Result<f64, ConfigError> {
    let expected = format!("a number in [{lo}, {hi}]");
    match p.take(key) {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x >= lo && x <= hi => Ok(x),
            _ => Err(bad(key, &v, &expected)),
        },
    }
}

fn get_usize(
    p: &mut Params,
    key: &str,
    default: Option<usize>,
    lo: usize,
    hi: usize,
) -> Result<Option<usize>, ConfigError> {
    let expected = format!("an integer in [{lo}, {hi}]");
    match p.take(key) {
        None => Ok(default),
        Some(v) => match v.as_u64() {
            Some(x) if x as usize >= lo && x as usize <= hi => Ok(Some(x as usize)),
            _ => Err(bad(key, &v, &expected)),
        },
    }
}

fn get_f64s(p: &mut Params, key: &str) -> Result<Option<Vec<f64>>, ConfigError> {
    match p.take(key) {
        None => Ok(None),
        Some(Value::Sequence(s)) => {
            let mut out = Vec::with_capacity(s.len());
            for x in &s {
                match x.as_f64() {
                    Some(f) if f.is_finite() => out.push(f),
                    _ => {
                        return Err(bad(
                            key,
                            &Value::Sequence(s.clone()),
                            "a list of finite numbers",
                        ))
                    }
                }
            }
            Ok(Some(out))
        }
        Some(v) => Err(bad(key, &v, "a list of finite numbers")),
    }
}

fn get_strs(p: &mut Params, key: &str) -> Result<Vec<String>, ConfigError> {
    match p.take(key) {
        None => Ok(Vec::new()),
        Some(Value::Sequence(s)) => s
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(key, &Value::Sequence(s.clone()), "a list of strings"))
            })
            .collect(),
        Some(v) => Err(bad(key, &v, "a list of strings")),
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

fn check_topic(key: &str, t: &str) -> Result<(), ConfigError> {
    let ok = t.starts_with('/')
        && t.len() > 1
        && t[1..]
            .split('/')
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if !ok {
        return Err(ConfigError::BadValue {
            key: key.to_string(),
            value: format!("'{t}'"),
            expected: "an absolute ROS 2 topic name like /robot/observation".into(),
        });
    }
    Ok(())
}

impl Config {
    /// Validate and type every parameter. Sizes come from the parameters
    /// (`observation.size`, `action.size`); with a bundle the caller checks
    /// them against the manifest.
    pub fn from_params(mut p: Params) -> Result<Config, ConfigError> {
        let src = get_str(&mut p, "action_source", "dream_mpc")?;
        let action_source = match src.as_str() {
            "dream_mpc" => SourceKind::DreamMpc,
            "linear" => SourceKind::Linear,
            "zero" => SourceKind::Zero,
            _ => {
                return Err(bad(
                    "action_source",
                    &Value::String(src),
                    "one of dream_mpc, linear, zero",
                ))
            }
        };
        let bundle = get_str(&mut p, "bundle", "")?;
        let bundle = (!bundle.is_empty()).then(|| PathBuf::from(bundle));
        if action_source == SourceKind::DreamMpc && bundle.is_none() {
            return Err(ConfigError::Missing {
                key: "bundle".into(),
                why: "action_source is dream_mpc, which plans on a model bundle".into(),
            });
        }
        let planner = get_str(&mut p, "planner", "dream-mpc")?;
        let budget = Budget {
            candidates: get_usize(&mut p, "budget.candidates", Some(8), 1, 4096)?.unwrap_or(8),
            horizon: get_usize(&mut p, "budget.horizon", Some(3), 1, 256)?.unwrap_or(3),
            iterations: get_usize(&mut p, "budget.iterations", Some(4), 0, 1000)?.unwrap_or(4),
        };
        let control_rate_hz = get_f64(&mut p, "control_rate_hz", 50.0, 0.1, 10_000.0)?;
        let plan_fraction = get_f64(&mut p, "plan_fraction", 0.7, 0.05, 0.95)?;
        let observation_topic = get_str(&mut p, "topics.observation", "/observation")?;
        let action_topic = get_str(&mut p, "topics.action", "/action")?;
        let diagnostics_topic = get_str(&mut p, "topics.diagnostics", "/diagnostics")?;
        check_topic("topics.observation", &observation_topic)?;
        check_topic("topics.action", &action_topic)?;
        check_topic("topics.diagnostics", &diagnostics_topic)?;
        let ot = get_str(&mut p, "observation.type", "Float64MultiArray")?;
        let observation_type = match ot.as_str() {
            "Float64MultiArray" | "std_msgs/msg/Float64MultiArray" => ObsKind::Float64MultiArray,
            "JointState" | "sensor_msgs/msg/JointState" => ObsKind::JointState,
            _ => {
                return Err(bad(
                    "observation.type",
                    &Value::String(ot),
                    "Float64MultiArray or JointState",
                ))
            }
        };
        let joints = get_strs(&mut p, "observation.joints")?;
        let fields = get_strs(&mut p, "observation.fields")?
            .into_iter()
            .map(|f| match f.as_str() {
                "position" => Ok(JointField::Position),
                "velocity" => Ok(JointField::Velocity),
                "effort" => Ok(JointField::Effort),
                _ => Err(bad(
                    "observation.fields",
                    &Value::String(f),
                    "position, velocity or effort",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let observation_size = get_usize(&mut p, "observation.size", None, 1, 65_536)?.ok_or(
            ConfigError::Missing {
                key: "observation.size".into(),
                why: "the length of the model's observation vector".into(),
            },
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
        let action_size =
            get_usize(&mut p, "action.size", None, 1, 1024)?.ok_or(ConfigError::Missing {
                key: "action.size".into(),
                why: "the number of actuators".into(),
            })?;
        let action_scale = get_f64s(&mut p, "action.scale")?.unwrap_or(vec![1.0; action_size]);
        check_len("action.scale", &action_scale, action_size)?;
        if action_scale.contains(&0.0) {
            return Err(ConfigError::BadValue {
                key: "action.scale".into(),
                value: format!("{action_scale:?}"),
                expected: "non-zero factors".into(),
            });
        }
        let action_offset = get_f64s(&mut p, "action.offset")?.unwrap_or(vec![0.0; action_size]);
        check_len("action.offset", &action_offset, action_size)?;
        let safe_action = get_f64s(&mut p, "action.safe")?.unwrap_or(action_offset.clone());
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
        let linear_gain = get_f64s(&mut p, "linear.gain")?.unwrap_or_default();
        let linear_bias = get_f64s(&mut p, "linear.bias")?.unwrap_or(vec![0.0; action_size]);
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
        let watchdog_timeout_s = get_f64(&mut p, "watchdog_timeout_s", 0.1, 1e-4, 60.0)?;
        let diagnostics_period_s = get_f64(&mut p, "diagnostics_period_s", 1.0, 0.01, 3600.0)?;
        let rel = get_str(&mut p, "qos.reliability", "reliable")?;
        let reliability = match rel.as_str() {
            "reliable" => Reliability::Reliable,
            "best_effort" => Reliability::BestEffort,
            _ => {
                return Err(bad(
                    "qos.reliability",
                    &Value::String(rel),
                    "reliable or best_effort",
                ))
            }
        };
        let qos_depth = get_usize(&mut p, "qos.depth", Some(1), 1, 1000)?.unwrap_or(1);
        if let Some(key) = p.0.keys().next() {
            return Err(ConfigError::UnknownKey {
                key: key.clone(),
                known: KNOWN.to_vec(),
            });
        }
        Ok(Config {
            action_source,
            bundle,
            planner,
            budget,
            control_rate_hz,
            plan_fraction,
            observation_topic,
            action_topic,
            diagnostics_topic,
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
            watchdog_timeout_s,
            diagnostics_period_s,
            reliability,
            qos_depth,
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
}
