"""Rename run directories recorded before experiment identities (fer_bench.records.identity).

An old record's directory was named from a hash of its raw config (data root,
device and plugin path included; ``q=0.7`` and no override apart). Migration
renames it to the name its experiment has now, computed from the
hyperparameters the record says it trained with (``final.json`` ``hparams``),
and records its method's code fingerprint: of the source at the commit the
run recorded when git has that commit, so a method edited since shows as
stale; otherwise of today's code, which the report then says it assumed.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_bench.atomic import write_json_atomic
from fer_bench.config import RunConfig
from fer_bench.records.identity import (
    _plugin_modules,
    combine,
    config_part,
    digest,
    experiment,
    method_code,
    source_fingerprint,
)
from fer_bench.records.layout import CONFIG, FINAL
from fer_bench.registry import METHODS


@dataclass(frozen=True)
class Migration:
    old: Path
    new: Path
    code_from: str  # "commit <sha>" | "today's code (assumed)"


def _code_at_commit(method: str, commit: str | None) -> str | None:
    """The method's fingerprint from its source files at ``commit``, or None if git
    cannot show them."""
    if not commit:
        return None
    parts = []
    for module in _plugin_modules(METHODS.get(method)):
        path = Path(module.__file__).resolve()
        root = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=path.parent, capture_output=True, text=True
        )
        if root.returncode != 0:
            return None
        relative = path.relative_to(root.stdout.strip()).as_posix()
        shown = subprocess.run(
            ["git", "show", f"{commit}:{relative}"], cwd=path.parent, capture_output=True, text=True
        )
        if shown.returncode != 0:
            return None
        parts.append(source_fingerprint(shown.stdout))
    return combine(parts)


def _migrated(stored: dict[str, Any], final: dict[str, Any]) -> tuple[dict[str, Any], str]:
    cfg = RunConfig.from_dict(config_part(stored))
    identity = experiment(cfg, hparams=final["hparams"])
    commit = (final.get("environment") or {}).get("code", {}).get("commit")
    code = _code_at_commit(cfg.method, commit)
    code_from = f"commit {commit[:12]}" if code else "today's code (assumed)"
    fields = {
        "hash": digest(identity),
        "experiment": identity,
        "method_code": code or method_code(cfg.method),
    }
    return {**config_part(stored), **fields}, code_from


def _rekeyed(stored: dict[str, Any]) -> dict[str, Any]:
    """A record of this format under today's identity function (e.g. after a field
    was made hash-neutral), keeping its recorded hyperparameters and code."""
    cfg = RunConfig.from_dict(config_part(stored))
    identity = experiment(cfg, hparams=stored["experiment"]["hparams"])
    return {**stored, "hash": digest(identity), "experiment": identity}


def plan_migration(runs_dir: Path) -> list[tuple[Path, dict, dict, str]]:
    """(old dir, new config.json, new final.json, code source) of every finished run
    whose name is not its identity's; refuses when two runs would get one name."""
    out, names = [], {}
    for path in sorted(p for p in runs_dir.iterdir() if (p / FINAL).exists()):
        stored = json.loads((path / CONFIG).read_text())
        final = json.loads((path / FINAL).read_text())
        if "experiment" in stored:
            config, code_from = _rekeyed(stored), "its record"
            if config["hash"] == stored["hash"]:
                continue
        else:
            config, code_from = _migrated(stored, final)
        name = f"{config['method']}-{config['hash']}"
        if name in names:
            raise ValueError(f"{path.name} and {names[name]} are one experiment ({name})")
        names[name] = path.name
        out.append((path, config, {**final, "hash": config["hash"]}, code_from))
    return out


def migrate(runs_dir: Path) -> list[Migration]:
    done = []
    for path, config, final, code_from in plan_migration(runs_dir):
        new = path.with_name(f"{config['method']}-{config['hash']}")
        write_json_atomic(path / CONFIG, config)
        write_json_atomic(path / FINAL, final)
        path.rename(new)
        done.append(Migration(path, new, code_from))
    return done
