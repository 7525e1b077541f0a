"""``fer-bench sweep``: the grid methods x protocols x seeds, resumable, local or on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fer_bench.commands.common import (
    JOBS_PER_DEVICE_HELP,
    check_data_root,
    console,
    err_console,
    fail,
    local_executor,
    one_line_errors,
    with_options,
)
from fer_bench.config import RunConfig
from fer_bench.options import SWEEP, OptionValues, for_command, grid_and_base, split_list
from fer_bench.profiles import DEFAULT_PROFILE, dotted_overrides, joined, option_overrides
from fer_bench.records.reading import RunSet, RunState
from fer_bench.sweeps.board_grid import board_spec, check_grid, check_out
from fer_bench.sweeps.board_time import estimate
from fer_bench.sweeps.executors import (
    Executor,
    JobResult,
    RayExecutor,
)
from fer_bench.sweeps.progress import JobState, SweepProgress
from fer_bench.sweeps.sweep import (
    PlannedJob,
    SweepBusy,
    SweepReport,
    build_spec,
    check_out_dir,
    expand,
    parse_sets,
    plan,
    read_sweep_file,
    run_sweep,
    sweep_lock,
)
from fer_bench.training.calibrate import StepTime

Opt = typer.Option
EXECUTORS = ("local", "ray")


def _make_executor(
    kind: str,
    workers: int | None,
    jobs_per_device: str | None,
    address: str | None,
    cpus: float | None,
    gpus: float | None,
    device: str,
) -> Executor:
    if kind == "local":
        return local_executor(workers, jobs_per_device, device)
    if jobs_per_device is not None:
        raise ValueError(
            "--jobs-per-device sets the local executor's workers "
            "(with --executor ray, pack jobs with --gpus-per-job 1/N)"
        )
    if kind == "ray":
        default_gpus = 1.0 if device.startswith("cuda") else 0.0
        return RayExecutor(address, cpus or 1.0, default_gpus if gpus is None else gpus)
    raise ValueError(f"unknown executor {kind!r}; choose from {', '.join(EXECUTORS)}")


def _show_plan(planned: list[PlannedJob]) -> None:
    table = Table(title=f"{len(planned)} jobs")
    for column in ("state", "run", "method", "protocol", "seed", "note"):
        table.add_column(column)
    for p in planned:
        table.add_row(
            p.state.value, p.path.name, p.cfg.method, p.protocol, str(p.cfg.seed), p.reason or ""
        )
    console.print(table)
    counts = {s: sum(p.state is s for p in planned) for s in RunState}
    console.print(", ".join(f"{n} {s.value}" for s, n in counts.items() if n))


def _print_kept(jobs: list[PlannedJob], what: str, remedy: str) -> None:
    if jobs:
        err_console.print(f"{len(jobs)} {what}, kept ({remedy}):")
        for p in jobs:
            err_console.print(f"  {p.path.name}  {p.label}: {p.reason}", highlight=False)


def _summarise(report: SweepReport, labels: dict[str, str]) -> None:
    ran = len(report.results)
    console.print(
        f"ran {ran}: {ran - len(report.failures)} done, {len(report.failures)} failed; "
        f"{report.already_done} already done"
    )
    _print_kept(report.kept_failed, "failed or corrupt earlier", "--retry-failed starts them over")
    _print_kept(
        report.kept_stale,
        "stale (method changed since recorded)",
        "--rerun-stale trains them again",
    )
    _print_kept(report.busy, "to start over but held by another process", "rerun when it is done")
    if report.failures:
        err_console.print("[bold red]failed:[/]")
        for r in report.failures:
            err_console.print(f"  {r.name}  {labels[r.name]}: {r.reason}", highlight=False)


def _refuse_grid_options(
    file: Path | None,
    profile: str | None,
    options: OptionValues,
    cfg_pairs: list[str] | None,
    methods: list[str] | None,
) -> None:
    """With --board the board's sweep file sets the grid and the recipe; options that
    would change them (all but those saying where and how fast runs run) are refused
    rather than making runs the board cannot be read with."""
    declared = for_command(SWEEP)
    what = {o.cli_name(SWEEP): options[o.name] for o in declared if not o.where}
    refused = {"--file": file, "--profile": profile, **what, "--cfg": cfg_pairs}
    given = [name for name, value in refused.items() if value is not None]
    if given:
        allowed = ", ".join(o.cli_name(SWEEP) for o in declared if o.where)
        raise ValueError(
            f"--board runs the board's own grid and recipe; {', '.join(given)} would change "
            f"them (with --board give --methods, --set, {allowed})"
        )
    if not methods:
        raise ValueError("--board needs --methods: the methods to put on the board")


def _to_train(planned: list[PlannedJob], retry_failed: bool, rerun_stale: bool) -> list[RunConfig]:
    """The configs a sweep will train of ``planned``: what is not finished, and the failed
    and stale runs that the options start over."""
    again = {RunState.TODO, RunState.PARTIAL}
    again |= {RunState.FAILED, RunState.CORRUPT} if retry_failed else set()
    again |= {RunState.STALE} if rerun_stale else set()
    return [p.cfg for p in planned if p.state in again]


def _out_dir(
    out: Path | None, file_values: dict[str, Any], dataset: str, board: Path | None
) -> Path:
    """The results directory from --out or the sweep file, checked to hold this dataset's
    runs (and, with --board, to be another directory than the board's)."""
    out = out or (Path(file_values["out"]) if "out" in file_values else None)
    if out is None:
        raise ValueError('give --out (or out = "DIR" in the sweep file)')
    check_out_dir(out, dataset)
    if board is not None:
        check_out(out, board)
    return out


def _show_estimate(
    board_runs: RunSet | None, planned: list[PlannedJob], retry_failed: bool, rerun_stale: bool
) -> None:
    """With --board: how long what is left will take, from the board's own runs, and on
    this machine, from a few seconds' measurement of the step the runs repeat."""
    if board_runs is not None:
        todo = _to_train(planned, retry_failed, rerun_stale)
        here = _measure_here(board_runs, todo[0]) if todo else None
        console.print(estimate(board_runs, todo, here), highlight=False)


def _measure_here(board_runs: RunSet, cfg: RunConfig) -> StepTime | None:
    from fer_bench.training.calibrate import measure_step  # imports torch

    classes = next(
        (r.final["class_names"] for r in board_runs.runs if "class_names" in r.final), None
    )
    if classes is None:
        return None
    err_console.print("timing a training step on this machine (a few seconds) ...", highlight=False)
    return measure_step(cfg, len(classes))


def _train(
    planned: list[PlannedJob],
    out: Path,
    runner: Executor,
    retry_failed: bool,
    rerun_stale: bool,
) -> SweepReport:
    """Run ``planned`` on ``runner``, a line per finished job."""
    labels = {p.path.name: p.label for p in planned}

    def progress(result: JobResult, k: int, n: int) -> None:
        status = "[green]done[/]" if result.status == "done" else "[red]failed[/]"
        reason = f": {result.reason}" if result.reason else ""
        console.print(
            f"[{k}/{n}] {status} {result.name}  {labels[result.name]}  "
            f"({result.time_s:.1f} s){reason}",
            highlight=False,
        )

    todo = _to_train(planned, retry_failed, rerun_stale)
    watched = [JobState(p.path, p.cfg.epochs) for p in planned if p.cfg in todo]
    with SweepProgress(watched, console):
        return run_sweep(
            planned,
            out,
            runner,
            retry_failed=retry_failed,
            on_result=progress,
            rerun_stale=rerun_stale,
            notify=lambda m: err_console.print(m, highlight=False),
        )


def register(app: typer.Typer) -> None:
    @app.command()
    @one_line_errors
    @with_options(SWEEP)
    def sweep(
        file: Annotated[Path | None, Opt("--file", "-f", help="TOML sweep file")] = None,
        board: Annotated[
            Path | None,
            Opt(help="a board (results/NAME): its grid and recipe for --methods, nothing else"),
        ] = None,
        methods: Annotated[str | None, Opt(help="comma list, e.g. ce,scn,nla")] = None,
        profile: Annotated[str | None, Opt(help="named base config")] = None,
        *,
        options: OptionValues,
        set_: Annotated[list[str] | None, Opt("--set", help="[METHOD.]KEY=VALUE")] = None,
        cfg_: Annotated[
            list[str] | None, Opt("--cfg", help="any config value by its dotted key: optim.lr=3e-3")
        ] = None,
        out: Annotated[
            Path | None, Opt(help="results directory (one run directory per job)")
        ] = None,
        executor: Annotated[str, Opt(help="local | ray")] = "local",
        workers: Annotated[
            int | None, Opt(help="local: parallel jobs (cores are split; default 1)")
        ] = None,
        jobs_per_device: Annotated[str | None, Opt(help=JOBS_PER_DEVICE_HELP)] = None,
        ray_address: Annotated[
            str | None, Opt(help="ray: auto | HOST:PORT; none = start a local Ray")
        ] = None,
        cpus_per_job: Annotated[float | None, Opt(help="ray: CPUs per job (default 1)")] = None,
        gpus_per_job: Annotated[
            float | None, Opt(help="ray: GPUs per job (default 1 on cuda, else 0)")
        ] = None,
        dry_run: Annotated[bool, Opt(help="list the jobs and their state, run nothing")] = False,
        retry_failed: Annotated[bool, Opt(help="start failed runs over")] = False,
        rerun_stale: Annotated[
            bool, Opt(help="train again finished runs whose method changed since")
        ] = False,
        wait: Annotated[
            bool, Opt(help="wait for another sweep on --out instead of refusing")
        ] = False,
    ) -> None:
        """Run every method x protocol x seed; done runs are skipped, interrupted ones resume."""
        file_values = read_sweep_file(file) if file else {}
        grid, base = grid_and_base(options, SWEEP)
        cli = {
            "methods": split_list(methods, str, "--methods"),
            **grid,
            "profile": profile,
            "hparams": parse_sets(set_) if set_ else None,
        }
        cli_base = joined(option_overrides(base), dotted_overrides(cfg_ or []))
        if board is None:
            spec = build_spec(file_values, cli, cli_base)
        else:
            _refuse_grid_options(file, profile, options, cfg_, cli["methods"])
            spec = board_spec(board, cli["methods"], cli["hparams"], cli_base)
        jobs = expand(spec)
        out = _out_dir(out, file_values, spec.base.data.name, board)
        board_runs = check_grid(board, jobs) if board is not None else None
        if dry_run:
            planned = plan(jobs, out)
            _show_plan(planned)
            _show_estimate(board_runs, planned, retry_failed, rerun_stale)
            return
        check_data_root(spec.base, file_values.get("profile") or profile or DEFAULT_PROFILE)
        runner = _make_executor(
            executor,
            workers,
            jobs_per_device,
            ray_address,
            cpus_per_job,
            gpus_per_job,
            spec.base.device,
        )
        try:
            with sweep_lock(out, wait):
                planned = plan(jobs, out)  # after the lock: another sweep may have finished some
                _show_estimate(board_runs, planned, retry_failed, rerun_stale)
                report = _train(planned, out, runner, retry_failed, rerun_stale)
        except SweepBusy as err:
            fail(str(err))
        except KeyboardInterrupt:
            fail(
                f"interrupted: finished runs in {out} are kept and the jobs that were training "
                "resume from their last epoch's checkpoint: rerun the same command",
                code=130,
            )
        _summarise(report, {p.path.name: p.label for p in planned})
        if report.failures or report.busy:
            raise typer.Exit(1)
