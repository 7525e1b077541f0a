"""``fer-bench tune``: the same random-search budget for every method, then fresh seeds."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from fer_bench.atomic import write_json_atomic
from fer_bench.commands.common import (
    JOBS_PER_DEVICE_HELP,
    console,
    err_console,
    fail,
    local_executor,
    one_line_errors,
    with_options,
)
from fer_bench.config import RunConfig
from fer_bench.options import TUNE, OptionValues, split_list
from fer_bench.profiles import option_overrides
from fer_bench.records.layout import TUNING_FILE, seal_json
from fer_bench.records.reading import RunState
from fer_bench.reports.tuned import pick_text, unpicked
from fer_bench.sweeps.executors import Executor, JobResult
from fer_bench.sweeps.progress import JobState, SweepProgress
from fer_bench.sweeps.sweep import (
    PlannedJob,
    SweepBusy,
    build_spec,
    check_out_dir,
    expand,
    plan,
    read_sweep_file,
    run_sweep,
    sweep_lock,
)
from fer_bench.sweeps.tune import (
    TuneSpec,
    check_budget,
    final_jobs,
    merged_record,
    pick,
    tuning_record,
)

Opt = typer.Option


@dataclass(frozen=True)
class Retrain:
    """What ``sweep`` also starts over: failed runs (--retry-failed), stale ones."""

    failed: bool = False
    stale: bool = False


def _run_phase(
    name: str,
    jobs: list[RunConfig],
    out: Path,
    runner: Executor,
    retrain: Retrain | None,
    record: Callable[[], object],
    alongside: list[RunConfig] | None = None,
) -> list[PlannedJob]:
    """Train what is not done of one phase, and of ``alongside`` (``retrain`` None: a dry
    run, nothing), calling ``record`` after each run; the phase's runs as they stand after."""
    planned = plan(jobs, out)
    done = sum(p.state is RunState.DONE for p in planned)
    console.print(f"{name}: {len(planned)} runs, {done} done", highlight=False)
    if planned:
        console.print(f"  {_per_method(planned)}", highlight=False)
    if alongside_planned := plan(alongside or [], out):
        shown = _per_method(alongside_planned)
        console.print(f"  and the confirming runs of finished searches: {shown}", highlight=False)
    left = [p for p in planned + alongside_planned if p.state is not RunState.DONE]
    if retrain is None or not left:
        return planned

    def progress(result: JobResult, k: int, n: int) -> None:
        console.print(f"  [{k}/{n}] {result.status} {result.name} ({result.time_s:.0f} s)")
        record()  # an interrupted phase keeps the picks of the searches it completed

    with SweepProgress([JobState(p.path, p.cfg.epochs) for p in left], console):
        report = run_sweep(
            alongside_planned + planned,  # first: each completes a method's row
            out,
            runner,
            retry_failed=retrain.failed,
            on_result=progress,
            rerun_stale=retrain.stale,
            notify=err_console.print,
        )
    for p in report.busy:
        err_console.print(f"  {p.path.name}: held by another process, left alone", highlight=False)
    return plan(jobs, out)


def _per_method(planned: list[PlannedJob]) -> str:
    """``ce 2/8, nla 1/8``: each method's done runs of the phase, to see what is left."""
    counts: dict[str, list[int]] = {}
    for p in planned:
        done_total = counts.setdefault(p.cfg.method, [0, 0])
        done_total[0] += p.state is RunState.DONE
        done_total[1] += 1
    return ", ".join(f"{method} {done}/{total}" for method, (done, total) in counts.items())


def _record(
    spec: TuneSpec, out: Path, previous: dict[str, Any] | None, dry_run: bool
) -> dict[str, dict[str, Any]]:
    """The groups as they stand, written to tuning.json before and after each phase and
    each run, so a table of an interrupted search shows no trial as a row and the picks
    of the searches that finished."""
    groups = pick(spec, out)
    if not dry_run:
        record = merged_record(previous, tuning_record(spec, groups))
        write_json_atomic(out / TUNING_FILE, seal_json(record))  # a changed pick is noticed
    return groups


def _report(groups: dict[str, dict[str, Any]], trials: list[PlannedJob]) -> None:
    for name, group in groups.items():
        best = group["best"]
        shown = unpicked(group) if best is None else pick_text(best)
        console.print(f"{name}: {shown}", highlight=False)
    if failed := [t for t in trials if t.state is RunState.FAILED]:
        err_console.print(
            f"{len(failed)} trials failed (e.g. {failed[0].path.name}: {failed[0].reason}): "
            "each is a finished trial that is never picked; --retry-failed starts them over"
        )


def register(app: typer.Typer) -> None:
    @app.command()
    @one_line_errors
    @with_options(TUNE)
    def tune(
        file: Annotated[Path, Opt("--file", "-f", help="TOML sweep file: grid and recipe")],
        out: Annotated[Path, Opt(help="results directory (trials and confirming runs)")],
        methods: Annotated[str | None, Opt(help="comma list (default: the file's)")] = None,
        trials: Annotated[int, Opt(help="configurations drawn per method")] = 8,
        search_seed: Annotated[int, Opt(help="seed of the draws")] = 0,
        search_training_seed: Annotated[int, Opt(help="training seed of the trials")] = 100,
        final_seeds: Annotated[str, Opt(help="fresh training seeds of the pick")] = "0,1,2",
        rule: Annotated[str, Opt(help="pick by: val | val_mca (validation labels)")] = "val",
        *,
        options: OptionValues,
        workers: Annotated[
            int | None, Opt(help="parallel jobs (cores are split; default 1)")
        ] = None,
        jobs_per_device: Annotated[str | None, Opt(help=JOBS_PER_DEVICE_HELP)] = None,
        retry_failed: Annotated[bool, Opt(help="start failed runs over")] = False,
        rerun_stale: Annotated[
            bool, Opt(help="retrain runs whose method code or defaults changed")
        ] = False,
        dry_run: Annotated[bool, Opt(help="list the phases, run nothing")] = False,
        wait: Annotated[
            bool, Opt(help="wait for another sweep on --out instead of refusing")
        ] = False,
    ) -> None:
        """Random search with N trials for every method, pick on validation, rerun on
        fresh seeds. Resumable: rerun the same command."""
        cli = {"methods": split_list(methods, str, "--methods"), "seeds": [search_training_seed]}
        sweep = build_spec(read_sweep_file(file), cli, option_overrides(options))
        spec = TuneSpec(
            bases=expand(sweep),
            trials=trials,
            search_seed=search_seed,
            search_training_seed=search_training_seed,
            final_seeds=split_list(final_seeds, int, "--final-seeds") or [],
            rule=rule,
            noise_follows_seed=sweep.noise_seed == "seed",
        )
        runner = local_executor(workers, jobs_per_device, sweep.base.device)
        check_out_dir(out, sweep.base.data.name)
        retrain = None if dry_run else Retrain(retry_failed, rerun_stale)
        # A dry run only reads (tuning.json is replaced atomically), so it needs no lock
        # and lists the progress of a search that is training.
        held = nullcontext() if dry_run else sweep_lock(out, wait)
        try:
            with held:
                # Read under the lock (a dry run takes none): a search finishing meanwhile may
                # have rewritten it.
                previous = check_budget(spec, out)  # refused before anything is written

                def record() -> dict[str, dict[str, Any]]:
                    return _record(spec, out, previous, dry_run)

                groups = record()
                trials = [c for c, _, _ in spec.trial_jobs]
                # A search already complete has its confirming runs trained before and
                # alongside the other methods' trials: its row comes first, and no worker
                # waits idle for the last trial.
                ready = final_jobs(spec, groups)
                searched = _run_phase("search", trials, out, runner, retrain, record, ready)
                groups = record()
                finals = final_jobs(spec, groups)
                confirmed = _run_phase("confirm", finals, out, runner, retrain, record)
                groups = record()
        except SweepBusy as err:
            fail(str(err))
        _report(groups, searched)
        finished = (RunState.DONE, RunState.FAILED)  # a diverged trial is a finished one
        left = [t for t in searched if t.state not in finished]
        left += [c for c in confirmed if c.state is not RunState.DONE]
        if left and not dry_run:
            hints = {
                RunState.STALE: "stale: --rerun-stale trains them again",
                RunState.FAILED: "failed: --retry-failed starts them over",
            }
            why = [
                f"{n} {hint}"
                for state, hint in hints.items()
                if (n := sum(p.state is state for p in left))
            ]
            shown = f" ({'; '.join(why)})" if why else ""
            err_console.print(f"{len(left)} runs not finished{shown}; rerun the command to go on")
            raise typer.Exit(1)
