"""Which runs may share one table (fer_bench/reports/comparable.py): the settings a merge holds
fixed, read from the committed boards' records (golden), and the refusal's wording.

    python tests/test_comparable.py   # rewrites the golden file; review its diff
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fer_bench.config import RunConfig
from fer_bench.recipes import apply_recipe
from fer_bench.records.identity import experiment
from fer_bench.reports.comparable import Incomparable, check, setting_values, settings

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests/golden/expected/board_settings.json"
BOARDS = ("results/synthetic", "results/ferplus-cpu")


def _board_identities(board: str) -> list[dict]:
    configs = sorted((ROOT / board).glob("runs/*/config.json"))
    return [json.loads(path.read_text())["experiment"] for path in configs]


def _board_settings() -> dict[str, dict[str, list[str]]]:
    return {
        board: {name: sorted(v) for name, v in setting_values(_board_identities(board)).items()}
        for board in BOARDS
    }


def _identity(**changes) -> dict:
    cfg = RunConfig(method="ce", seed=0, epochs=2)
    for key, value in changes.items():
        setattr(cfg, key, value)
    return experiment(cfg)


def test_committed_boards_settings_are_golden():
    """Each committed board holds one value of every setting: one dataset, label mode,
    recipe, epoch count, protocol seed and precision asked for."""
    found = _board_settings()
    assert found == json.loads(GOLDEN.read_text())
    for values in found.values():
        assert all(len(v) == 1 for v in values.values())


def test_committed_boards_are_not_comparable_with_each_other():
    groups = [(board, list(map(settings, _board_identities(board)))) for board in BOARDS]
    with pytest.raises(Incomparable) as refused:
        check(groups)
    message = str(refused.value)
    assert message.startswith("results/ferplus-cpu is not comparable with results/synthetic: ")
    assert "dataset synthetic in results/synthetic, ferplus in results/ferplus-cpu" in message
    assert "epochs 12 in results/synthetic, 30 in results/ferplus-cpu" in message


def test_rows_and_cells_are_not_settings():
    """Method, hyperparameters, protocol column and training seed make rows and cells."""
    other = RunConfig(method="gce", seed=3, epochs=2, hparams={"q": "0.5"})
    other.protocol.noise_rate = 0.3
    check([("a", [settings(_identity())]), ("b", [settings(experiment(other))])])


def test_refusal_names_the_setting_and_both_values():
    with pytest.raises(Incomparable, match="^b is not comparable with a: epochs 2 in a, 3 in b$"):
        check([("a", [settings(_identity())]), ("b", [settings(_identity(epochs=3))])])


def test_precision_is_what_the_experiment_asked_for():
    with pytest.raises(Incomparable, match="precision bf16 in a, fp32 in b"):
        check([("a", [settings(_identity())]), ("b", [settings(_identity(bf16=False))])])
    assert settings(_identity())["precision"] == "bf16"


def test_protocol_seed_and_several_settings_are_all_named():
    seeded = RunConfig(method="ce", seed=0, epochs=3)
    seeded.protocol.noise_seed = 1
    with pytest.raises(Incomparable) as refused:
        check([("a", [settings(_identity())]), ("b", [settings(experiment(seeded))])])
    assert str(refused.value).endswith("epochs 2 in a, 3 in b; protocol seed 0 in a, 1 in b")


def test_a_knob_recorded_before_it_existed_counts_at_its_neutral_value():
    recorded = _identity()
    older = {k: v for k, v in recorded.items() if k not in ("sampler", "recipe")}
    check([("a", [settings(recorded)]), ("b", [settings(older)])])
    official = {**recorded, "recipe": "official"}
    with pytest.raises(Incomparable, match="recipe shared in a, official in b"):
        check([("a", [settings(recorded)]), ("b", [settings(official)])])


def test_a_directory_that_varies_lists_its_values():
    with pytest.raises(Incomparable, match="epochs 2 and 3 in a, 2 in b"):
        check(
            [
                ("a", [settings(i) for i in (_identity(), _identity(epochs=3))]),
                ("b", [settings(_identity())]),
            ]
        )


def _nla(**changes) -> RunConfig:
    cfg = RunConfig(method="nla", seed=0, epochs=2)
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def test_an_official_recipe_and_searched_knobs_are_the_rows_not_the_setting():
    shared = settings(experiment(_nla()))
    official = settings(experiment(apply_recipe(_nla(recipe="official"))))
    check([("a", [shared]), ("b", [shared, official])])  # epochs, optimiser... are its row's
    tuned = _nla()
    tuned.optim.lr = 7e-4
    with pytest.raises(Incomparable, match=r"recipe \(optim.lr\) 0.002 in a, 0.0007 in b$"):
        check([("a", [shared]), ("b", [settings(experiment(tuned))])])
    check([("a", [shared]), ("b", [settings(experiment(tuned), searched=True)])])
    # what neither the recipe nor the search sets must still agree
    other_size = _nla(recipe="official")
    other_size.data.image_size = 64
    with pytest.raises(Incomparable, match="image size"):
        check([("a", [shared]), ("b", [settings(experiment(apply_recipe(other_size)))])])


def test_an_official_run_of_an_unregistered_method_is_refused_in_one_line():
    official = {**experiment(apply_recipe(_nla(recipe="official"))), "method": "my_plugin"}
    with pytest.raises(ValueError, match="official-recipe run of 'my_plugin', a method not "):
        settings(official)


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(_board_settings(), indent=1, sort_keys=True) + "\n")
