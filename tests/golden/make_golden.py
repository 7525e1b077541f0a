"""Rebuild the golden run records and the expected tables (review the diff before committing).

    python tests/golden/make_golden.py

The records cover every case a table must show: complete cells, a seed
missing, a failed run, an interrupted run, an unreadable config.json, an
unreadable final.json, a cell with one seed (untested), a missing cell, a
run whose method code changed since it was recorded (stale) and a run that
predicts one class for almost every test image (collapsed).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import fake_engine  # noqa: E402

from fer_bench.config import RunConfig  # noqa: E402
from fer_bench.records.reading import scan_runs  # noqa: E402
from fer_bench.reports.aggregate import build_leaderboard  # noqa: E402
from fer_bench.reports.tables import render  # noqa: E402

RECORDS = HERE / "records"
EXPECTED = HERE / "expected"
# (output file, metrics, selection, format)
OUTPUTS = [
    ("table.md", ("acc", "mean_class_acc"), "val", "md"),
    ("table.tex", ("acc", "mean_class_acc"), "val", "latex"),
    ("table.csv", ("acc", "mean_class_acc"), "val", "csv"),
    ("table.html", ("acc", "mean_class_acc"), "val", "html"),
    ("oracle_macro_f1.md", ("macro_f1",), "oracle", "md"),
    ("last5.md", ("acc",), "last5", "md"),
    ("val_mca.md", ("mean_class_acc",), "val_mca", "md"),
]


def config(method: str, seed: int, rate: float = 0.0, imbalance: float = 1.0) -> RunConfig:
    cfg = RunConfig(method=method, seed=seed, epochs=2, backbone="fer_resnet10_w16")
    cfg.protocol.noise_rate = rate
    cfg.protocol.imbalance = imbalance
    return cfg


def write_records() -> None:
    shutil.rmtree(RECORDS, ignore_errors=True)
    protocols = [(0.0, 1.0), (0.3, 1.0), (0.0, 10.0)]
    for seed in (0, 1, 2):
        for rate, imbalance in protocols:
            fake_engine.write_records(
                config("ce", seed, rate, imbalance),
                RECORDS,
                epochs=1 if (seed, imbalance) == (2, 10.0) else None,
            )
            if (rate, seed) == (0.3, 2):
                fake_engine.write_records(
                    config("nla", seed, rate),
                    RECORDS,
                    status="failed",
                    reason="non-finite loss (nan) at epoch 2, step 7",
                )
            else:
                fake_engine.write_records(config("nla", seed, rate, imbalance), RECORDS)
            if imbalance == 1.0 and (rate > 0 or seed == 0):
                fake_engine.write_records(config("scn", seed, rate), RECORDS)
    for checkpoint in RECORDS.glob("*/checkpoint.pt"):
        checkpoint.unlink()  # git ignores *.pt: keep the committed records what the test reads
    nla_clean_1 = fake_engine.run_dir(config("nla", 1), RECORDS)
    (nla_clean_1 / "final.json").write_text('{"status": "done", "selection": ')
    fake_engine.make_stale(fake_engine.run_dir(config("scn", 0), RECORDS))
    _make_collapsed(fake_engine.run_dir(config("scn", 1, 0.3), RECORDS))
    broken = fake_engine.run_dir(config("rul", 0), RECORDS)
    broken.mkdir()
    (broken / "config.json").write_text("{not json")


def _make_collapsed(run: Path) -> None:
    """A run whose every epoch predicts neutral for 97 % of the test images."""
    path = run / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row["test"].update(pred_mode=6, pred_share_max=0.97)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_expected() -> None:
    EXPECTED.mkdir(exist_ok=True)
    runset = scan_runs(RECORDS)
    for name, metrics, selection, fmt in OUTPUTS:
        boards = [build_leaderboard(runset, m, selection) for m in metrics]
        (EXPECTED / name).write_text(render(boards, fmt, RECORDS))


if __name__ == "__main__":
    write_records()
    write_expected()
    print(f"wrote {RECORDS} and {EXPECTED}")
