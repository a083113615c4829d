#!/usr/bin/env bash
# The full test suite, from a fresh clone with nothing installed by hand:
#   bash scripts/test.sh
# 1. installs what it needs (project venv with the torch wheel for libtorch),
# 2. checks formatting and lints (warnings are errors),
# 3. checks that the controller's dependency tree is free of libtorch,
# 4. runs every test of the workspace.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
start=$(date +%s)
stage() { echo "=== [$(( $(date +%s) - start ))s] $*"; }

stage "setup"
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
# MuJoCo + dm-control wheels for the `mujoco` feature's tasks and their
# equivalence tests against the real suite (pip install took 19 s here;
# mujoco + dm_control take about 190 MB); the cyclonedds wheel for the
# interop test against Eclipse Cyclone DDS (a few seconds, about 22 MB).
# The ROS 2 build tools (colcon, colcon-ros-cargo, cargo-ament-build,
# python3-ament-index) for tests/tests/colcon.rs: pip about 10 s, the
# cargo-ament-build compile 1-2 min once, cached in .venv/cargo-tools.
DREAM_MPC_MUJOCO=1 DREAM_MPC_CYCLONEDDS=1 DREAM_MPC_COLCON=1 DREAM_MPC_BAGS=1 bash scripts/setup.sh
# shellcheck source=/dev/null
source scripts/env.sh

stage "cargo fmt --check"
cargo fmt --all -- --check

stage "controller dependency tree is free of libtorch"
if cargo tree -p dream-mpc -e normal,build --prefix none | grep -E '^(torch-sys|tch) '; then
  echo "error: the controller crate (dream-mpc) depends on libtorch" >&2
  exit 1
fi

# The sim's MuJoCo backend (feature `mujoco`, forwarded by the tests crate)
# is built, linted and tested with everything else.
features="dream-mpc-sim/mujoco,dream-mpc-tests/mujoco"

stage "cargo clippy"
cargo clippy --workspace --all-targets --features "$features" -- -D warnings

stage "cargo test"
cargo test --workspace --no-fail-fast --features "$features" 2>&1 | tee target/test.log
stage "done"
