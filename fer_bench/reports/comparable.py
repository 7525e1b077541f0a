"""Which runs may share one table: the same experiment but for the row and the cell.

Runs of several directories (a committed board and someone's new method) are
compared only when every setting of their experiment identity
(:mod:`fer_bench.records.identity`) agrees but the method, its hyperparameters, the
protocol column and the training seed: the dataset and label mode, the recipe
(backbone, image size, augmentation, optimiser, schedule, batch, epochs, the
shared or official recipe, the sampler), the protocol seed and the precision.

A merge may also hold a tuned board and an untuned one, or official-recipe runs:
what a tuning search drew (learning rate, weight decay) and what an official
recipe sets are then the run's row (``(tuned)``, ``(official recipe)``), not a
setting (:func:`row_keys`); everything else must still agree.

Precision is the arithmetic the experiment asked for (the identity's ``bf16``):
a run asked for bf16 autocast on hardware without native bf16 trains in fp32
and says so in ``final.json``, but it is the same experiment, as it is for its
run name. The committed FERPlus board pools two such runs with 124 bf16 ones,
within their seeds' spread; a merged table counts what each directory ran in,
so the difference is shown, never hidden. A run asked for fp32 is another
experiment and is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fer_bench.recipes import is_official
from fer_bench.records.ledger import neutral_fields
from fer_bench.registry import METHODS, RegistryError
from fer_bench.search import RECIPE_SPACE

# Parts of an identity that make rows and cells, not the setting.
_NOT_SETTINGS = ("method", "hparams", "seed", "protocol")
_NAMES = {
    "data.name": "dataset",
    "data.label_mode": "label mode",
    "data.image_size": "image size",
    "epochs": "epochs",
    "protocol.noise_seed": "protocol seed",
    "bf16": "precision",
    "recipe": "recipe",
    "backbone": "backbone",
    "batch_size": "batch size",
}


class Incomparable(ValueError):
    """Runs that differ in a setting a table holds fixed."""


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _name(key: str) -> str:
    return _NAMES.get(key, f"recipe ({key})")


def _order(name: str) -> tuple[int, str]:
    """The settings the issue names first, then the rest of the recipe by key."""
    names = list(_NAMES.values())
    return (names.index(name), "") if name in names else (len(names), name)


def _show(key: str, value: Any) -> str:
    if key == "bf16":
        return "bf16" if value else "fp32"
    return str(value)


def row_keys(identity: dict[str, Any], searched: bool = False) -> set[str]:
    """Recipe keys that are a run's row, not the board's setting: all its method's
    official recipe sets, for a run of that recipe (its row says "(official recipe)"),
    and the searched knobs of a tuning search's run (its row says "(tuned)")."""
    keys = set(RECIPE_SPACE) if searched else set()
    if is_official(identity):
        recipe = getattr(_method(identity["method"]), "official_recipe", None)
        if recipe is not None:
            keys |= {"recipe", *flatten(recipe.overrides)}
    return keys


def _method(name: str) -> type:
    """The registered method class; an official-recipe run of one not registered here
    (its plugin file not at hand) cannot say which settings its recipe set."""
    try:
        return METHODS.get(name)
    except RegistryError:
        raise ValueError(
            f"an official-recipe run of {name!r}, a method not registered here (its plugin "
            "file is not at hand), cannot be compared: which settings its recipe set is unknown"
        ) from None


def settings(identity: dict[str, Any], searched: bool = False) -> dict[str, str]:
    """Setting name -> value of one experiment identity, as a table holds them fixed
    (its :func:`row_keys` left out). A knob recorded before it existed counts at the
    value that reproduces those runs."""
    flat = {
        **neutral_fields(),
        **flatten({k: v for k, v in identity.items() if k not in _NOT_SETTINGS}),
    }
    flat["protocol.noise_seed"] = identity["protocol"]["noise_seed"]
    for key in row_keys(identity, searched):
        flat.pop(key, None)
    return {_name(key): _show(key, value) for key, value in sorted(flat.items())}


def _values(group: Iterable[dict[str, str]]) -> dict[str, set[str]]:
    values: dict[str, set[str]] = {}
    for one in group:
        for name, value in one.items():
            values.setdefault(name, set()).add(value)
    return values


def setting_values(identities: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """Every value each setting takes over a group of runs."""
    return _values(map(settings, identities))


def _listed(values: set[str]) -> str:
    return " and ".join(sorted(values))


def check(groups: list[tuple[str, list[dict[str, str]]]]) -> None:
    """Refuse groups of runs (label, each run's :func:`settings`) whose settings differ
    from the first group's, naming each differing setting with both values."""
    (first, reference), *others = [(label, _values(group)) for label, group in groups]
    for label, values in others:
        # A setting only one group has is every one of the other's runs' row (row_keys).
        differing = [
            f"{name} {_listed(reference[name])} in {first}, {_listed(values[name])} in {label}"
            for name in sorted(set(reference) & set(values), key=_order)
            if reference[name] != values[name]
        ]
        if differing:
            raise Incomparable(f"{label} is not comparable with {first}: " + "; ".join(differing))
