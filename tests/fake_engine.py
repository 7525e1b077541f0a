"""A stand-in for fer_bench.training.engine in sweep, table and plot tests.

Same API (``train``, ``run_dir``) and record format, numbers made up in
milliseconds and fixed by the config, so sweeps of dozens of jobs run in a
test. Seeds ``FAIL_SEED`` and ``CRASH_SEED`` make a job raise or kill its
worker process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.config import RunConfig
from fer_bench.records.identity import record_fields, run_hash, run_name
from fer_bench.records.layout import CHECKPOINT, CONFIG, DONE_MARKER, FINAL, METRICS

FAIL_SEED = 13
CRASH_SEED = 666
SLEEP_SEED = 777  # writes its pid to OUT_ROOT/worker.pid and sleeps
CORRUPT = "corrupt"  # a checkpoint.pt holding this fails to load, as a truncated one does
CLASS_NAMES = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
SKILL = {"ce": 0.70, "gce": 0.71, "scn": 0.72, "rul": 0.72, "eac": 0.73, "nla": 0.74}
SCORING = {"scn": "importance", "rul": "uncertainty", "nla": "weight"}


def run_dir(cfg: RunConfig, out_root: Path) -> Path:
    return Path(out_root) / run_name(cfg)


def _metrics(acc: float, rng: np.random.Generator) -> dict[str, Any]:
    per_class = np.clip(acc + rng.normal(0, 0.08, len(CLASS_NAMES)), 0, 1).round(4)
    k = len(CLASS_NAMES)
    confusion = (np.eye(k, dtype=int) * 40 + rng.integers(0, 4, (k, k))).tolist()
    return {
        "acc": round(acc, 4),
        "mean_class_acc": round(float(per_class.mean()), 4),
        "macro_f1": round(acc - 0.02, 4),
        "top2": round(min(1.0, acc + 0.12), 4),
        "per_class_acc": per_class.tolist(),
        "confusion": confusion,
        "ece": 0.05,
        "nll": round(1.5 - acc, 4),
    }


def _noise(epoch: int, epochs: int, score_name: str, rng: np.random.Generator) -> dict[str, Any]:
    """Clean and flipped scores that separate as training goes on."""
    gap = 3.0 * epoch / epochs
    clean = rng.beta(2 + gap, 2, 300)
    flipped = rng.beta(2, 2 + gap, 100)
    edges = np.histogram_bin_edges(np.concatenate([clean, flipped]), bins=20)
    auroc = float((clean[:, None] > flipped[None, :]).mean())
    return {
        "score_name": score_name,
        "auroc": round(auroc, 4),
        "score_clean": round(float(clean.mean()), 4),
        "score_flipped": round(float(flipped.mean()), 4),
        "bins": edges.round(4).tolist(),
        "hist_clean": np.histogram(clean, edges)[0].tolist(),
        "hist_flipped": np.histogram(flipped, edges)[0].tolist(),
    }


def final_accuracy(cfg: RunConfig) -> float:
    p = cfg.protocol
    jitter = np.random.default_rng([cfg.seed, *map(ord, cfg.method), round(p.noise_rate * 100)])
    # A learning rate away from 2e-3 (the default) costs accuracy, so tuning moves a result.
    penalty = 0.5 * p.noise_rate + 0.02 * np.log(p.imbalance)
    penalty += 0.02 * abs(np.log10(cfg.optim.lr / 2e-3))
    return float(SKILL.get(cfg.method, 0.7) - penalty + jitter.uniform(-0.01, 0.01))


def write_records(
    cfg: RunConfig,
    out_root: Path,
    epochs: int | None = None,
    status: str = "done",
    reason: str | None = None,
) -> dict[str, Any]:
    """A complete run directory as the engine writes it (``epochs`` < cfg.epochs: partial)."""
    out = run_dir(cfg, out_root)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).write_text(json.dumps({**cfg.to_dict(), **record_fields(cfg)}))
    rng = np.random.default_rng([cfg.seed, *map(ord, cfg.method), 7])
    top = final_accuracy(cfg)
    n_epochs = cfg.epochs if epochs is None else epochs
    rows = []
    for e in range(1, n_epochs + 1):
        rise = 1 - 0.5**e
        score = SCORING.get(cfg.method) if cfg.protocol.noise_rate > 0 else None
        rows.append(
            {
                "epoch": e,
                "time_s": 0.1,
                "train_time_s": 0.08,
                "lr": 0.001,
                "train": {"loss": round(2.0 * 0.6**e, 4), "acc": round(top * rise, 4)},
                "val": _metrics(top * rise - 0.01, rng),
                "test": _metrics(top * rise, rng),
                "noise": _noise(e, cfg.epochs, score, rng) if score else None,
            }
        )
    (out / METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    if epochs is not None:
        (out / CHECKPOINT).write_text("fake")
        return {}

    def pick(row: dict) -> dict:
        return {"epoch": row["epoch"], "val": row["val"], "test": row["test"]}

    final = {
        "status": status,
        "reason": reason,
        "hash": run_hash(cfg),
        "method": cfg.method,
        "dataset": cfg.data.name,
        "class_names": CLASS_NAMES,
        "config": cfg.to_dict(),
        "selection": {
            "val": pick(max(rows, key=lambda r: r["val"]["acc"])),
            "last": pick(rows[-1]),
            "oracle": pick(max(rows, key=lambda r: r["test"]["acc"])),
        },
        "time_s": 0.1,
    }
    (out / FINAL).write_text(json.dumps(final))
    (out / DONE_MARKER).touch()
    return final


def train(cfg: RunConfig, out_root: Path, resume: bool = False, progress: bool = True) -> dict:
    out = run_dir(cfg, out_root)
    if (out / DONE_MARKER).exists():
        return json.loads((out / FINAL).read_text())
    resumed = resume and (out / CHECKPOINT).exists()
    if resumed and (out / CHECKPOINT).read_text() == CORRUPT:
        raise RuntimeError("PytorchStreamReader failed reading zip archive")
    if cfg.seed == SLEEP_SEED:
        (Path(out_root) / "worker.pid").write_text(str(os.getpid()))
        time.sleep(600)
    if cfg.seed == CRASH_SEED:
        os._exit(3)
    if cfg.seed == FAIL_SEED:  # as the engine: config.json is written before anything fails
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG).write_text(json.dumps({**cfg.to_dict(), **record_fields(cfg)}))
        raise RuntimeError("fake failure")
    final = write_records(cfg, out_root)
    # Which process ran it and whether it resumed: for the tests, not part of the format.
    (out / "fake.json").write_text(json.dumps({"pid": os.getpid(), "resumed": resumed}))
    return final


class SerialExecutor:
    """In-process executor: the sweep logic without worker start-up."""

    def run(self, jobs: list, trainer: str):
        from fer_bench.sweeps.executors import run_job

        for job in jobs:
            yield run_job(job, trainer)


def make_stale(run: Path) -> None:
    """Rewrite a recorded run as if recorded under other method code: outputs must say so."""
    config_path = run / "config.json"
    config_path.write_text(config_path.read_text().replace('"method_code": "', '"method_code": "0'))


def train_all(jobs: list[RunConfig], out: Path, executor: Any = None) -> None:
    """Every job not done, as a sweep of this engine trains them."""
    from fer_bench.sweeps.sweep import plan, run_sweep

    run_sweep(plan(jobs, out, __name__), out, executor or SerialExecutor(), __name__)
