#!/usr/bin/env bash
# Configures and builds migvis into build/ (or $MIGVIS_BUILD_DIR). Idempotent:
# a second run rebuilds only what changed (ccache keeps LibTorch units cheap).
# Extra arguments are passed to cmake's configure step, e.g. -DMIGVIS_BUILD_WORKER=OFF.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MIGVIS_BUILD_DIR:-$HERE/build}
JOBS=${MIGVIS_JOBS:-$(nproc)}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Relative paths in the cache key: a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$HERE}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
if [ ! -f "$BUILD/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S "$HERE" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=${MIGVIS_BUILD_TYPE:-Release} "$@" >/dev/null
fi
cmake --build "$BUILD" -j "$JOBS"
