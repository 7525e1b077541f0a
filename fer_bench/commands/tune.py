"""``fer-bench tune``: the same random-search budget for every method, then fresh seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fer_bench.commands.common import (
    JOBS_PER_DEVICE_HELP,
    console,
    err_console,
    fail,
    local_executor,
    one_line_errors,
    split_list,
)
from fer_bench.executors import Executor, JobResult
from fer_bench.profiles import option_overrides
from fer_bench.records import write_json_atomic
from fer_bench.sweep import (
    SweepBusy,
    build_spec,
    check_out_dir,
    expand,
    plan,
    read_sweep_file,
    run_sweep,
    sweep_lock,
)
from fer_bench.tune import (
    TUNING_FILE,
    TuneSpec,
    check_budget,
    final_jobs,
    merged_record,
    pick,
    trial_jobs,
    tuning_record,
)

Opt = typer.Option


def _run_phase(name: str, jobs: list, out: Path, runner: Executor, dry_run: bool) -> int:
    """Train what is not done of one phase; the number of runs not finished after it."""
    planned = plan(jobs, out)
    left = [p for p in planned if p.state.value != "done"]
    console.print(f"{name}: {len(planned)} runs, {len(planned) - len(left)} done")
    if dry_run or not left:
        return 0 if dry_run else len(left)

    def progress(result: JobResult, k: int, n: int) -> None:
        console.print(f"  [{k}/{n}] {result.status} {result.name} ({result.time_s:.0f} s)")

    report = run_sweep(planned, out, runner, on_result=progress)
    return len(report.failures) + len(report.kept_failed) + len(report.kept_stale)


def _record(spec: TuneSpec, out: Path, previous: dict | None, dry_run: bool) -> dict:
    """The groups as they stand, written to tuning.json before and after each phase, so a
    table of an interrupted search shows no trial as a row."""
    groups = pick(spec, out)
    if not dry_run:
        write_json_atomic(out / TUNING_FILE, merged_record(previous, tuning_record(spec, groups)))
    return groups


def register(app: typer.Typer) -> None:
    @app.command()
    @one_line_errors
    def tune(
        file: Annotated[Path, Opt("--file", "-f", help="TOML sweep file: grid and recipe")],
        out: Annotated[Path, Opt(help="results directory (trials and confirming runs)")],
        methods: Annotated[str | None, Opt(help="comma list (default: the file's)")] = None,
        trials: Annotated[int, Opt(help="configurations drawn per method")] = 8,
        search_seed: Annotated[int, Opt(help="seed of the draws")] = 0,
        search_training_seed: Annotated[int, Opt(help="training seed of the trials")] = 100,
        final_seeds: Annotated[str, Opt(help="fresh training seeds of the pick")] = "0,1,2",
        rule: Annotated[str, Opt(help="pick by: val | val_mca (validation labels)")] = "val",
        device: Annotated[str | None, Opt(help="cpu | cuda (default: the profile's)")] = None,
        workers: Annotated[
            int | None, Opt(help="parallel jobs (cores are split; default 1)")
        ] = None,
        jobs_per_device: Annotated[str | None, Opt(help=JOBS_PER_DEVICE_HELP)] = None,
        dry_run: Annotated[bool, Opt(help="list the phases, run nothing")] = False,
    ) -> None:
        """Random search with N trials for every method, pick on validation, rerun on
        fresh seeds. Resumable: rerun the same command."""
        cli = {"methods": split_list(methods, str, "--methods"), "seeds": [search_training_seed]}
        sweep = build_spec(read_sweep_file(file), cli, option_overrides({"device": device}))
        spec = TuneSpec(
            bases=expand(sweep),
            trials=trials,
            search_seed=search_seed,
            search_training_seed=search_training_seed,
            final_seeds=split_list(final_seeds, int, "--final-seeds") or [],
            rule=rule,
        )
        runner = local_executor(workers, jobs_per_device, sweep.base.device)
        check_out_dir(out, sweep.base.data.name)
        previous = check_budget(spec, out)
        try:
            with sweep_lock(out):
                _record(spec, out, previous, dry_run)
                left = _run_phase(
                    "search", [c for c, _, _ in trial_jobs(spec)], out, runner, dry_run
                )
                groups = _record(spec, out, previous, dry_run)
                left += _run_phase("confirm", final_jobs(spec, groups), out, runner, dry_run)
                groups = _record(spec, out, previous, dry_run)
        except SweepBusy as err:
            fail(str(err))
        for name, group in groups.items():
            best = group["best"]
            shown = (
                "search not finished" if best is None else f"trial {best['trial']} {best['values']}"
            )
            console.print(f"{name}: {shown}", highlight=False)
        if left:
            err_console.print(f"{left} runs not finished; rerun the command to go on")
            raise typer.Exit(1)
