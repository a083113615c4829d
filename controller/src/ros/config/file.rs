//! Reading parameter files and `--ros-args -p` overrides into [`Params`]:
//! bounded before the YAML parser runs, this node's sections only.

use super::error::{clip, ConfigError, MAX_DEPTH, MAX_FILE_BYTES};
use crate::ros::names::{NodeNames, ParamArg, RosArgs, DEFAULT_NODE};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Reading: bounded, this node's section only
// ---------------------------------------------------------------------------

/// Flat `dotted.key -> value` parameter map, as ROS 2 sees parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(pub(super) BTreeMap<String, Value>);

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

/// The top level of a parameter file: the entries that may hold this
/// node's sections (a key that matches the node, or a namespace prefix of
/// it for the nested form) as values; every other entry is skipped (parsed
/// as events, never built). Also the first few other keys, for the error
/// when nothing matches.
struct OurSections {
    ours: Vec<(String, Value)>,
    others: Vec<String>,
}

/// Whether the section key `key` (possibly nested, `robot1/dream_mpc`) is
/// this node or a namespace that may contain it.
fn may_hold(names: &NodeNames, key: &str) -> bool {
    names.matches(key) || names.matches(&format!("{}/**", key.trim_end_matches('/')))
}

struct SectionSeed<'a>(&'a NodeNames);

impl<'de> DeserializeSeed<'de> for SectionSeed<'_> {
    type Value = OurSections;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<OurSections, D::Error> {
        struct V<'a>(&'a NodeNames);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = OurSections;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "a mapping '{}: ros__parameters: ...' at the top level",
                    self.0.node()
                )
            }
            fn visit_unit<E: de::Error>(self) -> Result<OurSections, E> {
                Ok(OurSections {
                    ours: Vec::new(),
                    others: Vec::new(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OurSections, A::Error> {
                let (mut ours, mut others) = (Vec::new(), Vec::new());
                while let Some(name) = map.next_key::<Value>()? {
                    match name.as_str() {
                        Some(n) if may_hold(self.0, n) => {
                            ours.push((n.to_string(), map.next_value()?))
                        }
                        other => {
                            if others.len() < 8 {
                                others.push(clip(other.unwrap_or("<not a string>")));
                            }
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(OurSections { ours, others })
            }
        }
        d.deserialize_any(V(self.0))
    }
}

/// The `ros__parameters` mappings under `key: value` (and, for the nested
/// namespace form, under its sub-keys) that select `names`' node, with
/// their full keys.
fn sections<'v>(
    names: &NodeNames,
    key: &str,
    value: &'v Value,
    out: &mut Vec<(String, &'v Value)>,
) -> Result<(), ConfigError> {
    let Some(map) = value.as_mapping() else {
        return Err(ConfigError::Layout(format!(
            "section '{}' is not a mapping",
            clip(key)
        )));
    };
    if let Some(inner) = map.get("ros__parameters") {
        if names.matches(key) {
            out.push((key.to_string(), inner));
        }
        return Ok(());
    }
    let before = out.len();
    for (k, v) in map {
        let Some(k) = k.as_str() else { continue };
        let full = format!("{}/{k}", key.trim_end_matches('/'));
        if may_hold(names, &full) {
            sections(names, &full, v, out)?;
        }
    }
    if names.matches(key) && out.len() == before {
        return Err(ConfigError::Layout(format!(
            "section '{}' has no 'ros__parameters' mapping",
            clip(key)
        )));
    }
    Ok(())
}

impl Params {
    /// Read the default node's (`/dream_mpc`) sections of a ROS 2
    /// parameter file; see [`Params::from_file_for`].
    pub fn from_file(path: &Path) -> Result<Params, ConfigError> {
        Params::from_file_for(path, &NodeNames::default())
    }

    /// Read the sections of a ROS 2 parameter file that select the node
    /// `names` (refused unread when over [`MAX_FILE_BYTES`]; the read itself
    /// is bounded too, for files that grow or lie about their size).
    pub fn from_file_for(path: &Path, names: &NodeNames) -> Result<Params, ConfigError> {
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
        Params::from_yaml_for(&text, names).map_err(|e| match e {
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

    /// Parse a parameter file's text for the default node (`/dream_mpc`).
    pub fn from_yaml(text: &str) -> Result<Params, ConfigError> {
        Params::from_yaml_for(text, &NodeNames::default())
    }

    /// Parse a parameter file's text for the node `names` (see the module
    /// docs for the layout and which sections apply).
    pub fn from_yaml_for(text: &str, names: &NodeNames) -> Result<Params, ConfigError> {
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: PathBuf::from("<text>"),
                bytes: text.len() as u64,
            });
        }
        check_depth(text)?;
        let found = SectionSeed(names)
            .deserialize(serde_yaml::Deserializer::from_str(text))
            .map_err(|e| ConfigError::Yaml {
                path: PathBuf::from("<text>"),
                error: e.to_string(),
            })?;
        let mut selected = Vec::new();
        for (key, value) in &found.ours {
            sections(names, key, value, &mut selected)?;
        }
        if selected.is_empty() {
            return Err(ConfigError::Layout(format!(
                "no section for node {} (a key '{}', '{}' or '/**' with 'ros__parameters' under it); the file's sections: {}",
                names.fqn(),
                names.fqn(),
                names.fqn().trim_start_matches('/'),
                if found.others.is_empty() {
                    "none".to_string()
                } else {
                    found.others.join(", ")
                }
            )));
        }
        // Wildcard sections first, the exact name last: the exact one wins.
        selected.sort_by_key(|(k, _)| !k.contains('*'));
        let mut params = Params::default();
        for (_, inner) in selected {
            flatten("", inner, &mut params.0)?;
        }
        Ok(params)
    }

    /// Apply `--ros-args` arguments for the default node: `-p
    /// name:=value` (value parsed as YAML, like `ros2 run`) and
    /// `--params-file FILE`; remapping rules are parsed and checked but
    /// have no effect on parameters. Returns an error on anything it does
    /// not understand.
    pub fn apply_ros_args(&mut self, args: &[String]) -> Result<(), ConfigError> {
        let mut all = Vec::with_capacity(args.len() + 1);
        if args.first().map(String::as_str) != Some("--ros-args") {
            all.push("--ros-args".to_string());
        }
        all.extend(args.iter().cloned());
        let (ros, _) =
            RosArgs::parse(&all, DEFAULT_NODE).map_err(|e| ConfigError::Argument(e.to_string()))?;
        let names = ros
            .names(DEFAULT_NODE)
            .map_err(|e| ConfigError::Argument(e.to_string()))?;
        self.apply(&ros.params, &names)
    }

    /// Apply parameter sources in order: a file's sections for `names`'
    /// node, or one `-p name:=value` (value parsed as YAML).
    pub fn apply(&mut self, sources: &[ParamArg], names: &NodeNames) -> Result<(), ConfigError> {
        for src in sources {
            match src {
                ParamArg::Set(k, v) => {
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
                ParamArg::File(f) => {
                    let more = Params::from_file_for(f, names)?;
                    self.0.extend(more.0);
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

pub(super) fn show(v: &Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().replace('\n', " "))
        .unwrap_or_else(|_| format!("{v:?}"))
}
