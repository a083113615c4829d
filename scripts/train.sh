#!/usr/bin/env bash
# A training campaign: run or resume a list of task-seed runs, at most one
# per training core (pinned with taskset), then evaluate each finished run.
#
#   bash scripts/train.sh config/campaigns/retrain.txt
#   bash scripts/train.sh --cores 0,1 config/campaigns/retrain.txt   # two at once
#   bash scripts/train.sh --status config/campaigns/retrain.txt       # where each run is
#
# The list has one run a line: `NAME CONFIG SEED [TRAINER ARGS...]`
# (`#` starts a comment), e.g.
#   pendulum-s1  config/train-pendulum.json  1
#   pendulum-s2  config/train-pendulum.json  2  --steps 15000
# Each run lives in RUNS/NAME, outside the checkout (RUNS: --runs, else
# $DREAM_MPC_RUNS, else ~/dream-mpc-runs), so a fresh clone resumes it:
# the script resumes whatever it finds there. What a run folder holds:
#   checkpoint/   the trainer's atomic checkpoint (every evaluation, every
#                 `checkpoint_minutes`, and on SIGINT/SIGTERM)
#   run.json      the training record: every invocation's command,
#                 revision (this checkout's commit) and CPU, the config
#   train.log     the trainer's output
#   metrics.csv, learning_curve.png, bundle/   as the trainer writes them
#   eval.md       `dream-mpc-sim eval` of the finished bundle (EVAL_PLANNERS,
#                 default all; EVAL_EPISODES, default 10, episodes from seed
#                 1000), then `done`.
# Checkpoints and replay buffers never go into git; copy bundle/,
# metrics.csv and learning_curve.png into the repository to ship a run.
#
# SIGINT/SIGTERM to this script reaches the trainers: each finishes its
# update, checkpoints and exits; run the script again to go on.
#
# Binaries: DREAM_MPC_TRAIN_BIN / DREAM_MPC_SIM_BIN, else built here in
# release mode (on the last core, niced, one build).
set -euo pipefail
# The script is one compound command, which bash reads whole before running
# it: editing this file (a git pull, a branch switch) does not change a
# campaign that is running.
{
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

runs="${DREAM_MPC_RUNS:-$HOME/dream-mpc-runs}"
cores="0"
eval_episodes="${EVAL_EPISODES:-10}"
eval_planners="${EVAL_PLANNERS:-all}"
status_only=0
list=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --cores) cores="$2"; shift 2 ;;
    --eval-episodes) eval_episodes="$2"; shift 2 ;;
    --status) status_only=1; shift ;;
    -h|--help) sed -n '2,32p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "train.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$list" ] || { echo "train.sh: one campaign list, got '$list' and '$1'" >&2; exit 2; }
       list="$1"; shift ;;
  esac
done
[ -n "$list" ] || { echo "usage: bash scripts/train.sh [--runs DIR] [--cores 0,1] [--status] LIST" >&2; exit 2; }
[ -f "$list" ] || { echo "train.sh: no campaign list at $list" >&2; exit 2; }
runs="$(realpath -m "$runs")"
case "$runs" in
  "$root"|"$root"/*) echo "train.sh: runs folder $runs is inside the checkout; runs live outside it (--runs DIR)" >&2; exit 2 ;;
esac
IFS=',' read -r -a core_list <<<"$cores"
ncpu=$(nproc)
for c in "${core_list[@]}"; do
  [[ "$c" =~ ^[0-9]+$ ]] && [ "$c" -lt "$ncpu" ] || { echo "train.sh: core '$c' is not one of 0..$((ncpu - 1))" >&2; exit 2; }
done

# --- the list ---
names=() ; configs=() ; seeds=() ; extras=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  line="${line%%#*}"
  read -r -a f <<<"$line" || true
  [ "${#f[@]}" -eq 0 ] && continue
  if [ "${#f[@]}" -lt 3 ] || ! [[ "${f[2]}" =~ ^[0-9]+$ ]] || ! [[ "${f[0]}" =~ ^[A-Za-z0-9._-]+$ ]]; then
    echo "train.sh: $list:$lineno: expected 'NAME CONFIG SEED [ARGS...]', got '$line'" >&2; exit 2
  fi
  cfg="${f[1]}"; [ "${cfg:0:1}" = "/" ] || cfg="$root/$cfg"
  [ -f "$cfg" ] || { echo "train.sh: $list:$lineno: no config at ${f[1]}" >&2; exit 2; }
  names+=("${f[0]}"); configs+=("$cfg"); seeds+=("${f[2]}"); extras+=("${f[*]:3}")
done <"$list"
[ "${#names[@]}" -gt 0 ] || { echo "train.sh: $list lists no run" >&2; exit 2; }

state_of() { # NAME -> done | evaluate | resume | new
  local d="$runs/$1"
  if [ -f "$d/done" ]; then echo done
  elif [ -f "$d/trained" ]; then echo evaluate
  elif [ -f "$d/checkpoint/state.json" ] || [ -f "$d/checkpoint.old/state.json" ]; then echo resume
  else echo new; fi
}

if [ "$status_only" = "1" ]; then
  for i in "${!names[@]}"; do
    n="${names[$i]}"; s=$(state_of "$n"); extra=""
    if [ -f "$runs/$n/metrics.csv" ]; then
      extra=$(awk -F, 'NR>1 && $1 != "" {a=$1; w=$NF} NR>1 && $6 != "" {e=$6} END {printf "agent step %s, %.0f s, last planner eval %s", a, w, e}' "$runs/$n/metrics.csv")
    fi
    printf '%-24s %-9s %s\n' "$n" "$s" "$extra"
  done
  exit 0
fi

# --- binaries ---
train_bin="${DREAM_MPC_TRAIN_BIN:-}"
sim_bin="${DREAM_MPC_SIM_BIN:-}"
if [ -z "$train_bin" ] || [ -z "$sim_bin" ]; then
  build_core=$((ncpu - 1))
  echo "[train.sh] building dream-mpc-train and dream-mpc-sim (release, core $build_core, niced)"
  (
    cd "$root"
    bash scripts/setup.sh >/dev/null
    # shellcheck source=/dev/null
    source scripts/env.sh
    features=""
    [ -n "${MUJOCO_DYNAMIC_LINK_DIR:-}" ] && features="--features dream-mpc-sim/mujoco"
    # shellcheck disable=SC2086
    taskset -c "$build_core" nice cargo build --release -q -p dream-mpc-trainer -p dream-mpc-sim $features
  )
  train_bin="${train_bin:-$root/target/release/dream-mpc-train}"
  sim_bin="${sim_bin:-$root/target/release/dream-mpc-sim}"
fi
for b in "$train_bin" "$sim_bin"; do
  [ -x "$b" ] || { echo "train.sh: no executable at $b" >&2; exit 2; }
done
if [ -f "$root/scripts/env.sh" ] && [ -x "$root/.venv/bin/python3" ]; then
  # shellcheck source=/dev/null
  source "$root/scripts/env.sh"
fi
# The trainer's revision for each run's record: DREAM_MPC_REVISION when
# given (set it to the revision prebuilt DREAM_MPC_TRAIN_BIN binaries were
# built from), else the checkout's, which is what a build here compiles.
if [ -n "${DREAM_MPC_REVISION:-}" ]; then
  revision="$DREAM_MPC_REVISION"
else
  revision="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
  if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    revision="$revision-dirty"
  fi
fi
export DREAM_MPC_REVISION="$revision"
mkdir -p "$runs"

# --- run ---
declare -A pid_of=()   # core -> pid
declare -A run_of=()   # core -> index into the list
stopping=0
on_signal() {
  stopping=1
  echo "[train.sh] stop requested: the trainers checkpoint and exit; run again to resume" >&2
  for c in "${!pid_of[@]}"; do kill -TERM "${pid_of[$c]}" 2>/dev/null || true; done
}
trap on_signal INT TERM

evaluate() { # INDEX CORE: evaluate a trained run, then mark it done
  local i="$1" core="$2" d="$runs/${names[$1]}"
  echo "[train.sh] ${names[$i]}: evaluating planners $eval_planners, $eval_episodes episodes (core $core)"
  if taskset -c "$core" "$sim_bin" eval --bundle "$d/bundle" --episodes "$eval_episodes" \
      --planners "$eval_planners" --seed 1000 >"$d/eval.md.tmp" 2>"$d/eval.log"; then
    mv "$d/eval.md.tmp" "$d/eval.md"
    touch "$d/done"
    echo "[train.sh] ${names[$i]}: done"
    sed 's/^/    /' "$d/eval.md"
  else
    echo "[train.sh] ${names[$i]}: evaluation failed, see $d/eval.log" >&2
    return 1
  fi
}

launch() { # INDEX CORE
  local i="$1" core="$2" n="${names[$1]}" d="$runs/${names[$1]}" args=()
  mkdir -p "$d"
  local st; st=$(state_of "$n")
  [ "$st" = "resume" ] && args+=(--resume)
  # shellcheck disable=SC2206
  [ -n "${extras[$i]}" ] && args+=(${extras[$i]})
  echo "[train.sh] $n: $st on core $core (log $d/train.log)"
  (
    # the trainer, not this subshell, gets the signal: the subshell
    # waits, then evaluates when training finished
    trap '' INT
    set +e
    taskset -c "$core" "$train_bin" train --config "${configs[$i]}" --seed "${seeds[$i]}" \
      --out "$d" --threads 1 --device cpu --quiet "${args[@]}" >>"$d/train.log" 2>&1 &
    tp=$!
    trap 'kill -TERM $tp 2>/dev/null' TERM
    wait $tp; rc=$?
    while kill -0 $tp 2>/dev/null; do wait $tp; rc=$?; done
    if [ "$rc" = "0" ]; then
      touch "$d/trained"
      evaluate "$i" "$core" || exit 1
      exit 0
    fi
    [ "$rc" = "130" ] && echo "[train.sh] $n: stopped at a checkpoint" || echo "[train.sh] $n: trainer exited $rc, see $d/train.log" >&2
    exit "$rc"
  ) &
  pid_of[$core]=$!
  run_of[$core]=$i
}

failed=0
next=0
total=${#names[@]}
while :; do
  # fill free cores
  for core in "${core_list[@]}"; do
    [ "$stopping" = "1" ] && break
    [ -n "${pid_of[$core]:-}" ] && continue
    while [ "$next" -lt "$total" ]; do
      i=$next; next=$((next + 1))
      case "$(state_of "${names[$i]}")" in
        done) echo "[train.sh] ${names[$i]}: done already" ;;
        evaluate) evaluate "$i" "$core" || failed=1 ;;
        *) launch "$i" "$core"; break ;;
      esac
    done
  done
  [ "${#pid_of[@]}" -eq 0 ] && break
  # wait for any run to end (or a signal)
  wait -n "${pid_of[@]}" 2>/dev/null || true
  for core in "${!pid_of[@]}"; do
    p="${pid_of[$core]}"
    if ! kill -0 "$p" 2>/dev/null; then
      rc=0; wait "$p" 2>/dev/null || rc=$?
      [ "$rc" = "0" ] || [ "$rc" = "130" ] || failed=1
      unset "pid_of[$core]" "run_of[$core]"
    fi
  done
done
for n in "${names[@]}"; do printf '%-24s %s\n' "$n" "$(state_of "$n")"; done
[ "$stopping" = "1" ] && exit 130
exit "$failed"
}
