"""Built-in noise and imbalance protocols (their contract: base.py); importing this
package registers them."""

from fer_bench.protocols import (  # noqa: F401
    confusion,
    fer2013,
    labelfile,
    longtail,
    pairflip,
    symmetric,
    votes,
)
