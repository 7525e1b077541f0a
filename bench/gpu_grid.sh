#!/usr/bin/env bash
# Runs (or resumes) the FERPlus leaderboard grid on the visible GPUs with the ferplus-gpu
# profile, JOBS_PER_DEVICE runs at once on each (default auto: from free memory), then
# renders its tables and plots. Usage (from the repo root, FERPlus at
# ../shared/data/ferplus so that run hashes match the committed runs):
#   bash bench/gpu_grid.sh [JOBS_PER_DEVICE]
set -euo pipefail
fer-bench sweep --file results/ferplus-gpu/sweep.toml --out results/ferplus-gpu/runs \
  --jobs-per-device "${1:-auto}"
bench/refresh_board.sh results/ferplus-gpu
