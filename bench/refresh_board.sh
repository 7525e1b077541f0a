#!/usr/bin/env bash
# Regenerate a leaderboard's tables, plots and compute summary from its finished runs:
#   bench/refresh_board.sh results/ferplus-cpu
# Runs still in progress are left out (they are not committed either): the tables read a
# directory of links to the run directories that have their done marker.
set -euo pipefail
here="$(cd "${1:?usage: $0 BOARD_DIR}" && pwd)"
repo="$(cd "$(dirname "$0")/.." && pwd)"
finished="$(mktemp -d)"
trap 'rm -rf "$finished"' EXIT
for run in "$here"/runs/*/; do
    [ -e "$run/done" ] && ln -s "$run" "$finished/$(basename "$run")"
done
cd "$here"
fer-bench table "$finished" --sweep sweep.toml --out table.md
fer-bench table "$finished" --sweep sweep.toml --out table.tex
fer-bench table "$finished" --sweep sweep.toml --select last --out table_last.md
if compgen -G "$finished/nla-*" > /dev/null; then  # compare needs NLA runs
    fer-bench compare "$finished" nla --out compare_nla.md
fi
fer-bench plot "$finished" --out plots
python "$repo/bench/sweep_time.py" "$finished" > compute.txt
# The README ends with table.md, below its marker line.
python - README.md table.md <<'PY'
import sys
from pathlib import Path

readme, table = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
marker = "<!-- copied from table.md: do not edit below -->\n"
head, found, _ = readme.read_text().partition(marker)
if not found:
    sys.exit(f"{readme}: marker line missing")
readme.write_text(head + marker + "\n" + table)
PY
cat compute.txt
