//! ROS 2 names: the `--ros-args` command line, and the resolution of
//! topic names against the node's namespace and remapping rules, as rcl
//! does it (ROS 2 design article "Topic and Service name mapping to DDS",
//! and the `ros2 run ... --ros-args` conventions).
//!
//! - [`RosArgs::parse`] reads what `ros2 run` and launch_ros pass:
//!   `--ros-args` blocks (ended by `--` or the end of the line) holding
//!   `-r/--remap [node:]from:=to` (with the special `__node` and `__ns`),
//!   `-p/--param name:=value`, `--params-file FILE`, and `--log-level L`
//!   (accepted, ignored: this node logs to stderr). Anything else inside a
//!   block is an error naming it; arguments outside the blocks are left to
//!   the executable's own parser ([`RosArgs::parse`] returns them).
//! - [`NodeNames`] holds the node's name, namespace and remapping rules
//!   and resolves a name: `/abs` stays, `rel` becomes `<ns>/rel`, `~` is
//!   the node's fully qualified name and `~/x` is `<fqn>/x`; the expanded
//!   name is then matched against each rule's expanded `from` (first match
//!   wins) and replaced by its expanded `to`. Names are validated as ROS 2
//!   does: tokens of ASCII letters, digits and `_`, not starting with a
//!   digit, no `__`, no empty token, no trailing `/`.
//!
//! Everything here runs once at start-up (it allocates); nothing of it is
//! on the control path.

use std::path::PathBuf;

/// Name of the controller node when no `-r __node:=` is given.
pub const DEFAULT_NODE: &str = "dream_mpc";

message_error!(
    /// Why a name or a `--ros-args` argument was refused.
    #[derive(Clone, Debug, PartialEq, Eq)]
    NameError
);

fn bad(msg: String) -> NameError {
    NameError(msg)
}

/// One parameter source of the command line, in the order given (a later
/// source overrides an earlier one, as in rcl).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamArg {
    /// `--params-file FILE`.
    File(PathBuf),
    /// `-p name:=value` (value still YAML text).
    Set(String, String),
}

/// The ROS-specific part of a command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RosArgs {
    /// `-r __node:=NAME`.
    pub node: Option<String>,
    /// `-r __ns:=/NS`.
    pub namespace: Option<String>,
    /// `-r from:=to` (and `-r node:from:=to` whose node prefix names this
    /// node), in order.
    pub remaps: Vec<(String, String)>,
    /// `--params-file` and `-p`, in order.
    pub params: Vec<ParamArg>,
}

impl RosArgs {
    /// Split `args` (without the program name) into the ROS-specific part
    /// and the rest. `own_node` is the executable's built-in node name: a
    /// rule with a node prefix (`-r other:from:=to`) applies only when the
    /// prefix equals it, as rcl matches such rules. Outside a `--ros-args`
    /// block nothing is interpreted.
    pub fn parse(args: &[String], own_node: &str) -> Result<(RosArgs, Vec<String>), NameError> {
        let mut out = RosArgs::default();
        let mut rest = Vec::new();
        let mut it = args.iter();
        let mut inside = false;
        while let Some(a) = it.next() {
            if !inside {
                if a == "--ros-args" {
                    inside = true;
                } else {
                    rest.push(a.clone());
                }
                continue;
            }
            let mut value = |what: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| bad(format!("--ros-args: '{a}' needs {what}")))
            };
            match a.as_str() {
                "--" => inside = false,
                "--ros-args" => {}
                "-r" | "--remap" => {
                    let rule = value("from:=to")?;
                    out.remap(&rule, own_node)?;
                }
                "-p" | "--param" => {
                    let kv = value("name:=value")?;
                    let (k, v) = kv.split_once(":=").ok_or_else(|| {
                        bad(format!(
                            "--ros-args: '{}' is not of the form name:=value",
                            clip(&kv)
                        ))
                    })?;
                    out.params.push(ParamArg::Set(k.to_string(), v.to_string()));
                }
                "--params-file" => {
                    let f = value("a path")?;
                    out.params.push(ParamArg::File(PathBuf::from(f)));
                }
                "--log-level" => {
                    value("a level")?;
                }
                "--enable-rosout-logs" | "--disable-rosout-logs" | "--enable-stdout-logs"
                | "--disable-stdout-logs" | "--enable-external-lib-logs"
                | "--disable-external-lib-logs" => {}
                other => {
                    return Err(bad(format!(
                        "--ros-args: '{}' is not supported (supported: -r from:=to, -r __node:=NAME, -r __ns:=/NS, -p name:=value, --params-file FILE, --log-level L)",
                        clip(other)
                    )))
                }
            }
        }
        Ok((out, rest))
    }

    fn remap(&mut self, rule: &str, own_node: &str) -> Result<(), NameError> {
        let (from, to) = rule.split_once(":=").ok_or_else(|| {
            bad(format!(
                "--ros-args: remapping '{}' is not of the form from:=to",
                clip(rule)
            ))
        })?;
        // `node:from` limits a rule to one node (the prefix holds no `/`).
        let from = match from.split_once(':') {
            Some((node, f)) if !node.contains('/') => {
                if node != own_node {
                    return Ok(());
                }
                f
            }
            _ => from,
        };
        match from {
            "__node" | "__name" => {
                check_node_name(to)?;
                self.node = Some(to.to_string());
            }
            "__ns" => {
                check_namespace(to)?;
                self.namespace = Some(to.to_string());
            }
            _ => {
                if from.is_empty() || to.is_empty() {
                    return Err(bad(format!(
                        "--ros-args: remapping '{}' needs a name on both sides of ':='",
                        clip(rule)
                    )));
                }
                self.remaps.push((from.to_string(), to.to_string()));
            }
        }
        Ok(())
    }

    /// The names of the node these arguments describe (built-in name
    /// `default_node` unless remapped; namespace `/` unless remapped).
    pub fn names(&self, default_node: &str) -> Result<NodeNames, NameError> {
        NodeNames::new(
            self.node.as_deref().unwrap_or(default_node),
            self.namespace.as_deref().unwrap_or("/"),
            &self.remaps,
        )
    }
}

/// A node's name, namespace and remapping rules (rules stored expanded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNames {
    node: String,
    namespace: String,
    rules: Vec<(String, String)>,
}

impl Default for NodeNames {
    fn default() -> Self {
        NodeNames {
            node: DEFAULT_NODE.into(),
            namespace: "/".into(),
            rules: Vec::new(),
        }
    }
}

impl NodeNames {
    /// Validates the node name and namespace, and expands each rule's
    /// sides against them.
    pub fn new(
        node: &str,
        namespace: &str,
        remaps: &[(String, String)],
    ) -> Result<NodeNames, NameError> {
        check_node_name(node)?;
        check_namespace(namespace)?;
        let mut n = NodeNames {
            node: node.into(),
            namespace: namespace.into(),
            rules: Vec::new(),
        };
        for (from, to) in remaps {
            let rule = (n.expand(from)?, n.expand(to)?);
            n.rules.push(rule);
        }
        Ok(n)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Fully qualified node name: `/ns/node` (or `/node` at the root).
    pub fn fqn(&self) -> String {
        if self.namespace == "/" {
            format!("/{}", self.node)
        } else {
            format!("{}/{}", self.namespace, self.node)
        }
    }

    /// The absolute form of `name` (no remapping): see the module docs.
    pub fn expand(&self, name: &str) -> Result<String, NameError> {
        let full = if name == "~" {
            self.fqn()
        } else if let Some(rest) = name.strip_prefix("~/") {
            format!("{}/{rest}", self.fqn())
        } else if name.starts_with('/') {
            name.to_string()
        } else if self.namespace == "/" {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.namespace)
        };
        check_absolute(&full).map_err(|why| bad(format!("name '{}': {why}", clip(name))))?;
        Ok(full)
    }

    /// The topic name `name` resolves to: expanded, then remapped by the
    /// first rule whose `from` equals it.
    pub fn resolve(&self, name: &str) -> Result<String, NameError> {
        let full = self.expand(name)?;
        Ok(self
            .rules
            .iter()
            .find(|(from, _)| *from == full)
            .map_or(full, |(_, to)| to.clone()))
    }

    /// Whether a parameter-file section key (a node name pattern) selects
    /// this node: the key is made absolute (`dream_mpc` means
    /// `/dream_mpc`, as rcl's parser reads it), then matched token by token
    /// against the fully qualified name, `*` matching one token and `**`
    /// any number (so `/**` matches every node).
    pub fn matches(&self, key: &str) -> bool {
        let key = key.trim_start_matches('/');
        let pat: Vec<&str> = key.split('/').filter(|t| !t.is_empty()).collect();
        let fqn = self.fqn();
        let name: Vec<&str> = fqn.split('/').filter(|t| !t.is_empty()).collect();
        glob(&pat, &name)
    }
}

/// `*` = one token, `**` = zero or more tokens.
fn glob(pat: &[&str], name: &[&str]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((&"**", rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
        Some((p, rest)) => match name.split_first() {
            Some((n, nrest)) => (*p == "*" || p == n) && glob(rest, nrest),
            None => false,
        },
    }
}

/// Most characters of an offending value quoted in an error message.
pub const MAX_QUOTE: usize = 80;

/// At most [`MAX_QUOTE`] characters of `s`, marked when cut (error
/// messages and logs quote offending names and values through it).
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTE) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}... ({} bytes in all)", &s[..cut], s.len()),
    }
}

fn check_token(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("empty token (double or trailing '/')".into());
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "character '{c}' (allowed: ASCII letters, digits, '_')"
        ));
    }
    if t.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("token '{t}' starts with a digit"));
    }
    if t.contains("__") {
        return Err(format!("token '{t}' holds '__'"));
    }
    Ok(())
}

/// An absolute name: `/a/b`, every token valid.
fn check_absolute(name: &str) -> Result<(), String> {
    let Some(rest) = name.strip_prefix('/') else {
        return Err("not absolute".into());
    };
    if rest.is_empty() {
        return Err("'/' alone is not a topic name".into());
    }
    rest.split('/').try_for_each(check_token)
}

/// A node name: one token.
pub fn check_node_name(name: &str) -> Result<(), NameError> {
    check_token(name).map_err(|why| bad(format!("node name '{}': {why}", clip(name))))
}

/// A namespace: `/` or an absolute name.
pub fn check_namespace(ns: &str) -> Result<(), NameError> {
    if ns == "/" {
        return Ok(());
    }
    if !ns.starts_with('/') {
        return Err(bad(format!(
            "namespace '{}' must be absolute, e.g. '/{}'",
            clip(ns),
            clip(ns)
        )));
    }
    check_absolute(ns).map_err(|why| bad(format!("namespace '{}': {why}", clip(ns))))
}

/// Whether `name` may be written as a topic name in a parameter file or on
/// the command line: absolute, relative, `~` or `~/...`, with valid tokens.
pub fn topic_syntax_ok(name: &str) -> bool {
    NodeNames::default().expand(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn launch_ros_command_line_is_understood() {
        let (r, rest) = RosArgs::parse(
            &args("--ros-args -r __node:=arm_mpc -r __ns:=/robot1 --params-file /tmp/p.yaml -p budget.iterations:=3 -r observation:=/robot1/joint_states --log-level info"),
            DEFAULT_NODE,
        )
        .unwrap();
        assert!(rest.is_empty());
        assert_eq!(r.node.as_deref(), Some("arm_mpc"));
        assert_eq!(r.namespace.as_deref(), Some("/robot1"));
        assert_eq!(
            r.remaps,
            vec![("observation".into(), "/robot1/joint_states".into())]
        );
        assert_eq!(
            r.params,
            vec![
                ParamArg::File("/tmp/p.yaml".into()),
                ParamArg::Set("budget.iterations".into(), "3".into())
            ]
        );
        let n = r.names(DEFAULT_NODE).unwrap();
        assert_eq!(n.fqn(), "/robot1/arm_mpc");
    }

    #[test]
    fn arguments_outside_blocks_are_left_alone() {
        let (r, rest) = RosArgs::parse(
            &args("serve --task x --ros-args -r __ns:=/a -- --episodes 2"),
            "sim",
        )
        .unwrap();
        assert_eq!(rest, args("serve --task x --episodes 2"));
        assert_eq!(r.namespace.as_deref(), Some("/a"));
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = |s: &str| RosArgs::parse(&args(s), DEFAULT_NODE).unwrap_err().0;
        assert!(e("--ros-args --bogus").contains("'--bogus'"));
        assert!(e("--ros-args -r").contains("needs from:=to"));
        assert!(e("--ros-args -r a=b").contains("from:=to"));
        assert!(e("--ros-args -p x").contains("name:=value"));
        assert!(e("--ros-args -r __ns:=robot1").contains("must be absolute"));
        assert!(e("--ros-args -r __node:=9lives").contains("starts with a digit"));
        assert!(e("--ros-args -r __node:=a/b").contains("character '/'"));
        assert!(e("--ros-args -r __ns:=/a//b").contains("empty token"));
    }

    #[test]
    fn node_prefixed_rules_apply_to_their_node_only() {
        let (r, _) = RosArgs::parse(
            &args("--ros-args -r other:__ns:=/x -r dream_mpc:__ns:=/y -r other:a:=b"),
            DEFAULT_NODE,
        )
        .unwrap();
        assert_eq!(r.namespace.as_deref(), Some("/y"));
        assert!(r.remaps.is_empty());
    }

    #[test]
    fn names_resolve_as_rcl_does() {
        let root = NodeNames::default();
        assert_eq!(root.resolve("observation").unwrap(), "/observation");
        assert_eq!(root.resolve("/diagnostics").unwrap(), "/diagnostics");
        assert_eq!(root.resolve("~/debug").unwrap(), "/dream_mpc/debug");
        let n = NodeNames::new("ctl", "/robot1", &[]).unwrap();
        assert_eq!(n.resolve("observation").unwrap(), "/robot1/observation");
        assert_eq!(n.resolve("arm/action").unwrap(), "/robot1/arm/action");
        assert_eq!(n.resolve("/diagnostics").unwrap(), "/diagnostics");
        assert_eq!(n.resolve("~").unwrap(), "/robot1/ctl");
        assert_eq!(n.resolve("~/x").unwrap(), "/robot1/ctl/x");
        for bad in ["", "/", "a//b", "a/", "1a", "a b", "a__b", "~x"] {
            assert!(n.resolve(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn remapping_matches_expanded_names_and_first_rule_wins() {
        let rules = vec![
            ("observation".to_string(), "joint_states".to_string()),
            ("/robot1/observation".to_string(), "/never".to_string()),
            ("/action".to_string(), "/cmd".to_string()),
            ("~/dbg".to_string(), "/dbg".to_string()),
        ];
        let n = NodeNames::new("ctl", "/robot1", &rules).unwrap();
        // relative on both sides: expanded in the node's namespace
        assert_eq!(n.resolve("observation").unwrap(), "/robot1/joint_states");
        assert_eq!(
            n.resolve("/robot1/observation").unwrap(),
            "/robot1/joint_states"
        );
        // `/action` is not what `action` expands to in /robot1
        assert_eq!(n.resolve("action").unwrap(), "/robot1/action");
        assert_eq!(n.resolve("/action").unwrap(), "/cmd");
        assert_eq!(n.resolve("~/dbg").unwrap(), "/dbg");
        assert!(NodeNames::new("ctl", "/", &[("a".into(), "b//c".into())]).is_err());
    }

    #[test]
    fn parameter_file_keys_match_like_ros() {
        let n = NodeNames::new("ctl", "/robot1", &[]).unwrap();
        for yes in [
            "/**",
            "/robot1/ctl",
            "robot1/ctl",
            "/robot1/*",
            "/**/ctl",
            "/*/ctl",
        ] {
            assert!(n.matches(yes), "{yes}");
        }
        for no in ["ctl", "/ctl", "dream_mpc", "/robot2/ctl", "/*", "/robot1"] {
            assert!(!n.matches(no), "{no}");
        }
        let root = NodeNames::default();
        assert!(root.matches("dream_mpc"));
        assert!(root.matches("/dream_mpc"));
        assert!(root.matches("/*"));
        assert!(!root.matches("/robot1/dream_mpc"));
    }
}
