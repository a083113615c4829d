"""Test fixture for `dream-mpc-train import`: a TD-MPC2-shaped single-task
world model with random weights, saved as TD-MPC2 saves it, plus what
PyTorch computes with it.

    python tdmpc2_fixture.py OUT_DIR --obs 24 --act 6 --latent 512 --mlp 512 \
        --enc 256 --enc-layers 2 --num-q 5 --bins 101 --layout stacked [--bad]

Written here from TD-MPC2's published architecture (not its code): MLPs of
Linear -> LayerNorm -> Mish blocks (torch's LayerNorm, eps 1e-5), SimNorm
(softmax over groups of 8) after the encoder's and the dynamics' last
block, plain last Linear for reward, policy and Q heads, dropout 0.01 in
each Q head's first block (identity in eval mode), policy mean and log-std
from one Linear, the log-std squashed into [log_std_min, log_std_max] with
tanh. Keys follow the official checkpoints: `_encoder.state.{i}`,
`_dynamics.{i}`, `_reward.{i}`, `_pi.{i}` with `weight`, `bias`,
`ln.weight`, `ln.bias`; the Q ensemble in one of the layouts `stacked`
(`_Qs.params.{layer}.{name}`, heads stacked, with the detached and target
copies, tensordict's `__batch_size`/`__device` and the meta-device
template), `flat` (`_Qs.params.{n}`, older functorch releases) or
`perhead` (`_Qs.{head}.{layer}.{name}`); the log-std buffers `log_std_min`
and `log_std_dif`. Target copies are perturbed, so an importer that used
them would disagree with the expected outputs.

Writes OUT_DIR/checkpoint.pt and OUT_DIR/expected.json (the bundle's
references.json layout: per module, cases of inputs, outputs, cotangents
and input VJPs from PyTorch autograd). With --bad, also broken variants:
missing.pt, unknown.pt, shape.pt, nonfinite.pt, multitask.pt.
"""

import argparse
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


class SimNorm(nn.Module):
    def __init__(self, group):
        super().__init__()
        self.group = group

    def forward(self, x):
        shape = x.shape
        return F.softmax(x.view(*shape[:-1], -1, self.group), dim=-1).view(shape)


class NormedLinear(nn.Linear):
    """Linear, optional dropout, LayerNorm, activation; LayerNorm as `ln`."""

    def __init__(self, d_in, d_out, act, dropout=0.0):
        super().__init__(d_in, d_out)
        self.ln = nn.LayerNorm(d_out)
        self.act = act
        self.dropout = nn.Dropout(dropout) if dropout else None

    def forward(self, x):
        x = super().forward(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.act(self.ln(x))


def mlp(dims, last_act=None, dropout=0.0):
    layers = [NormedLinear(dims[i], dims[i + 1], nn.Mish(), dropout if i == 0 else 0.0)
              for i in range(len(dims) - 2)]
    if last_act is None:
        layers.append(nn.Linear(dims[-2], dims[-1]))
    else:
        layers.append(NormedLinear(dims[-2], dims[-1], last_act))
    return nn.Sequential(*layers)


class Model(nn.Module):
    """The single-task modules; the Q heads live in `heads` (saved by layout)."""

    def __init__(self, a):
        super().__init__()
        L, M, A = a.latent, a.mlp, a.act
        hidden = max(a.enc_layers - 1, 1)
        self._encoder = nn.ModuleDict(
            {"state": mlp([a.obs] + [a.enc] * hidden + [L], SimNorm(a.simnorm))})
        self._dynamics = mlp([L + A, M, M, L], SimNorm(a.simnorm))
        self._reward = mlp([L + A, M, M, a.bins])
        self._pi = mlp([L, M, M, 2 * A])
        self.heads = [mlp([L + A, M, M, a.bins], dropout=0.01) for _ in range(a.num_q)]
        self.register_buffer("log_std_min", torch.tensor(-10.0))
        self.register_buffer("log_std_dif", torch.tensor(12.0))

    def za(self, z, act):
        return torch.cat([z, act], -1)

    def policy(self, z):
        mu, raw = self._pi(z).chunk(2, -1)
        return mu, self.log_std_min + 0.5 * self.log_std_dif * (torch.tanh(raw) + 1)

    def q(self, z, act):
        x = self.za(z, act)
        return torch.cat([h(x) for h in self.heads], -1)


def randomize(module, g):
    """Random weights of realistic scale (every parameter, incl. LayerNorm)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("ln.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(1.5 * torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)


PARAMS = ["weight", "bias", "ln.weight", "ln.bias"]


def q_entries(model, layout, g):
    """The Q ensemble's state-dict entries in `layout`."""
    heads = [h.state_dict() for h in model.heads]
    n_layers = len(model.heads[0])
    out = {}

    def perturbed(t):
        return t + 0.05 * torch.randn(t.shape, generator=g)

    if layout == "perhead":
        for h, sd in enumerate(heads):
            for k, v in sd.items():
                out["_Qs.%d.%s" % (h, k)] = v.clone()
                out["_target_Qs.%d.%s" % (h, k)] = perturbed(v)
        return out
    for layer in range(n_layers):
        for p, name in enumerate(PARAMS):
            key = "%d.%s" % (layer, name)
            if key not in heads[0]:
                continue
            stacked = torch.stack([sd[key] for sd in heads])
            if layout == "flat":
                out["_Qs.params.%d" % (4 * layer + p)] = stacked
                out["_target_Qs.params.%d" % (4 * layer + p)] = perturbed(stacked)
            else:
                out["_Qs.params." + key] = stacked
                out["_detach_Qs_params." + key] = stacked.clone()
                out["_detach_Qs.params." + key] = stacked.clone()
                target = perturbed(stacked)
                out["_target_Qs_params." + key] = target
                out["_target_Qs.params." + key] = target.clone()
                out["_Qs.module." + key] = torch.empty(stacked.shape[1:], device="meta")
    if layout == "stacked":
        for prefix in ("_Qs.params.", "_detach_Qs_params.", "_target_Qs_params."):
            out[prefix + "__batch_size"] = torch.Size([len(heads)])
            out[prefix + "__device"] = torch.device("cpu")
    return out


def case(batch, inputs, fn, g):
    """One reference case: outputs, random cotangents and input VJPs."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    outs = fn(*leaves.values())
    loss, cots = 0.0, {}
    for name, y in outs.items():
        c = torch.randn(y.shape, generator=g)
        cots[name] = c
        loss = loss + (y * c).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    flat = lambda t: t.detach().reshape(-1).tolist()
    return {
        "batch": batch,
        "inputs": {k: flat(v) for k, v in inputs.items()},
        "outputs": {k: flat(v) for k, v in outs.items()},
        "cotangents": {k: flat(v) for k, v in cots.items()},
        "vjp": {k: flat(v) for k, v in zip(leaves.keys(), grads)},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    for name, default in [("obs", 24), ("act", 6), ("latent", 512), ("mlp", 512),
                          ("enc", 256), ("enc-layers", 2), ("num-q", 5), ("bins", 101),
                          ("simnorm", 8), ("seed", 0), ("cases", 2), ("batch", 5)]:
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--layout", choices=["stacked", "flat", "perhead"], default="stacked")
    ap.add_argument("--bad", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    g = torch.Generator().manual_seed(a.seed)
    torch.manual_seed(a.seed)
    model = Model(a)
    randomize(model, g)
    for h in model.heads:
        randomize(h, g)
        h.eval()
    model.eval()

    state = {k: v for k, v in model.state_dict().items()}
    state.update(q_entries(model, a.layout, g))
    torch.save({"model": state}, os.path.join(a.out, "checkpoint.pt"))

    B = a.batch
    enc = model._encoder["state"]
    expected = {}
    for _ in range(a.cases):
        obs = 2.0 * torch.randn(B, a.obs, generator=g)
        with torch.no_grad():
            z = enc(2.0 * torch.randn(B, a.obs, generator=g))
        act = 2.0 * torch.rand(B, a.act, generator=g) - 1.0
        cases = {
            "encoder": case(B, {"obs": obs}, lambda o: {"z": enc(o)}, g),
            "dynamics": case(B, {"z": z, "a": act},
                             lambda z, x: {"z_next": model._dynamics(model.za(z, x))}, g),
            "reward": case(B, {"z": z, "a": act},
                           lambda z, x: {"r": model._reward(model.za(z, x))}, g),
            "q": case(B, {"z": z, "a": act}, lambda z, x: {"q": model.q(z, x)}, g),
            "policy": case(B, {"z": z},
                           lambda z: dict(zip(("mu", "log_std"), model.policy(z))), g),
        }
        for k, c in cases.items():
            expected.setdefault(k, []).append(c)
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump({"modules": expected}, f)

    if a.bad:
        def save(name, sd):
            torch.save({"model": sd}, os.path.join(a.out, name))
        sd = dict(state); del sd["_reward.2.bias"]; save("missing.pt", sd)
        sd = dict(state); sd["_value_head.weight"] = torch.zeros(3, 3); save("unknown.pt", sd)
        sd = dict(state); w = sd["_dynamics.1.weight"]
        sd["_dynamics.1.weight"] = torch.zeros(w.shape[0], w.shape[1] + 1); save("shape.pt", sd)
        sd = dict(state); w = sd["_pi.0.weight"].clone(); w.view(-1)[3] = float("nan")
        sd["_pi.0.weight"] = w; save("nonfinite.pt", sd)
        sd = dict(state); sd["_task_emb.weight"] = torch.zeros(30, 96)
        sd["_action_masks"] = torch.ones(30, a.act); save("multitask.pt", sd)


if __name__ == "__main__":
    main()
