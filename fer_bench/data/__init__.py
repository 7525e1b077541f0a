"""Datasets: the loaders (``loaders/``, registered on import) and what they share.

Part of the core: may import the other core modules (config, registry, expressions,
``atomic``, ``processes``), never the plugin families or a layer above them. Images are
numpy arrays; torch only in ``store`` (the engine's view) and ``faces`` (the synthetic
renderer, on first pixel read), so listing and inspecting data imports none.
"""

from fer_bench.config import DataConfig
from fer_bench.data import loaders  # noqa: F401
from fer_bench.data.base import DatasetBundle
from fer_bench.registry import DATASETS


def load_dataset(cfg: DataConfig) -> DatasetBundle:
    """Load ``cfg.name``: a registered dataset, or ``hf:NAME_OR_PATH`` (the ``hf`` loader
    reads the part after the colon itself)."""
    name = "hf" if cfg.name.startswith("hf:") else cfg.name
    return DATASETS.get(name)(cfg)
