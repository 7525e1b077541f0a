#!/usr/bin/env bash
# Regenerate a leaderboard's tables, plots and compute summary from its finished runs:
#   bench/refresh_board.sh results/ferplus-cpu [ROW]
# ROW: the table row compare_nla.md compares with every other (default nla, on a tuned board
# "nla (tuned)"; a board holding NLA under several settings names one, e.g. "nla [defaults]");
# compare_ce.md does the same for ce.
# Runs still in progress are left out (they are not committed either): the tables read a
# directory of links to the run directories that have their done marker.
set -euo pipefail
here="$(cd "${1:?usage: $0 BOARD_DIR [ROW]}" && pwd)"
repo="$(cd "$(dirname "$0")/.." && pwd)"
marker="<!-- copied from table.md: do not edit below -->"
# Checked first, so a README without it stops the script before anything is rewritten.
grep -qxF "$marker" "$here/README.md" || { echo "$here/README.md: marker line missing" >&2; exit 1; }
finished="$(mktemp -d)"
trap 'rm -rf "$finished"' EXIT
for run in "$here"/runs/*/; do
    [ -e "$run/done" ] && ln -s "$run" "$finished/$(basename "$run")"
done
tuned=""  # a tuned board: its tuning.json turns the confirming runs into "(tuned)" rows
[ -e "$here/runs/tuning.json" ] && ln -s "$here/runs/tuning.json" "$finished/" && tuned=1
cd "$here"
grid=()  # with its sweep files (sweep*.toml), the tables show the board's whole grid: cells
# with no run say "not run", cells of no file's grid "not in grid" (a tuned board's sweep
# files are the search's grid, not rows of their own)
if [ -z "$tuned" ]; then
    for file in sweep*.toml; do
        [ -e "$file" ] && grid+=(--sweep "$file")
    done
fi
fer-bench table "$finished" "${grid[@]}" --out table.md
fer-bench table "$finished" "${grid[@]}" --out table.tex
fer-bench table "$finished" "${grid[@]}" --select last --out table_last.md
fer-bench table "$finished" --selection-report --out selection_report.md
rows="$(python - "$finished" <<'PY'
import sys
from pathlib import Path

from fer_bench.reports.aggregate import row_labels
from fer_bench.commands.common import read_rows

runset, labels, _ = read_rows([Path(sys.argv[1])])
print("\n".join(sorted(set(row_labels(runset.runs, labels).values()))))
PY
)"
compare() {  # ROW FILE: ROW minus every other row, when the board has ROW and another row
    rm -f "$2"  # a comparison that no longer applies is not left behind
    if grep -qxF "$1" <<< "$rows" && [ "$(wc -l <<< "$rows")" -gt 1 ]; then
        fer-bench compare "$finished" "$1" --out "$2"
    fi
}
row=""  # on a tuned board a method's row is "METHOD (tuned)"
[ -n "$tuned" ] && row=" (tuned)"
compare "${2:-nla$row}" compare_nla.md
compare "ce$row" compare_ce.md  # the baseline: does any method beat plain CE?
fer-bench plot "$finished" --out plots
python "$repo/bench/sweep_time.py" "$finished" > compute.txt
# The README ends with table.md, below its marker line.
python - README.md table.md "$marker" <<'PY'
import sys
from pathlib import Path

readme, table, marker = Path(sys.argv[1]), Path(sys.argv[2]).read_text(), sys.argv[3] + "\n"
head = readme.read_text().partition(marker)[0]
readme.write_text(head + marker + "\n" + table)
PY
cat compute.txt
