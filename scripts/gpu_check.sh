#!/usr/bin/env bash
# Proves the GPU path on a GPU node: builds migvis-worker from this working tree
# against the node's PyTorch (its CUDA LibTorch) and the dependency bundle of
# scripts/bundle_deps.sh, runs the gpu-labelled tests and the GPU benchmarks
# (bench/bench_gpu.cc), and writes one JSON + one Markdown table.
# Needs on the node: an NVIDIA GPU + driver, CUDA, python3 with torch, cmake,
# ninja; no network, no -dev packages. On a machine without a GPU it prints
# "no GPU: skipped" and exits 0.
#
# Usage: scripts/gpu_check.sh [bundle_dir] [out_dir]
#   bundle_dir: default build/deps-bundle (made by scripts/bundle_deps.sh)
#   out_dir:    default build-gpu/check (gpu_check.json, gpu_check.md, logs)
# Env: MIGVIS_PEAK_BF16_TFLOPS (dense bf16 peak of the device for the TFLOP/s
# ratio; a few known devices are filled in), PYTHON (default python3).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=$(realpath -m "${1:-$HERE/build/deps-bundle}")
OUT=$(realpath -m "${2:-$HERE/build-gpu/check}")
BUILD=$HERE/build-gpu
PYTHON=${PYTHON:-python3}

# --- is there a GPU at all? ---------------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no GPU: skipped"
  exit 0
fi
if ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
  echo "gpu_check: nvidia-smi sees a GPU but $PYTHON's torch has no CUDA (pip torch with CUDA needed)" >&2
  exit 1
fi
# The bundle's C++ libraries (yaml-cpp, fmt, spdlog, GoogleTest) use the C++11
# string ABI; pip wheels before torch 2.7 were built with the old one and cannot
# link with them (use a newer wheel, or the cxx11-ABI LibTorch zip via PYTHON=...).
if [ "$("$PYTHON" -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))')" != 1 ]; then
  echo "gpu_check: $PYTHON's torch uses the pre-C++11 ABI (pip wheels before 2.7); the bundle needs the C++11 ABI" >&2
  exit 1
fi
[ -f "$BUNDLE/deps.cmake" ] || { echo "gpu_check: no bundle at $BUNDLE (run scripts/bundle_deps.sh on a Debian 12 machine and copy it here)" >&2; exit 1; }

mkdir -p "$OUT"
TORCH_PREFIX=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')
TORCH_VERSION=$("$PYTHON" -c 'import torch; print(torch.__version__)')
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
NGPU=$(nvidia-smi -L | wc -l)
if [ -z "${MIGVIS_PEAK_BF16_TFLOPS:-}" ]; then
  case "$GPU_NAME" in
    *H200*|*H100*SXM*|*H100\ 80GB\ HBM3*) MIGVIS_PEAK_BF16_TFLOPS=989 ;;
    *H100*) MIGVIS_PEAK_BF16_TFLOPS=756 ;;
    *A100*) MIGVIS_PEAK_BF16_TFLOPS=312 ;;
    *L40S*) MIGVIS_PEAK_BF16_TFLOPS=362 ;;
    *) MIGVIS_PEAK_BF16_TFLOPS=0 ;;
  esac
fi
ARCH_LIB=$(ls -d "$BUNDLE"/usr/lib/*-linux-gnu | head -1)
export LD_LIBRARY_PATH="$ARCH_LIB:$ARCH_LIB/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "gpu_check: $GPU_NAME x $NGPU, torch $TORCH_VERSION, bundle $BUNDLE"

# --- build: worker, gpu tests, GPU benchmark ----------------------------------
# LibTorch's own flags come with TORCH_CXX_FLAGS; the bundle's deps.cmake points
# every other find_package at the bundle.
cmake -S "$HERE" -B "$BUILD" -G Ninja -C "$BUNDLE/deps.cmake" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DMIGVIS_BUILD_WORKER=ON -DMIGVIS_BUILD_TESTS=ON -DMIGVIS_BUILD_BENCH=ON \
  > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build "$BUILD" --target migvis-worker worker_gpu_test worker_stage_device_gpu_test bench_gpu \
  > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }

# --- gpu-labelled tests ---------------------------------------------------------
set +e
(cd "$BUILD" && ctest -L gpu --output-on-failure --output-junit "$OUT/gpu_tests.xml") > "$OUT/tests.log" 2>&1
TESTS_RC=$?
set -e
tail -5 "$OUT/tests.log"

# --- benchmarks ------------------------------------------------------------------
"$BUILD/bench/bench_gpu" --json "$OUT/bench_1rank.json" --md "$OUT/bench_1rank.md" \
  --peak-tflops "$MIGVIS_PEAK_BF16_TFLOPS" > "$OUT/bench.log" 2>&1
DP_JSON=null
if [ "$NGPU" -gt 1 ] && command -v mpirun >/dev/null 2>&1; then
  mpirun --allow-run-as-root -np "$NGPU" "$BUILD/bench/bench_gpu" --json "$OUT/bench_dp.json" --md "$OUT/bench_dp.md" \
    --peak-tflops "$MIGVIS_PEAK_BF16_TFLOPS" >> "$OUT/bench.log" 2>&1 && DP_JSON=$(cat "$OUT/bench_dp.json")
fi

# --- one JSON + one table ----------------------------------------------------------
"$PYTHON" - "$OUT" "$GPU_NAME" "$NGPU" "$TORCH_VERSION" "$TESTS_RC" <<'PY'
import json, sys, datetime, os
out, gpu, ngpu, tv, rc = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
one = json.load(open(os.path.join(out, "bench_1rank.json")))
dp_path = os.path.join(out, "bench_dp.json")
dp = json.load(open(dp_path)) if os.path.exists(dp_path) else None
doc = {"date": datetime.date.today().isoformat(), "device": gpu, "gpus": ngpu, "torch": tv,
       "gpu_tests_passed": rc == 0, "single_rank": one, "data_parallel": dp}
json.dump(doc, open(os.path.join(out, "gpu_check.json"), "w"), indent=2)
md = [f"GPU check {doc['date']} on {gpu} x {ngpu} (torch {tv}); gpu tests: {'passed' if rc == 0 else 'FAILED'}", "",
      open(os.path.join(out, "bench_1rank.md")).read().rstrip()]
if dp:
    md += [l for l in open(os.path.join(out, "bench_dp.md")).read().splitlines()[2:] if "data-parallel" in l]
open(os.path.join(out, "gpu_check.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
echo "gpu_check: wrote $OUT/gpu_check.json and $OUT/gpu_check.md"
exit $TESTS_RC
