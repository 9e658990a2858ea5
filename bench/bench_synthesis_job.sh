#!/usr/bin/env bash
# bench_synthesis_job: one quick-start synthesis job run alone by the real
# worker (through its job directory, as `migvis sweep run` runs it) against
# bench_synthesis at the same configuration. Issue 15 measured the job at
# 0.76 images/s beside another 2-thread job and bench_synthesis at ~8.7: alone,
# the two must agree within 1.5x or the difference be explained.
#
# The upstream chain (data, VAE, diffusion, critic) is built by a reduced copy
# of sweeps/quickstart.yaml: one animal/session, the MIG-Vis VAE only, few
# epochs/steps. Training length does not change the synthesis job's work, only
# its weights: the diffusion UNet, critic and synthesis parameters are the
# quick start's (32 pairs x 4 groups x gammas 0, 10, 30 = 384 images, chunk 32,
# edit_t 60, 12 steps, K = 10). The sweep runs with --jobs 1, so the synthesis
# job has the machine to itself (as far as other users allow); bench_synthesis
# runs right after it with the same threads.
#
#   bench/bench_synthesis_job.sh [BUILD_DIR] [--threads 2] [--json out.json]
# Prints a table; writes JSON (default bench_synthesis_job.json).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$HERE/build
THREADS=2
JSON=bench_synthesis_job.json
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --json) JSON=$2; shift 2 ;;
    *) BUILD=$1; shift ;;
  esac
done
BUILD=$(cd "$BUILD" && pwd)
MIGVIS=$BUILD/orchestrator/migvis
WORKER=$BUILD/worker/migvis-worker
BENCH=$BUILD/bench/bench_synthesis
ROOT=$(mktemp -d /tmp/bench_synthesis_job.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT

cat > "$ROOT/sweep.yaml" <<YAML
sweep: synthjob
animals: [a1]
sessions: [s1]
data:
  params: {preset: default, seed: 7, poses_per_object: 64}
vae:
  params: {model: migvis, groups: 4, group_rank: 6, epochs: 2, batch: 64, lr: 0.001, eval_every: 1, w_guid: 1.0}
  resources: {threads: $THREADS}
diffusion:
  params: {image_size: 32, width: 16, mults: [1, 2, 2], attn_heads: 2, attn_dim_head: 16, timesteps: 100,
           steps: 5, batch: 32, grad_accum: 1, lr: 0.001, checkpoint_every: 100, sample_count: 4, sample_steps: 5}
  resources: {threads: $THREADS}
critic:
  params: {epochs: 1, batch: 64, negatives: 10}
  resources: {threads: $THREADS}
synthesis:
  params: {groups: from_upstream, gammas: [0, 10, 30], pairs: 32, seeds: 1, edit_t: 60, steps: 12, chunk: 32}
  resources: {threads: $THREADS}
eval:
  params: {epochs: 1, report_gamma: 30}
  resources: {threads: $THREADS}
YAML

echo "load before: $(uptime)"
# Upstream chain and the synthesis job, one job at a time.
MIGVIS_WORKER=$WORKER "$MIGVIS" sweep run "$ROOT/sweep.yaml" --root "$ROOT/runs" --jobs 1 --cores "$THREADS" \
  --progress-every 600 > "$ROOT/sweep.log" 2>&1 || { cat "$ROOT/sweep.log"; exit 1; }
JOB=$(ls -d "$ROOT"/runs/jobs/synthesis/*/ | head -1)
metric() { /usr/bin/python3 -c "import sys,yaml; r=yaml.safe_load(open(sys.argv[1])); print(r['metrics']['images_per_s'] if sys.argv[2]=='ips' else r['wall_s'])" "$1" "$2"; }
JOB_IPS=$(metric "$JOB/result.yaml" ips)
JOB_WALL=$(metric "$JOB/result.yaml" wall)
# bench_synthesis right after the job (the machine may be shared: back to back
# is as close to "same conditions" as two programs get).
"$BENCH" --size 32 --width 16 --mults 1,2,2 --attn-heads 2 --attn-dim-head 16 --timesteps 100 --edit-t 60 \
  --steps 12 --negatives 10 --gammas 0,10,30 --items 32 --loop-items 0 --threads "$THREADS" --python none \
  --json "$ROOT/bs.json" > "$ROOT/bs.txt" 2>&1 || { cat "$ROOT/bs.txt"; exit 1; }
echo "load after: $(uptime)"
/usr/bin/python3 - "$ROOT/bs.json" "$JSON" "$THREADS" "$JOB_IPS" "$JOB_WALL" <<'PY'
import json, sys
bs, out, threads = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
job_ips, job_wall = float(sys.argv[4]), float(sys.argv[5])
bench = bs["cpp"]["batched_images_per_s"]
images = 384
print(f"| measurement ({threads} threads) | images/s | s | bench_synthesis / job |")
print("|---|---|---|---|")
print(f"| synthesis job alone (--jobs 1): guided loop (result.yaml images_per_s) | {job_ips:.2f} | {images / job_ips:.1f} | {bench / job_ips:.2f} |")
print(f"| synthesis job alone: whole job (load models, grid, HDF5, PNGs; wall_s) | {images / job_wall:.2f} | {job_wall:.1f} | {bench * job_wall / images:.2f} |")
print(f"| bench_synthesis batched, 32 items (min of 3) | {bench:.2f} | - | 1.00 |")
json.dump({"bench": "synthesis_job", "threads": threads, "images": images,
           "job": {"images_per_s": job_ips, "wall_s": job_wall},
           "bench_synthesis_batched_images_per_s": bench,
           "ratio_bench_over_job": bench / job_ips}, open(out, "w"), indent=2)
print("wrote", out)
PY
