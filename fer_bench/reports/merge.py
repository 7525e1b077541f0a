"""Several results directories read as one board: a committed board and new runs beside it."""

from __future__ import annotations

from pathlib import Path

from fer_bench.records.reading import RunSet, scan_runs
from fer_bench.reports import comparable
from fer_bench.reports.tuned import searched_runs


def scan_boards(directories: list[Path]) -> RunSet:
    """The runs of every directory (a board directory or its runs/) as one set; refused
    with the differing settings named when the directories' runs are not comparable."""
    sets = [scan_runs(d) for d in directories]
    if len(sets) == 1:
        return sets[0]
    seen: dict[Path, Path] = {}
    for runset in sets:
        if not runset.runs:
            raise ValueError(
                f"no readable run records in {runset.root}: give a directory of run directories "
                "(a sweep's --out, a board's runs/), a board directory or one run directory"
            )
        if (real := runset.root.resolve()) in seen:
            raise ValueError(f"{runset.root} is read twice (also as {seen[real]})")
        seen[real] = runset.root
    comparable.check([(str(s.root), _settings(s)) for s in sets])
    return RunSet(
        root=sets[0].root,
        runs=[run for s in sets for run in s.runs],
        problems=[problem for s in sets for problem in s.problems],
        sources=[s.root for s in sets],
        tuning={root: record for s in sets for root, record in s.tuning.items()},
    )


def _settings(runset: RunSet) -> list[dict[str, str]]:
    """Each run's settings; a tuning search's runs leave their searched knobs to their rows."""
    searched = set().union(*map(searched_runs, runset.tuning.values()))
    return [comparable.settings(r.identity, r.name in searched) for r in runset.runs]
