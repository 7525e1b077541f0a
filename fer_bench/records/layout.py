"""The run directory's format, owned here: every file name, and how a finished run is sealed.

A **results directory** (``--out``; a board's is ``results/NAME/runs``, beside the
board's ``sweep.toml``) holds one run directory per experiment, named
``<method>-<hash12>`` (:func:`fer_bench.records.identity.run_name`), and beside them:

- ``.<run>.lock``: the lock of the process training ``<run>`` (:func:`lock_path`),
  outside the run directory so deleting one to start over never deletes a held lock;
- ``.sweep.lock``: the lock of the sweep writing the directory;
- ``tuning.json``: a tuning search's record (:mod:`fer_bench.sweeps.tune`), sealed
  with :func:`seal_json`.

A **run directory** holds, in the order the engine writes them:

- ``config.json``: the config, its experiment identity, hash and code fingerprint;
- ``labels_train.csv`` / ``labels_val.csv`` (:func:`labels_file`): the labels it
  trains and selects on (not committed under results/: final.json keeps their sha256);
- ``metrics.jsonl``: one line per epoch;
- ``checkpoint.pt`` every epoch, the one before kept as ``checkpoint.prev.pt``
  (:mod:`fer_bench.records.checkpoint`); not committed either;
- ``tensorboard/`` with ``--tensorboard``;
- ``final.json``: the record, with the sha256 of metrics.jsonl and config.json
  (:data:`SEALED`), then, last, the ``done`` marker holding final.json's sha256
  (:func:`seal_run`; empty in runs finished before records were sealed). A run
  that failed is sealed too, its final.json saying ``failed``;
- ``error.txt``: the traceback of the last attempt whose engine call raised,
  written by a sweep or ``run`` and removed when the run is trained again.

An interrupted run has no ``done``: it resumes from its newest readable checkpoint.
A record changed after sealing (a flipped bit, an edited number) no longer matches its
digests, and :func:`damage` says which file changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fer_bench.atomic import file_sha256, write_json_atomic

CONFIG = "config.json"
METRICS = "metrics.jsonl"
FINAL = "final.json"
DONE_MARKER = "done"
ERROR_FILE = "error.txt"  # traceback of an attempt whose engine call raised
CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
TENSORBOARD = "tensorboard"
# Files whose presence makes a directory a run directory (any one of them).
RUN_FILES = (CONFIG, FINAL, DONE_MARKER)

TUNING_FILE = "tuning.json"  # a tuning search's record, in the results directory
SWEEP_LOCK = ".sweep.lock"  # the lock of the sweep writing a results directory
RUNS_DIR = "runs"  # a board's results directory, inside results/NAME
SWEEP_FILE = "sweep.toml"  # a board's grid, beside its runs/

# What final.json records of the files beside it, checked by :func:`damage`.
SEALED = {"metrics_sha256": METRICS, "config_sha256": CONFIG}
SEAL_KEY = "sha256"  # in a sealed JSON record: the digest of the rest of it


def labels_file(split: str) -> str:
    """The file of a split's labels as the run trained on them: ``labels_train.csv``."""
    return f"labels_{split}.csv"


def lock_path(out: Path) -> Path:
    """The lock file of run directory ``out``: beside it, not in it."""
    return out.with_name(f".{out.name}.lock")


def seal_run(out: Path, record: dict[str, Any]) -> None:
    """Finish a run: final.json with the digests of metrics.jsonl and config.json, then
    the done marker holding final.json's digest. A record changed after this (a flipped
    bit, an edited number) no longer matches, and :func:`damage` says so."""
    for key, name in SEALED.items():
        if (out / name).exists():  # a run that failed in its first epoch has no log
            record[key] = file_sha256(out / name)
    write_json_atomic(out / FINAL, record)
    write_json_atomic(out / DONE_MARKER, {FINAL: file_sha256(out / FINAL)})


def damage(out: Path) -> str | None:
    """Why a finished run's records are not as it wrote them, or None. A run finished
    before records were sealed (an empty done marker) is read as before, unchecked."""
    try:
        marker = (out / DONE_MARKER).read_text()
        if not marker.strip():
            return None
        digests = {**json.loads(marker)}
        final_path = out / FINAL
        if file_sha256(final_path) != digests.get(FINAL):
            return f"{FINAL} changed since the run finished (digest in {DONE_MARKER} differs)"
        final = json.loads(final_path.read_text())
        for key, name in SEALED.items():
            if key in final and file_sha256(out / name) != final[key]:
                return f"{name} changed since the run finished (digest in {FINAL} differs)"
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
        return f"records unreadable ({type(err).__name__}: {err})"
    return None


def _canonical_digest(obj: dict[str, Any]) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def seal_json(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with the digest of its content: :func:`unseal` then notices any change."""
    rest = {k: v for k, v in obj.items() if k != SEAL_KEY}
    return {**rest, SEAL_KEY: _canonical_digest(rest)}


def unseal(obj: dict[str, Any], path: Path) -> dict[str, Any]:
    """A sealed record without its seal; ValueError naming ``path`` when its content
    changed since it was written. One written before seals (no digest) is read as is."""
    rest = {k: v for k, v in obj.items() if k != SEAL_KEY}
    if SEAL_KEY in obj and obj[SEAL_KEY] != _canonical_digest(rest):
        raise ValueError(f"{path}: changed since it was written (its sha256 differs)")
    return rest
