#!/usr/bin/env bash
# Run every fuzz target for SECONDS each, one at a time (the machine is
# shared), logging to controller/fuzz/logs/<target>.log.
#   bash controller/fuzz/campaign.sh 3600
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
secs="${1:-600}"
mkdir -p "$here/logs"
bash "$here/run.sh" build
export NO_BUILD=1
for t in ${TARGETS:-manifest onnx references params services bag}; do
    echo "== $t $(date -u +%FT%TZ) for $secs s" >> "$here/logs/campaign.log"
    bash "$here/run.sh" "$t" "$secs" > "$here/logs/$t.log" 2>&1
    echo "== $t exit $? $(date -u +%FT%TZ)" >> "$here/logs/campaign.log"
done
