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
//! newest between two ticks ([`crate::control::ControlLoop::update`]) without
//! allocating, and `/diagnostics` reports the values in force.
//!
//! Every accepted change is also published on `/parameter_events`
//! (`rcl_interfaces/msg/ParameterEvent`, `changed_parameters`), as rclcpp
//! does, so `ros2 param` tooling and rqt see it.
//!
//! Served from the `params` thread, never the control thread; a request
//! allocates (messages, strings).
//!
//! Requests are bounded before any work is done on them: at most
//! [`max_per_request`] parameters (or names, or prefixes) per request, a
//! name of at most [`MAX_NAME_BYTES`], a value of at most
//! [`MAX_VALUE_BYTES`]. A request over the count is answered with one
//! refusal naming the limit; a name or value over its size is refused by
//! itself. Every request with a refusal of either kind is counted
//! (`parameter_requests_refused` in `/diagnostics`), and the log quotes
//! names shortened ([`super::config::clip`]) and at most
//! [`LOGGED_PER_REQUEST`] refused parameters per request.

use super::config::{check_value, param, Param, ServiceMappingKind, Ty, PARAMS};
use crate::control::Tunables;
use crossbeam::queue::ArrayQueue;
use ros2_client::parameters::raw::{
    self, FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult,
};
use ros2_client::rcl_interfaces::*;
use ros2_client::{
    builtin_interfaces, Context, Message, MessageTypeName, Name, Node, NodeName, Publisher, Server,
    ServiceMapping, ServiceTypeName,
};
use serde_yaml::Value;
use std::sync::atomic::{AtomicU64, Ordering};

/// Longest parameter name accepted, in bytes (the longest key is under 48).
pub const MAX_NAME_BYTES: usize = 256;

/// Largest parameter value accepted, in bytes of payload (a string's
/// bytes; an array's elements).
pub const MAX_VALUE_BYTES: usize = 4096;

/// Refused parameters logged one per line per request; the rest are
/// summed up in one line.
pub const LOGGED_PER_REQUEST: usize = 8;

/// Most parameters, names or prefixes one request may carry: twice the
/// number the node has (a client may repeat a name, but no legitimate
/// request needs more).
pub const fn max_per_request() -> usize {
    2 * PARAMS.len()
}

/// The refusal of a whole request carrying `n` entries, if `n` is over
/// [`max_per_request`].
pub fn over_count(what: &str, n: usize) -> Option<String> {
    (n > max_per_request()).then(|| {
        format!(
            "request refused: {n} {what}, at most {} per request",
            max_per_request()
        )
    })
}

/// Payload bytes of a parameter value: a string's length, an array's
/// elements (strings by length plus 8 for their CDR length and end, so
/// an array of empty strings is not free). Work is O(array length), no
/// allocation.
pub fn value_bytes(v: &raw::ParameterValue) -> usize {
    v.string_value.len()
        + v.byte_array.len()
        + v.bool_array.len()
        + 8 * (v.int_array.len() + v.double_array.len())
        + v.string_array.iter().map(|s| s.len() + 8).sum::<usize>()
}

/// Largest serialized request the services' DDS readers accept, in
/// bytes, sized from the limits above: [`max_per_request`] entries of a
/// name at [`MAX_NAME_BYTES`] (and, for the sets, a value at
/// [`MAX_VALUE_BYTES`] plus its fixed fields: type, bool, int, double,
/// five array lengths, padding), plus 1 KiB for the encapsulation and a
/// request header. Larger samples are dropped by DDS before they are
/// buffered (docs/rustdds-patch.md): with the table's 66 parameters,
/// 35 KiB for the name lists, 579 KiB for the sets.
pub const fn max_request_bytes(set: bool) -> usize {
    let per_entry = if set {
        MAX_NAME_BYTES + MAX_VALUE_BYTES + 128
    } else {
        MAX_NAME_BYTES + 8
    };
    max_per_request() * per_entry + 1024
}

/// The refusal of a name or value over its size limit, before any other
/// check (so no closest-key suggestion runs on a huge name).
fn over_size(name: &str, v: &raw::ParameterValue) -> Option<String> {
    if name.len() > MAX_NAME_BYTES {
        return Some(format!(
            "parameter name '{}' refused: {} bytes, at most {MAX_NAME_BYTES}",
            super::config::clip(name),
            name.len()
        ));
    }
    let b = value_bytes(v);
    (b > MAX_VALUE_BYTES).then(|| {
        format!("parameter '{name}': value of {b} bytes refused, at most {MAX_VALUE_BYTES}")
    })
}

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

/// A scalar parameter value of type `ptype` (the arrays empty).
pub fn value(ptype: u8, int: i64, double: f64) -> raw::ParameterValue {
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
    /// returns one result per parameter and whether anything changed. A
    /// request over [`max_per_request`] gets one refused result and
    /// changes nothing.
    pub fn set_each(&mut self, ps: &[raw::Parameter]) -> (Vec<SetParametersResult>, bool) {
        if let Some(why) = over_count("parameters", ps.len()) {
            return (vec![refused(why)], false);
        }
        let mut changed = false;
        let results = ps
            .iter()
            .map(|p| {
                let mut next = self.values;
                match self.check_bounded(&p.name, &p.value, &mut next) {
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

    /// [`Store::check`] after the size limits on name and value.
    fn check_bounded(
        &self,
        key: &str,
        v: &raw::ParameterValue,
        next: &mut Tunables,
    ) -> Result<(), String> {
        match over_size(key, v) {
            Some(why) => Err(why),
            None => self.check(key, v, next),
        }
    }

    /// `set_parameters_atomically`: all or none.
    pub fn set_all(&mut self, ps: &[raw::Parameter]) -> (SetParametersResult, bool) {
        if let Some(why) = over_count("parameters", ps.len()) {
            return (refused(why), false);
        }
        let mut next = self.values;
        for p in ps {
            if let Err(reason) = self.check_bounded(&p.name, &p.value, &mut next) {
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
                // a name over the limit is not echoed back
                name: if key.len() <= MAX_NAME_BYTES {
                    key.to_string()
                } else {
                    String::new()
                },
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

/// One request answered by the [`Store`], apart from DDS: the reply and
/// what the server does besides sending it.
#[derive(Debug)]
pub struct Answer<R> {
    pub reply: R,
    /// The request broke a limit (count or size): counted in
    /// `parameter_requests_refused`.
    pub refused: bool,
    /// The tunables now in force, when the request changed them (queued to
    /// the control thread).
    pub changed: Option<Tunables>,
    /// The parameters accepted (published on `/parameter_events`).
    pub accepted: Vec<raw::Parameter>,
    /// Log lines, names and values quoted shortened: at most one per
    /// accepted parameter plus [`LOGGED_PER_REQUEST`] + 1.
    pub log: Vec<String>,
}

impl<R> Answer<R> {
    fn read(reply: R, refused: bool) -> Answer<R> {
        Answer {
            reply,
            refused,
            changed: None,
            accepted: vec![],
            log: vec![],
        }
    }

    /// Hand everything but the reply to `rest`; the reply.
    pub fn split(self, rest: &mut impl FnMut(Answer<()>)) -> R {
        rest(Answer {
            reply: (),
            refused: self.refused,
            changed: self.changed,
            accepted: self.accepted,
            log: self.log,
        });
        self.reply
    }
}

/// Whether a list of names or prefixes breaks a limit (count, or a name
/// over [`MAX_NAME_BYTES`]), and whether it is over the count (answered
/// empty).
fn names_over(names: &[String]) -> (bool, bool) {
    let over = over_count("names", names.len()).is_some();
    (over || names.iter().any(|n| n.len() > MAX_NAME_BYTES), over)
}

/// Whether a set request breaks a limit (count, or a name or value over
/// its size).
fn sets_over(ps: &[raw::Parameter]) -> bool {
    over_count("parameters", ps.len()).is_some()
        || ps.iter().any(|p| over_size(&p.name, &p.value).is_some())
}

impl Store {
    /// `list_parameters`; a request over the count gets an empty list.
    pub fn answer_list(&self, r: &ListParametersRequest) -> Answer<ListParametersResponse> {
        let (refused, over) = names_over(&r.prefixes);
        let result = if over {
            ListParametersResult {
                names: vec![],
                prefixes: vec![],
            }
        } else {
            self.list(&r.prefixes)
        };
        Answer::read(ListParametersResponse { result }, refused)
    }

    /// `get_parameters`; over the count: no values.
    pub fn answer_get(&self, r: &GetParametersRequest) -> Answer<GetParametersResponse> {
        let (refused, over) = names_over(&r.names);
        let values = if over {
            vec![]
        } else {
            r.names.iter().map(|k| self.get(k)).collect()
        };
        Answer::read(GetParametersResponse { values }, refused)
    }

    /// `get_parameter_types`; over the count: no types.
    pub fn answer_types(&self, r: &GetParameterTypesRequest) -> Answer<GetParameterTypesResponse> {
        let (refused, over) = names_over(&r.names);
        let values = if over {
            vec![]
        } else {
            r.names.iter().map(|k| self.get(k).ptype).collect()
        };
        Answer::read(GetParameterTypesResponse { values }, refused)
    }

    /// `describe_parameters`; over the count: no descriptors.
    pub fn answer_describe(
        &self,
        r: &DescribeParametersRequest,
    ) -> Answer<DescribeParametersResponse> {
        let (refused, over) = names_over(&r.names);
        let values = if over {
            vec![]
        } else {
            r.names.iter().map(|k| self.describe(k)).collect()
        };
        Answer::read(DescribeParametersResponse { values }, refused)
    }

    /// `set_parameters` ([`Store::set_each`]).
    pub fn answer_set(&mut self, r: SetParametersRequest) -> Answer<SetParametersResponse> {
        let refused = sets_over(&r.parameter);
        let (results, changed) = self.set_each(&r.parameter);
        let log = set_log(&r.parameter, &results);
        let accepted = r
            .parameter
            .into_iter()
            .zip(&results)
            .filter(|(_, ok)| ok.successful)
            .map(|(p, _)| p)
            .collect();
        Answer {
            reply: SetParametersResponse { results },
            refused,
            changed: changed.then_some(self.values),
            accepted,
            log,
        }
    }

    /// `set_parameters_atomically` ([`Store::set_all`]).
    pub fn answer_set_atomic(
        &mut self,
        r: SetParametersRequest,
    ) -> Answer<SetParametersAtomicallyResponse> {
        let refused = sets_over(&r.parameter);
        let (result, changed) = self.set_all(&r.parameter);
        let log = set_log(&r.parameter, std::slice::from_ref(&result));
        let accepted = if result.successful {
            r.parameter
        } else {
            vec![]
        };
        Answer {
            reply: SetParametersAtomicallyResponse { result },
            refused,
            changed: changed.then_some(self.values),
            accepted,
            log,
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
    readers: Vec<super::dds::ReaderLimit>,
}

impl ParamServer {
    /// Create the services under `/<node_name>/` (start-up only), each
    /// request reader bounded to [`max_request_bytes`].
    pub fn new(
        ctx: &Context,
        node: &mut Node,
        node_name: &str,
        mapping: ServiceMappingKind,
        store: Store,
    ) -> Result<ParamServer, String> {
        let m = match mapping {
            ServiceMappingKind::Enhanced => ServiceMapping::Enhanced,
            ServiceMappingKind::Cyclone => ServiceMapping::Cyclone,
        };
        let q = super::dds::qos(super::config::Reliability::Reliable, 10);
        let ns = format!("/{}", node_name.trim_start_matches('/'));
        // The node name only prefixes relative service names; ours are
        // absolute.
        let any_node = NodeName::new("/", "n").map_err(|e| format!("{e:?}"))?;
        let mut readers = Vec::new();
        macro_rules! server {
            ($name:literal, $ty:literal, $set:literal) => {{
                let name = Name::new(&ns, $name).map_err(|e| format!("{ns}/{}: {e:?}", $name))?;
                // the DDS topic of the requests, as ros2-client names it
                let rq = name.to_dds_name("rq", &any_node, "Request");
                readers.push(super::dds::limit_reception(
                    ctx,
                    &rq,
                    max_request_bytes($set),
                ));
                node.create_server(
                    m,
                    &name,
                    &ServiceTypeName::new("rcl_interfaces", $ty),
                    q.clone(),
                    q.clone(),
                )
                .map_err(|e| format!("service {ns}/{}: {e:?}", $name))?
            }};
        }
        let events_topic = node
            .create_topic(
                &Name::parse("/parameter_events").map_err(|e| format!("{e:?}"))?,
                MessageTypeName::new("rcl_interfaces", "ParameterEvent"),
                &super::dds::qos(super::config::Reliability::Reliable, 1000),
            )
            .map_err(|e| format!("/parameter_events: {e:?}"))?;
        let events = node
            .create_publisher(&events_topic, None)
            .map_err(|e| format!("/parameter_events publisher: {e:?}"))?;
        let list = server!("list_parameters", "ListParameters", false);
        let get = server!("get_parameters", "GetParameters", false);
        let types = server!("get_parameter_types", "GetParameterTypes", false);
        let describe = server!("describe_parameters", "DescribeParameters", false);
        let set = server!("set_parameters", "SetParameters", true);
        let set_atomic = server!("set_parameters_atomically", "SetParametersAtomically", true);
        Ok(ParamServer {
            events,
            node_name: ns.clone(),
            store,
            list,
            get,
            types,
            describe,
            set,
            set_atomic,
            readers,
        })
    }

    /// The request readers' limits and drop counts (shared counters).
    pub fn readers(&self) -> &[super::dds::ReaderLimit] {
        &self.readers
    }

    /// Answer every pending request ([`Store::answer_list`] and the
    /// others); accepted sets are logged and queued to the control thread
    /// (`force_push`: the newest always gets there) and published as a
    /// parameter event. A request with any refusal by the limits (module
    /// docs) adds one to `refused`. Returns the number of requests
    /// answered.
    pub fn serve(&mut self, queue: &ArrayQueue<Tunables>, refused: &AtomicU64) -> usize {
        let s = &mut self.store;
        let (events, node) = (&self.events, self.node_name.as_str());
        let mut done = |a: Answer<()>| {
            if a.refused {
                refused.fetch_add(1, Ordering::Relaxed);
            }
            for line in &a.log {
                eprintln!("dream-mpc run: {line}");
            }
            if let Some(values) = a.changed {
                queue.force_push(values);
            }
            event(events, node, a.accepted);
        };
        let mut n = answer_all(&self.list, |r| s.answer_list(&r).split(&mut done));
        n += answer_all(&self.get, |r| s.answer_get(&r).split(&mut done));
        n += answer_all(&self.types, |r| s.answer_types(&r).split(&mut done));
        n += answer_all(&self.describe, |r| s.answer_describe(&r).split(&mut done));
        n += answer_all(&self.set, |r| s.answer_set(r).split(&mut done));
        n += answer_all(&self.set_atomic, |r| {
            s.answer_set_atomic(r).split(&mut done)
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

/// The log of a set request: one line per accepted parameter, one per
/// refused parameter up to [`LOGGED_PER_REQUEST`] and one line for the
/// rest; names and values quoted shortened. A request refused whole (one
/// result for many parameters) is one line.
pub fn set_log(ps: &[raw::Parameter], results: &[SetParametersResult]) -> Vec<String> {
    use super::config::clip;
    if results.len() == 1 && ps.len() > max_per_request() {
        return vec![format!(
            "set request not applied: {}",
            clip(&results[0].reason)
        )];
    }
    let mut out = Vec::new();
    let mut refused = 0usize;
    for (i, p) in ps.iter().enumerate() {
        let Some(r) = results.get(i).or(results.last()) else {
            break;
        };
        if r.successful {
            let v = to_yaml(&p.value)
                .and_then(|v| serde_yaml::to_string(&v).ok())
                .unwrap_or_default();
            out.push(format!(
                "parameter {} set to {} (applied from the next tick)",
                clip(&p.name),
                clip(v.trim())
            ));
            continue;
        }
        refused += 1;
        if refused <= LOGGED_PER_REQUEST {
            out.push(format!(
                "parameter {} not set: {}",
                clip(&p.name),
                clip(&r.reason)
            ));
        }
    }
    if refused > LOGGED_PER_REQUEST {
        out.push(format!(
            "... and {} more parameters of the request not set",
            refused - LOGGED_PER_REQUEST
        ));
    }
    out
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

    fn text(s: &str) -> raw::ParameterValue {
        let mut v = value(raw::ParameterType::STRING, 0, 0.0);
        v.string_value = s.into();
        v
    }

    #[test]
    fn requests_over_the_limits_are_refused_cheaply() {
        let mut s = store(true);
        // a 1 MB unknown name: refused by its size, no suggestion computed
        // (the suggestion alone took seconds and hundreds of MiB)
        let long = "y".repeat(1 << 20);
        let t = std::time::Instant::now();
        let (r, changed) = s.set_each(&[p(&long, dbl(1.0)), p("budget.beta", dbl(0.5))]);
        assert!(t.elapsed() < std::time::Duration::from_millis(500));
        assert!(!r[0].successful && r[1].successful && changed);
        assert!(
            r[0].reason.contains("1048576 bytes, at most 256"),
            "{}",
            &r[0].reason[..200.min(r[0].reason.len())]
        );
        assert!(r[0].reason.len() < 400, "{} bytes", r[0].reason.len());
        // a 256-byte name is still checked (and named unknown)
        let (r, _) = s.set_each(&[p(&"z".repeat(MAX_NAME_BYTES), dbl(1.0))]);
        assert!(r[0].reason.contains("unknown parameter"), "{}", r[0].reason);
        // a string value over 4 KiB
        let (r, _) = s.set_each(&[p("budget.beta", text(&"1".repeat(MAX_VALUE_BYTES + 1)))]);
        assert!(
            r[0].reason.contains("4097 bytes refused"),
            "{}",
            r[0].reason
        );
        // too many parameters: one refusal, nothing changes
        let before = s.values;
        let many: Vec<_> = (0..=max_per_request())
            .map(|i| p(if i == 0 { "budget.beta" } else { "nope" }, dbl(0.7)))
            .collect();
        let (r, changed) = s.set_each(&many);
        assert_eq!(r.len(), 1);
        assert!(!r[0].successful && !changed && s.values == before);
        assert!(r[0].reason.contains("at most"), "{}", r[0].reason);
        let (r, changed) = s.set_all(&many);
        assert!(!r.successful && !changed, "{}", r.reason);
        // exactly the limit is served
        let (r, _) = s.set_each(&many[..max_per_request()]);
        assert_eq!(r.len(), max_per_request());
        // describe does not echo a name over the limit
        assert_eq!(s.describe(&long).name, "");
    }

    #[test]
    fn answers_carry_bounded_logs_and_the_refusal_count() {
        let mut s = store(true);
        let unknown: Vec<_> = (0..max_per_request())
            .map(|i| p(&format!("nope{i}"), dbl(1.0)))
            .collect();
        let a = s.answer_set(SetParametersRequest {
            parameter: unknown.clone(),
        });
        assert_eq!(a.log.len(), LOGGED_PER_REQUEST + 1, "{:?}", a.log);
        assert!(a.log[LOGGED_PER_REQUEST].contains(&format!(
            "{} more parameters",
            max_per_request() - LOGGED_PER_REQUEST
        )));
        assert!(!a.refused && a.changed.is_none() && a.accepted.is_empty());
        // one over the count: refused whole, one line, counted
        let mut over = unknown;
        over.push(p("budget.beta", dbl(0.5)));
        let a = s.answer_set(SetParametersRequest { parameter: over });
        assert_eq!(a.log.len(), 1, "{:?}", a.log);
        assert!(a.refused && a.changed.is_none());
        // an accepted set: one line, the new values, the event's parameters
        let a = s.answer_set_atomic(SetParametersRequest {
            parameter: vec![p("budget.beta", dbl(0.5))],
        });
        assert!(a.reply.result.successful && !a.refused);
        assert_eq!(a.changed.map(|v| v.beta), Some(0.5));
        assert_eq!(a.accepted.len(), 1);
        assert!(a.log[0].contains("budget.beta set to 0.5"), "{:?}", a.log);
        // read requests: a name over the size limit is counted, still answered
        let a = s.answer_get(&GetParametersRequest {
            names: vec!["x".repeat(MAX_NAME_BYTES + 1), "budget.beta".into()],
        });
        assert!(a.refused && a.reply.values.len() == 2);
        assert_eq!(a.reply.values[1].double_value, 0.5);
        let many = vec![String::new(); max_per_request() + 1];
        let a = s.answer_describe(&DescribeParametersRequest { names: many });
        assert!(a.refused && a.reply.values.is_empty());
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
