#!/usr/bin/env bash
# Set-up command 1: installs dependencies, builds, and runs the quick-start sweep
# (both synthetic animals, every stage) on the embedded local executor, then
# regenerates the paper's tables and the HTML report. Idempotent: a second run
# skips installed packages, rebuilds nothing and serves every job from cache.
#
# Usage: scripts/quickstart.sh [--root DIR] [--jobs N]
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT="$HERE/runs/quickstart"
JOBS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    *) echo "usage: scripts/quickstart.sh [--root DIR] [--jobs N]" >&2; exit 64 ;;
  esac
done
"$HERE/scripts/install_deps.sh"
"$HERE/scripts/build.sh"
BIN=${MIGVIS_BUILD_DIR:-$HERE/build}
MIGVIS="$BIN/orchestrator/migvis"
export MIGVIS_WORKER="$BIN/worker/migvis-worker"

start=$(date +%s)
"$MIGVIS" sweep run "$HERE/sweeps/quickstart.yaml" --root "$ROOT" --jobs "$JOBS"
"$MIGVIS" results tables --root "$ROOT" --format md --out "$ROOT/tables"
"$MIGVIS" report --root "$ROOT" --out "$ROOT/report"
end=$(date +%s)

cat <<EOM

quick-start finished in $((end - start)) s
  database : $ROOT/migvis.db      (migvis results query --db $ROOT/migvis.db "SELECT ...")
  tables   : $ROOT/tables/
  report   : $ROOT/report/index.html
  images   : $ROOT/jobs/synthesis/*/grid_pair*.png   (HDF5: $ROOT/jobs/*/*/out.h5)
EOM
