#!/usr/bin/env bash
# Set-up command 2: installs dependencies, builds, and runs the whole test suite
# (unit, slow, mpi and slurm labels; gpu tests skip themselves without a device).
# Usage: scripts/test.sh [ctest args...], e.g. scripts/test.sh -L unit
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
# python3-torch (--with-bench) lets the critic test script a TorchScript feature extractor.
"$HERE/scripts/install_deps.sh" --with-slurm --with-browser --with-bench
"$HERE/scripts/build.sh"
BUILD=${MIGVIS_BUILD_DIR:-$HERE/build}
cd "$BUILD"
ctest --output-on-failure --timeout 900 -j "${MIGVIS_TEST_JOBS:-2}" "$@"
