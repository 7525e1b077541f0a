"""Long work is never silent (issue 50): a run without a terminal prints a line per epoch,
an interrupted run says where it stopped and how to resume, a sweep reports its jobs."""

from __future__ import annotations

import io
import json
import time

import pytest
from rich.console import Console

from fer_bench.sweeps.progress import JobState, SweepProgress, status_line
from fer_bench.training.progress import TrainingProgress


def _row(loss: float) -> dict:
    return {"train": {"loss": loss}, "val": {"acc": 0.5}, "test": {"acc": 0.25}, "time_s": 3.0}


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_without_a_terminal_one_line_per_epoch():
    console, out = _console()
    with TrainingProgress("ce", 2, 4, console=console) as progress:
        for epoch in range(2):
            for _ in range(4):
                progress.step()
            progress.epoch_done(epoch, _row(1.0 - epoch / 2))
    lines = out.getvalue().splitlines()
    assert lines == [
        "ce ep 1/2 loss 1.000 val 0.500 test 0.250, 3 s",
        "ce ep 2/2 loss 0.500 val 0.500 test 0.250, 3 s",
    ]


def test_quiet_prints_nothing():
    console, out = _console()
    with TrainingProgress("ce", 1, 1, enabled=False, console=console) as progress:
        progress.epoch_done(0, _row(1.0))
    assert out.getvalue() == ""


def test_interrupt_says_where_and_how_to_resume():
    console, out = _console()
    with (
        pytest.raises(KeyboardInterrupt),
        TrainingProgress("nla", 5, 10, resume="fer-bench run --resume R", console=console) as p,
    ):
        p.advance_to(2)  # resumed after two checkpointed epochs
        for _ in range(3):
            p.step()
        raise KeyboardInterrupt
    said = out.getvalue()
    assert "interrupted in epoch 3/5 at step 3/10" in said
    assert (
        "the checkpoint of epoch 2 is kept" in said
        and "resume with: fer-bench run --resume R" in said
    )


def _job(tmp_path, name: str, epochs_done: int, epochs: int, done: bool = False) -> JobState:
    path = tmp_path / name
    path.mkdir()
    (path / "metrics.jsonl").write_text(
        "".join(json.dumps({"epoch": e}) + "\n" for e in range(epochs_done))
    )
    if done:
        (path / "done").touch()
    return JobState(path, epochs)


def test_sweep_status_counts_jobs_epochs_and_eta(tmp_path):
    jobs = [
        _job(tmp_path, "ce-1", 10, 10, done=True),
        _job(tmp_path, "nla-2", 4, 10),
        _job(tmp_path, "scn-3", 0, 10),
    ]
    done = [10, 4, 0]
    line = status_line(jobs, done, gained=4, elapsed=240.0)  # 4 epochs in 4 minutes
    assert line.startswith("1/3 jobs done; training: nla-2 epoch 4/10; 14/30 epochs")
    assert "ETA 16 min" in line  # 16 epochs left at one a minute
    assert "ETA after the first epoch" in status_line(jobs, done, gained=0, elapsed=60.0)


def test_a_job_started_over_still_gives_a_pace(tmp_path):
    # --rerun-stale: a finished run's 10 epochs are wiped and it trains from epoch 1
    job = _job(tmp_path, "dmue-1", 10, 10, done=True)
    progress = SweepProgress([job], _console()[0])
    (job.path / "done").unlink()
    (job.path / "metrics.jsonl").write_text('{"epoch": 0}\n')
    progress.line()
    (job.path / "metrics.jsonl").write_text('{"epoch": 0}\n{"epoch": 1}\n')
    assert "ETA" in progress.line() and "after the first epoch" not in progress.line()


def test_sweep_progress_prints_lines_without_a_terminal(tmp_path):
    console, out = _console()
    jobs = [_job(tmp_path, "ce-1", 1, 3)]
    with SweepProgress(jobs, console, interval=0.05):
        time.sleep(0.3)
    assert "0/1 jobs done; training: ce-1 epoch 1/3" in out.getvalue()
