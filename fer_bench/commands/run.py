"""``fer-bench run METHOD``: train one method under one protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fer_bench.commands.common import (
    USER_ERRORS,
    check_data_root,
    console,
    fail,
    one_line_errors,
    with_options,
)
from fer_bench.config import RunConfig
from fer_bench.options import RUN, OptionValues
from fer_bench.profiles import (
    DEFAULT_PROFILE,
    dotted_overrides,
    joined,
    option_overrides,
    parse_key_values,
    with_overrides,
)
from fer_bench.records.identity import config_part
from fer_bench.records.reading import keep_traceback
from fer_bench.registry import METHODS, load_plugin_file, method_class
from fer_bench.sweeps.sweep import one_job

Opt = typer.Option


def build_config(
    method: str,
    profile: str = DEFAULT_PROFILE,
    sets: list[str] | None = None,
    cfg_pairs: list[str] | None = None,
    **options: object,
) -> RunConfig:
    """A one-job sweep: a profile, the method's official recipe if ``--recipe official``,
    then the command line's named options and ``--cfg`` values on top (None = not given;
    ``--set`` joins the recipe's hyperparameters)."""
    overrides = _overrides(method, cfg_pairs, options)
    return one_job(method, profile, overrides, parse_key_values(sets or []))


def _overrides(method: str | None, cfg_pairs: list[str] | None, options: dict) -> dict:
    named = option_overrides(options)
    return joined(named, {"method": method}, dotted_overrides(cfg_pairs or []))


def config_from_run_dir(
    resume: Path,
    method: str | None,
    profile: str | None,
    sets: list[str] | None,
    cfg_pairs: list[str] | None = None,
    **options: Any,
) -> RunConfig:
    """The config stored in a run directory; options given beside --resume must agree."""
    from fer_bench.training.engine import run_dir

    cfg_path = resume / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"--resume {resume}: no config.json (not a run directory)")
    if profile is not None:
        raise ValueError("--resume takes its whole config from RUN_DIR/config.json: drop --profile")
    try:
        stored = json.loads(cfg_path.read_text())
        # Record fields (hash, identity) dropped; fields added since are at their defaults.
        cfg = RunConfig.from_dict(config_part(stored))
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"--resume {resume}: unreadable config.json ({err})") from None
    # Code comes from the command line only: the record's plugin path is named, not run.
    recorded_plugin, cfg.plugin = cfg.plugin, options.get("plugin")
    method_class(cfg.method, recorded_plugin)
    stored = cfg.to_dict()
    overrides = _overrides(method, cfg_pairs, options)
    overrides["hparams"] = parse_key_values(sets) if sets else None
    diff = sorted(_diff(stored, with_overrides(cfg, overrides).to_dict()))
    if diff:
        raise ValueError(
            f"--resume {resume}: its config differs from the command in {', '.join(diff)}"
        )
    expected = run_dir(cfg, resume.parent)
    if expected.name != resume.name:
        raise ValueError(
            f"--resume {resume}: its config.json is that of run directory {expected.name} "
            "(edited, or written by another version of fer-bench)"
        )
    return cfg


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = set(a) | set(b)
    out = []
    for k in keys:
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict) and k != "hparams":
            out += _diff(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(f"{prefix}{k}")
    return out


def summary_table(final: dict) -> Table:
    status = final["status"] + (", collapsed" if final.get("collapsed") else "")
    table = Table(title=f"{final['method']} on {final['dataset']}  [{status}]")
    table.add_column("selection")
    table.add_column("epoch", justify="right")
    for col in ("acc", "mean class acc", "macro-F1"):
        table.add_column(f"test {col}", justify="right")
    for rule, sel in (final.get("selection") or {}).items():
        t = sel["test"]
        table.add_row(
            rule,
            str(sel["epoch"]),
            f"{t['acc']:.4f}",
            f"{t['mean_class_acc']:.4f}",
            f"{t['macro_f1']:.4f}",
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    @one_line_errors
    @with_options(RUN)
    def run(
        method: Annotated[
            str | None,
            typer.Argument(
                help="registered method name (fer-bench list methods)", show_default=False
            ),
        ] = None,
        profile: Annotated[
            str | None,
            Opt(help=f"named base config (fer-bench list profiles; default: {DEFAULT_PROFILE})"),
        ] = None,
        *,
        options: OptionValues,
        set_: Annotated[
            list[str] | None, Opt("--set", help="method hyperparameter key=value")
        ] = None,
        cfg_: Annotated[
            list[str] | None,
            Opt(
                "--cfg",
                help="any config value by its dotted key, e.g. optim.lr=3e-3 or aug.erase_p=0",
            ),
        ] = None,
        out: Annotated[Path, Opt(help="root of run directories")] = Path("runs"),
        resume: Annotated[
            Path | None, Opt(help="run directory to continue, with the config it holds")
        ] = None,
        wait: Annotated[
            bool, Opt(help="wait for another process training the same run directory")
        ] = False,
        quiet: Annotated[bool, Opt(help="no progress bar")] = False,
        tensorboard: Annotated[bool, Opt(help="also log scalars to RUN_DIR/tensorboard")] = False,
        rerun_stale: Annotated[
            bool, Opt(help="retrain a finished run whose method code changed since")
        ] = False,
    ) -> None:
        """Train METHOD and write a run directory named from the config hash.

        Rerunning the same command resumes an interrupted run from its checkpoint;
        `run --resume RUN_DIR` alone does the same from the directory's config."""
        if options["plugin"]:
            load_plugin_file(options["plugin"])
        if resume is not None:
            cfg = config_from_run_dir(resume, method, profile, set_, cfg_, **options)
            root = resume.parent
        elif method is None:
            raise ValueError("give a METHOD to train, or --resume RUN_DIR")
        else:
            method = METHODS.canonical(method)
            METHODS.check(method)
            cfg = build_config(method, profile or DEFAULT_PROFILE, set_, cfg_, **options)
            check_data_root(cfg, profile or DEFAULT_PROFILE)
            root = out
        _check_writable(root)
        final = _train(
            cfg,
            root,
            wait=wait,
            progress=not quiet,
            tensorboard=tensorboard,
            rerun_stale=rerun_stale,
        )
        console.print(summary_table(final))
        if final.get("collapsed"):
            console.print(f"[bold yellow]collapsed:[/] {final['collapsed']}", highlight=False)
        if final["status"] != "done":
            fail(f"run failed: {final['reason']}", code=1)


def _say(message: str) -> None:
    # Plain text: paths and error messages are not rich markup.
    console.print(message, highlight=False, markup=False)


def _train(cfg: RunConfig, root: Path, **kwargs: Any) -> dict:
    """engine.train with every failure as one line: bad input exits 2, anything else 1
    with its traceback kept in RUN_DIR/error.txt."""
    from fer_bench.atomic import DiskFull
    from fer_bench.records.lock import RunBusy
    from fer_bench.training.engine import run_dir, train

    out = run_dir(cfg, root)
    try:
        final = train(cfg, root, notify=_say, **kwargs)
    except USER_ERRORS:
        raise
    except (RunBusy, DiskFull) as err:  # another process's directory; a full disk, named
        fail(str(err), code=1)
    except KeyboardInterrupt as err:
        if not (out / "config.json").exists():
            fail("interrupted before training began: nothing written", code=130)
        where = getattr(err, "where", "before its first epoch")
        fail(f"interrupted {where}; resume with: fer-bench run --resume {out}", code=130)
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        kept = f" ({keep_traceback(out)})" if out.is_dir() else ""
        fail(f"run failed: {type(err).__name__}: {first}{kept}", code=1)
    console.print(f"run directory: {out}")
    return final


def _check_writable(root: Path) -> None:
    """Fail early on an unwritable --out, leaving nothing behind: the engine writes only
    once the config has passed all its checks."""
    created = [p for p in (root, *root.parents) if not p.exists()]  # deepest first
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"--out {root}: not writable ({err.strerror})") from None
    finally:
        for path in filter(Path.is_dir, created):
            path.rmdir()
