#!/usr/bin/env bash
# What a lent GPU machine runs (README "On a GPU"), from the repository root:
#   benchmarks/gpu_check.sh smoke OUT  every stage of preset=gpu on the GPU at toy sizes, then the
#                                      per-stage benchmark at the fixed size (benchmarks/gpu_stages.py)
#   benchmarks/gpu_check.sh full OUT   `wm demo preset=gpu`, its tables and results copied to OUT
# An nvidia-smi trace of the whole run (utilisation, memory; every 0.5 s) goes to OUT/gpu.csv.
set -uo pipefail
mode=${1:?usage: benchmarks/gpu_check.sh smoke|full OUT}
out=${2:?usage: benchmarks/gpu_check.sh smoke|full OUT}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 500 >"$out/gpu.csv" &
  trap 'kill $! 2>/dev/null' EXIT
fi
wm() { "${PYTHON:-python3}" -m worldmodel.cli.main "$@"; }
start=$(date +%s)
case "$mode" in
  smoke)
    wm demo preset=gpu run.name=gpu_smoke collect.out=datasets/gpu_smoke.h5 collect.episodes=40 \
      collect.steps=20 pretrain.max_steps=30 train.max_steps=30 readout.steps=50 eval.episodes=3 \
      eval.diagnostic_episodes=1 eval.budget=3 "${@:3}" >"$out/smoke.log" 2>&1
    echo "smoke demo: exit $? after $(( $(date +%s) - start )) s"; tail -45 "$out/smoke.log"
    cp runs/demo/gpu_smoke/tables.txt "$out/smoke_tables.txt" 2>/dev/null
    "${PYTHON:-python3}" -m benchmarks.gpu_stages --out "$out" >"$out/bench.log" 2>&1
    echo "gpu_stages: exit $? after $(( $(date +%s) - start )) s"; tail -30 "$out/bench.log"
    ;;
  full)
    wm demo preset=gpu "${@:3}" >"$out/demo.log" 2>&1
    echo "demo preset=gpu: exit $? after $(( $(date +%s) - start )) s"; tail -60 "$out/demo.log"
    for f in tables.txt stages.json probe.json machine.json eval/results.json; do cp "runs/demo/gpu/$f" "$out/" 2>/dev/null; done
    ;;
  *) echo "usage: benchmarks/gpu_check.sh smoke|full OUT" >&2; exit 2 ;;
esac
