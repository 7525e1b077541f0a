"""A run's checkpoint: written every epoch through a temporary file, the one before kept.

A checkpoint holds the method's whole ``state_dict`` (every network, head and
per-sample buffer it owns), the optimiser, schedule, the epoch, every random
stream the run draws from, the wall time spent and the precision it trained in:
tensors and plain values only, read with ``weights_only=True``, so resuming
someone else's run directory runs no code. It also holds the run's metrics.jsonl
as of its epoch, and a sha256 of all its content (:func:`content_digest`): a
checkpoint changed on disk since it was written (a flipped bit, an overwrite of the
same size) is refused, never resumed from.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fer_bench.atomic import disk_full_named, read_jsonl
from fer_bench.records.layout import CHECKPOINT, METRICS, PREVIOUS_CHECKPOINT

DIGEST_KEY = "sha256"  # the content digest, beside the state it covers
METRICS_KEY = "metrics_jsonl"  # metrics.jsonl's text when the checkpoint was written


def content_digest(state: Any) -> str:
    """sha256 over every value of a checkpoint's state: tensors by dtype, shape and bytes,
    containers in order, plain values by type and repr (exact for floats). The bytes
    are those of the values, not of the file, so the device it is loaded onto does not
    matter."""
    digest = hashlib.sha256()
    _update(digest, state)
    return digest.hexdigest()


def _update(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key, item in value.items():
            _update(digest, key)
            _update(digest, item)
    elif isinstance(value, list | tuple):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _update(digest, item)
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def rng_state(aug_gen: torch.Generator, order_gen: torch.Generator, device: str) -> dict:
    on_gpu = torch.device(device).type == "cuda"
    return {
        "torch": torch.get_rng_state(),
        # Methods draw on the run's GPU too (RUL's permutation, dropout): that GPU's stream
        # alone, since a resumed run may be given another GPU (or a machine with fewer).
        "cuda_run_device": torch.cuda.get_rng_state(device) if on_gpu else None,
        "aug": aug_gen.get_state(),
        "order": order_gen.get_state(),
    }


def set_rng_state(
    state: dict, aug_gen: torch.Generator, order_gen: torch.Generator, device: str
) -> None:
    torch.set_rng_state(state["torch"].cpu())
    gpu_state = _gpu_stream(state, device) if torch.device(device).type == "cuda" else None
    if gpu_state is not None:
        torch.cuda.set_rng_state(gpu_state.cpu(), device)
    # A checkpoint loaded onto a GPU holds these there too; generators take CPU states.
    aug_gen.set_state(state["aug"].cpu())
    order_gen.set_state(state["order"].cpu())


def _gpu_stream(state: dict, device: str) -> torch.Tensor | None:
    """The run's GPU stream; checkpoints written before it was saved alone hold every
    GPU's, by index, and the run's is the one of the GPU it trained on."""
    if "cuda_run_device" in state:
        return state["cuda_run_device"]
    every_gpu = state.get("cuda") or []
    index = torch.device(device).index or 0
    return every_gpu[index] if index < len(every_gpu) else None


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``path`` through a temporary file, keeping the one before as the previous
    checkpoint: a crash or full disk at any point leaves ``path`` complete."""
    tmp = path.with_name(path.name + ".tmp")
    previous = path.with_name(PREVIOUS_CHECKPOINT)
    state = {**state, DIGEST_KEY: content_digest(state)}
    # Serialised in memory, then written as plain bytes: a full disk is then an OSError
    # naming the directory (DiskFull), not torch's writer failing without a cause.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        with disk_full_named(path.parent), open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            # A second name for the current file, not a rename: ``path`` never goes missing,
            # and the replace below swaps in the new one atomically.
            previous.unlink(missing_ok=True)
            os.link(path, previous)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed save leaves no .tmp behind


def resume_state(
    out: Path,
    device: str,
    asked_bf16: bool,
    precision: str,
    resume: bool,
    notify: Callable[[str], None],
) -> dict | None:
    """The checkpoint to go on from, or None after clearing what cannot be resumed."""
    if not out.exists():
        return None
    state, why_not = load(out, device, notify) if resume else (None, "resume=False")
    if state is None:
        notify(f"{out}: starting over ({why_not})")
        shutil.rmtree(out)
        return None
    # Checkpoints from before precision was recorded ran as asked.
    trained_in = state.get("precision", "bf16" if asked_bf16 else "fp32")
    if trained_in != precision:
        raise RuntimeError(
            f"{out} was trained for {state['epoch']} epochs in {trained_in}; here it would go "
            f"on in {precision}. Resume it on a machine that runs {trained_in} natively, or "
            "delete the directory to start over"
        )
    return state


def _verify(state: Any, rows: int) -> dict:
    """``state`` if it is a whole checkpoint as written; ValueError naming what is not.
    One written before checksums (no digest) is matched to metrics.jsonl's epochs only."""
    if not isinstance(state, dict):
        raise ValueError("not a checkpoint")
    recorded = state.pop(DIGEST_KEY, None)
    if recorded is not None and recorded != content_digest(state):
        raise ValueError("content checksum mismatch: changed on disk since it was written")
    if METRICS_KEY in state:
        rows = len(state[METRICS_KEY].splitlines())
    if not 0 < int(state["epoch"]) <= rows:
        raise ValueError(f"epoch not in 1..{rows}, the epochs in metrics.jsonl")
    return state


def load(out: Path, device: str, notify: Callable[[str], None]) -> tuple[dict | None, str]:
    """The newest whole checkpoint (the previous one if the last is damaged), or None
    and why there is none."""
    try:
        rows = len(read_jsonl(out / METRICS))
    except ValueError:  # a damaged log: only a checkpoint holding its own log can resume
        rows = 0
    why_not = "no checkpoint: interrupted in its first epoch"
    for path in (out / CHECKPOINT, out / PREVIOUS_CHECKPOINT):
        if not path.exists():
            continue
        try:
            # weights_only: a checkpoint holding code (a pickled object) is refused, not run.
            state = _verify(torch.load(path, map_location=device, weights_only=True), rows)
        except Exception as err:  # truncated, not a checkpoint, refused by weights_only
            why_not = f"{path.name} unreadable: {type(err).__name__}: {first_line(err)}"
            notify(f"{out}: {why_not}")
            continue
        if path.name == PREVIOUS_CHECKPOINT:
            notify(f"{out}: falling back to {path.name} (epoch {state['epoch']})")
        return state, ""
    return None, why_not
