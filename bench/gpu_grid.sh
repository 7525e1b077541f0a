#!/usr/bin/env bash
# Runs (or resumes) the FERPlus leaderboard grid on one GPU with the ferplus-gpu profile,
# then renders its tables and plots. Usage (from the repo root, FERPlus at
# ../shared/data/ferplus so that run hashes match the committed runs):
#   bash bench/gpu_grid.sh [WORKERS]
set -euo pipefail
fer-bench sweep --file results/ferplus-gpu/sweep.toml --out results/ferplus-gpu/runs \
  --workers "${1:-1}"
bench/refresh_board.sh results/ferplus-gpu
