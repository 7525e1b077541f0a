"""Built-in methods (the contract they implement: base.py); importing this package
registers them."""

from fer_bench.methods import ce, coteach, eac, gce, la, nla, rul, scn  # noqa: F401
