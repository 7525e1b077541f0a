"""Built-in methods (the contract they implement: base.py); importing this package
registers them."""

from fer_bench.methods import (  # noqa: F401
    bsoftmax,
    ce,
    coteach,
    dividemix,
    dmue,
    eac,
    elr,
    gce,
    la,
    ldam,
    ls,
    man,
    nla,
    resup,
    rolt,
    rul,
    sce,
    scn,
    sfa,
    tabasco,
)
