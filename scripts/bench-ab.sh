#!/usr/bin/env bash
# Before/after timing of the planner and kernel benchmarks, alternated
# round by round so drifting load hits both sides alike.
#
#   bash scripts/bench-ab.sh BEFORE_CHECKOUT AFTER_CHECKOUT [ROUNDS] [CORE] > ab.out
#   python3 scripts/bench_ab_table.py ab.out
#
# Each checkout (e.g. a `git worktree` of the older commit, with its own
# target folder: a shared one lets one side's build overwrite the other's)
# must have built its benchmarks first:
#   cargo bench --no-run -p dream-mpc --bench planners --bench kernels
# Every run is pinned to CORE (default 1); write the machine's load next to
# the figures (each round's header line records it).
set -euo pipefail
before="$1" after="$2" rounds="${3:-5}" core="${4:-1}"
bin() { # CHECKOUT NAME -> newest benchmark executable
  ls -t "$1"/target/release/deps/"$2"-* | grep -v '\.d$' | head -1
}
for t in "$before" "$after"; do
  for b in planners kernels; do
    bin "$t" $b >/dev/null || { echo "bench-ab.sh: $t has no built $b benchmark" >&2; exit 2; }
  done
done
for round in $(seq 1 "$rounds"); do
  for side in before after; do
    if [ $side = before ]; then t="$before"; else t="$after"; fi
    echo "== round $round $side $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    taskset -c "$core" "$(bin "$t" planners)" --ticks 2000 --models lq,small,5m \
      --kinds dream_mpc,policy_grad_mpc,grad_mpc --presets authors 2>&1 \
      | grep -E 'p50=' | sed "s/^/$side r$round /"
    taskset -c "$core" "$(bin "$t" planners)" --ticks 10 --sampling-ticks 20 --models lq,small \
      --kinds mppi,cem --presets authors 2>&1 | grep -E 'p50=' | sed "s/^/$side r$round /"
    taskset -c "$core" "$(bin "$t" kernels)" --quick 2>&1 \
      | grep -E '^(small|medium) ' | sed "s/^/$side r$round /"
  done
done
