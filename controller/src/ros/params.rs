//! ROS 2 parameter services for the run-time tunables (the `[tunable]` rows
//! of [`super::config::PARAMS`]): `list_parameters`, `get_parameters`,
//! `get_parameter_types`, `describe_parameters`, `set_parameters` and
//! `set_parameters_atomically` under `/<node>/`, with the `rcl_interfaces`
//! types, so `ros2 param list|get|describe|set /dream_mpc ...` works.
//!
//! A value set at run time is checked exactly like the parameter file's
//! ([`check_value`]: type and bounds of the table row; an unknown key is
//! named with the closest known one; a known key that is fixed at start is
//! refused as read-only). Accepted values go to the control thread as one
//! [`Tunables`] value through a bounded, preallocated queue
//! ([`super::node::Handoff::tunables`]); the control thread applies the
//! newest between two ticks ([`super::node::ControlLoop::update`]) without
//! allocating, and `/diagnostics` reports the values in force.
//!
//! Every accepted change is also published on `/parameter_events`
//! (`rcl_interfaces/msg/ParameterEvent`, `changed_parameters`), as rclcpp
//! does, so `ros2 param` tooling and rqt see it.
//!
//! Served from the `params` thread, never the control thread; a request
//! allocates (messages, strings).

use super::config::{check_value, param, Param, ServiceMappingKind, Ty, PARAMS};
use super::control::Tunables;
use crossbeam::queue::ArrayQueue;
use ros2_client::parameters::raw::{
    self, FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult,
};
use ros2_client::rcl_interfaces::*;
use ros2_client::{
    builtin_interfaces, Message, MessageTypeName, Name, Node, Publisher, Server, ServiceMapping,
    ServiceTypeName,
};
use serde_yaml::Value;

/// Newest tunables queued to the control thread; 4 covers a control thread
/// that misses 3 sets in a row before the oldest is overwritten (the
/// newest always survives).
pub const TUNABLE_QUEUE: usize = 4;

/// The keys served: every `[tunable]` row, less the planner's when the
/// source has no planner.
pub fn served(planner: bool) -> impl Iterator<Item = &'static Param> {
    PARAMS
        .iter()
        .filter(move |p| p.tunable && (planner || !p.key.starts_with("budget.")))
}

/// The parameter values and their checks, apart from DDS (unit-tested).
#[derive(Clone, Debug)]
pub struct Store {
    pub values: Tunables,
    pub planner: bool,
    /// The keys fixed at start with their values (listed, got and
    /// described as read-only).
    pub fixed: Vec<(&'static str, raw::ParameterValue)>,
}

/// A checked parameter-file value as ROS 2 types it (`ty` from its row).
pub fn ros_value(ty: Ty, v: &Value) -> raw::ParameterValue {
    let mut out = not_set();
    match ty {
        Ty::Int => {
            out.ptype = raw::ParameterType::INTEGER;
            out.int_value = v.as_i64().unwrap_or(0);
        }
        Ty::Real => {
            out.ptype = raw::ParameterType::DOUBLE;
            out.double_value = v.as_f64().unwrap_or(f64::NAN);
        }
        Ty::Bool => {
            out.ptype = raw::ParameterType::BOOL;
            out.boolean_value = v.as_bool().unwrap_or(false);
        }
        Ty::Str => {
            out.ptype = raw::ParameterType::STRING;
            out.string_value = v.as_str().unwrap_or("").to_string();
        }
        Ty::Reals => {
            out.ptype = raw::ParameterType::DOUBLE_ARRAY;
            out.double_array = v
                .as_sequence()
                .map(|s| s.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
        }
        Ty::Strs => {
            out.ptype = raw::ParameterType::STRING_ARRAY;
            out.string_array = v
                .as_sequence()
                .map(|s| {
                    s.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
        }
    }
    out
}

impl Store {
    /// The store of a node: `values` in force, the planner's keys served
    /// when `planner`, every other checked key of `cfg` fixed.
    pub fn new(values: Tunables, planner: bool, cfg: &super::config::Config) -> Store {
        let fixed = PARAMS
            .iter()
            .filter(|p| !served(planner).any(|s| s.key == p.key))
            .filter_map(|p| cfg.values.get(p.key).map(|v| (p.key, ros_value(p.ty, v))))
            .collect();
        Store {
            values,
            planner,
            fixed,
        }
    }
}

fn to_yaml(v: &raw::ParameterValue) -> Option<Value> {
    Some(match v.ptype {
        raw::ParameterType::INTEGER => Value::from(v.int_value),
        raw::ParameterType::DOUBLE => Value::from(v.double_value),
        raw::ParameterType::BOOL => Value::from(v.boolean_value),
        raw::ParameterType::STRING => Value::from(v.string_value.clone()),
        _ => return None,
    })
}

fn value(ptype: u8, int: i64, double: f64) -> raw::ParameterValue {
    raw::ParameterValue {
        ptype,
        boolean_value: false,
        int_value: int,
        double_value: double,
        string_value: String::new(),
        byte_array: vec![],
        bool_array: vec![],
        int_array: vec![],
        double_array: vec![],
        string_array: vec![],
    }
}

fn not_set() -> raw::ParameterValue {
    value(raw::ParameterType::NOT_SET, 0, 0.0)
}

fn type_of(p: &Param) -> u8 {
    match p.ty {
        Ty::Int => raw::ParameterType::INTEGER,
        Ty::Real => raw::ParameterType::DOUBLE,
        Ty::Bool => raw::ParameterType::BOOL,
        Ty::Str => raw::ParameterType::STRING,
        Ty::Reals => raw::ParameterType::DOUBLE_ARRAY,
        Ty::Strs => raw::ParameterType::STRING_ARRAY,
    }
}

impl Store {
    fn serves(&self, key: &str) -> bool {
        served(self.planner).any(|p| p.key == key)
    }

    /// The value in force of a served key, as ROS 2 types it.
    pub fn get(&self, key: &str) -> raw::ParameterValue {
        let t = &self.values;
        if !self.serves(key) {
            return self
                .fixed
                .iter()
                .find(|(k, _)| *k == key)
                .map_or_else(not_set, |(_, v)| v.clone());
        }
        match key {
            "budget.iterations" => value(raw::ParameterType::INTEGER, t.iterations as i64, 0.0),
            "budget.step_size" => value(raw::ParameterType::DOUBLE, 0, t.step_size),
            "budget.beta" => value(raw::ParameterType::DOUBLE, 0, t.beta),
            "plan_fraction" => value(raw::ParameterType::DOUBLE, 0, t.plan_fraction),
            _ => not_set(),
        }
    }

    /// Check one value like the parameter file's and apply it to `next`.
    pub fn check(
        &self,
        key: &str,
        v: &raw::ParameterValue,
        next: &mut Tunables,
    ) -> Result<(), String> {
        let y = to_yaml(v)
            .ok_or_else(|| format!("parameter '{key}': type {} is not accepted here", v.ptype))?;
        let p = check_value(key, &y).map_err(|e| e.to_string())?;
        if !self.serves(p.key) {
            return Err(if p.tunable {
                format!("parameter '{key}' has no effect: action source has no planner")
            } else {
                format!(
                    "parameter '{key}' is read-only at run time (fixed at start: set it in the \
                     parameter file or with --ros-args -p {key}:=...)"
                )
            });
        }
        match p.key {
            "budget.iterations" => next.iterations = y.as_u64().unwrap_or(0) as usize,
            "budget.step_size" => next.step_size = y.as_f64().unwrap_or(f64::NAN),
            "budget.beta" => next.beta = y.as_f64().unwrap_or(f64::NAN),
            "plan_fraction" => next.plan_fraction = y.as_f64().unwrap_or(f64::NAN),
            _ => return Err(format!("parameter '{key}' is not tunable")),
        }
        Ok(())
    }

    /// `set_parameters`: each parameter on its own (ROS 2 semantics);
    /// returns one result per parameter and whether anything changed.
    pub fn set_each(&mut self, ps: &[raw::Parameter]) -> (Vec<SetParametersResult>, bool) {
        let mut changed = false;
        let results = ps
            .iter()
            .map(|p| {
                let mut next = self.values;
                match self.check(&p.name, &p.value, &mut next) {
                    Ok(()) => {
                        changed |= next != self.values;
                        self.values = next;
                        ok()
                    }
                    Err(reason) => refused(reason),
                }
            })
            .collect();
        (results, changed)
    }

    /// `set_parameters_atomically`: all or none.
    pub fn set_all(&mut self, ps: &[raw::Parameter]) -> (SetParametersResult, bool) {
        let mut next = self.values;
        for p in ps {
            if let Err(reason) = self.check(&p.name, &p.value, &mut next) {
                return (refused(reason), false);
            }
        }
        let changed = next != self.values;
        self.values = next;
        (ok(), changed)
    }

    /// `describe_parameters`: the table row (doc, bounds, read-only for
    /// keys fixed at start); an unknown name gets an empty descriptor.
    pub fn describe(&self, key: &str) -> ParameterDescriptor {
        let Some(p) = param(key) else {
            return ParameterDescriptor {
                name: key.to_string(),
                r#type: raw::ParameterType::NOT_SET,
                description: String::new(),
                additional_constraints: String::new(),
                read_only: true,
                dynamic_typing: false,
                floating_point_range: vec![],
                integer_range: vec![],
            };
        };
        let (mut fr, mut ir) = (vec![], vec![]);
        if let super::config::Rule::Range(lo, hi) = p.rule {
            match p.ty {
                Ty::Int => ir.push(IntegerRange {
                    from_value: lo as i64,
                    to_value: hi as i64,
                    step: 1,
                }),
                _ => fr.push(FloatingPointRange {
                    from_value: lo,
                    to_value: hi,
                    step: 0.0,
                }),
            }
        }
        ParameterDescriptor {
            name: p.key.to_string(),
            r#type: type_of(p),
            description: p.doc.to_string(),
            additional_constraints: if self.serves(p.key) {
                "applied between two control ticks".into()
            } else {
                "fixed at start".into()
            },
            read_only: !self.serves(p.key),
            dynamic_typing: false,
            floating_point_range: fr,
            integer_range: ir,
        }
    }

    /// `list_parameters` (prefixes filter by `prefix.`; depth ignored: the
    /// keys are at most two levels deep).
    pub fn list(&self, prefixes: &[String]) -> ListParametersResult {
        let names: Vec<String> = PARAMS
            .iter()
            .map(|p| p.key)
            .filter(|k| self.serves(k) || self.fixed.iter().any(|(f, _)| f == k))
            .filter(|k| {
                prefixes.is_empty()
                    || prefixes
                        .iter()
                        .any(|pre| k.starts_with(&format!("{pre}.")) || k == pre)
            })
            .map(str::to_string)
            .collect();
        let mut pre: Vec<String> = names
            .iter()
            .filter_map(|n| n.rsplit_once('.').map(|(p, _)| p.to_string()))
            .collect();
        pre.dedup();
        ListParametersResult {
            names,
            prefixes: pre,
        }
    }
}

fn ok() -> SetParametersResult {
    SetParametersResult {
        successful: true,
        reason: String::new(),
    }
}

fn refused(reason: String) -> SetParametersResult {
    SetParametersResult {
        successful: false,
        reason,
    }
}

/// The six services of the node plus the [`Store`].
pub struct ParamServer {
    pub store: Store,
    list: Server<ListParametersRequest, ListParametersResponse>,
    get: Server<GetParametersRequest, GetParametersResponse>,
    types: Server<GetParameterTypesRequest, GetParameterTypesResponse>,
    describe: Server<DescribeParametersRequest, DescribeParametersResponse>,
    set: Server<SetParametersRequest, SetParametersResponse>,
    set_atomic: Server<SetParametersRequest, SetParametersAtomicallyResponse>,
    events: Publisher<raw::ParameterEvent>,
    node_name: String,
}

impl ParamServer {
    /// Create the services under `/<node_name>/` (start-up only).
    pub fn new(
        node: &mut Node,
        node_name: &str,
        mapping: ServiceMappingKind,
        store: Store,
    ) -> Result<ParamServer, String> {
        let m = match mapping {
            ServiceMappingKind::Enhanced => ServiceMapping::Enhanced,
            ServiceMappingKind::Cyclone => ServiceMapping::Cyclone,
        };
        let q = super::node::qos(super::config::Reliability::Reliable, 10);
        let ns = format!("/{}", node_name.trim_start_matches('/'));
        macro_rules! server {
            ($name:literal, $ty:literal) => {
                node.create_server(
                    m,
                    &Name::new(&ns, $name).map_err(|e| format!("{ns}/{}: {e:?}", $name))?,
                    &ServiceTypeName::new("rcl_interfaces", $ty),
                    q.clone(),
                    q.clone(),
                )
                .map_err(|e| format!("service {ns}/{}: {e:?}", $name))?
            };
        }
        let events_topic = node
            .create_topic(
                &Name::parse("/parameter_events").map_err(|e| format!("{e:?}"))?,
                MessageTypeName::new("rcl_interfaces", "ParameterEvent"),
                &super::node::qos(super::config::Reliability::Reliable, 1000),
            )
            .map_err(|e| format!("/parameter_events: {e:?}"))?;
        let events = node
            .create_publisher(&events_topic, None)
            .map_err(|e| format!("/parameter_events publisher: {e:?}"))?;
        Ok(ParamServer {
            events,
            node_name: ns.clone(),
            store,
            list: server!("list_parameters", "ListParameters"),
            get: server!("get_parameters", "GetParameters"),
            types: server!("get_parameter_types", "GetParameterTypes"),
            describe: server!("describe_parameters", "DescribeParameters"),
            set: server!("set_parameters", "SetParameters"),
            set_atomic: server!("set_parameters_atomically", "SetParametersAtomically"),
        })
    }

    /// Answer every pending request; accepted sets are logged and queued
    /// to the control thread (`force_push`: the newest always gets there).
    /// Returns the number of requests answered.
    pub fn serve(&mut self, queue: &ArrayQueue<Tunables>) -> usize {
        let s = &mut self.store;
        let (events, node) = (&self.events, self.node_name.as_str());
        let mut n = answer_all(&self.list, |r| ListParametersResponse {
            result: s.list(&r.prefixes),
        });
        n += answer_all(&self.get, |r| GetParametersResponse {
            values: r.names.iter().map(|k| s.get(k)).collect(),
        });
        n += answer_all(&self.types, |r| GetParameterTypesResponse {
            values: r.names.iter().map(|k| s.get(k).ptype).collect(),
        });
        n += answer_all(&self.describe, |r| DescribeParametersResponse {
            values: r.names.iter().map(|k| s.describe(k)).collect(),
        });
        n += answer_all(&self.set, |r| {
            let (results, changed) = s.set_each(&r.parameter);
            log_sets(&r.parameter, &results);
            if changed {
                queue.force_push(s.values);
            }
            let accepted: Vec<raw::Parameter> = r
                .parameter
                .iter()
                .zip(&results)
                .filter(|(_, ok)| ok.successful)
                .map(|(p, _)| p.clone())
                .collect();
            event(events, node, accepted);
            SetParametersResponse { results }
        });
        n += answer_all(&self.set_atomic, |r| {
            let (result, changed) = s.set_all(&r.parameter);
            log_sets(&r.parameter, std::slice::from_ref(&result));
            if changed {
                queue.force_push(s.values);
            }
            if result.successful {
                event(events, node, r.parameter);
            }
            SetParametersAtomicallyResponse { result }
        });
        n
    }
}

/// Answer every pending request of `server` with `answer(request)`; the
/// number answered (a reply that fails to send is dropped: the client
/// asks again).
fn answer_all<Req: Message + 'static, Resp: Message + 'static>(
    server: &Server<Req, Resp>,
    mut answer: impl FnMut(Req) -> Resp,
) -> usize {
    let mut n = 0;
    while let Ok(Some((id, r))) = server.receive_request() {
        let _ = server.send_response(id, answer(r));
        n += 1;
    }
    n
}

/// Publish `changed` on `/parameter_events` (nothing when empty).
fn event(events: &Publisher<raw::ParameterEvent>, node: &str, changed: Vec<raw::Parameter>) {
    if changed.is_empty() {
        return;
    }
    let _ = events.publish(raw::ParameterEvent {
        stamp: builtin_interfaces::Time::now(),
        node: node.to_string(),
        new_parameters: vec![],
        changed_parameters: changed,
        deleted_parameters: vec![],
    });
}

fn log_sets(ps: &[raw::Parameter], results: &[SetParametersResult]) {
    for (i, p) in ps.iter().enumerate() {
        let r = &results[i.min(results.len() - 1)];
        let v = to_yaml(&p.value)
            .and_then(|v| serde_yaml::to_string(&v).ok())
            .unwrap_or_default();
        if r.successful {
            eprintln!(
                "dream-mpc run: parameter {} set to {} (applied from the next tick)",
                p.name,
                v.trim()
            );
        } else {
            eprintln!(
                "dream-mpc run: parameter {} not set: {}",
                p.name,
                super::config::clip(&r.reason)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(planner: bool) -> Store {
        Store {
            values: Tunables {
                iterations: 1,
                step_size: 0.1,
                beta: 0.01,
                plan_fraction: 0.7,
            },
            planner,
            fixed: vec![],
        }
    }

    fn p(name: &str, v: raw::ParameterValue) -> raw::Parameter {
        raw::Parameter {
            name: name.into(),
            value: v,
        }
    }

    fn dbl(x: f64) -> raw::ParameterValue {
        value(raw::ParameterType::DOUBLE, 0, x)
    }

    fn int(x: i64) -> raw::ParameterValue {
        value(raw::ParameterType::INTEGER, x, 0.0)
    }

    #[test]
    fn set_checks_like_the_file() {
        let mut s = store(true);
        let (r, changed) = s.set_each(&[
            p("budget.beta", dbl(0.5)),
            p("budget.iterations", int(3)),
            p("budget.iterations", dbl(3.5)),
            p("budget.beta", dbl(-1.0)),
            p("budget.bta", dbl(1.0)),
            p("budget.horizon", int(5)),
            p("plan_fraction", dbl(0.99)),
        ]);
        assert!(changed);
        let ok: Vec<bool> = r.iter().map(|r| r.successful).collect();
        assert_eq!(ok, [true, true, false, false, false, false, false]);
        assert!(r[3].reason.contains("'budget.beta'"), "{}", r[3].reason);
        assert!(
            r[4].reason.contains("did you mean 'budget.beta'"),
            "{}",
            r[4].reason
        );
        assert!(r[5].reason.contains("read-only"), "{}", r[5].reason);
        assert_eq!((s.values.beta, s.values.iterations), (0.5, 3));
        assert_eq!(s.values.plan_fraction, 0.7);
        assert_eq!(s.get("budget.iterations").int_value, 3);
        assert_eq!(s.get("bundle").ptype, raw::ParameterType::NOT_SET);
    }

    #[test]
    fn atomic_set_is_all_or_nothing() {
        let mut s = store(true);
        let (r, changed) = s.set_all(&[p("budget.beta", dbl(0.5)), p("plan_fraction", dbl(2.0))]);
        assert!(!r.successful && !changed);
        assert_eq!(s.values, store(true).values);
        let (r, changed) = s.set_all(&[p("budget.beta", dbl(0.5)), p("plan_fraction", dbl(0.5))]);
        assert!(r.successful && changed);
        assert_eq!((s.values.beta, s.values.plan_fraction), (0.5, 0.5));
    }

    #[test]
    fn keys_fixed_at_start_are_listed_and_got_read_only() {
        let cfg = crate::ros::config::Config::from_params(
            crate::ros::config::Params::from_yaml(
                "dream_mpc:\n  ros__parameters:\n    action_source: linear\n    control_rate_hz: 100.0\n    observation: {size: 2}\n    action: {size: 1}\n    linear: {gain: [-1.0, -0.5]}\n",
            )
            .unwrap(),
        )
        .unwrap();
        let mut s = Store::new(store(false).values, false, &cfg);
        let names = s.list(&[]).names;
        for k in [
            "control_rate_hz",
            "observation.size",
            "linear.gain",
            "plan_fraction",
        ] {
            assert!(names.iter().any(|n| n == k), "{k} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.starts_with("budget.")), "{names:?}");
        assert_eq!(s.get("control_rate_hz").double_value, 100.0);
        assert_eq!(s.get("observation.size").int_value, 2);
        assert_eq!(s.get("linear.gain").double_array, [-1.0, -0.5]);
        assert_eq!(s.get("action_source").string_value, "linear");
        assert!(s.describe("control_rate_hz").read_only);
        let (r, changed) = s.set_each(&[p("control_rate_hz", dbl(50.0))]);
        assert!(
            !changed && r[0].reason.contains("read-only"),
            "{}",
            r[0].reason
        );
    }

    #[test]
    fn list_and_describe_follow_the_table() {
        let s = store(true);
        let all = s.list(&[]);
        assert_eq!(
            all.names,
            [
                "budget.iterations",
                "budget.step_size",
                "budget.beta",
                "plan_fraction"
            ]
        );
        assert_eq!(all.prefixes, ["budget"]);
        assert_eq!(s.list(&["budget".into()]).names.len(), 3);
        let d = s.describe("budget.beta");
        assert!(!d.read_only && d.floating_point_range[0].to_value == 1000.0);
        assert!(s.describe("control_rate_hz").read_only);
        // a fixed law has no planner tunables
        let fixed = store(false);
        assert_eq!(fixed.list(&[]).names, ["plan_fraction"]);
        let mut f = fixed.clone();
        let (r, _) = f.set_each(&[p("budget.beta", dbl(0.5))]);
        assert!(r[0].reason.contains("no planner"), "{}", r[0].reason);
    }
}
