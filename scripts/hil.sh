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
# Episodes run in real time (pendulum-swingup: 20 s each). Needs
# `bash scripts/setup.sh` once (for the build's libtorch-free parts only
# the Rust toolchain is needed; setup also provides the trainer's libtorch).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
task=pendulum-swingup episodes=3 seed=0 config=config/controller.yaml speed=1.0
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
# A private DDS domain so two runs on one machine do not cross-talk.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 30 + $$ % 60 ))}"
cargo build --release -q -p dream-mpc -p dream-mpc-sim --bins
bin=target/release
"$bin/dream-mpc" run --params-file "$config" &
ctl=$!
trap 'kill -INT $ctl 2>/dev/null || true' EXIT
"$bin/dream-mpc-sim" serve --task "$task" --episodes "$episodes" --seed "$seed" --speed "$speed"
kill -INT $ctl
trap - EXIT
wait $ctl
