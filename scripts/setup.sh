#!/usr/bin/env bash
# One-time, idempotent setup of the project-local Python environment that
# carries libtorch (the torch==2.11.0 wheel, what tch 0.24 expects).
#
#   bash scripts/setup.sh            # torch only
#   DREAM_MPC_MUJOCO=1 bash scripts/setup.sh   # also mujoco + dm-control
#   DREAM_MPC_CYCLONEDDS=1 bash scripts/setup.sh   # also cyclonedds (interop test)
#   DREAM_MPC_COLCON=1 bash scripts/setup.sh   # also the ROS 2 build tools
#   DREAM_MPC_BAGS=1 bash scripts/setup.sh     # also the Python MCAP/rosbag2 readers
#     (colcon + colcon-ros-cargo into the venv, cargo-ament-build into
#     .venv/cargo-tools, Debian's python3-ament-index) for tests/tests/colcon.rs
#
# A second run downloads nothing: it checks the installed versions and exits.
# The same wheel carries the CUDA libraries, so on a GPU workstation the
# trainer uses the GPU with no further step (`--device auto`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
torch_version="2.11.0"
cyclonedds_version="11.0.1"
# Python MCAP / rosbag2 tools we did not write, reading and writing the
# bags of docs/BAGS.md in tests/tests/bags_python.rs.
bag_pkgs=("mcap==1.6.0" "mcap-ros2-support==0.6.0" "rosbags==0.11.9")

py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python3" ]; then
  echo "[setup] creating $venv"
  "$py" -m venv "$venv"
fi
# ensure VENV NOTE PKG==VER...: install the pinned packages into VENV
# unless every one is already there at its version (a second run downloads
# nothing); NOTE is printed before a download.
ensure() {
  local v="$1" note="$2" missing=0 p
  shift 2
  for p in "$@"; do
    "$v/bin/python3" -c "import importlib.metadata as m,sys; sys.exit(0 if m.version('${p%%==*}')=='${p##*==}' else 1)" \
      2>/dev/null || missing=1
  done
  if [ "$missing" = "0" ]; then
    echo "[setup] $* already installed"
  else
    echo "[setup] installing $*${note:+ ($note)}"
    "$v/bin/python3" -m pip install --quiet --no-cache-dir --disable-pip-version-check "$@"
  fi
}

ensure "$venv" "about 4.7 GB with its CUDA libraries; needed even on CPU" "torch==$torch_version"
if [ "${DREAM_MPC_MUJOCO:-0}" = "1" ]; then
  ensure "$venv" "" "mujoco==3.17.0" "dm-control==1.0.50"
  # --- MuJoCo link folder (sim feature `mujoco`) ---
  # mujoco-rs links `-lmujoco` from MUJOCO_DYNAMIC_LINK_DIR, which must hold a
  # plain `libmujoco.so`; the wheel ships only `libmujoco.so.3.17.0`, so give
  # it that name in $venv/mujoco-link (env.sh exports the folder).
  mj_lib="$("$venv/bin/python3" -c 'import mujoco, os; print(os.path.realpath(os.path.join(os.path.dirname(mujoco.__file__), "libmujoco.so.3.17.0")))')"
  mkdir -p "$venv/mujoco-link"
  ln -sfn "$mj_lib" "$venv/mujoco-link/libmujoco.so"
  echo "[setup] libmujoco linked at $venv/mujoco-link/libmujoco.so"
fi
if [ "${DREAM_MPC_CYCLONEDDS:-0}" = "1" ]; then
  # Eclipse Cyclone DDS, a DDS implementation we did not write, as the peer
  # of tests/tests/ros_interop_cyclonedds.rs; the wheel ships the C library.
  ensure "$venv" "" "cyclonedds==$cyclonedds_version"
fi
if [ "${DREAM_MPC_BAGS:-0}" = "1" ]; then
  ensure "$venv" "" "${bag_pkgs[@]}"
fi
if [ "${DREAM_MPC_COLCON:-0}" = "1" ]; then
  # --- ROS 2 build tooling (tests/tests/colcon.rs; no ROS 2 itself) ---
  # The venv may be overridden (DREAM_MPC_COLCON_VENV) so a developer can
  # keep these tools out of a shared .venv; the test reads the same variable.
  cvenv="${DREAM_MPC_COLCON_VENV:-$venv}"
  [ -x "$cvenv/bin/python3" ] || "$py" -m venv "$cvenv"
  ensure "$cvenv" "the colcon tools" colcon-core==0.21.3 colcon-ros==0.5.0 colcon-cargo==0.2.0 \
    colcon-ros-cargo==0.2.0 colcon-library-path==0.2.1 catkin-pkg==1.1.1
  cab_version="0.1.11"
  if "$cvenv/cargo-tools/bin/cargo-ament-build" --help >/dev/null 2>&1 \
     && [ "$(cat "$cvenv/cargo-tools/.version" 2>/dev/null)" = "$cab_version" ]; then
    echo "[setup] cargo-ament-build $cab_version already installed"
  else
    echo "[setup] installing cargo-ament-build $cab_version (compiles once, about 1-2 min)"
    cargo install --quiet --locked --version "$cab_version" cargo-ament-build --root "$cvenv/cargo-tools"
    echo "$cab_version" > "$cvenv/cargo-tools/.version"
  fi
  # ament_index_python is not on PyPI; Debian packages it for the system Python.
  if /usr/bin/python3 -c "import ament_index_python" 2>/dev/null; then
    echo "[setup] python3-ament-index already installed"
  elif command -v apt-get >/dev/null && [ "$(id -u)" = "0" ]; then
    echo "[setup] installing python3-ament-index (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-ament-index >/dev/null
  else
    echo "[setup] error: ament_index_python missing; install Debian's python3-ament-index (as root)" >&2
    exit 1
  fi
fi
echo "[setup] done; now: source scripts/env.sh"
