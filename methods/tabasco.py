"""TABASCO - Two-stAge Bi-dimensional Sample seleCtiOn (Lu et al., ICCV 2023), after
Wakings/TABASCO at 712992b (experiment/train_cifar_ssl.py).

DivideMix's training (``methods/dividemix.py``: two networks, plain cross-entropy warm-up,
co-divided MixMatch, train_cifar_ssl.py:51-132, 652-696) with its own division, made by
each network at the start of each epoch after the warm-up, per observed class c
(``bi_dimensional_sample_selection_2``, :253-370), over the class's samples:
* WJSD: ``w JS(p, onehot(c))``, ``w = p_max / p_c`` clamped to [1, A_c,max / A_c,c]
  with ``A_c`` the class's mean prediction (:382-403, 510-522, 589-595);
* ACD: the dot product of the centred, L2-normalised feature with the class's adaptive
  centroid, the mean centred, normalised feature of the class's samples predicted as
  ``b = argmax A2_c`` above ``A2_c,b``, all of the class if none (:468-508), where
  ``A2_c`` is the mean prediction with column ``argmax A_c`` scaled by
  ``max(1, p / A_c,argmax)`` (:524-541; the centre is the mean feature of all samples);
* each min-max normalised and fitted by a two-component mixture (max_iter 30, tol 1e-2,
  reg_covar 5e-4, :580-587); the two ACD groups' mean WJSD are assigned to WJSD
  components, each component's std from its group (0.1 if 0, 1 if none); WJSD decides
  when both groups fall in its high component, or when that component's std over the
  low one's is below 0.65 (:316-341); it keeps its low component, with its posterior;
* otherwise ACD keeps its high (near) component, or its low one when the class's
  centroid is within 10 % of its most similar other centroid (softmax of the centroids'
  dot products) and has fewer selected samples than it (:279, 356-368).
A kept sample's clean probability is that posterior (above 0.5), the others' 0, so
DivideMix's ``p_threshold`` 0.5 labels exactly the kept samples (train_cifar_ssl.py:690).

Defaults: warm-up 10 of 100 epochs (CIFAR-10, :632-635, 658), ramp 16, lambda_u 25, T
0.5, alpha 4 (settings/configs.py); the official warm-up never applies its negative
entropy (:645-646): ``conf_penalty`` off. Scores: 1 in the warm-up. Adaptations: the
statistics come from one pass in the evaluation view (official: per-class loaders, batch
means of means, the centre from the augmented training loader, :275); ``fer_bench.gmm``
replaces scikit-learn; the official guard for an empty ACD group tests a mask's size,
never 0 (:311-314), and would fail on the empty group's mean; here the empty group takes
the other's statistics; a class whose values are all equal is kept whole.

Repeated indices (``--sampler balanced``): as in DivideMix, the clean probabilities are
written only by the epoch-start pass, which reads every image once; a step only reads
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from fer_bench.gmm import component_posterior, fit_two_gaussians
from fer_bench.methods.base import TrainingImages
from fer_bench.methods.dividemix import DivideMix, DividemixHparams
from fer_bench.methods.rolt import centred_normalised, embed
from fer_bench.registry import METHODS
from fer_bench.search import Dist, Uniform


@dataclass
class TabascoHparams(DividemixHparams):
    warmup: float = 0.1  # 10 of 100 epochs (train_cifar_ssl.py:634)
    rampup: float = 0.16  # lambda_u ramp of 16 of 100 epochs (:175)

    search_space: ClassVar[dict[str, Dist]] = {
        "lambda_u": Uniform(0.0, 50.0),  # DivideMix's
        "warmup": Uniform(0.1, 0.3),  # 10 or 30 of 100 epochs (CIFAR-10, -100, :632-635)
    }


def js_to_label(p: torch.Tensor, c: int) -> torch.Tensor:
    """JS(p, onehot(c)) with the official 1e-10 smoothing (:577-595)."""
    q = torch.zeros_like(p)
    q[:, c] = 1

    def kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * ((a + 1e-10) / (b + 1e-10)).log()).sum(1)

    m = (p + q) / 2
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def fit(values: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """(min-max normalised values, mixture fitted to them: gmm_fit_func)."""
    v = (values - values.min()) / (values.max() - values.min())
    return v, fit_two_gaussians(v, max_iter=30, tol=1e-2, reg_covar=5e-4)


def class_statistics(p: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(adaptive centroid, selected count) of one class's predictions p and features z."""
    avg = p.mean(0)
    a = int(avg.argmax())
    q = p.clone()
    q[:, a] *= (p[:, a] / avg[a]).clamp_min(1)
    avg2 = q.mean(0)
    b = int(avg2.argmax())
    picked = (p.argmax(1) == b) & (p[:, b] > avg2[b])
    picked = picked if picked.any() else torch.ones_like(picked)
    return z[picked].mean(0), picked.sum()


def select_class(
    p: torch.Tensor, z: torch.Tensor, c: int, centroid: torch.Tensor, acd_low: bool
) -> torch.Tensor | None:
    """One class's clean probabilities (0 if not kept), ACD keeping its low component if
    ``acd_low``; None when WJSD or ACD takes a single value (nothing to separate)."""
    avg = p.mean(0)
    w = (p.max(1).values / p[:, c]).clamp(min=1, max=float(avg.max() / avg[c]))
    raw_w, raw_a = w * js_to_label(p, c), z @ centroid
    if raw_w.unique().numel() < 2 or raw_a.unique().numel() < 2:
        return None
    (wjsd, gw), (acd, ga) = fit(raw_w), fit(raw_a)
    lo_w, lo_a = int(gw[1].argmin()), int(ga[1].argmin())
    post_w, post_a = component_posterior(wjsd, gw), component_posterior(acd, ga)
    far = post_a[:, lo_a] > 0.5
    groups = [wjsd[far], wjsd[~far]]
    groups = [g if g.numel() else groups[1 - i] for i, g in enumerate(groups)]
    preds = [int(component_posterior(g.mean()[None], gw).argmax()) for g in groups]
    std = [1.0, 1.0]
    for g, k in zip(groups, preds, strict=True):
        std[k] = float(g.std(unbiased=False)) or 0.1
    if (preds[0] == preds[1] != lo_w) or std[1 - lo_w] / std[lo_w] < 0.65:
        return torch.where(post_w[:, lo_w] > 0.5, post_w[:, lo_w], 0.0)
    if acd_low:
        return torch.where(far, post_a[:, lo_a], 0.0)
    return torch.where(~far, post_a[:, 1 - lo_a], 0.0)


def tabasco_division(
    probs: torch.Tensor, feats: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Each sample's clean probability (0 if not kept) from softmax outputs and features."""
    k = probs.shape[1]
    z = centred_normalised(feats.double())
    probs = probs.double()
    classes = [labels == c for c in range(k)]
    stats = [class_statistics(probs[r], z[r]) if r.any() else None for r in classes]
    cents = torch.stack([s[0] if s else torch.zeros(z.shape[1]).double() for s in stats])
    counts = [int(s[1]) if s else 0 for s in stats]
    similarity = (cents @ cents.T).softmax(1)
    out = torch.ones(len(labels), dtype=torch.float64)
    for c, rows in enumerate(classes):
        others = similarity[c].clone()
        others[c] = 0
        j = int(others.argmax())
        close = abs(similarity[c, c] - others[j]) < 0.1 * similarity[c, c]
        if rows.any():
            kept = select_class(probs[rows], z[rows], c, cents[c], close and counts[c] < counts[j])
            out[rows] = 1.0 if kept is None else kept
    return out


@METHODS.register("tabasco")
class Tabasco(DivideMix):
    Hparams = TabascoHparams
    family = "noise+longtail"

    def on_epoch_start(self, epoch: int, images: TrainingImages) -> None:
        self.step_in_epoch = 0
        if epoch < self.warmup_epochs:
            return
        self.eval()
        labels = images.observed_labels.cpu()
        for row, net in enumerate(self.nets):
            feats, logits = embed(net, images)
            division = tabasco_division(logits.softmax(1), feats, labels)
            self.clean_prob[row] = division.to(self.clean_prob)
