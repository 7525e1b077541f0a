"""The named command-line options that set a config value, each declared once.

:data:`OPTIONS` is the one place an option is tied to the config. ``fer-bench run``,
``sweep`` and ``tune`` take their config options from it, each the ones that name it in
``commands`` (:func:`fer_bench.commands.common.with_options` builds the typer parameters,
typed by the RunConfig field they set); :func:`fer_bench.profiles.option_overrides` maps
their values to that field; ``sweep`` takes an option with a ``grid`` form as a value of
its grid (``--seeds 0,1,2``) and ``run`` as one value (``--seed 0``); ``sweep --board``
refuses every option but those saying where or how fast runs run (``where``). Every
other config value is set with ``--cfg KEY=VALUE``.

A new setting is its RunConfig field (fer_bench.config; its range, if any, checked in
``RunConfig.validate``, the one check of each value) and, as any new field must, the
value that reproduces the runs recorded before it in the ledger
(``fer_bench.records.ledger``, a ``NeutralField``); a named option for it is one more
entry here, which ``run``, ``sweep``, ``tune``, profiles and ``--board`` all read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RUN, SWEEP, TUNE = "run", "sweep", "tune"
COMMANDS = (RUN, SWEEP, TUNE)
GRID_COMMANDS = (SWEEP,)  # the commands that take an option's grid form where it has one

# An option's value by its name (Option.name), None where not given.
OptionValues = dict[str, Any]


@dataclass(frozen=True)
class Grid:
    """An option's form in a sweep: a value of the grid (``SweepSpec.<name>``), not of the
    base config."""

    name: str  # the SweepSpec field, and the option (--seeds for --seed)
    help: str
    item: Callable[[str], Any] | None = None  # a comma list of these; None: one value as given


@dataclass(frozen=True)
class Option:
    name: str  # the parameter; the option is --name with dashes unless ``flag``
    key: str  # the RunConfig field it sets, dotted: optim.lr
    help: str = ""
    profile_default: bool = False  # help: the default of each profile
    flag: str | None = None  # the typer declaration where not --name: --compile/--no-compile
    commands: tuple[str, ...] = COMMANDS
    grid: Grid | None = None
    where: bool = False  # where or how fast runs run, not what: outside the identity

    def grid_in(self, command: str) -> Grid | None:
        return self.grid if command in GRID_COMMANDS else None

    def cli_name(self, command: str) -> str:
        """The option as typed in ``command``: --seeds in sweep, --seed in run."""
        if grid := self.grid_in(command):
            return "--" + grid.name.replace("_", "-")
        return (self.flag or "--" + self.name.replace("_", "-")).split("/")[0]


_IMBALANCE = (
    "on data already long-tailed (FERPlus) {} also shrinks the head class "
    "(fer-bench labels shows the counts)"
)
_GRID = (RUN, SWEEP)  # the grid is the sweep file's in tune

OPTIONS: tuple[Option, ...] = (
    Option("dataset", "data.name", "dataset name, or hf:PATH"),
    Option("data_root", "data.root", "dataset folder", where=True),
    Option("label_mode", "data.label_mode", "dataset label rule, e.g. majority"),
    Option("image_size", "data.image_size"),
    Option("epochs", "epochs", profile_default=True),
    Option("batch_size", "batch_size", profile_default=True),
    Option("lr", "optim.lr", profile_default=True),
    Option("optimizer", "optim.name", "adam | adamw | sgd"),
    Option("schedule", "optim.schedule", "onecycle | cosine | exponential | constant"),
    Option("weight_decay", "optim.weight_decay"),
    Option("backbone", "backbone", "fer-bench list backbones, or any timm name"),
    Option("pretrained", "pretrained", "local checkpoint to start from"),
    Option(
        "seed",
        "seed",
        "training seed",
        commands=_GRID,
        grid=Grid("seeds", "training seeds, e.g. 0,1,2", int),
    ),
    Option("device", "device", "cpu | cuda", where=True),
    Option(
        "noise",
        "protocol.noise_rate",
        "noise rate in [0, 1)",
        commands=_GRID,
        grid=Grid("noise", "noise rates, e.g. 0,0.1,0.3", float),
    ),
    Option(
        "noise_type",
        "protocol.noise",
        "noise protocol (default symmetric), or file:PATH",
        commands=_GRID,
        grid=Grid("noise_type", "noise protocols (default symmetric)", str),
    ),
    Option(
        "noise_seed",
        "protocol.noise_seed",
        "protocol seed, independent of --seed",
        commands=_GRID,
        grid=Grid("noise_seed", "protocol seed, or 'seed' to follow the training seed"),
    ),
    Option(
        "imbalance",
        "protocol.imbalance",
        "imbalance factor n_max/n_min; " + _IMBALANCE.format("it"),
        commands=_GRID,
        grid=Grid("imbalance", "imbalance factors, e.g. 1,50; " + _IMBALANCE.format("one"), float),
    ),
    Option(
        "imbalance_type",
        "protocol.imbalance_type",
        "exp | step",
        commands=_GRID,
        grid=Grid("imbalance_type", "exp | step"),
    ),
    Option("tta_flip", "aug.tta_flip", flag="--tta-flip/--no-tta-flip"),
    Option("bf16", "bf16", flag="--bf16/--no-bf16"),
    Option("channels_last", "channels_last", flag="--channels-last/--no-channels-last", where=True),
    Option(
        "torch_compile",
        "torch_compile",
        "torch.compile the backbones (pays on long GPU runs)",
        flag="--compile/--no-compile",
        where=True,
    ),
    Option("plugin", "plugin", "Python file registering extra methods", where=True),
    Option("sampler", "sampler", "uniform | balanced (1/count of the observed label)"),
    Option("recipe", "recipe", "shared (the profile's) | official (the method's own code)"),
)

BY_NAME = {option.name: option for option in OPTIONS}


def for_command(command: str) -> list[Option]:
    """The options ``command`` takes, in declaration order (its --help's)."""
    return [option for option in OPTIONS if command in option.commands]


def grid_and_base(values: OptionValues, command: str) -> tuple[dict[str, Any], OptionValues]:
    """``values`` split into the grid's (SweepSpec fields, comma lists parsed; None = not
    given) and the base config's (named options, for profiles.option_overrides)."""
    grid: dict[str, Any] = {}
    base: OptionValues = {}
    for name, value in values.items():
        option = BY_NAME[name]
        if (form := option.grid_in(command)) is None:
            base[name] = value
        elif form.item is None:
            grid[form.name] = value
        else:
            grid[form.name] = split_list(value, form.item, option.cli_name(command))
    return grid, base


def split_list(text: str | None, convert: Callable[[str], Any], option: str) -> list | None:
    """A comma-list option as typed values; None when the option was not given."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return [convert(item) for item in items]
    except ValueError:
        kind = convert.__name__
        raise ValueError(f"{option}: expected a comma list of {kind}, got {text!r}") from None
