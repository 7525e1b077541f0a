"""Training recipes: the shared one of a profile, or a method's own official recipe.

``RunConfig.recipe`` names which one a run trains with:

* ``"shared"``: the config as it stands (the profile's recipe, the same for
  every method: equal terms).
* ``"official"``: the recipe of the method's official code, declared by the
  method class as ``official_recipe`` (a :class:`Recipe`): optimiser, schedule,
  batch size, epochs, augmentation and the hyperparameters that code sets.

:func:`apply_recipe` turns a config into what runs; :func:`recipe_record` is
what a run record says about the recipe (its source in the official code and
what of it fer-bench cannot reproduce).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from fer_bench.config import RunConfig

SHARED = "shared"
OFFICIAL = "official"
RECIPES = (SHARED, OFFICIAL)


def is_official(config: dict[str, Any]) -> bool:
    """Whether a run config or experiment identity trained its method's official recipe
    (its row is then ``method (official recipe)``; records before recipes: shared)."""
    return config.get("recipe") == OFFICIAL


@dataclass(frozen=True)
class Recipe:
    """A method's official recipe, read from its official code.

    ``overrides``: nested RunConfig overrides, the shape
    :func:`fer_bench.profiles.with_overrides` takes (None values are skipped there,
    so "no crop" is written ``crop = 0``, which the augmenter reads as the input size).
    ``hparams``: method hyperparameters the official code sets, as ``--set`` strings.
    ``source``: the official repository files and lines the values come from.
    ``not_reproduced``: what of the official recipe a fer-bench run does not do.
    """

    overrides: dict[str, Any]
    hparams: dict[str, str]
    source: str
    not_reproduced: tuple[str, ...]


def adam_exponential(lr: float, batch_size: int, epochs: int, **aug: Any) -> dict[str, Any]:
    """Recipe overrides in the form all four official FER codes share: Adam with weight
    decay 1e-4, ExponentialLR(0.9) stepped per epoch, no crop or translation, erasing
    with p 0.5, Gaussian noise of variance 30, no test-time flip; ``aug`` adds the
    method's own augmentation values."""
    return {
        "optim": {
            "name": "adam",
            "lr": lr,
            "weight_decay": 1e-4,
            "schedule": "exponential",
            "gamma": 0.9,
        },
        "batch_size": batch_size,
        "epochs": epochs,
        # crop 0 = the input size: no crop, no translation
        "aug": {"pad": 0, "crop": 0, "noise_var": 30.0, "erase_p": 0.5, "tta_flip": False, **aug},
    }


# SCN's augmentation, which RUL's code copies: mirror or Gaussian noise, each with
# probability 0.25, never both; erasing up to a quarter of the image.
MIRROR_OR_NOISE = {
    "flip": True,
    "flip_p": 0.25,
    "flip_noise_exclusive": True,
    "noise_p": 0.25,
    "erase_max": 0.25,
    "second_view_noise": True,
}


# Shared by the four official FER recipes (all train on RAF-DB at 224 px with the
# same torchvision pipeline); each recipe adds its own lines.
COMMON_NOT_REPRODUCED: tuple[str, ...] = (
    "224 px RGB input resized from RAF-DB's 100 px aligned faces: the dataset's own size "
    "and channels are used",
    "Gaussian noise added to the 0-255 image, clipped and truncated to uint8: here it is "
    "added in float and clipped, not quantised",
    "torchvision RandomErasing retries a box that does not fit (up to 10 times): here "
    "the box is clipped",
    "the last, partial batch of each epoch (DataLoader drop_last=False): here it is dropped",
)


def official_recipe(method: str, plugin: str | None = None) -> Recipe:
    """The official recipe of a registered method; ValueError if it declares none.
    ``plugin``, a record's plugin path, is only named in the error of a method not
    loaded: code is loaded from the command line's --plugin alone."""
    from fer_bench.registry import method_class

    cls = method_class(method, plugin)
    recipe = getattr(cls, "official_recipe", None)
    if recipe is None:
        have = ", ".join(methods_with_official_recipe()) or "(none)"
        raise ValueError(
            f"method {method!r} has no official recipe; methods with one: {have} "
            f"(or --recipe {SHARED})"
        )
    return recipe


def methods_with_official_recipe() -> list[str]:
    from fer_bench.registry import METHODS

    return [n for n in METHODS.names() if getattr(METHODS.get(n), "official_recipe", None)]


def _check_name(name: str) -> None:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")


def apply_recipe(cfg: RunConfig) -> RunConfig:
    """The config a run trains with under ``cfg.recipe``.

    "shared": ``cfg`` itself, unchanged. "official": a copy of ``cfg`` with the method's
    recipe overrides applied over it and its hyperparameters merged under ``cfg.hparams``
    (a user's ``--set`` wins over the recipe's value for the same key); ``cfg.recipe``
    stays "official". ``cfg`` is never modified. ValueError for an unknown recipe name or
    a method without an official recipe.
    """
    _check_name(cfg.recipe)
    if cfg.recipe == SHARED:
        return cfg
    from fer_bench.profiles import with_overrides

    recipe = official_recipe(cfg.method, cfg.plugin)
    out = with_overrides(cfg, copy.deepcopy(recipe.overrides))
    out.hparams = {**recipe.hparams, **cfg.hparams}
    return out


def recipe_record(cfg: RunConfig) -> dict[str, Any] | None:
    """What the run record says about the recipe: None under "shared"; under "official"
    {"name", "source", "not_reproduced"}. Errors as :func:`apply_recipe`."""
    _check_name(cfg.recipe)
    if cfg.recipe == SHARED:
        return None
    recipe = official_recipe(cfg.method, cfg.plugin)
    return {
        "name": cfg.recipe,
        "source": recipe.source,
        "not_reproduced": list(recipe.not_reproduced),
    }
