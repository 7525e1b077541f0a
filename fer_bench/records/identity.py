"""What an experiment is: the one definition behind run names, sweep plans and table rows.

:func:`experiment` maps a :class:`RunConfig` to its identity: the method, its
hyperparameters resolved through the method's typed defaults (``q=0.7``,
``q=0.70`` and no override are one experiment), the canonical protocol (every
rate-based protocol at rate 0 is the clean set; a label file is named by its
content) and the recipe. Where things live or run (``data.root``, ``device``,
``plugin``, evaluation batching, memory layout, compilation) is not part of it, and a
pretrained checkpoint is named by its content, not its path, as are the weights a
backbone loads itself (``backbone_weights``, fer_bench.pretrained.BUILTIN_WEIGHTS).

A method's code is not in the identity either (editing a docstring must not
rename every run): it is fingerprinted separately (:func:`method_code`, an
AST digest without docstrings or comments) and recorded beside the identity,
so a record whose method changed since is reported as stale
(:func:`staleness`) rather than served as current.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from fer_bench.config import ProtocolConfig, RunConfig
from fer_bench.hparams import parse_overrides
from fer_bench.pretrained import BUILTIN_WEIGHTS
from fer_bench.records.layout import CONFIG
from fer_bench.records.ledger import neutral_fields, same_code
from fer_bench.registry import METHODS, NOISE, RegistryError, method_class

# Settings that do not change what is computed, only where or how fast.
_NOT_IDENTITY = ("device", "plugin", "eval_batch_size", "channels_last", "torch_compile")
_NOT_IDENTITY_DATA = ("root",)


def takes_rate(noise: str) -> bool:
    """False for protocols whose noise comes from the data (fer2013, votes, file:)."""
    name = noise.partition(":")[0]
    if (facts := NOISE.fact(name)) is not None:
        return facts["takes_rate"]
    try:
        cls = NOISE.get(name)
    except RegistryError:
        return True
    return bool(getattr(cls, "takes_rate", True))


def canonical_fields(
    noise: str, rate: float, imbalance: float, imbalance_type: str
) -> dict[str, Any]:
    """One spelling per label set, so equal protocols share a name."""
    rate, imbalance = float(rate), float(imbalance)
    if not takes_rate(noise):
        rate = 0.0
    elif rate == 0.0:
        noise = ProtocolConfig.noise  # every rate-based protocol at rate 0 is the clean set
    if imbalance == 1.0:
        imbalance_type = ProtocolConfig.imbalance_type  # no subsampling: the type is moot
    return {
        "noise": noise,
        "noise_rate": rate,
        "imbalance": imbalance,
        "imbalance_type": imbalance_type,
    }


def canonical_protocol(p: ProtocolConfig) -> dict[str, Any]:
    """The protocol as identity: canonical fields, a label file named by its content."""
    fields = canonical_fields(p.noise, p.noise_rate, p.imbalance, p.imbalance_type)
    fields["noise"] = _file_by_content(fields["noise"])
    return {**fields, "noise_seed": int(p.noise_seed), "noise_on_val": bool(p.noise_on_val)}


def _file_by_content(noise: str) -> str:
    name, sep, path = noise.partition(":")
    if not sep or not Path(path).is_file():
        return noise  # a missing file is the protocol's to report when labels are built
    return f"{name}:sha256={file_digest(path)}"


@cache
def _digest_cached(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    stat = Path(path).stat()
    return _digest_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def resolved_hparams(method: str, overrides: dict[str, str]) -> dict[str, Any]:
    """The method's defaults under ``overrides``. From the static index (no torch) when
    it is current: its values are typed but not passed through the method's own checks
    (``__post_init__``), so use :func:`fer_bench.methods.base.build_hparams` to validate
    new values; a record's values passed them when its method, unchanged since, ran."""
    if (facts := METHODS.fact(method)) is not None:
        fields = facts["hparams"]
        types = {k: field["type"] for k, field in fields.items()}
        return {k: field["default"] for k, field in fields.items()} | parse_overrides(
            types, overrides
        )
    from fer_bench.methods.base import build_hparams  # imports torch: only when resolving

    return dataclasses.asdict(build_hparams(METHODS.get(method), overrides))


def experiment(cfg: RunConfig, hparams: dict[str, Any] | None = None) -> dict[str, Any]:
    """The identity of ``cfg``'s run. ``hparams``: already resolved values (a record's)."""
    d = cfg.to_dict()
    for key in _NOT_IDENTITY:
        d.pop(key)
    for key in _NOT_IDENTITY_DATA:
        d["data"].pop(key)
    for key, neutral in neutral_fields().items():
        *sections, name = key.split(".")
        table = d
        for section in sections:
            table = table[section]
        if table.get(name, neutral) == neutral:
            table.pop(name, None)
    d["hparams"] = hparams if hparams is not None else resolved_hparams(cfg.method, cfg.hparams)
    d["protocol"] = canonical_protocol(cfg.protocol)
    if cfg.pretrained:
        d["pretrained"] = f"sha256={file_digest(cfg.pretrained)}"
    if cfg.backbone in BUILTIN_WEIGHTS:  # a backbone's own weights (dlib_face_resnet)
        d["backbone_weights"] = BUILTIN_WEIGHTS[cfg.backbone]
    return d


def digest(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_hash(cfg: RunConfig) -> str:
    return digest(experiment(cfg))


def run_name(cfg: RunConfig) -> str:
    return f"{cfg.method}-{run_hash(cfg)}"


def row_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """What a table row stands for: the experiment without its seed and protocol."""
    return {k: v for k, v in identity.items() if k not in ("seed", "protocol")}


# --- the method's code ---------------------------------------------------------------


# Declarations beside a method's code that do not change what it computes: its official
# recipe, search space and listing family (hyperparameter defaults count through the
# identity instead).
_DECLARATIONS = ("official_recipe", "search_space", "family")
_DECLARATION_MODULES = ("__future__", "typing")


def _is_declaration(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module in _DECLARATION_MODULES
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    names = {t.id for t in targets if isinstance(t, ast.Name)}
    return isinstance(node, ast.Assign | ast.AnnAssign) and bool(names & set(_DECLARATIONS))


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _strip_declarations(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and _is_docstring(body[0]):
                body = body[1:]
            node.body = [n for n in body if not _is_declaration(n)] or [ast.Pass()]
    return tree


def _is_fer_bench_import(node: ast.AST) -> bool:
    return isinstance(node, ast.ImportFrom) and (
        node.level > 0 or (node.module or "").partition(".")[0] == "fer_bench"
    )


def _canonical_imports(tree: ast.Module) -> ast.Module:
    """Every import from fer_bench, wherever its module lives and however the names are
    grouped, as one import of the sorted names the code uses: moving or renaming a core
    module changes no method's fingerprint, and names only a declaration used (a search
    space's distributions, a recipe's helpers) do not count."""
    imported: dict[str, ast.alias] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            kept = [n for n in node.body if not _is_fer_bench_import(n)]
            for n in node.body:
                if _is_fer_bench_import(n):
                    imported |= {a.asname or a.name: a for a in n.names}
            node.body = kept or [ast.Pass()]
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names = [imported[k] for k in sorted(imported) if k in used]
    if names:
        tree.body.insert(0, ast.ImportFrom(module="fer_bench", names=names, level=0))
    return tree


def source_fingerprint(source: str) -> str:
    """Digest of Python source as code: docstrings, comments, layout, the method's
    recipe, search-space and family declarations and where the core modules it imports
    live do not count. Recorded in every run: a change to what this function counts
    makes every recorded run stale unless the ledger (fer_bench.records.ledger) maps
    the fingerprints recorded before to today's."""
    tree = _canonical_imports(_strip_declarations(ast.parse(source)))
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


# The method family's contract (methods/base.py): engine code, not any method's.
_CONTRACT = "fer_bench.methods.base"


def _plugin_modules(cls: type) -> list[ModuleType]:
    """The method's module and the modules of its own package it takes names from
    (e.g. SCN's relabelling helper); the core's contracts, the family's base module
    included, are not the method's code."""
    module = sys.modules[cls.__module__]
    package = cls.__module__.rpartition(".")[0] or cls.__module__
    found = {module.__name__: module}
    for value in vars(module).values():
        name = getattr(value, "__module__", None) or ""
        helper = name != module.__name__ and name.startswith(package + ".")
        if helper and name != _CONTRACT and name in sys.modules:
            found[name] = sys.modules[name]
    return [found[n] for n in sorted(found)]


@cache
def _imported_source(module_name: str) -> str:
    """A module's source as this process first read it: a long-lived sweep worker runs
    the code it imported, and ``inspect`` would re-read a file edited since."""
    return inspect.getsource(sys.modules[module_name])


@cache
def _module_fingerprint(module_name: str) -> str:
    # Once per module and process: a table checks every run's code, and parsing is slow.
    return source_fingerprint(_imported_source(module_name))


def method_code(method: str) -> str:
    """Fingerprint of a registered method's code (its module and same-package helpers)."""
    if (facts := METHODS.fact(method)) is not None:
        return facts["code"]
    cls = METHODS.get(method)
    prints = [_module_fingerprint(m.__name__) for m in _plugin_modules(cls)]
    return combine(prints)


def combine(fingerprints: list[str]) -> str:
    return hashlib.sha256("/".join(fingerprints).encode()).hexdigest()[:16]


# --- records ------------------------------------------------------------------------


def record_fields(cfg: RunConfig) -> dict[str, Any]:
    """What config.json stores beside the config: the identity, its hash, the code."""
    identity = experiment(cfg)
    return {
        "hash": digest(identity),
        "experiment": identity,
        "method_code": method_code(cfg.method),
    }


class CannotCheck(Exception):
    """A record that cannot be checked against today's code: unreadable, or naming a
    method not registered here (a plugin file not at hand) or a file not at hand."""


def staleness(stored: dict[str, Any]) -> str | None:
    """Why a recorded run is no longer the experiment its config names under today's
    code (its method's code or resolved defaults changed), or None if it is current."""
    try:
        cfg = RunConfig.from_dict(config_part(stored))
        if METHODS.fact(cfg.method) is None:  # the index knows built-ins
            method_class(cfg.method, cfg.plugin)  # a record's plugin is named, never imported
        current = experiment(cfg)
        code = method_code(cfg.method)
    # OSError: a file the record names (--pretrained) is not at hand here.
    except (RegistryError, ValueError, TypeError, KeyError, OSError) as err:
        raise CannotCheck(f"cannot be checked against today's code: {err}") from None
    recorded = stored.get("experiment")
    if recorded is None:
        return "recorded before experiment identities: no record of its method's code"
    if recorded.get("hparams") != current["hparams"]:
        changed = _changed(recorded.get("hparams", {}), current["hparams"])
        return f"method defaults changed since it was recorded ({changed})"
    if not same_code(stored.get("method_code"), code):
        return "method code changed since it was recorded"
    return None


def recorded_staleness(run_path: Path) -> str | None:
    """``staleness`` of the run recorded in ``run_path``'s config.json; a record that
    cannot be read raises :class:`CannotCheck` too."""
    try:
        stored = json.loads((run_path / CONFIG).read_text())
    except (OSError, ValueError) as err:
        raise CannotCheck(f"its config.json cannot be read ({err})") from None
    return staleness(stored)


def experiment_of(stored: dict[str, Any]) -> dict[str, Any]:
    """The identity of a stored config (config.json without its record fields)."""
    return experiment(RunConfig.from_dict(config_part(stored)))


def config_part(stored: dict[str, Any]) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    return {k: v for k, v in stored.items() if k in fields}


def _changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(
        f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)
    )
