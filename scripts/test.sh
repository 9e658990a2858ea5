#!/usr/bin/env bash
# Set-up command 2: installs dependencies, builds, and runs the whole test suite
# (unit, slow, mpi and slurm labels; gpu tests skip themselves without a device).
# Usage: scripts/test.sh [ctest args...], e.g. scripts/test.sh -L unit
#
# Everything the suite needs is installed here (SLURM, python3-torch, chromium),
# so MIGVIS_REQUIRE turns "skipped for lack of X" into a failure for those:
# a broken SLURM set-up cannot leave CI green. Only the gpu tests may skip.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
# python3-torch (--with-bench) lets the critic test script a TorchScript feature extractor.
"$HERE/scripts/install_deps.sh" --with-slurm --with-browser --with-bench
"$HERE/scripts/build.sh"
BUILD=${MIGVIS_BUILD_DIR:-$HERE/build}
export MIGVIS_REQUIRE=${MIGVIS_REQUIRE:-slurm,python,chromium}
cd "$BUILD"
log="$BUILD/ctest-last.log"
rc=0
ctest --output-on-failure --timeout 900 -j "${MIGVIS_TEST_JOBS:-2}" "$@" 2>&1 | tee "$log" || rc=$?
# What did not run, and why (ctest lists skips among "did not run").
skipped=$(grep -E '^[[:space:]]*[0-9]+ - .*\(Skipped\)$' "$log" | sed -E 's/^[[:space:]]*//' | sort -u || true)
echo
if [ -n "$skipped" ]; then
  echo "test.sh: skipped tests ($(printf '%s\n' "$skipped" | wc -l)); MIGVIS_REQUIRE=$MIGVIS_REQUIRE:"
  printf '%s\n' "$skipped" | sed 's/^/  /'
else
  echo "test.sh: no test skipped (MIGVIS_REQUIRE=$MIGVIS_REQUIRE)"
fi
# ctest's own closing lines last, where CI reads them.
grep -E '^[0-9]+% tests passed|^Total Test time' "$log" | tail -2 || true
exit "$rc"
