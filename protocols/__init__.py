"""Built-in noise and imbalance protocols; importing this package registers them."""

from fer_bench.protocols import longtail, symmetric  # noqa: F401
