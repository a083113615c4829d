"""Write bags with other people's tools for tests/tests/bags_read.rs.

usage: others_write.py <out dir>

Writes <out>/rosbags_bag/ (a rosbag2 folder by `rosbags`' Writer, MCAP
storage, the standard ROS 2 Humble types from its typestore; rosbags
leaves the MCAP sequence at 0) and <out>/mcap_ros2.mcap (by
`mcap-ros2-support`'s Writer, our .msg texts, sequence = step, small zstd
chunks), both holding the same 2 episodes on the four topics of
docs/BAGS.md. Prints the values written as one JSON line.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
from mcap_ros2.writer import Writer as McapRos2Writer
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

OBS, ACT, REW, EP = "/dream_mpc/observation", "/dream_mpc/action", "/dream_mpc/reward", "/dream_mpc/episode"
T0, PERIOD = 1_764_200_000_000_000_000, 20_000_000
EPISODES, STEPS = 2, 31  # steps per episode (30 transitions)
O, A = 5, 1

obs = [[math.sin(k * 0.37 + i) * 1.234567 + i for i in range(O)] for k in range(EPISODES * STEPS)]
act = [[math.cos(k * 0.91 + i) * 0.98 for i in range(A)] for k in range(EPISODES * STEPS)]
rew = [0.5 + 0.5 * math.sin(k * 0.13) for k in range(EPISODES * STEPS)]


def rosbags_bag(path):
    ts = get_typestore(Stores.ROS2_HUMBLE)
    F = ts.types["std_msgs/msg/Float64MultiArray"]
    L = ts.types["std_msgs/msg/MultiArrayLayout"]
    D = ts.types["std_msgs/msg/MultiArrayDimension"]
    F64 = ts.types["std_msgs/msg/Float64"]
    I64 = ts.types["std_msgs/msg/Int64"]

    def arr(label, v):
        return F(layout=L(dim=[D(label=label, size=len(v), stride=len(v))], data_offset=0),
                 data=np.array(v, dtype=np.float64))

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c_obs = w.add_connection(OBS, "std_msgs/msg/Float64MultiArray", typestore=ts)
        c_act = w.add_connection(ACT, "std_msgs/msg/Float64MultiArray", typestore=ts)
        c_rew = w.add_connection(REW, "std_msgs/msg/Float64", typestore=ts)
        c_ep = w.add_connection(EP, "std_msgs/msg/Int64", typestore=ts)
        for k in range(EPISODES * STEPS):
            t = T0 + k * PERIOD
            if k % STEPS == 0:
                w.write(c_ep, t, ts.serialize_cdr(I64(data=k // STEPS), "std_msgs/msg/Int64"))
            w.write(c_obs, t, ts.serialize_cdr(arr("observation", obs[k]), "std_msgs/msg/Float64MultiArray"))
            w.write(c_act, t, ts.serialize_cdr(arr("action", act[k]), "std_msgs/msg/Float64MultiArray"))
            w.write(c_rew, t, ts.serialize_cdr(F64(data=rew[k]), "std_msgs/msg/Float64"))


SEP = "=" * 80
FMA = ("MultiArrayLayout layout\nfloat64[] data\n" + SEP + "\nMSG: std_msgs/MultiArrayLayout\n"
       "MultiArrayDimension[] dim\nuint32 data_offset\n" + SEP + "\nMSG: std_msgs/MultiArrayDimension\n"
       "string label\nuint32 size\nuint32 stride\n")


def mcap_ros2_file(path):
    with open(path, "wb") as f:
        w = McapRos2Writer(f, chunk_size=2048)
        s_arr = w.register_msgdef("std_msgs/msg/Float64MultiArray", FMA)
        s_f64 = w.register_msgdef("std_msgs/msg/Float64", "float64 data\n")
        s_i64 = w.register_msgdef("std_msgs/msg/Int64", "int64 data\n")

        def arr(label, v):
            return {"layout": {"dim": [{"label": label, "size": len(v), "stride": len(v)}], "data_offset": 0},
                    "data": v}

        for k in range(EPISODES * STEPS):
            t = T0 + k * PERIOD
            if k % STEPS == 0:
                w.write_message(EP, s_i64, {"data": k // STEPS}, log_time=t, publish_time=t, sequence=k)
            w.write_message(OBS, s_arr, arr("observation", obs[k]), log_time=t, publish_time=t, sequence=k)
            w.write_message(ACT, s_arr, arr("action", act[k]), log_time=t, publish_time=t, sequence=k)
            w.write_message(REW, s_f64, {"data": rew[k]}, log_time=t, publish_time=t, sequence=k)
        w.finish()


out = Path(sys.argv[1])
rosbags_bag(out / "rosbags_bag")
mcap_ros2_file(out / "mcap_ros2.mcap")
print(json.dumps({"obs": obs, "act": act, "rew": rew, "steps": STEPS, "episodes": EPISODES,
                  "t0": T0, "period_ns": PERIOD}))
