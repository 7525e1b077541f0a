#!/usr/bin/env bash
# Runs the FERPlus leaderboard grid on one GPU with the ferplus-gpu profile,
# then renders its tables and plots. Usage (from the repo root):
#   FER_BENCH_FERPLUS=/path/to/ferplus bash bench/gpu_grid.sh [results/ferplus-gpu]
set -euo pipefail
out=${1:-results/ferplus-gpu}
root=${FER_BENCH_FERPLUS:-../shared/data/ferplus}
fer-bench sweep --file results/ferplus-cpu/sweep.toml --profile ferplus-gpu \
  --data-root "$root" --device cuda --out "$out/runs"
fer-bench table "$out/runs" --out "$out/table.md"
fer-bench table "$out/runs" --out "$out/table.tex"
fer-bench plot "$out/runs" --out "$out/plots"
