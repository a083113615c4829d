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

Driven by tests/tests/ros_interop_cyclonedds.rs.
"""
import json
import sys
import time
from dataclasses import dataclass

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import float64, int32, sequence, uint8, uint32
import cyclonedds.idl.annotations as annotate
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic


@dataclass
@annotate.final
class MultiArrayDimension(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayDimension_"):
    label: str
    size: uint32
    stride: uint32


@dataclass
@annotate.final
class MultiArrayLayout(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayLayout_"):
    dim: sequence[MultiArrayDimension]
    data_offset: uint32


@dataclass
@annotate.final
class Float64MultiArray(IdlStruct, typename="std_msgs::msg::dds_::Float64MultiArray_"):
    layout: MultiArrayLayout
    data: sequence[float64]


@dataclass
@annotate.final
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32
    nanosec: uint32


@dataclass
@annotate.final
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time
    frame_id: str


@dataclass
@annotate.final
class JointState(IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    header: Header
    name: sequence[str]
    position: sequence[float64]
    velocity: sequence[float64]
    effort: sequence[float64]


@dataclass
@annotate.final
class KeyValue(IdlStruct, typename="diagnostic_msgs::msg::dds_::KeyValue_"):
    key: str
    value: str


@dataclass
@annotate.final
class DiagnosticStatus(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticStatus_"):
    level: uint8
    name: str
    message: str
    hardware_id: str
    values: sequence[KeyValue]


@dataclass
@annotate.final
class DiagnosticArray(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticArray_"):
    header: Header
    status: sequence[DiagnosticStatus]


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
else:
    sys.exit(f"unknown mode {mode}")

print(json.dumps({"mode": mode, "checks": checks, "actions": len(actions), "diagnostics": len(diags),
                  "last_diagnostics": {k: diag_values().get(k) for k in ("observations_received", "qos_incompatible")}}))
sys.exit(0 if all(checks.values()) else 1)
