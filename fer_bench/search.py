"""Search-space distributions for random search (DomainBed's ``hparams_registry`` style).

A method declares the continuous knobs it may be tuned over beside its
hyperparameters, as ``search_space`` on its ``Hparams`` class::

    @dataclass
    class GceHparams(Hparams):
        q: float = 0.7
        search_space: ClassVar[dict[str, Dist]] = {"q": Uniform(0.1, 1.0)}

The shared recipe's learning rate and weight decay (:data:`RECIPE_SPACE`) are
searched for every method, CE included, so each method gets the same budget.
A draw is a function of (search seed, method, trial) alone, so a search is
reproducible and resumable trial by trial.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any


class Dist:
    """A one-dimensional distribution a random search draws from."""

    def sample(self, rng: random.Random) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Uniform(Dist):
    low: float
    high: float

    def sample(self, rng: random.Random) -> float:
        return _round(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class LogUniform(Dist):
    low: float
    high: float

    def sample(self, rng: random.Random) -> float:
        return _round(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@dataclass(frozen=True)
class Choice(Dist):
    options: tuple[Any, ...]

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(self.options)


def _round(value: float) -> float:
    # Four significant digits: a drawn value reads back from config.json unchanged.
    return float(f"{value:.4g}")


# Shared recipe knobs searched for every method (dotted RunConfig keys).
RECIPE_SPACE: dict[str, Dist] = {
    "optim.lr": LogUniform(3e-4, 1e-2),
    "optim.weight_decay": LogUniform(1e-4, 1e-1),
}


def trial_rng(search_seed: int, method: str, trial: int) -> random.Random:
    """An RNG that depends on the search seed, the method and the trial number only."""
    digest = hashlib.sha256(f"{search_seed}/{method}/{trial}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def draw(space: dict[str, Dist], rng: random.Random) -> dict[str, Any]:
    """One configuration: a value per key, drawn in sorted key order (stable)."""
    return {key: space[key].sample(rng) for key in sorted(space)}
