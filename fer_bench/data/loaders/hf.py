"""Any Hugging Face ``datasets`` dataset with an image column and a class-label column.

``--dataset hf:NAME_OR_PATH``: a folder written by ``save_to_disk`` (relative
to ``--data-root`` when one is given) is read with ``load_from_disk``, anything
else goes to ``load_dataset`` (the hub, or its local cache when offline).
The image column is the one ``Image`` feature and the label column the one
``ClassLabel`` feature, unless ``--label-mode image=COL,label=COL`` names them;
the ClassLabel names must be expression names. Splits: ``train`` and ``test``
are required, ``validation``/``val``/``valid`` is used when present, else a
stratified 10% of train is held out.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_bench.config import DataConfig
from fer_bench.data.base import DatasetBundle, Split
from fer_bench.data.cache import ImageSink, cached, source_key
from fer_bench.data.imaging import ImageRef, check_format, decode_bytes, decode_file
from fer_bench.data.splits import carve_val
from fer_bench.expressions import canonical
from fer_bench.registry import DATASETS

if TYPE_CHECKING:
    import datasets

VAL_NAMES = ("validation", "val", "valid")


def parse_columns(spec: str | None) -> dict[str, str]:
    """``image=COL,label=COL`` (either part optional) -> {"image": COL, "label": COL}."""
    columns: dict[str, str] = {}
    for part in filter(None, (spec or "").split(",")):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in ("image", "label") or not value.strip():
            raise ValueError(f"hf label mode must look like image=COL,label=COL (got {spec!r})")
        columns[key.strip()] = value.strip()
    return columns


def _open(source: str, root: str | None) -> tuple[datasets.DatasetDict, str]:
    import datasets  # slow to import (~0.5 s); only hf: datasets need it

    local = Path(root).expanduser() / source if root else Path(source).expanduser()
    if local.is_dir():
        try:
            loaded = datasets.load_from_disk(str(local))
        except Exception as err:  # datasets raises many kinds; name the folder at least
            raise ValueError(
                f"{local}: load_from_disk failed: {type(err).__name__}: {err}"
            ) from err
        where = str(local.resolve())
    else:
        if root:
            raise FileNotFoundError(f"folder not found: {local}")
        loaded = datasets.load_dataset(source)
        where = source
    if not isinstance(loaded, datasets.DatasetDict):
        raise ValueError(f"{where}: a single split; need a DatasetDict with train and test")
    return loaded, where


def _pick(features: datasets.Features, kind: type, given: str | None, what: str, where: str) -> str:
    if given is not None:
        if given not in features:
            raise ValueError(f"{where}: no column {given!r}; columns: {', '.join(features)}")
        if not isinstance(features[given], kind):
            raise ValueError(f"{where}: column {given!r} is not a {kind.__name__} feature")
        return given
    found = [name for name, f in features.items() if isinstance(f, kind)]
    if len(found) != 1:
        raise ValueError(
            f"{where}: expected one {kind.__name__} column for the {what}, found "
            f"{found or 'none'}; name it with --label-mode {what}=COL"
        )
    return found[0]


def _decode_split(
    ds: datasets.Dataset, image_col: str, where: str, size: int, channels: int
) -> np.ndarray:
    import datasets

    raw = ds.cast_column(image_col, datasets.Image(decode=False))[image_col]
    out = np.empty((len(ds), channels, size, size), dtype=np.uint8)
    for i, item in enumerate(raw):
        row = f"{where} row {i}"
        if item is None:
            raise ValueError(f"{row}: no image")
        if item.get("bytes"):
            out[i] = decode_bytes(item["bytes"], row, size, channels)
        else:
            out[i] = decode_file(ImageRef(Path(item["path"]), row), size, channels)
    return out


@DATASETS.register("hf")
def load(cfg: DataConfig) -> DatasetBundle:
    import datasets

    source = cfg.name.partition(":")[2]
    if not source:
        raise ValueError("hf dataset needs a name or path: hf:NAME_OR_PATH")
    check_format(cfg.image_size, cfg.channels)
    columns = parse_columns(cfg.label_mode)
    dd, where = _open(source, cfg.root)
    names = {"train": "train", "test": "test"}
    for split in names.values():
        if split not in dd:
            raise ValueError(f"{where}: no {split!r} split (has {', '.join(dd)})")
    val_name = next((n for n in VAL_NAMES if n in dd), None)
    if val_name is not None:
        names["val"] = val_name
    features = dd["train"].features
    image_col = _pick(features, datasets.Image, columns.get("image"), "image", where)
    label_col = _pick(features, datasets.ClassLabel, columns.get("label"), "label", where)
    try:
        class_names = tuple(canonical(c) for c in features[label_col].names)
    except ValueError as err:
        raise ValueError(f"{where}: class label {label_col!r}: {err}") from None
    labels = {}
    for split, name in names.items():
        if dd[name].features.get(label_col) != features[label_col]:
            raise ValueError(f"{where}/{name}: column {label_col!r} differs from train's")
        labels[split] = np.asarray(dd[name][label_col], dtype=np.int64)
        if len(labels[split]) == 0:
            raise ValueError(f"{where}/{name}: no rows (empty split)")
        bad = np.flatnonzero((labels[split] < 0) | (labels[split] >= len(class_names)))
        if len(bad):
            raise ValueError(
                f"{where}/{name} row {bad[0]}: label {labels[split][bad[0]]} "
                f"outside 0..{len(class_names) - 1}"
            )
    digest = hashlib.sha256(repr(class_names).encode())
    for split in names:
        digest.update(split.encode() + labels[split].tobytes())
    hashes = {label_col: digest.hexdigest()}
    files = [
        ImageRef(Path(f["filename"]), where) for n in names.values() for f in dd[n].cache_files
    ]
    options = {
        "loader": "hf",
        "source": where,
        "columns": [image_col, label_col],
        "image_size": cfg.image_size,
        "channels": cfg.channels,
    }
    key = source_key(options, hashes, files)

    def build(_sink: ImageSink) -> DatasetBundle:  # decoded in memory; cached() stores it
        splits = {}
        for split, name in names.items():
            images = _decode_split(
                dd[name], image_col, f"{where}/{name}", cfg.image_size, cfg.channels
            )
            splits[split] = Split(
                images=images,
                labels=labels[split],
                names=[f"{name}/{i}" for i in range(len(images))],
            )
        info = {
            "source": f"hf:{where}",
            "columns": {"image": image_col, "label": label_col},
            "label_files_sha256": hashes,
            "splits": names,
        }
        if "val" not in splits:
            splits["train"], splits["val"], info["val_split"] = carve_val(splits["train"], "train")
        return DatasetBundle(name=f"hf:{source}", class_names=class_names, info=info, **splits)

    return cached("hf", key, build)
