#!/usr/bin/env bash
# scripts/bundle_deps.sh packs a folder under 64 MiB whose deps.cmake names
# files that exist; scripts/gpu_check.sh says "no GPU: skipped" and exits 0
# where there is no GPU (and otherwise is at least valid bash).
set -euo pipefail
SRC=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$SRC/scripts/bundle_deps.sh" "$TMP/bundle" > "$TMP/bundle.log"
cat "$TMP/bundle.log"
kib=$(du -sk "$TMP/bundle" | cut -f1)
[ "$kib" -lt $((64 * 1024)) ] || { echo "FAIL: bundle is $kib KiB (>= 64 MiB)"; exit 1; }
# Every file deps.cmake points at is in the bundle.
grep -o '\${CMAKE_CURRENT_LIST_DIR}/[^"]*' "$TMP/bundle/deps.cmake" | sed "s#\${CMAKE_CURRENT_LIST_DIR}#$TMP/bundle#" |
  while read -r p; do [ -e "$p" ] || { echo "FAIL: deps.cmake names missing $p"; exit 1; }; done
for h in hdf5/serial/hdf5.h yaml-cpp/yaml.h fmt/format.h spdlog/spdlog.h CLI/CLI.hpp nlohmann/json.hpp png.h; do
  [ -e "$TMP/bundle/usr/include/$h" ] || { echo "FAIL: header $h missing"; exit 1; }
done
# CMake finds every dependency in the bundle with the system prefixes hidden
# (as on a node without the -dev packages; the worker is off: LibTorch is in /usr here).
cmake -S "$SRC" -B "$TMP/cfg" -G Ninja -C "$TMP/bundle/deps.cmake" -DCMAKE_MAKE_PROGRAM="$(command -v ninja)" \
  -DCMAKE_C_COMPILER="$(command -v gcc)" -DCMAKE_CXX_COMPILER="$(command -v g++)" -DMIGVIS_BUILD_WORKER=OFF \
  -DMIGVIS_BUILD_BENCH=OFF -DCMAKE_IGNORE_PREFIX_PATH="/usr;/" -DCMAKE_SYSTEM_IGNORE_PREFIX_PATH="/usr;/" \
  -DCMAKE_IGNORE_PATH="/usr/bin;/bin;/usr/local/bin" > "$TMP/cfg.log" 2>&1 || { tail -20 "$TMP/cfg.log"; echo "FAIL: configure with the bundle"; exit 1; }
bash -n "$SRC/scripts/gpu_check.sh"
if ! command -v nvidia-smi >/dev/null 2>&1; then
  out=$("$SRC/scripts/gpu_check.sh" "$TMP/bundle" "$TMP/out")
  [ "$out" = "no GPU: skipped" ] || { echo "FAIL: gpu_check.sh printed: $out"; exit 1; }
fi
echo PASS
