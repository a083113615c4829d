#!/usr/bin/env bash
# Offline training end to end (issue 14, item 5; docs/RESULTS.md,
# "Learning from robot logs"): record hardware-in-the-loop episodes of the
# shipped cart-pole controller and of a weaker one over real DDS, train a
# model from the bags alone, fine-tune the shipped model on them, and
# evaluate every model with the six planners.
#
#   bash scripts/offline-e2e.sh record      # 2 x 20 HIL episodes, real time (~8 min)
#   bash scripts/offline-e2e.sh train       # offline from scratch (--updates, default 20000)
#   bash scripts/offline-e2e.sh train-nobc  # the same without the behaviour-cloning term
#   bash scripts/offline-e2e.sh train-awr   # the same with advantage-weighted cloning
#   bash scripts/offline-e2e.sh finetune    # --init models/cartpole-swingup (--updates 5000)
#   bash scripts/offline-e2e.sh finetune-slow  # the same at lr 3e-5 (--updates 2000)
#   bash scripts/offline-e2e.sh eval        # six planners x --episodes on each model
#
# Options: --out DIR (runs/offline-e2e), --episodes N (20 per controller),
# --updates N, --eval-episodes N (10), --sampling-episodes N (3, CEM and
# MPPI). Uses the dev build (the workspace's
# dev profile is optimized). Each stage writes its log under --out.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stage="${1:-}"; shift || true
out=runs/offline-e2e episodes=20 updates="" eval_episodes=10 sampling_episodes=3
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --episodes) episodes="$2"; shift 2 ;;
    --updates) updates="$2"; shift 2 ;;
    --eval-episodes) eval_episodes="$2"; shift 2 ;;
    --sampling-episodes) sampling_episodes="$2"; shift 2 ;;
    *) echo "offline-e2e.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
source scripts/env.sh
bin=target/debug
task=cartpole-swingup
mkdir -p "$out/bags"

# One controller's recording: the sim records every control step (the
# observation it published, the action it applied, the reward), the node
# plans at 50 Hz (one plan per agent step at action repeat 2).
record_one() {
  local name=$1 planner=$2 noise=$3 seed=$4
  export ROS_DOMAIN_ID=$(( 50 + $$ % 40 ))
  "$bin/dream-mpc" run --params-file config/cartpole.yaml --ros-args -p planner:="$planner" \
    >"$out/$name-node.log" 2>&1 &
  local ctl=$!
  "$bin/dream-mpc-sim" serve --task $task --episodes "$episodes" --seed "$seed" \
    --action-noise "$noise" --record "$out/bags/$name" 2>&1 | tee "$out/$name-sim.log"
  kill -INT $ctl 2>/dev/null || true
  wait $ctl || true
}

case "$stage" in
  record)
    cargo build -q -p dream-mpc -p dream-mpc-sim --features dream-mpc-sim/mujoco --bins
    # the shipped controller (Dream-MPC on models/cartpole-swingup)
    record_one shipped dream-mpc 0.0 100
    # a weaker one: the policy mean alone, with Gaussian noise (std 0.5) on
    # each action it sends, the noisy action applied and recorded
    record_one weak policy 0.5 200
    ;;
  train|train-nobc|train-awr)
    cargo build -q -p dream-mpc-trainer --features dream-mpc-sim/mujoco --bins
    config=config/train-offline-cartpole.json name=scratch-bc
    if [ "$stage" = train-nobc ]; then
      # TD-MPC2's losses alone: the offline config with bc_coef 0
      config="$out/train-nobc.json" name=scratch-nobc
      sed 's/"bc_coef": [0-9.]*/"bc_coef": 0.0/' config/train-offline-cartpole.json >"$config"
    elif [ "$stage" = train-awr ]; then
      config="$out/train-awr.json" name=scratch-awr
      sed 's/^{/{\n  "bc_advantage_temp": 0.3,/' config/train-offline-cartpole.json >"$config"
    fi
    "$bin/dream-mpc-train" train --offline "$out/bags/shipped" "$out/bags/weak" \
      --task $task --config "$config" --out "$out/$name" \
      --updates "${updates:-20000}" 2>&1 | tee "$out/$name.log"
    ;;
  finetune|finetune-slow)
    cargo build -q -p dream-mpc-trainer --features dream-mpc-sim/mujoco --bins
    config=config/train-offline-cartpole.json name=finetune n=5000
    if [ "$stage" = finetune-slow ]; then
      config="$out/finetune-slow.json" name=finetune-lr3e-5 n=2000
      sed 's/^{/{\n  "lr": 3e-5,/' config/train-offline-cartpole.json >"$config"
    fi
    "$bin/dream-mpc-train" train --offline "$out/bags/shipped" "$out/bags/weak" \
      --task $task --config "$config" --init models/cartpole-swingup \
      --out "$out/$name" --updates "${updates:-$n}" --eval-every 1000 2>&1 | tee "$out/$name.log"
    ;;
  eval)
    cargo build -q -p dream-mpc-sim --features dream-mpc-sim/mujoco --bins
    mkdir -p "$out/eval"
    for m in shipped:models/cartpole-swingup scratch-bc:"$out/scratch-bc/bundle" \
             scratch-nobc:"$out/scratch-nobc/bundle" scratch-awr:"$out/scratch-awr/bundle" \
             finetune:"$out/finetune/bundle" \
             finetune-lr3e-5:"$out/finetune-lr3e-5/bundle"; do
      name=${m%%:*} dir=${m#*:}
      [ -f "$dir/manifest.json" ] || { echo "no bundle at $dir (run its stage first)"; continue; }
      echo "== $name ($dir)"
      "$bin/dream-mpc-sim" eval --bundle "$dir" --episodes "$eval_episodes" \
        --planners policy,grad_mpc,policy_grad_mpc,dream_mpc \
        >"$out/eval/$name.md" 2>"$out/eval/$name.err"
      # CEM and MPPI cost ~100x a Dream-MPC tick: fewer seeds
      "$bin/dream-mpc-sim" eval --bundle "$dir" --episodes "$sampling_episodes" \
        --planners cem,mppi >"$out/eval/$name-sampling.md" 2>"$out/eval/$name-sampling.err"
      cat "$out/eval/$name.md" "$out/eval/$name-sampling.md"
    done
    ;;
  *) echo "usage: bash scripts/offline-e2e.sh record|train|finetune|eval [options]" >&2; exit 2 ;;
esac
