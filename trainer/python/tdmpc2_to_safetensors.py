"""Read a TD-MPC2 checkpoint (`torch.save({"model": state_dict}, path)`) and
write its tensors as a safetensors file, unchanged but for the dtype (every
tensor becomes float32, little-endian).

    python tdmpc2_to_safetensors.py CHECKPOINT.pt OUT.safetensors

This is the only Python step of `dream-mpc-train import`: pickles can only
be read by Python. It loads with `weights_only=True` (no code from the file
runs), decides nothing about the model and renames nothing: the key checks,
the size checks and the bundle are the importer's (trainer/src/import/).
Entries that are not tensors with data (tensordict's `__batch_size` and
`__device`, meta-device templates) are listed by name in the file's
metadata (`skipped`, a JSON list), so the importer can accept or refuse
them by name. The top-level keys of the checkpoint go into `top_level`.
"""

import json
import struct
import sys

import torch


def tensor_bytes(t):
    """Raw little-endian float32 bytes of a contiguous CPU tensor."""
    try:
        return t.numpy().tobytes()
    except (ImportError, RuntimeError):
        return struct.pack("<%df" % t.numel(), *t.flatten().tolist())


def main(src, dst):
    obj = torch.load(src, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "model" in obj:
        top_level = [str(k) for k in obj.keys()]
        state = obj["model"]
    else:
        top_level = []
        state = obj
    if not isinstance(state, dict):
        sys.exit("%s: expected a dict {'model': state_dict} or a state dict, found %s"
                 % (src, type(state).__name__))
    header, blobs, skipped, offset = {}, [], [], 0
    for key, value in state.items():
        key = str(key)
        if not isinstance(value, torch.Tensor) or value.is_meta:
            skipped.append(key)
            continue
        t = value.detach().to(device="cpu", dtype=torch.float32).contiguous()
        data = tensor_bytes(t)
        header[key] = {"dtype": "F32", "shape": list(t.shape),
                       "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"skipped": json.dumps(skipped),
                              "top_level": json.dumps(top_level)}
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: tdmpc2_to_safetensors.py CHECKPOINT.pt OUT.safetensors")
    main(sys.argv[1], sys.argv[2])
