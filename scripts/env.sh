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
unset _dmpc_root _dmpc_site
