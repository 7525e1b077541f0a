"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``), read
without dlib and converted once to a PyTorch file in the harness's cache.

The network is ``anet_type`` of davisking/dlib@3d40bf5
examples/dnn_face_recognition_ex.cpp:47-70: a loss_metric over a 256->128 fc without
bias, global average pooling, five levels of residual blocks and a 7x7/2 stem. dlib
writes a network outermost layer first, and each layer's sub-network before the layer
itself (dlib/dnn/core.h:2765-2771 the loss, :1056-1068 an add_layer, :1441-1453 the one
over the input, :1694-1699 a tag, :3128-3133 a skip), so the reader walks the layer
list of that definition and reads every layer's version string and shape (layers.h
con_ :312-354, max_pool_ :1276-1304, avg_pool_ :1473-1502, fc_ :2216-2243, affine_
:2921-2956, add_prev_ :3044-3050, relu_ :3690-3701; input.h:263-282; loss.h:2207-2228):
a file of any other network is refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fer_bench.pretrained import DLIB_FACE_RESNET_SHA256 as MODEL_SHA256
from fer_bench.pretrained.dlib_serialize import DlibFormatError, DlibReader

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
EXTRA = 'pip install -e ".[face]"'
CONVERTED_FORMAT = 1  # bump when the converted file's layout changes


@dataclass(frozen=True)
class Conv:
    filters: int
    size: int
    stride: int


# Layers outermost first, as dlib's templates nest them. "tag"/"skip" hold no data.
Layer = tuple


def _block(n: int, stride: int) -> list[Layer]:
    # block = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [
        ("affine",),
        ("con", Conv(n, 3, 1)),
        ("relu",),
        ("affine",),
        ("con", Conv(n, 3, stride)),
    ]


def _ares(n: int) -> list[Layer]:
    # relu<add_prev1<block<N,BN,1,tag1<SUBNET>>>>
    return [("relu",), ("add_prev",), *_block(n, 1), ("tag",)]


def _ares_down(n: int) -> list[Layer]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<SUBNET>>>>>>>
    return [("relu",), ("add_prev",), ("avg_pool", 2, 2), ("skip",), ("tag",)] + [
        *_block(n, 2),
        ("tag",),
    ]


def network_layers() -> list[Layer]:
    """``anet_type`` outermost first (dnn_face_recognition_ex.cpp): the reader's map."""
    levels = [(256, 0, 1), (256, 2, 1), (128, 2, 1), (64, 3, 1), (32, 3, 0)]
    layers: list[Layer] = [("fc", 128), ("avg_pool", 0, 1)]
    for width, plain, down in levels:
        layers += _ares(width) * plain + _ares_down(width) * down
    layers += [("max_pool", 3, 2), ("relu",), ("affine",), ("con", Conv(32, 7, 2))]
    return layers


@dataclass
class DlibFaceWeights:
    """What the file holds, in forward order: each convolution's weight and bias
    (out, in, k, k) and (out,), each affine's scale and shift, the embedding (128, 256)
    as PyTorch's Linear holds it, and the input layer's channel means (R, G, B)."""

    convs: list[tuple[np.ndarray, np.ndarray]]
    affines: list[tuple[np.ndarray, np.ndarray]]
    embedding: np.ndarray
    input_mean: np.ndarray
    input_size: int


def read_dlib_face_resnet(data: bytes, name: str = MODEL_FILE) -> DlibFaceWeights:
    """Parse the whole file; DlibFormatError (with the byte offset) on anything else."""
    r = DlibReader(data, name)
    r.expect_integer(1, "add_loss_layer version")
    r.expect_string("loss_metric_2")
    r.floating(), r.floating()  # margin, distance threshold: training-only
    out = DlibFaceWeights([], [], np.empty(0), np.empty(0), 0)
    _read_layers(r, network_layers(), out)
    r.end()
    return out


def _read_layers(r: DlibReader, layers: list[Layer], out: DlibFaceWeights) -> None:
    """Layers outermost first: each wrapper's version, then its sub-network, then (for a
    computational layer) its details and the add_layer's state (core.h)."""
    kind = layers[0][0]
    if kind in ("tag", "skip"):
        r.expect_integer(1, f"add_{kind}_layer version")
        _read_layers(r, layers[1:], out)
        return
    if len(layers) == 1:  # add_layer over the input layer: a version of its own
        version = r.integer(4)
        if version not in (2, 3):
            raise r.fail(f"input add_layer version {version} (expected 2 or 3)")
        _read_input(r, out)
        _read_details(r, layers[0], out)
        _read_layer_state(r, extra_tensors=1)
        if version == 3:
            r.integer(4, signed=False)  # sample expansion factor
        return
    r.expect_integer(2, "add_layer version")
    _read_layers(r, layers[1:], out)
    _read_details(r, layers[0], out)
    _read_layer_state(r, extra_tensors=1)


def _read_layer_state(r: DlibReader, extra_tensors: int) -> None:
    # this_layer_setup_called, gradient_input_is_stale, get_output_and_gradient_input_disabled;
    # x_grad, cached_output, then params_grad (or grad_final): training state, unused.
    for _ in range(3):
        r.boolean()
    for _ in range(2 + extra_tensors):
        r.tensor()


def _read_input(r: DlibReader, out: DlibFaceWeights) -> None:
    r.expect_string("input_rgb_image_sized")
    out.input_mean = np.array([r.floating() for _ in range(3)], dtype=np.float64)
    nr, nc = r.integer(8, signed=False), r.integer(8, signed=False)
    if nr != nc or nr < 1:
        raise r.fail(f"input size {nr}x{nc} (expected a square)")
    out.input_size = nr


def _expect_geometry(r: DlibReader, size: int, stride: int, padding: int, what: str) -> None:
    for name, value, expected in [
        ("rows", r.integer(8), size),
        ("columns", r.integer(8), size),
        ("stride y", r.integer(4), stride),
        ("stride x", r.integer(4), stride),
        ("padding y", r.integer(4), padding),
        ("padding x", r.integer(4), padding),
    ]:
        if value != expected:
            raise r.fail(f"{what} {name} {value} (expected {expected})")


def _read_details(r: DlibReader, layer: Layer, out: DlibFaceWeights) -> None:
    kind = layer[0]
    if kind == "con":
        _read_con(r, layer[1], out)
    elif kind == "affine":
        r.expect_string("affine_")
        params = r.tensor().ravel()
        gamma, beta = r.alias_tensor(), r.alias_tensor()
        r.expect_integer(0, "affine mode (CONV_MODE)")
        n = gamma[1]
        if gamma != (1, n, 1, 1) or beta != gamma or params.size != 2 * n:
            raise r.fail(f"affine shapes {gamma}, {beta} over {params.size} parameters")
        out.affines.append((params[:n].copy(), params[n:].copy()))
    elif kind == "relu":
        r.expect_string("relu_")
    elif kind == "add_prev":
        r.expect_string("add_prev_")
    elif kind in ("avg_pool", "max_pool"):
        r.expect_string(f"{kind}_2")
        size, stride = layer[1], layer[2]
        # dlib's pooling pads size//2 at stride 1 and nothing otherwise (layers.h)
        _expect_geometry(r, size, stride, 0 if stride != 1 else size // 2, kind)
    elif kind == "fc":
        _read_fc(r, layer[1], out)
    else:  # pragma: no cover - network_layers() names only the kinds above
        raise AssertionError(kind)


def _read_con(r: DlibReader, conv: Conv, out: DlibFaceWeights) -> None:
    r.expect_string("con_4")
    params = r.tensor().ravel()
    at = r.offset
    filters = r.integer(8)
    if filters != conv.filters:
        raise r.fail(f"con has {filters} filters (expected {conv.filters})", at)
    pad = conv.size // 2 if conv.stride == 1 else 0
    _expect_geometry(r, conv.size, conv.stride, pad, "con")
    shape, bias = r.alias_tensor(), r.alias_tensor()
    for _ in range(4):
        r.floating()  # learning-rate and weight-decay multipliers: training-only
    n_in = shape[1]
    if shape != (filters, n_in, conv.size, conv.size) or bias != (1, filters, 1, 1):
        raise r.fail(f"con shapes {shape}, {bias}")
    n = filters * n_in * conv.size**2
    if params.size != n + filters:
        raise r.fail(f"con holds {params.size} parameters (expected {n + filters})")
    out.convs.append((params[:n].reshape(shape).copy(), params[n:].copy()))


def _read_fc(r: DlibReader, outputs: int, out: DlibFaceWeights) -> None:
    r.expect_string("fc_2")
    n_out, n_in = r.integer(8, signed=False), r.integer(8, signed=False)
    params = r.tensor().ravel()
    weights, biases = r.alias_tensor(), r.alias_tensor()
    at = r.offset
    mode = r.integer(4)
    if mode != 1:  # FC_NO_BIAS
        raise r.fail(f"fc bias mode {mode} (expected 1, no bias)", at)
    for _ in range(4):
        r.floating()
    if n_out != outputs or weights != (n_in, n_out, 1, 1) or params.size != n_in * n_out:
        raise r.fail(f"fc {n_in}->{n_out} with weights {weights}, {params.size} parameters")
    del biases  # an empty alias in FC_NO_BIAS mode
    # dlib computes input x weights with weights (in, out): Linear's weight is its transpose
    out.embedding = params.reshape(n_in, n_out).T.copy()


# --- the installed file, pinned, and its cached conversion ---


def model_file() -> Path:
    """The .dat file of the installed ``face-recognition-models``; one-line error if absent."""
    # Found, not imported: the package's __init__ imports pkg_resources, which
    # setuptools 81 and later no longer ship, so importing it fails where the file is fine.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"backbone dlib_face_resnet needs the package face-recognition-models: {EXTRA}"
        )
    return Path(spec.submodule_search_locations[0]) / "models" / MODEL_FILE


def converted_weights(path: Path | None = None) -> dict:
    """The file's weights as tensors ({"convs", "affines", "embedding", "input_mean",
    "input_size", "sha256"}), converted once and cached under the harness's cache
    directory by the file's sha256; a file other than the pinned one is an error
    naming both hashes (checked at every call: hashing the file is cheap)."""
    from fer_bench.data.cache import cache_dir

    path = path or model_file()
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != MODEL_SHA256:
        raise ValueError(f"{path}: sha256 {got}, expected the pinned {MODEL_SHA256}")
    cache = cache_dir() / "weights" / f"dlib_face_resnet-{got[:16]}-v{CONVERTED_FORMAT}.pt"
    if cache.is_file():
        return torch.load(cache, map_location="cpu", weights_only=True)
    w = read_dlib_face_resnet(data, str(path))
    state = {
        "convs": [(torch.from_numpy(k), torch.from_numpy(b)) for k, b in w.convs],
        "affines": [(torch.from_numpy(g), torch.from_numpy(b)) for g, b in w.affines],
        "embedding": torch.from_numpy(w.embedding),
        "input_mean": torch.from_numpy(w.input_mean),
        "input_size": w.input_size,
        "sha256": got,
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.{os.getpid()}.partial")
    torch.save(state, partial)
    os.replace(partial, cache)  # never a half-written cache entry
    return state


__all__ = ["DlibFormatError", "converted_weights", "read_dlib_face_resnet"]
