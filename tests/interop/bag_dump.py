"""Reads a dream-mpc bag folder (docs/BAGS.md) with the Python MCAP and
rosbag2 tools and prints one JSON object for tests/tests/bags_*.rs to check:

- "mcap": the MCAP file read with `mcap` + `mcap-ros2-support` (every
  message decoded from its ros2msg schema): header, summary (statistics,
  chunk compression), metadata records, and each message's topic, schema,
  sequence, log_time, publish_time and decoded value;
- "rosbags": the folder read with `rosbags`' AnyReader (metadata.yaml
  included): its metadata and each message's topic, type, time and value.

Usage: python bag_dump.py <bag folder>. Exit 3 when a package is missing.
"""

import json
import sys
from pathlib import Path

try:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore
except ImportError as exc:  # the test skips, naming the setup step
    print(f"missing package: {exc}", file=sys.stderr)
    sys.exit(3)


def value(msg):
    """The comparable content of a decoded message (either library)."""
    if hasattr(msg, "layout"):
        return {
            "labels": [d.label for d in msg.layout.dim],
            "sizes": [int(d.size) for d in msg.layout.dim],
            "strides": [int(d.stride) for d in msg.layout.dim],
            "data_offset": int(msg.layout.data_offset),
            "data": [float(x) for x in msg.data],
        }
    d = msg.data
    return int(d) if isinstance(d, int) or type(d).__name__.startswith("int") else float(d)


def read_mcap(folder):
    files = sorted(folder.glob("*.mcap"))
    out = {"files": [f.name for f in files], "messages": [], "metadata": {}}
    with files[0].open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        header = reader.get_header()
        out["profile"] = header.profile
        out["library"] = header.library
        summary = reader.get_summary()
        out["has_summary"] = summary is not None
        if summary is not None:
            st = summary.statistics
            out["statistics"] = {
                "message_count": st.message_count,
                "channel_count": st.channel_count,
                "schema_count": st.schema_count,
                "chunk_count": st.chunk_count,
                "message_start_time": st.message_start_time,
                "message_end_time": st.message_end_time,
            }
            out["compression"] = sorted({c.compression for c in summary.chunk_indexes})
            out["schemas"] = {s.name: s.encoding for s in summary.schemas.values()}
            out["channels"] = {
                c.topic: {"encoding": c.message_encoding, "metadata": dict(c.metadata)}
                for c in summary.channels.values()
            }
        for m in reader.iter_metadata():
            out["metadata"][m.name] = dict(m.metadata)
        for schema, channel, message, decoded in reader.iter_decoded_messages(log_time_order=False):
            out["messages"].append(
                {
                    "topic": channel.topic,
                    "schema": schema.name,
                    "sequence": message.sequence,
                    "log_time": message.log_time,
                    "publish_time": message.publish_time,
                    "cdr_header": list(message.data[:4]),
                    "value": value(decoded),
                }
            )
    return out


def read_rosbags(folder):
    out = {"messages": []}
    store = get_typestore(Stores.ROS2_HUMBLE)
    with AnyReader([folder], default_typestore=store) as reader:
        out["message_count"] = reader.message_count
        out["start_time"] = reader.start_time
        out["end_time"] = reader.end_time
        out["topics"] = {c.topic: c.msgtype for c in reader.connections}
        for conn, t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            out["messages"].append({"topic": conn.topic, "type": conn.msgtype, "log_time": t, "value": value(msg)})
    return out


def main():
    folder = Path(sys.argv[1])
    print(json.dumps({"mcap": read_mcap(folder), "rosbags": read_rosbags(folder)}))


if __name__ == "__main__":
    main()
