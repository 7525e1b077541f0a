"""The ledger (fer_bench.records.ledger): every entry used, and moves that stale nothing."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import pytest

from fer_bench.config import RunConfig
from fer_bench.records.identity import method_code, source_fingerprint, staleness
from fer_bench.records.ledger import LEDGER, NeutralField, SameCode, same_code

REPO = Path(__file__).resolve().parents[1]
CE_SOURCE = (REPO / "methods" / "ce.py").read_text()
SCN_SOURCE = (REPO / "methods" / "scn.py").read_text()


def _recorded_codes() -> dict[str, set[str]]:
    codes: dict[str, set[str]] = defaultdict(set)
    for path in REPO.glob("results/*/runs/*/config.json"):
        stored = json.loads(path.read_text())
        codes[stored["method"]].add(stored.get("method_code"))
    return codes


def _field_names(cls: type, prefix: str = "") -> set[str]:
    names = set()
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            names |= _field_names(type(default), f"{prefix}{f.name}.")
        else:
            names.add(prefix + f.name)
    return names


def test_every_neutral_field_is_a_config_field_at_its_default():
    fields = _field_names(RunConfig)
    default = RunConfig()
    for entry in (e for e in LEDGER if isinstance(e, NeutralField)):
        assert entry.key in fields, entry
        value = default
        for part in entry.key.split("."):
            value = getattr(value, part)
        assert value == entry.value, f"{entry.key}: the default must reproduce the old runs"


@pytest.mark.parametrize(
    "entry", [e for e in LEDGER if isinstance(e, SameCode)], ids=lambda e: e.method
)
def test_every_code_entry_maps_a_committed_record_to_todays_code(entry):
    assert method_code(entry.method) == entry.today, (
        f"{entry.method} changed since its ledger entry: its runs are stale, drop the entry"
    )
    assert entry.recorded in _recorded_codes()[entry.method], "no committed run holds it"


def test_a_mapped_record_is_current_and_an_unmapped_one_stale(tmp_path):
    ce = next(e for e in LEDGER if isinstance(e, SameCode) and e.method == "ce")
    assert same_code(ce.recorded, ce.today) and same_code(ce.today, ce.today)
    assert not same_code(ce.recorded, "0" * 16)  # a ledger entry names its target code
    path = next(REPO.glob("results/synthetic/runs/ce-*/config.json"))
    stored = json.loads(path.read_text())
    assert stored["method_code"] == ce.recorded and staleness(stored) is None
    assert "method code changed" in staleness({**stored, "method_code": "1" * 16})


def test_moving_a_core_module_changes_no_fingerprint():
    moved = CE_SOURCE.replace("from fer_bench.registry import", "from fer_bench.core.names import")
    assert moved != CE_SOURCE
    assert source_fingerprint(moved) == source_fingerprint(CE_SOURCE)
    # a contract split over two modules: the import regrouped, the names the same
    contract = "from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo"
    assert contract in SCN_SOURCE
    split = SCN_SOURCE.replace(
        contract,
        "from fer_bench.training.step import StepOutput, TrainInfo\n"
        "from fer_bench.methods.contract import Batch, Hparams, Method",
    )
    assert source_fingerprint(split) == source_fingerprint(SCN_SOURCE)


def test_what_the_code_uses_still_counts():
    renamed = CE_SOURCE.replace("import METHODS", "import METHODS as REG").replace(
        "@METHODS", "@REG"
    )
    assert source_fingerprint(renamed) != source_fingerprint(CE_SOURCE)
    unused = CE_SOURCE.replace(
        "from fer_bench.registry import METHODS",
        "from fer_bench.registry import METHODS\nfrom fer_bench.search import LogUniform",
    )
    assert source_fingerprint(unused) == source_fingerprint(CE_SOURCE)  # only a declaration's
    edited = CE_SOURCE.replace("cross_entropy(", "nll_loss(", 1)
    assert edited != CE_SOURCE and source_fingerprint(edited) != source_fingerprint(CE_SOURCE)
