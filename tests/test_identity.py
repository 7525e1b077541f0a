"""Experiment identity: one name per experiment, location-free, stale records detected."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from fer_bench.config import DataConfig, RunConfig
from fer_bench.records.identity import (
    CannotCheck,
    digest,
    experiment,
    record_fields,
    run_name,
    source_fingerprint,
    staleness,
)
from fer_bench.records.reading import RunState, scan_runs
from fer_bench.registry import load_plugin_file

ROOT = Path(__file__).resolve().parents[1]


def test_equal_resolved_hyperparameters_are_one_experiment():
    names = {
        run_name(RunConfig(method="gce", hparams=h)) for h in ({}, {"q": "0.7"}, {"q": "0.70"})
    }
    assert len(names) == 1
    assert run_name(RunConfig(method="gce", hparams={"q": "0.8"})) not in names


def test_location_device_and_plugin_path_are_not_the_experiment():
    base = RunConfig(method="ce")
    moved = replace(
        base,
        device="cuda",
        plugin=None,
        eval_batch_size=64,
        channels_last=False,
        data=DataConfig(root="/elsewhere/data"),
    )
    assert run_name(moved) == run_name(base)
    assert run_name(replace(base, seed=1)) != run_name(base)
    assert run_name(replace(base, epochs=3)) != run_name(base)


def test_rate_zero_protocols_are_the_clean_set():
    sym, pair = RunConfig(method="ce"), RunConfig(method="ce")
    pair.protocol.noise = "pairflip"
    assert run_name(sym) == run_name(pair)
    pair.protocol.noise_rate = 0.2
    assert run_name(sym) != run_name(pair)


def test_a_label_file_is_named_by_its_content(tmp_path):
    a, b = tmp_path / "a" / "noise.csv", tmp_path / "b" / "noise.csv"
    for path in (a, b):
        path.parent.mkdir()
        path.write_text("index,label\n0,1\n")
    cfg_a, cfg_b = RunConfig(method="ce"), RunConfig(method="ce")
    cfg_a.protocol.noise, cfg_b.protocol.noise = f"file:{a}", f"file:{b}"
    assert run_name(cfg_a) == run_name(cfg_b)
    b.write_text("index,label\n0,3\n1,2\n")
    assert run_name(cfg_a) != run_name(cfg_b)


def test_a_changed_default_is_another_experiment():
    cfg = RunConfig(method="gce")
    recorded = experiment(cfg, hparams={"q": 0.5})  # as if the default had been 0.5
    assert digest(recorded) != digest(experiment(cfg))


def _plugin(tmp_path: Path, body: str, name: str = "mine") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(
        textwrap.dedent(f'''
        """A plugin for the identity tests."""
        from dataclasses import dataclass

        from fer_bench.methods.base import Batch, Hparams, Method, StepOutput
        from fer_bench.registry import METHODS


        @dataclass
        class H(Hparams):
            scale: float = 1.0


        @METHODS.register("{name}")
        class Mine(Method):
            Hparams = H

            def loss(self, batch: Batch, epoch: int) -> StepOutput:
                {body}
        ''')
    )
    return path


def _record(tmp_path: Path, name: str, body: str) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    load_plugin_file(_plugin(tmp_path, body, name))
    cfg = RunConfig(method=name)
    return {**cfg.to_dict(), **record_fields(cfg)}


def test_stale_when_method_code_changes_but_not_its_docstring_or_comments(tmp_path):
    body = "return StepOutput(self.backbone(batch.x).mean() * self.hparams.scale)"
    stored = _record(tmp_path / "v1", "stalecheck", body)
    assert staleness(stored) is None
    source = (tmp_path / "v1" / "stalecheck.py").read_text()
    assert source_fingerprint(source) == source_fingerprint(
        source.replace('"""A plugin', '"""Reworded: a plugin') + "\n# a comment\n"
    )
    assert source_fingerprint(source) != source_fingerprint(source.replace("mean()", "sum()"))
    stored["method_code"] = "0" * 16  # recorded under other code
    assert "method code changed" in staleness(stored)
    stored["experiment"]["hparams"] = {"scale": 2.0}
    assert "defaults changed" in staleness(stored)


def test_a_methods_listing_family_is_not_its_code():
    # the fifteen first methods named their family after their runs were recorded
    plain = "class M(Method):\n    def loss(self):\n        return 1\n"
    named = "class M(Method):\n    family = 'noise'\n\n    def loss(self):\n        return 1\n"
    assert source_fingerprint(plain) == source_fingerprint(named)


def test_a_process_records_the_code_it_imported_not_a_file_edited_since(tmp_path):
    from fer_bench.records.identity import method_code

    body = "return StepOutput(self.backbone(batch.x).mean() * self.hparams.scale)"
    stored = _record(tmp_path, "importedcode", body)
    path = tmp_path / "importedcode.py"
    path.write_text(path.read_text().replace("mean()", "sum()"))  # edited while it runs
    assert method_code("importedcode") == stored["method_code"]  # what this process runs
    assert staleness(stored) is None


def test_table_and_sweep_report_a_stale_run(tmp_path):
    from fake_engine import write_records

    cfg = RunConfig(method="ce", epochs=2)
    write_records(cfg, tmp_path)
    config_path = tmp_path / run_name(cfg) / "config.json"
    stored = json.loads(config_path.read_text())
    stored["method_code"] = "0" * 16
    config_path.write_text(json.dumps(stored))
    (run,) = scan_runs(tmp_path).runs
    assert run.state is RunState.STALE and "method code changed" in run.reason
    from fer_bench.sweeps.sweep import plan

    (planned,) = plan([cfg], tmp_path)
    assert planned.state is RunState.STALE


def test_a_run_whose_pretrained_file_is_not_here_cannot_be_checked(tmp_path):
    from fake_engine import write_records

    from fer_bench.sweeps.sweep import plan

    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"w")
    cfg = RunConfig(method="ce", epochs=2, pretrained=str(weights))
    write_records(cfg, tmp_path / "board")
    record = tmp_path / "board" / run_name(cfg) / "config.json"
    moved = weights.rename(tmp_path / "elsewhere.pth")  # the board on another machine
    stored = json.loads(record.read_text())
    with pytest.raises(CannotCheck, match="cannot be checked against today's code"):
        staleness(stored)
    (planned,) = plan([replace(cfg, pretrained=str(moved))], tmp_path / "board")
    assert planned.state is RunState.DONE  # the same file by content: the same run


def _copy_of(micro_run, tmp_path: Path) -> tuple[RunConfig, Path]:
    """The session's finished micro run, copied to be altered."""
    cfg, root = micro_run
    shutil.copytree(root / run_name(cfg), tmp_path / run_name(cfg))
    return cfg, tmp_path / run_name(cfg)


def test_engine_refuses_a_stale_run_and_reruns_it_on_request(tmp_path, micro_run, micro_bundle):
    from fer_bench.training.engine import StaleRun, train

    cfg, out = _copy_of(micro_run, tmp_path)
    config_path = out / "config.json"
    stored = json.loads(config_path.read_text())
    stored["method_code"] = "0" * 16
    config_path.write_text(json.dumps(stored))
    with pytest.raises(StaleRun, match="--rerun-stale"):
        train(cfg, tmp_path, progress=False, bundle=micro_bundle)
    final = train(cfg, tmp_path, progress=False, bundle=micro_bundle, rerun_stale=True)
    assert final["status"] == "done" and staleness(json.loads(config_path.read_text())) is None


def test_a_stale_run_is_not_deleted_while_another_process_holds_it(
    tmp_path, micro_run, micro_bundle
):
    from filelock import FileLock

    from fer_bench.records.lock import RunBusy
    from fer_bench.training.engine import train

    cfg, out = _copy_of(micro_run, tmp_path)
    stored = json.loads((out / "config.json").read_text())
    stored["method_code"] = "0" * 16
    (out / "config.json").write_text(json.dumps(stored))
    with FileLock(out.with_name(f".{out.name}.lock")), pytest.raises(RunBusy):
        train(cfg, tmp_path, progress=False, bundle=micro_bundle, rerun_stale=True)
    assert (out / "done").exists()  # still the other process's


def test_a_finished_run_with_an_unreadable_record_is_one_line(tmp_path, micro_run, micro_bundle):
    from fer_bench.training.engine import train

    cfg, out = _copy_of(micro_run, tmp_path)
    (out / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json cannot be read.*delete the directory"):
        train(cfg, tmp_path, progress=False, bundle=micro_bundle)
    assert (out / "done").exists()


def test_engine_detects_other_labels_behind_the_same_name(tmp_path, micro_run, micro_bundle):
    from fer_bench.records.layout import seal_run
    from fer_bench.training.engine import DataMismatch, train

    cfg, out = _copy_of(micro_run, tmp_path)
    final = json.loads((out / "final.json").read_text())
    final["labels"]["train_sha256"] = "f" * 64
    seal_run(out, final)  # sealed again: as written by a run on other labels, not damaged
    with pytest.raises(DataMismatch, match="label-file hash differs"):
        train(cfg, tmp_path, progress=False, bundle=micro_bundle)


def _committed_configs() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "results/*/runs/*/config.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / p for p in listed.stdout.split()]


def test_every_committed_run_is_named_by_its_experiment():
    configs = _committed_configs()
    assert len(configs) >= 140
    for path in configs:
        stored = json.loads(path.read_text())
        cfg = RunConfig.from_dict({k: v for k, v in stored.items() if k in RunConfig().to_dict()})
        recomputed = digest(experiment(cfg))
        assert path.parent.name == f"{stored['method']}-{recomputed}", path.parent.name
        assert stored["hash"] == recomputed and stored["experiment"] == experiment(cfg)
