"""Built-in methods; importing this package registers them."""

from fer_bench.methods import bsoftmax, ce, eac, elr, gce, la, ldam, ls, nla, rul, sce, scn  # noqa: F401
