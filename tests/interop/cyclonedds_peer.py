"""Interop peer: Eclipse Cyclone DDS (Python binding `cyclonedds`, PyPI) as an
independent DDS implementation talking to `dream-mpc run` with the ROS 2
wire names and topic mangling (rt/<topic>). Publishes observations, checks
that actions answer them and that /diagnostics decodes. Exit 0 on success.

    python3 tests/interop/cyclonedds_peer.py <ROS_DOMAIN_ID>

Driven by the ignored test `ros_interop_cyclonedds` (see that file).
"""
import sys, time
from dataclasses import dataclass
from cyclonedds.domain import DomainParticipant
from cyclonedds.topic import Topic
from cyclonedds.sub import DataReader
from cyclonedds.pub import DataWriter
from cyclonedds.core import Qos, Policy
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import sequence, float64, uint32, int32, uint8
import cyclonedds.idl.annotations as annotate

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

dp = DomainParticipant(int(sys.argv[1]))
rel = Qos(Policy.Reliability.Reliable(max_blocking_time=100000000), Policy.History.KeepLast(1))
obs_w = DataWriter(dp, Topic(dp, "rt/observation", Float64MultiArray), qos=rel)
act_r = DataReader(dp, Topic(dp, "rt/action", Float64MultiArray), qos=rel)
diag_r = DataReader(dp, Topic(dp, "rt/diagnostics", DiagnosticArray), qos=Qos(Policy.Reliability.Reliable(max_blocking_time=100000000), Policy.History.KeepLast(10)))
t0 = time.time(); actions = []; diags = []
while time.time() - t0 < 3.0:
    obs_w.write(Float64MultiArray(MultiArrayLayout([], 0), [0.1, 0.0]))
    actions += [s.data for s in act_r.take(N=100)]
    diags += diag_r.take(N=10)
    time.sleep(0.01)
print("actions received:", len(actions), "last:", actions[-1] if actions else None)
planned = any(abs(a[0] + 0.4) < 1e-6 for a in actions)
print("planned -0.4 seen:", planned)
ok = planned
if diags:
    st = diags[-1].status[0]
    values = {kv.key: kv.value for kv in st.values}
    print("diagnostics:", st.level, st.name, st.message, {k: values.get(k) for k in ("rate_hz", "planner_latency_p99_ms", "observations_received")})
    ok = ok and st.name == "dream_mpc: controller" and int(values["observations_received"]) > 0
else:
    print("no diagnostics")
    ok = False
sys.exit(0 if ok else 1)
