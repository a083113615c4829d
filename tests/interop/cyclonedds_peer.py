"""Interop peer: Eclipse Cyclone DDS (Python binding `cyclonedds`, PyPI) as an
independent DDS implementation talking to `dream-mpc run` with the ROS 2
wire names and topic mangling (rt/<topic>). Prints one JSON line; exit 0
when every check of the mode passed.

    python3 tests/interop/cyclonedds_peer.py <ROS_DOMAIN_ID> <mode>

Modes (the controller runs config/plumbing.yaml, a = -4 x0 - 2 x1):
  array         Float64MultiArray observations, first from a reliable
                writer (x0 = 0.1, expects a = -0.4), then from a best-effort
                one (x0 = 0.2, expects -0.8); reads /action (reliable) and
                /diagnostics (decodes DiagnosticArray, checks counters).
  joints        sensor_msgs/JointState from a best-effort writer (the
                sensor-data profile), joint "slider", position 0.1 and
                velocity 0.0 (expects -0.4).
  incompatible  a best-effort writer against a controller whose
                observation subscription is reliable: only the safe action
                (0.0) may come back, and /diagnostics counts qos_incompatible.
  params        (controller on config/controller.yaml, the pendulum
                planner) the ROS 2 parameter services as a ROS 2 client
                calls them, with the rcl_interfaces service types defined
                here: list, get, describe (two, then every listed one
                at once: a reply in several fragments), set (good,
                read-only, misspelt, a name over 256 bytes),
                the change seen on /parameter_events,
                then /diagnostics must show budget.iterations 0 in force and
                the planner running 0 iterations per tick.
  params_cyclone  the same with rmw_cyclonedds's request/reply header
                (controller with parameter_services: cyclone).

Driven by tests/tests/ros_interop_cyclonedds.rs.
"""
import os
import json
import sys
import time
import types
from dataclasses import dataclass

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import float64, int32, int64, sequence, uint8, uint32, uint64
import cyclonedds.idl.annotations as annotate
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic


def struct(name, typename, fields):
    """A final IDL struct `name` with the DDS type name `typename` and the
    (field, type) pairs `fields`, in order (the constructor's order)."""
    def body(ns):
        ns["__annotations__"] = dict(fields)
    return dataclass(annotate.final(types.new_class(name, (IdlStruct,), {"typename": typename}, body)))


def msg(package, name, *fields):
    """The ROS 2 message `package/msg/name` under its DDS wire name."""
    return struct(name, f"{package}::msg::dds_::{name}_", fields)


# The messages the peer reads and writes (ROS 2 wire names
# <package>::msg::dds_::<Name>_; field order is the constructor's).
MultiArrayDimension = msg("std_msgs", "MultiArrayDimension", ("label", str), ("size", uint32), ("stride", uint32))
MultiArrayLayout = msg("std_msgs", "MultiArrayLayout",
                       ("dim", sequence[MultiArrayDimension]), ("data_offset", uint32))
Float64MultiArray = msg("std_msgs", "Float64MultiArray", ("layout", MultiArrayLayout), ("data", sequence[float64]))
Time = msg("builtin_interfaces", "Time", ("sec", int32), ("nanosec", uint32))
Header = msg("std_msgs", "Header", ("stamp", Time), ("frame_id", str))
JointState = msg("sensor_msgs", "JointState", ("header", Header), ("name", sequence[str]),
                 ("position", sequence[float64]), ("velocity", sequence[float64]), ("effort", sequence[float64]))
KeyValue = msg("diagnostic_msgs", "KeyValue", ("key", str), ("value", str))
DiagnosticStatus = msg("diagnostic_msgs", "DiagnosticStatus", ("level", uint8), ("name", str), ("message", str),
                       ("hardware_id", str), ("values", sequence[KeyValue]))
DiagnosticArray = msg("diagnostic_msgs", "DiagnosticArray", ("header", Header), ("status", sequence[DiagnosticStatus]))
ParameterValue = msg("rcl_interfaces", "ParameterValue", ("type", uint8), ("bool_value", bool),
                     ("integer_value", int64), ("double_value", float64), ("string_value", str),
                     ("byte_array_value", sequence[uint8]), ("bool_array_value", sequence[bool]),
                     ("integer_array_value", sequence[int64]), ("double_array_value", sequence[float64]),
                     ("string_array_value", sequence[str]))
Parameter = msg("rcl_interfaces", "Parameter", ("name", str), ("value", ParameterValue))
SetParametersResult = msg("rcl_interfaces", "SetParametersResult", ("successful", bool), ("reason", str))
FloatingPointRange = msg("rcl_interfaces", "FloatingPointRange",
                         ("from_value", float64), ("to_value", float64), ("step", float64))
IntegerRange = msg("rcl_interfaces", "IntegerRange", ("from_value", int64), ("to_value", int64), ("step", uint64))
ParameterDescriptor = msg("rcl_interfaces", "ParameterDescriptor", ("name", str), ("type", uint8),
                          ("description", str), ("additional_constraints", str), ("read_only", bool),
                          ("dynamic_typing", bool), ("floating_point_range", sequence[FloatingPointRange]),
                          ("integer_range", sequence[IntegerRange]))
ListParametersResult = msg("rcl_interfaces", "ListParametersResult",
                           ("names", sequence[str]), ("prefixes", sequence[str]))
ParameterEvent = msg("rcl_interfaces", "ParameterEvent", ("stamp", Time), ("node", str),
                     ("new_parameters", sequence[Parameter]), ("changed_parameters", sequence[Parameter]),
                     ("deleted_parameters", sequence[Parameter]))


# The service request/reply types. ROS 2 over Cyclone DDS
# (rmw_cyclonedds, `parameter_services: cyclone`) puts a 16-byte header in
# front of every request and reply: the client's GUID (last 8 bytes) and a
# sequence number; rmw_fastrtps (`enhanced`, the default) puts none.
CYCLONE_MAPPING = len(sys.argv) > 2 and sys.argv[2] == "params_cyclone"
HEADER = [("client_guid", uint64), ("seq", int64)] if CYCLONE_MAPPING else []


def srv(name, req, resp):
    """The request and reply types of the service `rcl_interfaces/srv/name`
    (with the Cyclone header when that mapping is in use)."""
    base = f"rcl_interfaces::srv::dds_::{name}"
    return (struct(name + "_Request", base + "_Request_", HEADER + req),
            struct(name + "_Response", base + "_Response_", HEADER + resp))


ListParameters_Request, ListParameters_Response = srv(
    "ListParameters", [("prefixes", sequence[str]), ("depth", uint64)], [("result", ListParametersResult)])
GetParameters_Request, GetParameters_Response = srv(
    "GetParameters", [("names", sequence[str])], [("values", sequence[ParameterValue])])
DescribeParameters_Request, DescribeParameters_Response = srv(
    "DescribeParameters", [("names", sequence[str])], [("descriptors", sequence[ParameterDescriptor])])
SetParameters_Request, SetParameters_Response = srv(
    "SetParameters", [("parameters", sequence[Parameter])], [("results", sequence[SetParametersResult])])
SEQ = [0]


def request(cls, *fields):
    """A request, with the Cyclone header (our id, the next sequence
    number) when that mapping is in use."""
    SEQ[0] += 1
    return cls(0x0102030405060708, SEQ[0], *fields) if CYCLONE_MAPPING else cls(*fields)


RELIABLE = Qos(Policy.Reliability.Reliable(max_blocking_time=100_000_000), Policy.History.KeepLast(10))
BEST_EFFORT = Qos(Policy.Reliability.BestEffort, Policy.History.KeepLast(5))

dp = DomainParticipant(int(sys.argv[1]))
mode = sys.argv[2]
act_r = DataReader(dp, Topic(dp, "rt/action", Float64MultiArray), qos=RELIABLE)
diag_r = DataReader(dp, Topic(dp, "rt/diagnostics", DiagnosticArray), qos=RELIABLE)
actions, diags = [], []


def pump(write, seconds, until=None):
    """Write every 10 ms for at most `seconds`, collecting actions and
    diagnostics; stop early once `until()` holds."""
    t0 = time.time()
    while time.time() - t0 < seconds:
        write()
        actions.extend(s.data[0] for s in act_r.take(N=100))
        diags.extend(diag_r.take(N=10))
        if until and until():
            return True
        time.sleep(0.01)
    return until() if until else True


def seen(a):
    return lambda: any(abs(x - a) < 1e-6 for x in actions)


def diag_values():
    if not diags:
        return {}
    st = diags[-1].status[0]
    return dict({kv.key: kv.value for kv in st.values}, _name=st.name)


def array(x0):
    return Float64MultiArray(MultiArrayLayout([MultiArrayDimension("obs", 2, 2)], 0), [x0, 0.0])


checks = {}
if mode == "array":
    topic = Topic(dp, "rt/observation", Float64MultiArray)
    rel_w = DataWriter(dp, topic, qos=RELIABLE)
    checks["reliable_publisher_planned"] = pump(lambda: rel_w.write(array(0.1)), 20.0, seen(-0.4))
    rel_w = None  # this writer is gone; a best-effort one takes over
    be_w = DataWriter(dp, topic, qos=BEST_EFFORT)
    checks["best_effort_publisher_planned"] = pump(lambda: be_w.write(array(0.2)), 20.0, seen(-0.8))
    pump(lambda: be_w.write(array(0.2)), 20.0, lambda: int(diag_values().get("observations_received", 0)) > 0)
    v = diag_values()
    checks["diagnostics_decoded"] = v.get("_name") == "dream_mpc: controller"
    checks["diagnostics_counts_observations"] = int(v.get("observations_received", 0)) > 0
    checks["no_incompatible_qos"] = v.get("qos_incompatible") == "0"
elif mode == "joints":
    w = DataWriter(dp, Topic(dp, "rt/observation", JointState), qos=BEST_EFFORT)
    js = JointState(Header(Time(0, 0), ""), ["slider"], [0.1], [0.0], [])
    checks["joint_state_planned"] = pump(lambda: w.write(js), 20.0, seen(-0.4))
elif mode == "incompatible":
    w = DataWriter(dp, Topic(dp, "rt/observation", Float64MultiArray), qos=BEST_EFFORT)
    pump(lambda: w.write(array(0.1)), 20.0, lambda: int(diag_values().get("qos_incompatible", 0)) > 0)
    checks["qos_incompatible_counted"] = int(diag_values().get("qos_incompatible", 0)) > 0
    checks["only_safe_actions"] = len(actions) > 0 and all(x == 0.0 for x in actions)
elif mode in ("params", "params_cyclone"):
    # The ROS 2 service topics rq/<node>/<service>Request and
    # rr/<node>/<service>Reply; one call at a time, so replies need no
    # matching by request id.
    w = DataWriter(dp, Topic(dp, "rt/observation", Float64MultiArray), qos=BEST_EFFORT)
    obs = Float64MultiArray(MultiArrayLayout([], 0), [1.0, 0.0, 0.0])
    svc_qos = Qos(Policy.Reliability.Reliable(max_blocking_time=100_000_000), Policy.History.KeepLast(10))
    clients = {}

    def call(service, req_type, resp_type, request, seconds=15.0, ok=lambda r: True):
        # `ok`: which replies answer this request (a late reply to an
        # earlier call's resend may still arrive, and an empty sample was
        # once seen under the cyclone mapping)
        if service not in clients:
            clients[service] = (
                DataWriter(dp, Topic(dp, f"rq/dream_mpc/{service}Request", req_type), qos=svc_qos),
                DataReader(dp, Topic(dp, f"rr/dream_mpc/{service}Reply", resp_type), qos=svc_qos),
            )
        rq, rr = clients[service]
        got = []
        t0 = time.time()
        while not got and time.time() - t0 < seconds:
            # (re)send until the server has matched and answered
            rq.write(request)
            for _ in range(20):
                w.write(obs)
                got = [r for r in rr.take(N=10) if ok(r)]
                if got:
                    break
                time.sleep(0.01)
            actions.extend(a.data[0] for a in act_r.take(N=100))
            diags.extend(diag_r.take(N=10))
        return got[0] if got else None

    def pv_int(x):
        return ParameterValue(2, False, x, 0.0, "", [], [], [], [], [])

    def pv_double(x):
        return ParameterValue(3, False, 0, x, "", [], [], [], [], [])

    events_r = DataReader(dp, Topic(dp, "rt/parameter_events", ParameterEvent), qos=Qos(
        Policy.Reliability.Reliable(max_blocking_time=100_000_000), Policy.History.KeepLast(1000)))
    pump(lambda: w.write(obs), 30.0, lambda: int(diag_values().get("planner_iterations_last", 0)) > 0)
    iters_before = int(diag_values().get("planner_iterations_last", 0))
    checks["planner_iterated_before"] = iters_before > 0
    lst = call("list_parameters", ListParameters_Request, ListParameters_Response, request(ListParameters_Request, [], 0))
    names = list(lst.result.names) if lst else []
    checks["list"] = {"budget.iterations", "budget.step_size", "budget.beta", "plan_fraction"} <= set(names)
    checks["list_fixed_keys"] = {"control_rate_hz", "bundle", "observation.size"} <= set(names)
    got = call("get_parameters", GetParameters_Request, GetParameters_Response,
               request(GetParameters_Request, ["budget.iterations", "budget.beta"]), ok=lambda r: len(r.values) == 2)
    # the values in force at start are the shipped bundle's planner defaults
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models",
                           "pendulum-swingup", "manifest.json")) as f:
        shipped = json.load(f)["planner"]
    checks["get"] = bool(got) and got.values[0].type == 2 \
        and got.values[0].integer_value == shipped["iterations"] \
        and got.values[1].type == 3 and abs(got.values[1].double_value - shipped["beta"]) < 1e-6
    desc = call("describe_parameters", DescribeParameters_Request, DescribeParameters_Response,
                request(DescribeParameters_Request, ["budget.beta", "control_rate_hz"]), ok=lambda r: len(r.descriptors) == 2)
    checks["describe"] = bool(desc) and not desc.descriptors[0].read_only \
        and desc.descriptors[0].floating_point_range[0].to_value == 1000.0 and desc.descriptors[1].read_only
    # every listed parameter at once: a reply of several KB, sent in
    # fragments (DATA_FRAG with the request id as inline QoS under the
    # enhanced mapping), which Cyclone once rejected as malformed
    every = call("describe_parameters", DescribeParameters_Request, DescribeParameters_Response,
                 request(DescribeParameters_Request, names), ok=lambda r: len(r.descriptors) == len(names))
    checks["describe_every_parameter"] = bool(every) and bool(names) \
        and [d.name for d in every.descriptors] == names \
        and sum(len(d.description) for d in every.descriptors) > 2000
    res = call("set_parameters", SetParameters_Request, SetParameters_Response, request(SetParameters_Request, [
        Parameter("budget.iterations", pv_int(0)),
        Parameter("budget.beta", pv_double(0.5)),
        Parameter("budget.horizon", pv_int(5)),
        Parameter("budget.bta", pv_double(0.5)),
        Parameter("budget.beta", pv_double(-1.0)),
    ]))
    results = [(r.successful, r.reason) for r in res.results] if res else []
    print("set results:", results, file=sys.stderr)
    checks["set_accepted"] = [ok for ok, _ in results] == [True, True, False, False, False]
    checks["read_only_refused"] = len(results) == 5 and "read-only" in results[2][1]
    checks["typo_named"] = len(results) == 5 and "did you mean 'budget.beta'" in results[3][1]
    checks["bound_refused"] = len(results) == 5 and "'budget.beta'" in results[4][1]
    # a name over the 256-byte limit is refused by itself, with the reason
    long = call("set_parameters", SetParameters_Request, SetParameters_Response,
                request(SetParameters_Request, [Parameter("x" * 1000, pv_double(1.0))]),
                ok=lambda r: len(r.results) == 1)
    checks["long_name_refused"] = bool(long) and not long.results[0].successful \
        and "1000 bytes, at most 256" in long.results[0].reason
    events = []
    t_ev = time.time()
    while time.time() - t_ev < 10.0 and not events:
        events = [e for e in events_r.take(N=100)
                  if e.node == "/dream_mpc" and {p.name for p in e.changed_parameters} == {"budget.iterations", "budget.beta"}]
        time.sleep(0.01)
    checks["parameter_event"] = bool(events) and events[0].changed_parameters[0].value.integer_value == 0
    diags.clear()
    pump(lambda: w.write(obs), 30.0,
         lambda: diag_values().get("budget.iterations") == "0" and diag_values().get("planner_iterations_last") == "0")
    v = diag_values()
    checks["planner_uses_new_iterations"] = v.get("budget.iterations") == "0" and v.get("planner_iterations_last") == "0"
    checks["beta_in_force"] = v.get("budget.beta") == "0.5"
    got = call("get_parameters", GetParameters_Request, GetParameters_Response, request(GetParameters_Request, ["budget.iterations"]),
               ok=lambda r: len(r.values) == 1)
    checks["get_after_set"] = bool(got) and got.values[0].integer_value == 0
else:
    sys.exit(f"unknown mode {mode}")

print(json.dumps({"mode": mode, "checks": checks, "actions": len(actions), "diagnostics": len(diags),
                  "last_diagnostics": {k: diag_values().get(k) for k in ("observations_received", "qos_incompatible", "budget.iterations", "planner_iterations_last")}}))
sys.exit(0 if all(checks.values()) else 1)
