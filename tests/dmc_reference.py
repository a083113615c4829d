#!/usr/bin/env python3
"""Reference trajectories from the installed dm_control suite, on the fly.

Used by tests/tests/mujoco_equivalence.rs (feature `mujoco`); prints one
JSON document on stdout.

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
"""
import argparse
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["trajectories", "resets"])
    ap.add_argument("--tasks", required=True, help="comma-separated suite names, e.g. cheetah-run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--count", type=int, default=200)
    args = ap.parse_args()
    names = [t for t in args.tasks.split(",") if t]
    if args.mode == "trajectories":
        doc = trajectories(names, args.seed, args.steps)
    else:
        doc = resets(names, args.count)
    json.dump(doc, sys.stdout)


if __name__ == "__main__":
    main()
