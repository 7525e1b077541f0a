"""Dataset loaders; importing this package registers the built-in ones."""

from fer_bench.data import synthetic  # noqa: F401
