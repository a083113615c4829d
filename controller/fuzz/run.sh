#!/usr/bin/env bash
# Build the fuzz targets with libFuzzer on stable Rust and run one.
#   bash controller/fuzz/run.sh build                # build all targets
#   bash controller/fuzz/run.sh <target> <seconds> [libFuzzer flags...]
# The instrumentation is what cargo-fuzz adds (SanitizerCoverage: inline
# 8-bit counters, PC table, compare tracing; `--cfg fuzzing`), passed as
# RUSTFLAGS with an explicit --target so build scripts and proc macros stay
# uninstrumented. No sanitizer runtime (needs nightly): Rust code is memory
# safe; panics, aborts, overflows (overflow-checks on) and timeouts are the
# findings. Corpora live in controller/fuzz/corpus/<target> (ignored by
# git), findings in controller/fuzz/artifacts/<target>.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="$here/target"
export CARGO_INCREMENTAL=0
if [ "${1:-build}" = build ]; then
    nice -n 19 cargo build --release --target "$triple" --bins
    exit 0
fi
t="$1"; secs="${2:-60}"; shift 2 || true
# NO_BUILD=1 runs the binary as built (a campaign must not rebuild it
# halfway when the sources change).
[ -n "${NO_BUILD:-}" ] || nice -n 19 cargo build --release --target "$triple" --bin "$t"
mkdir -p "corpus/$t" "artifacts/$t"
seeds="$here/../tests/fuzz_regressions/$t"
exec nice -n 19 "$CARGO_TARGET_DIR/$triple/release/$t" "corpus/$t" $( [ -d "$seeds" ] && echo "$seeds" ) \
    -artifact_prefix="artifacts/$t/" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 "$@"
