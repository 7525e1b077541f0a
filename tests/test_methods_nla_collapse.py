"""Why official NLA collapses from scratch: through the un-detached weight, descent on
w * CE pushes a misclassified sample's wrong top logit up; the detached weight does not."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fer_bench.methods.nla import NlaHparams, naw_weight


def _descent_on_wrong_top_logit(detach: bool) -> float:
    # Label 1; the model prefers class 0 (p = 0.40 vs 0.25 on the label): misclassified.
    z = torch.tensor([[1.0, 0.53, 0.0, 0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    y = torch.tensor([1])
    p = z.softmax(1)
    w = naw_weight(p.detach() if detach else p, y, 0.0, NlaHparams(detach_weight=detach))
    (grad,) = torch.autograd.grad((w * F.cross_entropy(z, y, reduction="none")).mean(), z)
    return float(-grad[0, 0])  # change of the wrong top logit under a descent step


def test_official_weight_gradient_raises_the_wrong_top_logit():
    assert _descent_on_wrong_top_logit(detach=False) > 0


def test_detached_weight_lowers_the_wrong_top_logit():
    assert _descent_on_wrong_top_logit(detach=True) < 0
