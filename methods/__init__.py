"""Built-in methods; importing this package registers them."""

from fer_bench.methods import ce  # noqa: F401
