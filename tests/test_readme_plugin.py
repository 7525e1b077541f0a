"""The README's "Writing a method" example runs exactly as printed."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import replace
from pathlib import Path

import fer_bench.training.engine as engine
from fer_bench.registry import load_plugin_file

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_blocks(heading: str, language: str) -> list[str]:
    section = README.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def test_readme_plugin_example_trains(tmp_path, micro_bundle, micro_config):
    (code,) = _section_blocks("Writing a method", "python")
    plugin = tmp_path / "my_method.py"
    plugin.write_text(code)
    load_plugin_file(plugin)
    cfg = replace(micro_config, method="boot", epochs=1, hparams={"beta": "0.8"})
    cfg.protocol.noise_rate = 0.3
    final = engine.train(cfg, tmp_path / "runs", progress=False, bundle=micro_bundle)
    assert final["status"] == "done" and final["hparams"] == {"beta": 0.8}
    rows = (engine.run_dir(cfg, tmp_path / "runs") / "metrics.jsonl").read_text().splitlines()
    row = json.loads(rows[0])
    assert row["noise"]["score_name"] == "p_label" and row["noise"]["auroc"] is not None
    assert 0 < row["train"]["p_label"] < 1


def test_readme_entry_point_snippet_is_valid_toml():
    (snippet,) = _section_blocks("Writing a method", "toml")
    assert tomllib.loads(snippet)["project"]["entry-points"]["fer_bench.methods"]["boot"]
