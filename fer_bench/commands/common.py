"""Helpers shared by sub-commands: one-line errors, the console, the metric list, output."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import reduce, wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from fer_bench.atomic import write_text_atomic
from fer_bench.config import RunConfig
from fer_bench.options import Option, for_command
from fer_bench.processes import available_cores
from fer_bench.profiles import field_type, load_profile, profile_names
from fer_bench.records.reading import Problem, RunSet
from fer_bench.reports.aggregate import DEFAULT_METRICS, METRICS
from fer_bench.reports.merge import scan_boards
from fer_bench.reports.tables import SUFFIX_FORMATS
from fer_bench.reports.tuned import apply_tuning
from fer_bench.sweeps.executors import LocalExecutor
from fer_bench.sweeps.gpu_slots import AUTO_JOB_BYTES, parse_jobs_per_device, sweep_devices

console = Console()
err_console = Console(stderr=True)

MetricsOption = Annotated[
    str | None,
    typer.Option(help=f"comma list of {', '.join(METRICS)} (default: {','.join(DEFAULT_METRICS)})"),
]


def profile_default(value: Callable[[RunConfig], object]) -> str:
    """Help text naming an option's default in each profile, e.g. for --epochs."""
    shown = ", ".join(f"{name}: {value(load_profile(name))}" for name in profile_names())
    return f"default: from the profile; {shown}"


_KEYWORD = inspect.Parameter.KEYWORD_ONLY


def with_options(command: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command function the options fer_bench.options declares for ``command``, in
    place of its parameter ``options``, which receives their values as one dict (each by
    its Option.name, None = not given). Typer reads the parameters from ``__signature__``."""
    declared = [(option.name, _parameter(option, command)) for option in for_command(command)]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(fn, eval_str=True)  # as typer would: real Annotated types
        params: list[inspect.Parameter] = []
        for param in own.parameters.values():
            # Keyword-only, all of them: typer passes every value by name.
            if param.name == "options":
                params += [typed for _, typed in declared]
            else:
                params.append(param.replace(kind=_KEYWORD))

        @wraps(fn)
        def command_fn(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(typed.name) for name, typed in declared}
            return fn(options=values, **kwargs)

        command_fn.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        command_fn.__annotations__ = {p.name: p.annotation for p in params}
        return command_fn

    return decorate


def _parameter(option: Option, command: str) -> inspect.Parameter:
    """The typer parameter of ``option`` in ``command``: its grid form (a comma list, or the
    value as given) or one value of its RunConfig field's type."""
    if grid := option.grid_in(command):
        annotation: Any = Annotated[str | None, typer.Option(help=grid.help)]
        return inspect.Parameter(grid.name, _KEYWORD, default=None, annotation=annotation)
    help_text = option.help or None
    if option.profile_default:
        help_text = profile_default(lambda cfg: reduce(getattr, option.key.split("."), cfg))
    flags = (option.flag,) if option.flag else ()
    annotation = Annotated[field_type(option.key) | None, typer.Option(*flags, help=help_text)]
    return inspect.Parameter(option.name, _KEYWORD, default=None, annotation=annotation)


def check_data_root(cfg: RunConfig, profile: str) -> None:
    """A profile's data folder that is not here, refused with the profile named and the
    option that points elsewhere (the loader alone would say only "folder not found")."""
    root = cfg.data.root
    if root and not Path(root).exists() and load_profile(profile).data.root == root:
        raise FileNotFoundError(
            f"profile {profile} reads {cfg.data.name} from {root} (relative to the current "
            f"directory, {Path.cwd()}), which does not exist: give --data-root FOLDER"
        )


JOBS_PER_DEVICE_HELP = (
    "local, on cuda: N jobs on each visible GPU (on the one named by --device cuda:I), "
    "each worker on its own GPU; auto: as many as the GPU with the least free memory "
    f"holds at {AUTO_JOB_BYTES / 2**30:.0f} GiB a job (an estimate, not a measurement), "
    "at most one per CPU core"
)


def local_executor(workers: int | None, jobs_per_device: str | None, device: str) -> LocalExecutor:
    """The local executor of --workers (CPU jobs in parallel, default 1) or of
    --jobs-per-device (workers placed on the visible GPUs); not both."""
    if jobs_per_device is None:
        return LocalExecutor(workers or 1)
    if workers is not None:
        raise ValueError(
            "--jobs-per-device sets the local executor's workers: give it without --workers"
        )
    per_device = parse_jobs_per_device(jobs_per_device)
    return LocalExecutor(devices=sweep_devices(device, per_device, available_cores()))


def parse_metrics(metric: str | None) -> list[str]:
    """The --metric comma list, or the default metrics."""
    return [m.strip() for m in (metric or ",".join(DEFAULT_METRICS)).split(",") if m.strip()]


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file: a failed write leaves no half table behind."""
    if path.is_dir():
        raise IsADirectoryError(f"--out {path} is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def emit(text: str, out: Path | None) -> None:
    """Print ``text``, or write it to ``out`` and say so."""
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(out, text)
        console.print(f"wrote {out}")


def format_for(fmt: str | None, out: Path | None) -> str:
    if fmt:
        return fmt
    if out is not None and out.suffix in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[out.suffix]
    return "md"


def fail(message: str, code: int = 2) -> None:
    # The message is escaped: names such as "nla [detach_weight=true]" are not markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# Bad input: exit 2. Any other OSError (a read-only file system, a full disk) exits 1.
USER_ERRORS = (
    ValueError,
    KeyError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    NotADirectoryError,
    IsADirectoryError,
)


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected user errors into a one-line message and exit code 2, failures of
    the file system into one line and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as err:
            message = str(err) if not isinstance(err, KeyError) else str(err).strip("'\"")
            fail(message)
        except OSError as err:
            where = f": {err.filename}" if err.filename else ""
            fail(f"{err.strerror or err}{where}", code=1)

    return wrapper


def warn_unreadable(problems: list[Problem]) -> None:
    for problem in problems:
        err_console.print(
            f"[yellow]warning:[/] unreadable record {problem.describe()}", highlight=False
        )


def read_rows(directories: list[Path]) -> tuple[RunSet, dict[str, str], list[str]]:
    """The directories as one board, what could not be read warned about, the tuning view
    applied: the runs (trials aside), the tuned rows' labels, the lines stating the search."""
    runset = scan_boards(directories)
    warn_unreadable(runset.problems)
    labels, preamble = apply_tuning(runset)
    return runset, labels, preamble
