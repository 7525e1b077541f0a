"""dlib_face_resnet: dlib's descriptors reproduced, its weights read and pinned, the
harness's inputs folded in exactly, the fine-tuning fixes function-preserving, and the
method interface (EAC's maps, DMUE's split, two-network methods) working on it."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch

from fer_bench.backbones import Backbone, TrainingInputs, create_backbone
from fer_bench.config import RunConfig
from fer_bench.methods.eac import class_activation_maps, flip_consistency
from fer_bench.pretrained import DLIB_FACE_RESNET_SHA256
from fer_bench.pretrained.dlib_face_resnet import DlibFaceResNet, min_input_side, output_side
from fer_bench.pretrained.dlib_resnet_file import network_layers
from fer_bench.records.identity import experiment


def face_models_installed() -> bool:
    """Whether the weights file can be had (found, not imported: the package's
    __init__ needs pkg_resources, which recent setuptools lacks)."""
    from fer_bench.pretrained.dlib_resnet_file import model_file

    try:
        return model_file().is_file()
    except ImportError:
        return False


def installed_weights() -> dict:
    from fer_bench.pretrained.dlib_resnet_file import converted_weights

    if not face_models_installed():
        pytest.skip('face-recognition-models not installed (".[face]")')

    return converted_weights()


def fake_weights(seed: int = 0) -> dict:
    """Weights shaped as the file's, scaled as its are (tiny convs, large affines)."""
    gen = torch.Generator().manual_seed(seed)
    convs, affines, cin = [], [], 3
    for layer in reversed(network_layers()):
        if layer[0] == "con":
            conv = layer[1]
            kernel = torch.randn(conv.filters, cin, conv.size, conv.size, generator=gen)
            convs.append((kernel * 0.01, torch.randn(conv.filters, generator=gen) * 0.1))
            affines.append((5 + torch.rand(conv.filters, generator=gen), torch.zeros(conv.filters)))
            cin = conv.filters
    return {
        "convs": convs,
        "affines": affines,
        "embedding": torch.randn(128, 256, generator=gen) * 0.05,
        "input_mean": torch.tensor([122.782, 117.001, 104.298], dtype=torch.float64),
        "sha256": "0" * 64,
    }


def dlib_input(pixels: torch.Tensor, weights: dict) -> torch.Tensor:
    """dlib's input layer: (pixel - channel mean) / 256 on 0-255 RGB (dlib/dnn/input.h)."""
    return (
        pixels.expand(-1, 3, -1, -1) * 255 - weights["input_mean"].float().view(1, 3, 1, 1)
    ) / 256


def dlib_model(weights: dict, in_chans: int = 3, last_stride: int = 2) -> DlibFaceResNet:
    model = DlibFaceResNet(num_classes=0, in_chans=in_chans, last_stride=last_stride, neck=False)
    model.load_dlib(weights)
    return model.eval()


def test_embedding_equals_dlibs_face_descriptors() -> None:
    dlib = pytest.importorskip("dlib", reason="dlib-bin not installed (the reference)")
    weights = installed_weights()
    from fer_bench.pretrained.dlib_resnet_file import model_file

    reference = dlib.face_recognition_model_v1(str(model_file()))
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 150, dtype=np.float32)
    rows, cols = np.meshgrid(ramp, ramp, indexing="ij")
    gradient = np.stack([(rows + cols) / 2, cols, 255 - rows], -1).astype(np.uint8)
    # aligned 150x150 RGB chips: noise, and a smooth colour gradient
    chips = [rng.integers(0, 256, (150, 150, 3), dtype=np.uint8), gradient]
    expected = np.stack([np.array(reference.compute_face_descriptor(c, 0)) for c in chips])
    pixels = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        embedding = dlib_model(weights)(dlib_input(pixels, weights)) @ weights["embedding"].T
    np.testing.assert_allclose(embedding.numpy(), expected, atol=1e-5, rtol=0)


def test_the_installed_file_is_pinned_and_counted_by_the_identity() -> None:
    assert installed_weights()["sha256"] == DLIB_FACE_RESNET_SHA256
    cfg = RunConfig(backbone="dlib_face_resnet")
    assert experiment(cfg)["backbone_weights"] == f"sha256={DLIB_FACE_RESNET_SHA256}"
    assert "backbone_weights" not in experiment(RunConfig())


def test_another_file_is_refused_naming_both_hashes(tmp_path) -> None:
    from fer_bench.pretrained.dlib_resnet_file import converted_weights

    other = tmp_path / "other.dat"
    other.write_bytes(b"not dlib's file")
    with pytest.raises(ValueError, match=f"sha256 [0-9a-f]{{64}}, .*{DLIB_FACE_RESNET_SHA256}"):
        converted_weights(other)


def test_a_missing_package_names_the_extra(monkeypatch) -> None:
    from fer_bench.pretrained.dlib_resnet_file import model_file

    monkeypatch.setitem(__import__("sys").modules, "face_recognition_models", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[face\]"'):
        model_file()


def test_the_reader_refuses_an_unknown_layer_version_and_trailing_bytes() -> None:
    installed_weights()
    from fer_bench.pretrained.dlib_resnet_file import (
        DlibFormatError,
        model_file,
        read_dlib_face_resnet,
    )

    data = model_file().read_bytes()
    at = data.index(b"con_4") - 2  # the length: a control byte, then 5
    with pytest.raises(DlibFormatError, match=rf"byte {at}: expected 'con_4', found 'con_9'"):
        read_dlib_face_resnet(data.replace(b"con_4", b"con_9", 1))
    with pytest.raises(DlibFormatError, match=rf"byte {len(data)}: 1 trailing bytes"):
        read_dlib_face_resnet(data + b"\0")


@pytest.mark.parametrize("chans", [1, 3])
def test_the_harness_normalisation_folds_exactly_into_the_stem(chans: int) -> None:
    weights = fake_weights()
    pixels = torch.rand(3, chans, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = dlib_model(weights)(dlib_input(pixels, weights))
    mean, std = torch.rand(chans) * 0.4 + 0.3, torch.rand(chans) * 0.2 + 0.1
    folded = dlib_model(weights, in_chans=chans)
    folded.rescale_convs()  # in either order: the stem keeps its R, G, B sums
    folded.fold_input_normalisation(mean, std)
    with torch.no_grad():
        got = folded((pixels - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1))
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()  # float rounding


def test_the_fine_tuning_fixes_keep_the_networks_output() -> None:
    """Convs rescaled (scale into the affines), then affines turned into batch norm
    calibrated on images: in eval mode the features are those loaded."""
    model = dlib_model(fake_weights(), in_chans=1, last_stride=1)
    gen = torch.Generator().manual_seed(2)
    x, calibration = torch.randn(2, 1, 112, 112, generator=gen), torch.randn(8, 1, 112, 112)
    with torch.no_grad():
        before = model(x)
        model.rescale_convs()
        rescaled = model(x)
        model.affines_to_batch_norm(calibration)
        converted = model.eval()(x)
    scale = before.abs().max()
    assert (rescaled - before).abs().max() <= 1e-5 * scale  # float rounding
    assert (converted - before).abs().max() <= 1e-5 * scale
    weights = [conv.weight.detach() for conv, _ in model.norm_pairs()]
    assert all(isinstance(norm, torch.nn.BatchNorm2d) for _, norm in model.norm_pairs())
    assert min(float(w.pow(2).mean().sqrt()) for w in weights) > 0.01  # none tiny now


def test_an_input_below_the_minimum_is_a_one_line_error() -> None:
    assert (min_input_side(2), min_input_side(1)) == (103, 55)
    assert [output_side(s, 2) for s in (103, 112, 150)] == [1, 1, 2]
    assert output_side(112, 1) == 3  # the default: EAC's maps have extent at 112 px
    net = Backbone(DlibFaceResNet(num_classes=7, in_chans=1))
    with pytest.raises(ValueError, match=r"at least 55 px \(got 48x48\); set --image-size") as e:
        net(torch.zeros(1, 1, 48, 48))
    assert "\n" not in str(e.value)


def adapted_backbone() -> Backbone:
    """The registered backbone as the trainer builds it, or its shape with fake weights
    (a copy of one built once: building reads and hashes the weights file)."""
    return copy.deepcopy(_adapted_backbone())


@functools.cache
def _adapted_backbone(seed: int = 0) -> Backbone:
    if not face_models_installed():
        model = DlibFaceResNet(num_classes=7, in_chans=1)
        model.load_dlib(fake_weights(seed))
        model.rescale_convs()
        sample = torch.randn(8, 1, 112, 112, generator=torch.Generator().manual_seed(seed))
        model.adapt_to_inputs(torch.tensor([0.5]), torch.tensor([0.25]), sample)
        return Backbone(model)
    sample = torch.randn(8, 1, 112, 112, generator=torch.Generator().manual_seed(seed))
    inputs = TrainingInputs(torch.tensor([0.5]), torch.tensor([0.25]), sample)
    return create_backbone("dlib_face_resnet", 7, 1, inputs=inputs)


def test_eac_maps_have_extent_and_their_flip_consistency_responds_to_a_flip() -> None:
    """EAC's term compares the maps of a view with the mirrored maps of its mirror view.
    At 112 px the last stride 1 gives 3x3 maps, so the term is positive and the flip in
    it acts (dlib's own geometry ends in 1x1 maps there, which a flip leaves as they are)."""
    net = adapted_backbone().eval()
    ramp = torch.linspace(-2, 2, 112).view(1, 1, 1, 112).expand(2, 1, 112, 112)
    x = ramp + 0.3 * torch.randn(2, 1, 112, 112, generator=torch.Generator().manual_seed(3))
    weight = net.classifier.weight
    with torch.no_grad():
        cams = class_activation_maps(net.feature_map(x), weight)
        mirrored = class_activation_maps(net.feature_map(x.flip(-1)), weight)
    assert cams.shape[-2:] == (3, 3)
    term = flip_consistency(cams, mirrored)
    unflipped = torch.nn.functional.mse_loss(cams, mirrored)
    assert term > 0 and not torch.isclose(term, unflipped, rtol=0.1)
    assert output_side(112, last_stride=2) == 1


def test_split_last_stage_and_new_backbones_are_pretrained_and_equal() -> None:
    first, second = adapted_backbone().eval(), adapted_backbone().eval()
    trunk, last = first.split_last_stage()
    x = torch.randn(2, 1, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(last(trunk(x)), first.feature_map(x))
        torch.testing.assert_close(second.feature_map(x), first.feature_map(x))
    split = {id(p) for p in [*trunk.parameters(), *last.parameters()]}
    assert split == {id(p) for p in first.parameters()} - {
        id(p) for p in first.classifier.parameters()
    }


BOARD = [(m, "shared") for m in ("ce", "nla", "scn", "rul", "eac", "dmue")]


@pytest.mark.parametrize(
    ("name", "recipe"), BOARD + [(m, "official") for m in ("scn", "rul", "eac", "nla")]
)
def test_the_boards_methods_train_a_step_on_it(name: str, recipe: str) -> None:
    from fer_bench.methods.base import Batch, TrainInfo, build_hparams
    from fer_bench.recipes import official_recipe
    from fer_bench.registry import METHODS

    torch.manual_seed(0)
    cls, n, b = METHODS.get(name), 16, 4
    hparams = official_recipe(name).hparams if recipe == "official" else {}
    info = TrainInfo(7, n, torch.arange(n) % 7, 2, n // b, b, new_backbone=adapted_backbone)
    method = cls(adapted_backbone(), info, build_hparams(cls, hparams))
    x = torch.randn(b, 1, 112, 112)
    batch = Batch(x=x, y=info.observed_labels[:b], index=torch.arange(b), x2=x.flip(-1))
    out = method.loss(batch, 0)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert method.predict(x).shape == (b, 7)
