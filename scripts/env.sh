# Source this file (bash or zsh) after `bash scripts/setup.sh`:
#   source scripts/env.sh
# It points the tch build at the project's torch wheel and puts libtorch on
# the library path so the trainer binaries and tests can run.
_dmpc_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export VIRTUAL_ENV="$_dmpc_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
export LIBTORCH_BYPASS_VERSION_CHECK=0
_dmpc_site="$("$VIRTUAL_ENV/bin/python3" -c 'import site; print(site.getsitepackages()[0])')"
export LD_LIBRARY_PATH="$_dmpc_site/torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# --- MuJoCo (sim feature `mujoco`; present after DREAM_MPC_MUJOCO=1 setup) ---
# Build: mujoco-rs links libmujoco from MUJOCO_DYNAMIC_LINK_DIR. Run: the
# loader finds libmujoco.so.3.17.0 in the wheel's folder. The sim reads the
# Control Suite model files from DM_CONTROL_SUITE_DIR.
if [ -e "$VIRTUAL_ENV/mujoco-link/libmujoco.so" ]; then
  export MUJOCO_DYNAMIC_LINK_DIR="$VIRTUAL_ENV/mujoco-link"
  export LD_LIBRARY_PATH="$_dmpc_site/mujoco:$LD_LIBRARY_PATH"
  export DM_CONTROL_SUITE_DIR="$_dmpc_site/dm_control/suite"
fi
unset _dmpc_root _dmpc_site
