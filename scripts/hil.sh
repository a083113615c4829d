#!/usr/bin/env bash
# Hardware-in-the-loop on this machine, no ROS installation needed (the
# same two nodes as launch/hil.launch.py, over real DDS on localhost):
# the Dream-MPC controller node on the shipped model plus the simulated
# robot. Prints each episode's return (from the robot) and the
# controller's timing summary.
#
#   bash scripts/hil.sh [--task pendulum-swingup] [--episodes 3] [--seed 0]
#                       [--config config/controller.yaml] [--speed 1.0]
#
# Episodes run in real time (pendulum-swingup: 20 s each). The controller
# and the native tasks need only the Rust toolchain. A MuJoCo task
# (`--task mujoco/walker-run`) also needs the MuJoCo wheel and the sim's
# `mujoco` feature: the script installs the wheel into the project's .venv
# (`DREAM_MPC_MUJOCO=1 bash scripts/setup.sh`, about 190 MB, once) unless
# DREAM_MPC_NO_INSTALL=1, in which case it stops and prints that command.
# Without --config the task's parameter file is used: config/controller.yaml
# for pendulum-swingup, else config/<task without mujoco/>.yaml or
# config/<task before the first dash>.yaml (cartpole-swingup:
# config/cartpole.yaml).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
task=pendulum-swingup episodes=3 seed=0 config="" speed=1.0
while [ $# -gt 0 ]; do
  case "$1" in
    --task) task="$2"; shift 2 ;;
    --episodes) episodes="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --speed) speed="$2"; shift 2 ;;
    *) echo "hil.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$config" ]; then
  short="${task#mujoco/}"
  if [ "$task" = "pendulum-swingup" ]; then config=config/controller.yaml
  elif [ -f "config/$short.yaml" ]; then config="config/$short.yaml"
  elif [ -f "config/${short%%-*}.yaml" ]; then config="config/${short%%-*}.yaml"
  else
    echo "hil.sh: no parameter file for task $task (looked for config/$short.yaml and config/${short%%-*}.yaml); pass --config FILE" >&2
    exit 2
  fi
fi
[ -f "$config" ] || { echo "hil.sh: no parameter file at $config" >&2; exit 2; }
features=()
case "$task" in
  mujoco/*)
    if [ ! -e .venv/mujoco-link/libmujoco.so ]; then
      if [ "${DREAM_MPC_NO_INSTALL:-0}" = "1" ]; then
        echo "hil.sh: task $task needs the MuJoCo wheel; install it once with:" >&2
        echo "  DREAM_MPC_MUJOCO=1 bash scripts/setup.sh" >&2
        exit 3
      fi
      echo "[hil.sh] $task needs MuJoCo: DREAM_MPC_MUJOCO=1 bash scripts/setup.sh (once, about 190 MB)"
      DREAM_MPC_MUJOCO=1 bash scripts/setup.sh
    fi
    # shellcheck source=/dev/null
    source scripts/env.sh
    features=(--features dream-mpc-sim/mujoco)
    ;;
esac
# A private DDS domain so two runs on one machine do not cross-talk.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 30 + $$ % 60 ))}"
cargo build --release -q -p dream-mpc -p dream-mpc-sim --bins "${features[@]}"
bin=target/release
"$bin/dream-mpc" run --params-file "$config" &
ctl=$!
trap 'kill -INT $ctl 2>/dev/null || true' EXIT
"$bin/dream-mpc-sim" serve --task "$task" --episodes "$episodes" --seed "$seed" --speed "$speed"
kill -INT $ctl
trap - EXIT
wait $ctl
