"""Dataset loaders (the contract they implement: base.py); importing this package
registers them."""

from fer_bench.data.loaders import (  # noqa: F401
    affectnet,
    fer2013,
    ferplus,
    folder,
    hf,
    rafdb,
    synthetic,
)
