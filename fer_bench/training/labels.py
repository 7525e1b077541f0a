"""Training labels from protocols: imbalance first, noise second, saved and hashed.

Noise and imbalance protocols are plugins (``protocols/``, their contract in
``protocols/base.py``) registered in :data:`fer_bench.registry.NOISE` and
:data:`fer_bench.registry.IMBALANCE`. Their randomness comes only from the
protocol seed, never from the training seed, so seeds over training can share
one noisy label set. Streams come from NumPy's ``Generator`` (stable across
machines for a given NumPy version); each run records the sha256 of its label
files, so a changed stream cannot go unnoticed. Only the training split is
made long-tailed; validation keeps its natural class profile and gets the
noise protocol when ``noise_on_val`` is set; test labels are always clean.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_bench.atomic import write_bytes_atomic
from fer_bench.config import ProtocolConfig
from fer_bench.data.base import DatasetBundle, Split
from fer_bench.protocols.base import ImbalanceProtocol, NoiseProtocol
from fer_bench.registry import IMBALANCE, NOISE


@dataclass
class LabelSet:
    index: np.ndarray  # rows of the source split that are used
    observed: np.ndarray  # labels a method trains on
    clean: np.ndarray  # reference labels (diagnostics only)

    @property
    def flipped(self) -> np.ndarray:
        return self.observed != self.clean

    @property
    def noise_rate(self) -> float:
        return float(self.flipped.mean())

    def to_csv_bytes(self) -> bytes:
        buf = io.StringIO()
        buf.write("index,observed,clean,flipped\n")
        for i, o, c in zip(self.index, self.observed, self.clean, strict=True):
            buf.write(f"{i},{o},{c},{int(o != c)}\n")
        return buf.getvalue().encode()

    def sha256(self) -> str:
        return hashlib.sha256(self.to_csv_bytes()).hexdigest()

    def save(self, path: Path) -> str:
        data = self.to_csv_bytes()
        write_bytes_atomic(path, data)  # a full disk: DiskFull naming the folder, no .tmp
        return hashlib.sha256(data).hexdigest()


def _split_rng(seed: int, split_name: str, stage: str) -> np.random.Generator:
    # Independent streams per split and stage, all derived from the protocol seed alone.
    salt = [ord(c) for c in f"{split_name}/{stage}"]
    return np.random.default_rng([seed, *salt])


def make_noise(cfg: ProtocolConfig, bundle: DatasetBundle) -> NoiseProtocol:
    name, sep, arg = cfg.noise.partition(":")
    cls = NOISE.get(name)
    if not sep:
        return cls(cfg.noise_rate, bundle)
    if cls.arg_help is None:
        raise ValueError(f"noise protocol {name!r} takes no argument (got {cfg.noise!r})")
    if not arg:
        raise ValueError(f"noise protocol {name!r} needs {cls.arg_help} after the colon")
    return cls(cfg.noise_rate, bundle, arg)


def make_imbalance(cfg: ProtocolConfig, bundle: DatasetBundle) -> ImbalanceProtocol:
    return IMBALANCE.get(cfg.imbalance_type)(cfg.imbalance, bundle)


def build_split_labels(bundle: DatasetBundle, cfg: ProtocolConfig, split_name: str) -> LabelSet:
    split: Split = getattr(bundle, split_name)
    index = np.arange(len(split))
    clean = split.labels
    if split_name == "train" and cfg.imbalance != 1.0:
        rng = _split_rng(cfg.noise_seed, split_name, "imb")
        index = np.sort(make_imbalance(cfg, bundle).select(clean, rng))
    apply_noise = split_name == "train" or (split_name == "val" and cfg.noise_on_val)
    if not apply_noise:
        return LabelSet(index=index, observed=clean[index].copy(), clean=clean[index].copy())
    sub = split.subset(index) if len(index) != len(split) else split
    rng = _split_rng(cfg.noise_seed, split_name, "noise")
    observed = make_noise(cfg, bundle).corrupt(sub, split_name, rng, index)
    observed = np.asarray(observed, dtype=np.int64)
    known = observed >= 0
    return LabelSet(index=index[known], observed=observed[known], clean=sub.labels[known].copy())


def build_labels(bundle: DatasetBundle, cfg: ProtocolConfig) -> dict[str, LabelSet]:
    """Observed labels for train and val; test labels are always clean."""
    return {name: build_split_labels(bundle, cfg, name) for name in ("train", "val")}
