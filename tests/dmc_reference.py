#!/usr/bin/env python3
"""Reference trajectories from the installed dm_control suite.

The first two modes are run on the fly by tests/tests/mujoco_equivalence.rs
(feature `mujoco`) and print one JSON document on stdout; the third writes
the recordings committed in sim/tests/data/dmc_reference/ that
sim/tests/reference.rs replays (so the sim's tests need no Python).

  python3 tests/dmc_reference.py trajectories --tasks cheetah-run,... --seed 0 --steps 1000
      per task: MuJoCo's full integration state right after env.reset()
      (mj_getState(mjSTATE_INTEGRATION)), qpos0/qvel0, the per-episode model
      parameters our Rust task cannot draw identically (reacher's target
      x, y), obs0, and for a fixed pseudo-random action sequence (numpy
      RandomState(seed + 1), uniform in [-1, 1]) the observations and
      rewards that followed each action.
  python3 tests/dmc_reference.py resets --tasks ... --count 200
      per task: qpos/qvel after env.reset() for seeds 0..count-1 (the
      suite's initial-state distribution).
  python3 tests/dmc_reference.py native --out sim/tests/data/dmc_reference
      one <task>.json per native task (pendulum-swingup, cartpole-swingup,
      cartpole-balance, acrobot-swingup), three episodes of --steps steps
      (seeds 0, 1, 2) each; see native_actions() for the actions. With
      --check instead of writing, compare with the files already in --out
      and print the largest differences.
"""
import argparse
import importlib.metadata
import json
import os
import sys
import warnings

os.environ.setdefault("MUJOCO_GL", "disable")  # no rendering needed
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import mujoco  # noqa: E402
from dm_control import suite  # noqa: E402


def load(name, seed):
    domain, task = name.split("-", 1)
    return suite.load(domain, task.replace("-", "_"), task_kwargs={"random": seed})


def flat(obs):
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in obs.values()]).tolist()


def episode_params(name, physics):
    if name.startswith("reacher-"):
        return physics.named.model.geom_pos["target", ["x", "y"]].tolist()
    return []


def trajectories(names, seed, steps):
    out = {"mujoco": mujoco.__version__, "seed": seed, "steps": steps, "tasks": {}}
    for name in names:
        env = load(name, seed)
        physics = env.physics
        ts = env.reset()
        spec = env.action_spec()
        rng = np.random.RandomState(seed + 1)
        actions = rng.uniform(spec.minimum, spec.maximum, size=(steps,) + spec.shape)
        state = physics.get_state(sig=mujoco.mjtState.mjSTATE_INTEGRATION)
        rec = {
            "integration_state": state.tolist(),
            "qpos0": physics.data.qpos.tolist(),
            "qvel0": physics.data.qvel.tolist(),
            "episode_params": episode_params(name, physics),
            "obs0": flat(ts.observation),
            "obs_keys": [[k, int(np.asarray(v).size)] for k, v in ts.observation.items()],
            "n_sub_steps": env._n_sub_steps,
            "control_timestep": env.control_timestep(),
            "actions": actions.tolist(),
            "observations": [],
            "rewards": [],
            "last": [],
        }
        for a in actions:
            ts = env.step(a)
            rec["observations"].append(flat(ts.observation))
            rec["rewards"].append(float(ts.reward))
            rec["last"].append(bool(ts.last()))
        out["tasks"][name] = rec
    return out


def resets(names, count):
    out = {"mujoco": mujoco.__version__, "count": count, "tasks": {}}
    for name in names:
        env = load(name, 0)
        qpos, qvel, params = [], [], []
        for s in range(count):
            env.task._random = np.random.RandomState(s)
            env.reset()
            qpos.append(env.physics.data.qpos.tolist())
            qvel.append(env.physics.data.qvel.tolist())
            params.append(episode_params(name, env.physics))
        out["tasks"][name] = {"qpos": qpos, "qvel": qvel, "episode_params": params}
    return out


NATIVE_TASKS = ["pendulum-swingup", "cartpole-swingup", "cartpole-balance", "acrobot-swingup"]
NATIVE_SEEDS = [0, 1, 2]
INTEGRATORS = {
    int(mujoco.mjtIntegrator.mjINT_EULER): "Euler",
    int(mujoco.mjtIntegrator.mjINT_RK4): "RK4",
}


def native_actions(seed, steps):
    """The open-loop actions of episode `seed`: a sine of period 50 + 7 seed
    steps and amplitude 0.8 plus normal noise of deviation 0.3 (numpy's
    default_rng(100 + seed)), clipped to [-1, 1]. The same for every task."""
    k = np.arange(steps)
    noise = np.random.default_rng(100 + seed).normal(size=steps)
    return np.clip(0.8 * np.sin(2 * np.pi * k / (50 + 7 * seed)) + 0.3 * noise, -1.0, 1.0)


def pumps(name, seed):
    """Pendulum episode seed 2 pumps energy instead (+1 while the angular
    velocity is >= 0, else -1) so that the sparse upright reward is hit."""
    return name == "pendulum-swingup" and seed == 2


def native_episode(name, seed, steps):
    env = load(name, seed)
    ts = env.reset()
    ep = {
        "seed": seed,
        "qpos0": env.physics.data.qpos.tolist(),
        "qvel0": env.physics.data.qvel.tolist(),
        "obs0": flat(ts.observation),
        "actions": [],
        "rewards": [],
        "observations": [],
    }
    assert env.action_spec().shape == (1,), name  # actions are stored as scalars
    planned = native_actions(seed, steps)
    for k in range(steps):
        if pumps(name, seed):
            a = 1.0 if ts.observation["velocity"][0] >= 0 else -1.0
        else:
            a = float(planned[k])
        ts = env.step([a])
        ep["actions"].append(a)
        ep["rewards"].append(float(ts.reward))
        ep["observations"].append(flat(ts.observation))
        assert ts.last() == (k + 1 == steps), (name, seed, k)
    ep["ret"] = sum(ep["rewards"])
    return ep


def native(name, steps):
    env = load(name, 0)
    ts = env.reset()
    opt = env.physics.model.opt
    return {
        "task": name,
        "source": f"dm-control {importlib.metadata.version('dm-control')} "
        f"on mujoco {mujoco.__version__}",
        "control_timestep": env.control_timestep(),
        "physics_timestep": float(opt.timestep),
        "integrator": INTEGRATORS[int(opt.integrator)],
        "observation_keys": {k: list(np.shape(v)) for k, v in ts.observation.items()},
        "note": "obs/rewards[k] follow actions[k]; obs0 is the observation after reset; "
        "qpos0/qvel0 the state after reset",
        "episodes": [native_episode(name, s, steps) for s in NATIVE_SEEDS],
    }


def max_differences(new, old):
    """Largest |new - old| per field (header fields by name, episode fields
    as episodes.<name>); a difference of shape, key or text counts as inf."""
    out = {}

    def walk(field, a, b):
        if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
            for k in a:
                walk(field, a[k], b[k])
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for x, y in zip(a, b):
                walk(field, x, y)
        else:
            numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
            d = abs(a - b) if numbers else (0.0 if a == b else float("inf"))
            out[field] = max(out.get(field, 0.0), d)

    for k in new.keys() | old.keys():
        if k == "episodes" and len(new[k]) == len(old.get(k, [])):
            for a, b in zip(new[k], old[k]):
                for f in a.keys() | b.keys():
                    walk(f"episodes.{f}", a.get(f), b.get(f))
        else:
            walk(k, new.get(k), old.get(k))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["trajectories", "resets", "native"])
    ap.add_argument(
        "--tasks", help="comma-separated suite names, e.g. cheetah-run (native: default all four)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--out", help="native: folder of the <task>.json files")
    ap.add_argument(
        "--check", action="store_true", help="native: compare with --out instead of writing"
    )
    args = ap.parse_args()
    if args.mode == "native":
        if not args.out:
            ap.error("native needs --out")
        for name in (args.tasks or ",".join(NATIVE_TASKS)).split(","):
            doc = native(name, args.steps)
            path = os.path.join(args.out, f"{name}.json")
            if args.check:
                with open(path) as f:
                    text = f.read()
                if json.dumps(doc) == text:
                    print(f"{name}: identical to {path}")
                else:
                    diffs = max_differences(doc, json.loads(text))
                    print(f"{name}: differs from {path}; max |new - old| by field:")
                    print("  " + " ".join(f"{k}={v:.3g}" for k, v in sorted(diffs.items())))
            else:
                os.makedirs(args.out, exist_ok=True)
                with open(path, "w") as f:
                    json.dump(doc, f)  # one line, no trailing newline, as first recorded
        return
    if not args.tasks:
        ap.error("--tasks is required")
    names = [t for t in args.tasks.split(",") if t]
    if args.mode == "trajectories":
        doc = trajectories(names, args.seed, args.steps)
    else:
        doc = resets(names, args.count)
    json.dump(doc, sys.stdout)


if __name__ == "__main__":
    main()
