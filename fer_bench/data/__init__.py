"""Datasets: the loaders (``loaders/``, registered on import) and what they share."""

from fer_bench.config import DataConfig
from fer_bench.data import loaders  # noqa: F401
from fer_bench.data.base import DatasetBundle
from fer_bench.registry import DATASETS


def load_dataset(cfg: DataConfig) -> DatasetBundle:
    """Load ``cfg.name``: a registered dataset, or ``hf:NAME_OR_PATH`` (the ``hf`` loader
    reads the part after the colon itself)."""
    name = "hf" if cfg.name.startswith("hf:") else cfg.name
    return DATASETS.get(name)(cfg)
