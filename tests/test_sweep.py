"""Sweeps: grid expansion, bad input, resumable runs, locks, local and Ray executors.

Most tests train with ``fake_engine`` (same API and record format as the
engine, milliseconds per job); one runs the real engine end to end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import fake_engine
import pytest
from filelock import FileLock
from lock_helpers import hold_lock
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.records.identity import run_hash
from fer_bench.records.layout import ERROR_FILE, SWEEP_LOCK
from fer_bench.records.reading import RunState, run_state, scan_runs
from fer_bench.sweeps.executors import Job, LocalExecutor, RayExecutor
from fer_bench.sweeps.sweep import (
    SweepBusy,
    build_spec,
    check_out_dir,
    expand,
    parse_sets,
    plan,
    read_sweep_file,
    run_sweep,
    sweep_lock,
)

FAKE = "fake_engine"
TESTS = str(Path(__file__).resolve().parent)


def spec(**cli):
    cli.setdefault("methods", ["ce", "scn"])
    base = cli.pop("base", {"epochs": 3})
    return build_spec({}, cli, base)


def test_grid_is_methods_x_protocols_x_seeds():
    jobs = expand(spec(noise=[0.0, 0.3], imbalance=[1, 50], seeds=[0, 1]))
    assert len(jobs) == 2 * 2 * 2 * 2
    assert len({run_hash(j) for j in jobs}) == len(jobs)
    # seed-major: the whole first seed comes before any job of the second
    assert [j.seed for j in jobs] == [0] * 8 + [1] * 8
    noisy = [j for j in jobs if j.protocol.noise_rate == 0.3 and j.protocol.imbalance == 50]
    assert {j.method for j in noisy} == {"ce", "scn"} and all(j.epochs == 3 for j in noisy)


def test_one_spelling_per_label_set():
    jobs = expand(spec(methods=["ce"], seeds=[0, 0], imbalance=[1, 10], imbalance_type="step"))
    assert [(j.protocol.imbalance, j.protocol.imbalance_type) for j in jobs] == [
        (1.0, "exp"),  # no subsampling: same config (and run) as any other sweep's clean job
        (10.0, "step"),
    ]


def test_rate_free_protocols_and_clean_columns_are_not_duplicated():
    jobs = expand(
        spec(methods=["ce"], noise=[0.0, 0.2], noise_type=["symmetric", "pairflip", "fer2013"])
    )
    protocols = sorted((j.protocol.noise, j.protocol.noise_rate) for j in jobs)
    # one clean column for both rate-based types; fer2013 takes no rate: one column
    assert protocols == [
        ("fer2013", 0.0),
        ("pairflip", 0.2),
        ("symmetric", 0.0),
        ("symmetric", 0.2),
    ]


def test_noise_seed_follows_training_seed_on_request():
    fixed = expand(spec(methods=["ce"], noise=[0.3], seeds=[0, 1]))
    tied = expand(spec(methods=["ce"], noise=[0.3], seeds=[0, 1], noise_seed="seed"))
    assert [j.protocol.noise_seed for j in fixed] == [0, 0]
    assert [j.protocol.noise_seed for j in tied] == [0, 1]


def test_hyperparameters_per_method_and_for_all():
    sets = parse_sets(["scn.relabel_epoch=5", "ce.ignored=1"])
    assert sets == {"scn": {"relabel_epoch": "5"}, "ce": {"ignored": "1"}}
    jobs = expand(spec(hparams={"scn": {"relabel_epoch": "5"}}))
    assert {j.method: j.hparams for j in jobs} == {"ce": {}, "scn": {"relabel_epoch": "5"}}


def test_two_spellings_of_one_experiment_are_refused():
    grid = {"scn": {"margin_1": ["0.1", "0.10", "0.2"]}}
    with pytest.raises(ValueError, match=r"'0.1'\} and \{'margin_1': '0.10'\} are one"):
        expand(spec(methods=["scn"], hparams=grid))


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ({"methods": []}, "empty grid: no methods"),
        ({"seeds": []}, "empty grid: no seeds"),
        ({"methods": ["ce", "nosuch"]}, "unknown methods 'nosuch'"),
        ({"noise": [1.5]}, "noise rate must be in [0, 1)"),
        ({"noise_type": ["nosuch"]}, "unknown noise protocols 'nosuch'"),
        ({"noise_type": ["exp"], "noise": [0.2]}, "unknown noise protocols 'exp'"),
        ({"hparams": {"ce": {"nosuch": "1"}}}, "no hyperparameter 'nosuch'"),
        ({"hparams": {"nla": {"x": "1"}}}, "given for nla, not in the methods"),
        ({"noise_type": ["fer2013"], "noise": [0.3]}, "no noise type takes a rate"),
        ({"noise_seed": "x"}, "integer or 'seed'"),
        ({"hparams": {"*": {"relabel_epoch": "3"}}}, "ce: method has no hyperparameter"),
        ({"base": {"epochs": "ten"}}, "a value has the wrong type"),
    ],
)
def test_bad_grids_fail_before_any_work(cli, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        expand(spec(**cli))


def test_sweep_file_with_cli_on_top(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(
        'methods = ["ce", "scn"]\nseeds = [0, 1]\nnoise = [0.0, 0.2]\n'
        "[[protocols]]\nimbalance = 10\n"
        "[base]\nepochs = 4\n[base.optim]\nlr = 0.01\n"
        "[hparams.scn]\nrelabel_epoch = 2\n"
    )
    file = read_sweep_file(path)
    jobs = expand(build_spec(file, {"seeds": [3]}, {"epochs": 2}))
    assert {j.seed for j in jobs} == {3}  # the command line wins
    assert {(j.epochs, j.optim.lr) for j in jobs} == {(2, 0.01)}
    assert {(j.protocol.noise_rate, j.protocol.imbalance) for j in jobs} == {
        (0.0, 1.0),
        (0.2, 1.0),
        (0.0, 10.0),
    }
    assert {j.hparams.get("relabel_epoch") for j in jobs if j.method == "scn"} == {"2"}
    path.write_text("methods = [\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        read_sweep_file(path)
    path.write_text('methodz = ["ce"]\n')
    with pytest.raises(ValueError, match="unknown key"):
        read_sweep_file(path)
    path.write_text('methods = ["ce"]\n[base]\nepochz = 3\n')
    with pytest.raises(ValueError, match="unknown config key 'epochz'"):
        build_spec(read_sweep_file(path), {}, {})


def test_out_dir_of_another_dataset_is_refused(tmp_path):
    cfg = expand(spec(methods=["ce"]))[0]
    cfg.data.name = "ferplus"
    fake_engine.write_records(cfg, tmp_path)
    check_out_dir(tmp_path, "ferplus")
    with pytest.raises(ValueError, match="holds runs on dataset 'ferplus'"):
        check_out_dir(tmp_path, "synthetic")
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        check_out_dir(tmp_path / "file", "synthetic")


def test_rerun_skips_done_resumes_partial_and_keeps_failed(tmp_path):
    jobs = expand(spec(methods=["ce"], noise=[0.0, 0.3], seeds=[0, 1, fake_engine.FAIL_SEED]))
    fake_engine.write_records(jobs[0], tmp_path)  # done before the sweep
    fake_engine.write_records(jobs[1], tmp_path, epochs=1)  # interrupted after one epoch
    planned = plan(jobs, tmp_path, FAKE)
    assert [p.state for p in planned[:3]] == [RunState.DONE, RunState.PARTIAL, RunState.TODO]

    report = run_sweep(planned, tmp_path, fake_engine.SerialExecutor(), FAKE)
    assert report.already_done == 1
    assert len(report.results) == 5
    assert [(f.name, f.reason) for f in report.failures] == [
        (p.path.name, "RuntimeError: fake failure") for p in planned[4:]
    ]
    resumed = json.loads((planned[1].path / "fake.json").read_text())["resumed"]
    assert resumed is True  # the engine was asked to resume the interrupted run
    assert not (planned[0].path / "fake.json").exists()  # the done run was not touched
    assert "fake failure" in (planned[4].path / ERROR_FILE).read_text()

    again = run_sweep(plan(jobs, tmp_path, FAKE), tmp_path, fake_engine.SerialExecutor(), FAKE)
    assert again.already_done == 4 and len(again.results) == 2  # only the raising jobs rerun


def test_failed_runs_are_kept_unless_retried(tmp_path):
    jobs = expand(spec(methods=["ce"], seeds=[0]))
    fake_engine.write_records(jobs[0], tmp_path, status="failed", reason="non-finite loss")
    planned = plan(jobs, tmp_path, FAKE)
    assert planned[0].state is RunState.FAILED
    kept = run_sweep(planned, tmp_path, fake_engine.SerialExecutor(), FAKE)
    assert kept.results == [] and kept.kept_failed[0].reason == "non-finite loss"
    retried = run_sweep(planned, tmp_path, fake_engine.SerialExecutor(), FAKE, retry_failed=True)
    assert [r.status for r in retried.results] == ["done"]
    assert plan(jobs, tmp_path, FAKE)[0].state is RunState.DONE


@pytest.mark.slow  # spawns worker processes that import torch: over 7 s
def test_local_executor_runs_in_parallel_processes_and_collects_failures(tmp_path):
    jobs = expand(spec(methods=["ce", "nla"], noise=[0.0, 0.3], seeds=[0, fake_engine.FAIL_SEED]))
    planned = plan(jobs, tmp_path, FAKE)
    seen = []
    report = run_sweep(
        planned,
        tmp_path,
        LocalExecutor(workers=2, cores=2),
        FAKE,
        on_result=lambda r, k, n: seen.append((k, n)),
    )
    assert seen == [(k, 8) for k in range(1, 9)]
    assert sorted(r.status for r in report.results) == ["done"] * 4 + ["failed"] * 4
    pids = {
        json.loads((p.path / "fake.json").read_text())["pid"]
        for p in planned
        if (p.path / "fake.json").exists()
    }
    assert 1 <= len(pids) <= 2 and not pids & {__import__("os").getpid()}
    runs = scan_runs(tmp_path).runs
    assert sorted(r.state.value for r in runs) == ["done"] * 4 + ["partial"] * 4
    partial = [r for r in runs if r.state is RunState.PARTIAL]
    assert all(r.reason == "last attempt raised RuntimeError: fake failure" for r in partial)


@pytest.mark.slow  # spawns worker processes that import torch: over 7 s
def test_a_dying_worker_fails_its_job_only(tmp_path):
    jobs = expand(spec(methods=["ce"], seeds=[fake_engine.CRASH_SEED, 0]))
    report = run_sweep(plan(jobs, tmp_path, FAKE), tmp_path, LocalExecutor(workers=1), FAKE)
    assert [r.status for r in report.results] == ["failed", "done"]
    assert "worker process died" in report.results[0].reason


def test_second_sweep_on_the_same_dir_is_refused_or_waits(tmp_path, capsys):
    hold_lock(tmp_path / SWEEP_LOCK, 0.4)
    started = time.perf_counter()
    with pytest.raises(SweepBusy, match="another sweep is running"), sweep_lock(tmp_path):
        pass
    assert capsys.readouterr().err == ""
    with sweep_lock(tmp_path, wait=True):
        assert time.perf_counter() - started >= 0.35
    assert capsys.readouterr().err.startswith("waiting for the holder of")
    with sweep_lock(tmp_path, wait=True):  # a free lock is taken without a word
        pass
    assert capsys.readouterr().err == ""


def test_cli_dry_run_lists_states_and_creates_nothing(tmp_path):
    out = tmp_path / "res"
    runner = CliRunner()
    args = [
        "sweep",
        "--methods",
        "ce,scn",
        "--noise",
        "0,0.3",
        "--seeds",
        "0",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--dry-run",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 todo" in result.output and not out.exists()
    first = expand(spec(methods=["ce"], base={"epochs": 2}))[0]
    fake_engine.write_records(first, out)
    result = runner.invoke(app, args)
    assert "1 done, 3 todo" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "ce,nope"], "unknown methods 'nope'"),
        (["--methods", "ce", "--seeds", "a"], "--seeds: expected a comma list of int"),
        (["--methods", "ce", "--executor", "slurm"], "unknown executor 'slurm'"),
        (["--methods", ""], "empty grid: no methods"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    result = CliRunner().invoke(app, ["sweep", *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_cli_refuses_while_another_sweep_holds_the_dir(tmp_path):
    hold_lock(tmp_path / SWEEP_LOCK, 1.0)
    result = CliRunner().invoke(app, ["sweep", "--methods", "ce", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "another sweep is running" in result.output
    assert [p.name for p in tmp_path.iterdir()] == [SWEEP_LOCK]  # no run was started


def _tiny_dataset_plugin(tmp_path: Path) -> Path:
    # The engine loads cfg.plugin in each worker, so a 16 px dataset of 500 faces reaches it.
    path = tmp_path / "tiny_data.py"
    path.write_text(
        "from fer_bench.data.base import DatasetBundle\n"
        "from fer_bench.data.loaders.synthetic import CLASSES, generate_split\n"
        "from fer_bench.registry import DATASETS\n\n\n"
        "@DATASETS.register('tiny-synthetic')\n"
        "def load(cfg):\n"
        "    splits = {s: generate_split(n, i, cfg.image_size)\n"
        "              for i, (s, n) in enumerate([('train', 300), ('val', 100), ('test', 100)])}\n"
        "    return DatasetBundle(name='tiny-synthetic', class_names=CLASSES, **splits)\n"
    )
    return path


@pytest.mark.slow  # spawns worker processes that import torch: over 7 s
def test_real_engine_two_job_sweep_end_to_end(tmp_path):
    pytest.importorskip("fer_bench.training.engine")
    plugin = _tiny_dataset_plugin(tmp_path)
    out = tmp_path / "res"
    args = [
        "sweep",
        "--methods",
        "ce",
        "--noise",
        "0,0.3",
        "--seeds",
        "0",
        "--dataset",
        "tiny-synthetic",
        "--image-size",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--plugin",
        str(plugin),
        "--out",
        str(out),
        "--workers",
        "2",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ran 2: 2 done, 0 failed" in result.output
    runs = scan_runs(out).runs
    assert sorted(r.protocol.label for r in runs) == ["clean", "sym 30%"]
    assert all(r.state is RunState.DONE and r.final["status"] == "done" for r in runs)
    again = CliRunner().invoke(app, args)
    assert "ran 0: 0 done, 0 failed; 2 already done" in again.output


def test_ray_executor_writes_the_same_runs_as_local(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", TESTS)  # Ray workers import fake_engine by name
    jobs = expand(spec(methods=["ce", "nla"], noise=[0.0, 0.3], seeds=[0, fake_engine.FAIL_SEED]))
    local = run_sweep(
        plan(jobs, tmp_path / "local", FAKE), tmp_path / "local", fake_engine.SerialExecutor(), FAKE
    )
    ray_report = run_sweep(
        plan(jobs, tmp_path / "ray", FAKE), tmp_path / "ray", RayExecutor(local_cpus=2), FAKE
    )
    assert sorted((r.name, r.status, r.reason) for r in ray_report.results) == sorted(
        (r.name, r.status, r.reason) for r in local.results
    )
    for run in scan_runs(tmp_path / "local").runs:
        twin = tmp_path / "ray" / run.name
        if run.state is RunState.DONE:
            assert (twin / "final.json").read_text() == (run.path / "final.json").read_text()


def test_ray_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ValueError, match=r"pip install 'fer-bench\[ray\]'"):
        list(RayExecutor().run([Job(expand(spec())[0], Path("/tmp"), "x")], FAKE))


def test_retry_failed_unblocks_a_run_failing_on_its_checkpoint(tmp_path):
    (cfg,) = expand(spec(methods=["ce"]))
    fake_engine.write_records(cfg, tmp_path, epochs=1)
    run = fake_engine.run_dir(cfg, tmp_path)
    (run / "checkpoint.pt").write_text(fake_engine.CORRUPT)
    first = run_sweep(plan([cfg], tmp_path, FAKE), tmp_path, fake_engine.SerialExecutor(), FAKE)
    assert len(first.failures) == 1 and (run / ERROR_FILE).exists()
    notes: list[str] = []
    report = run_sweep(
        plan([cfg], tmp_path, FAKE),
        tmp_path,
        fake_engine.SerialExecutor(),
        FAKE,
        retry_failed=True,
        notify=notes.append,
    )
    assert not report.failures and run_state(run)[0] is RunState.DONE
    assert notes == [
        f"starting {run.name} over (--retry-failed): last attempt raised "
        "RuntimeError: PytorchStreamReader failed reading zip archive"
    ]


def _raised_partial_run(out: Path):
    """A run interrupted after its last attempt raised: --retry-failed starts it over."""
    (cfg,) = expand(spec(methods=["ce"]))
    fake_engine.write_records(cfg, out, epochs=1)
    run = fake_engine.run_dir(cfg, out)
    (run / ERROR_FILE).write_text("RuntimeError: out of memory\n")
    planned = plan([cfg], out, FAKE)
    assert planned[0].state is RunState.PARTIAL and planned[0].reason is not None
    return cfg, run, planned


def test_retry_failed_leaves_a_run_another_process_holds(tmp_path):
    _, run, planned = _raised_partial_run(tmp_path)
    # `fer-bench run --resume` of the same directory holds its lock: nothing is deleted.
    notes: list[str] = []
    with FileLock(run.with_name(f".{run.name}.lock")):
        report = run_sweep(
            planned,
            tmp_path,
            fake_engine.SerialExecutor(),
            FAKE,
            retry_failed=True,
            notify=notes.append,
        )
    assert report.busy == planned and not report.results and not notes
    assert (run / "metrics.jsonl").exists() and (run / "config.json").exists()


def test_a_run_finished_since_the_plan_is_not_deleted(tmp_path):
    cfg, run, planned = _raised_partial_run(tmp_path)
    fake_engine.train(cfg, tmp_path)  # another process finishes it meanwhile
    (run / ERROR_FILE).unlink(missing_ok=True)
    (run / "kept.txt").write_text("a deleted directory loses this")
    report = run_sweep(planned, tmp_path, fake_engine.SerialExecutor(), FAKE, retry_failed=True)
    assert not report.failures and (run / "kept.txt").exists()


def test_a_run_resumed_since_the_plan_is_not_deleted(tmp_path):
    _, run, planned = _raised_partial_run(tmp_path)
    (run / ERROR_FILE).unlink()  # another process resumed it (clearing the error), stopped
    (run / "kept.txt").write_text("a deleted directory loses this")
    run_sweep(planned, tmp_path, fake_engine.SerialExecutor(), FAKE, retry_failed=True)
    assert (run / "kept.txt").exists()


def test_rerun_stale_starts_a_stale_run_over_under_its_lock(tmp_path):
    (cfg,) = expand(spec(methods=["ce"]))
    fake_engine.write_records(cfg, tmp_path)
    run = fake_engine.run_dir(cfg, tmp_path)
    stored = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**stored, "method_code": "0" * 16}))
    planned = plan([cfg], tmp_path, FAKE)
    assert planned[0].state is RunState.STALE
    with FileLock(run.with_name(f".{run.name}.lock")):
        held = run_sweep(planned, tmp_path, fake_engine.SerialExecutor(), FAKE, rerun_stale=True)
    assert held.busy == planned and plan([cfg], tmp_path, FAKE)[0].state is RunState.STALE
    report = run_sweep(planned, tmp_path, fake_engine.SerialExecutor(), FAKE, rerun_stale=True)
    assert not report.failures and plan([cfg], tmp_path, FAKE)[0].state is RunState.DONE


WORKER_SCRIPT = """
import signal
import sys
# As in a terminal: a job a shell starts in the background (nohup, &) inherits SIGINT
# ignored, and then Python raises no KeyboardInterrupt, so this test could not interrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
import fake_engine
from fer_bench.config import RunConfig
from fer_bench.sweeps.executors import Job, LocalExecutor
import multiprocessing
import time
cfg = RunConfig(seed=fake_engine.SLEEP_SEED)
out = Path(sys.argv[1])
# A child of the sweep's process that is not its worker: an interrupt must leave it be.
bystander = multiprocessing.get_context("spawn").Process(
    target=time.sleep, args=(60,), daemon=True
)
bystander.start()
(out / "bystander.pid").write_text(str(bystander.pid))
try:
    for result in LocalExecutor(1).run([Job(cfg, out, "sleeper")], "fake_engine"):
        print(result)
except KeyboardInterrupt:
    bystander.join(1.0)
    (out / "bystander.exitcode").write_text(str(bystander.exitcode))
    raise
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has stopped; only its parent has yet to reap it


@pytest.mark.slow  # spawns worker processes that import torch: over 7 s
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "interrupt"])
def test_workers_end_when_the_sweep_is_killed_or_interrupted(tmp_path, sig):
    env = {**os.environ, "PYTHONPATH": TESTS}
    parent = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(tmp_path)], env=env)
    pid_file = tmp_path / "worker.pid"
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        worker = int(pid_file.read_text())
        parent.send_signal(sig)  # to the sweep alone, not its process group
        parent.wait(timeout=30)  # an interrupt ends the jobs, not waits them out
        deadline = time.monotonic() + 2  # gone within 2 s of the sweep
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), f"worker {worker} outlived its killed parent"
        if sig == signal.SIGINT:  # still running a second after the interrupt
            assert (tmp_path / "bystander.exitcode").read_text() == "None"
    finally:
        parent.kill()
        for pid_file in (tmp_path / "worker.pid", tmp_path / "bystander.pid"):
            if pid_file.exists() and _alive(int(pid_file.read_text())):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
