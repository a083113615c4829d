#!/usr/bin/env bash
# The trainer on an NVIDIA GPU (issue 11, item 3), in two steps:
#
#   bash scripts/gpu-check.sh prepare   # HERE (Rust toolchain, scripts/env.sh)
#   bash scripts/gpu-check.sh run       # THERE (GPU machine, repo root)
#   bash scripts/gpu-check.sh speed     # THERE, only the update speed (< 3 min)
#
# `prepare` builds the trainer's CUDA test binary, the updates benchmark and
# the dream-mpc-train binary (dev profile: the learner's time is spent in
# libtorch, and dev keeps the build short), strips and gzips them and copies them with
# the training config into .gpu/ at the repository root (< 60 MiB; keep .gpu/
# out of git). Nothing of libtorch is copied: the binaries link torch 2.11.0
# (tch 0.24.0) and find it on the GPU machine inside its installed
# `torch` package (2.11.0+cu130).
#
# `run` needs no Rust toolchain and no network: python3 with torch 2.11.0
# (CUDA build) and an NVIDIA driver. Within about 6 minutes it prints
# nvidia-smi -L, the CUDA tests (DREAM_MPC_REQUIRE_CUDA=1: a missing GPU is
# a failure, not a skip), updates/s at the small and the 5M size on the GPU,
# and a short pendulum-swingup training run with its returns. With $OUT set
# the full log goes to $OUT/gpu-check.log as well. Without a GPU it stops at
# the first CUDA step with the reason.
#
# `speed` is the short check (issue 11, update speed): host and GPU names,
# the CUDA tests that compare the fused update with the per-head one and
# with the CPU (about 30 s), then updates/s of both update paths
# (`per-head`, the earlier one, and `fused`) at the small and the 5M size,
# timed alternately in one process, with the speed-up. Under 3 minutes in
# all (each step has its own timeout); with $OUT set, the log goes to
# $OUT/gpu-speed.log.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
gpu="$root/.gpu"
mode="${1:-}"

prepare() {
  set -e
  cd "$root"
  # shellcheck disable=SC1091
  source scripts/env.sh
  rm -rf "$gpu" && mkdir -p "$gpu"
  local json
  json="$(cargo test -p dream-mpc-trainer --test cuda --bench updates --no-run \
    --message-format=json 2>/dev/null)"
  cargo build -p dream-mpc-trainer --bin dream-mpc-train
  local exe name
  for name in cuda updates; do
    exe="$(printf '%s\n' "$json" | python3 -c '
import json, sys
want = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == want:
        print(m["executable"])
' "$name" | tail -1)"
    [ -n "$exe" ] || { echo "prepare: no executable for $name" >&2; exit 1; }
    cp "$exe" "$gpu/$name"
  done
  cp target/debug/dream-mpc-train "$gpu/dream-mpc-train"
  strip "$gpu/cuda" "$gpu/updates" "$gpu/dream-mpc-train"
  # The plots' text rendering (plotters' ttf) links fontconfig and
  # freetype, which the GPU machine's image lacks (seen there: "libfontconfig.so.1
  # => not found"): carry them and the libraries they need (~2 MiB).
  mkdir -p "$gpu/lib"
  ldd "$gpu/dream-mpc-train" | awk '/fontconfig|freetype|png16|brotli|expat/ {print $3}' |
    while read -r lib; do cp -L "$lib" "$gpu/lib/"; done
  # ~30 MiB each stripped (tract, plotters, the sim linked in): gzip them
  # to stay under the limit; `run` unpacks with python3's gzip module.
  gzip -9 "$gpu/cuda" "$gpu/updates" "$gpu/dream-mpc-train"
  cp config/train-small.json "$gpu/train-small.json"
  git rev-parse HEAD > "$gpu/REVISION" 2>/dev/null || true
  du -sh "$gpu"
  local bytes
  bytes=$(du -sb "$gpu" | cut -f1)
  if [ "$bytes" -ge $((60 * 1024 * 1024)) ]; then
    echo "prepare: .gpu/ is $bytes bytes, over 60 MiB" >&2
    exit 1
  fi
  ls -la "$gpu"
}

step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

# Unpack the binaries into $bin and put the GPU machine's libtorch on the
# library path; prints the host (revision, torch, GPU, CPU).
setup() {
  [ -f "$gpu/cuda.gz" ] || { echo "run: $gpu/cuda.gz missing; run 'prepare' first (on the build machine)" >&2; exit 1; }
  bin="$(mktemp -d)"
  python3 - "$gpu" "$bin" <<'PY' || { echo "run: cannot unpack the binaries" >&2; exit 1; }
import gzip, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for name in ("cuda", "updates", "dream-mpc-train"):
    with gzip.open(os.path.join(src, name + ".gz")) as f, open(os.path.join(dst, name), "wb") as g:
        shutil.copyfileobj(f, g)
    os.chmod(os.path.join(dst, name), 0o755)
PY
  local torchlib
  torchlib="$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')" \
    || { echo "run: python3 cannot import torch" >&2; exit 1; }
  export LD_LIBRARY_PATH="$torchlib:$gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  step "host"
  if ldd "$bin/cuda" | grep -q "not found"; then
    echo "run: shared libraries the binaries need are missing on this machine:"
    ldd "$bin/cuda" | grep "not found"
  fi
  echo "revision $(cat "$gpu/REVISION" 2>/dev/null || echo unknown)"
  python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
  nvidia-smi -L || echo "nvidia-smi: not found or failed"
  lscpu | grep 'Model name' || true
}

# The short update-speed check (see the header): < 3 minutes.
speed() {
  local bin status=0
  setup
  step "CUDA tests: fused vs per-head update, CUDA vs CPU update"
  DREAM_MPC_REQUIRE_CUDA=1 timeout 75 "$bin/cuda" --test-threads 1 --nocapture \
    cuda_fused_update_matches_per_head cuda_update_matches_cpu || status=1
  step "updates/s on the GPU, per-head (before) and fused (after), batch 256, horizon 3"
  # ~15 updates/s per-head, faster fused: 2 sizes x 2 paths x (5 + 40 + 40)
  # updates take well under a minute after CUDA start-up.
  timeout 90 "$bin/updates" --device cuda --size small,5m --threads 1 --n 40 \
    --path per-head,fused --no-refresh || status=1
  step "done, status $status"
  return $status
}

run() {
  local bin
  setup
  local status=0
  step "CUDA tests (trainer/tests/cuda.rs)"
  DREAM_MPC_REQUIRE_CUDA=1 timeout 180 "$bin/cuda" --test-threads 1 --nocapture || status=1
  if [ $status -ne 0 ]; then
    echo "run: the CUDA tests failed (see above); the GPU part stops here"
    return 1
  fi

  step "updates/s on the GPU: small and TD-MPC2 5M size (batch 256, horizon 3)"
  timeout 150 "$bin/updates" --device cuda --size small,5m --threads 1 --n 100 || status=1
  step "updates/s on this machine's CPU for comparison (1 thread, small)"
  timeout 60 "$bin/updates" --device cpu --size small --threads 1 --n 10 --no-refresh || status=1

  step "short training run on the GPU: pendulum-swingup, 2000 agent steps (4000 env steps)"
  local out
  out="$(mktemp -d)/run"
  timeout 240 "$bin/dream-mpc-train" train --config "$gpu/train-small.json" \
    --task pendulum-swingup --steps 2000 --seed 1 --device cuda --threads 1 \
    --out "$out" --quiet || status=1
  if [ -f "$out/metrics.csv" ]; then
    echo "evaluation rows of metrics.csv:"
    awk -F, 'NR==1 || $5 != ""' "$out/metrics.csv"
    echo "training episode returns (every 5th):"
    awk -F, 'NR>1 && $4 != "" && (NR % 5 == 0) {printf "%s:%s ", $1, $4} END {print ""}' "$out/metrics.csv"
    if [ -n "${OUT:-}" ]; then
      cp "$out/metrics.csv" "$OUT/gpu-train-metrics.csv"
      cp "$out/learning_curve.png" "$OUT/gpu-learning-curve.png" 2>/dev/null || true
    fi
  fi
  step "done, status $status"
  return $status
}

# logged FN LOG: run FN, with its output also kept as $OUT/LOG on the
# device machine (which sends $OUT back).
logged() {
  if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    "$1" 2>&1 | tee "$OUT/$2"
    exit "${PIPESTATUS[0]}"
  fi
  "$1"
}

case "$mode" in
  prepare) prepare ;;
  run) logged run gpu-check.log ;;
  speed) logged speed gpu-speed.log ;;
  *) echo "usage: bash scripts/gpu-check.sh prepare|run|speed" >&2; exit 2 ;;
esac
