"""Built-in methods (the contract they implement: base.py); importing this package
registers them."""

from fer_bench.methods import (  # noqa: F401
    apl,
    bsoftmax,
    cb,
    ce,
    coteach,
    coteach_plus,
    dividemix,
    dmue,
    eac,
    elr,
    gce,
    jocor,
    la,
    ldam,
    ls,
    mek,
    nla,
    rul,
    sce,
    scn,
)
