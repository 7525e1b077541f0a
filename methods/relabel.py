"""SCN's relabelling rule and the label table it edits (shared by SCN and RUL's option).

Rule (SCN, official code): with q the softmax of a sample's prediction, if
max_k q_k - q[y] > margin the stored training label becomes argmax q. The
change is permanent until the rule fires again. The table is a registered
buffer so relabelled labels survive checkpoint and resume.

Repeated indices: ``--sampler balanced`` draws with replacement, so one index can occur
twice in a batch, which the official loop (one pass over a permutation) never meets.
Each occurrence is tested against the label the batch trained on, as the official rule
tests ``targets`` (src/train.py:250-258), and the official write touches only the rows
whose rule fired; so the last occurrence in batch order that the rule relabels sets the
label, and an index no occurrence relabels keeps it. (Writing every row, as a plain
``labels[index] = new`` does, let an unchanged later occurrence undo an earlier one's
relabelling, and on CUDA which duplicate wins is undefined.) Without repeats (every run
of the uniform sampler) this is the plain write, bit for bit (tests/test_relabel.py).
"""

from __future__ import annotations

import torch
from torch import nn


def relabel_gap(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """max_k q_k - q[y] per row of ``probs`` (B, K)."""
    return probs.max(1).values - probs.gather(1, labels.view(-1, 1)).squeeze(1)


def relabel(probs: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Labels after SCN's rule: argmax q where the gap exceeds ``margin``, else unchanged."""
    return torch.where(relabel_gap(probs, labels) > margin, probs.argmax(1), labels)


def last_relabelled(index: torch.Tensor, current: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """(B,) each batch position's label after the batch: ``new`` of the last occurrence of
    its index whose label changed, else ``current`` (module docstring). Every occurrence
    of an index gets the same label, so the write is well defined; elementwise, so no
    step reads the device."""
    same = index[:, None] == index[None, :]
    position = torch.arange(1, len(index) + 1, device=index.device)  # 1-based; 0 = none
    last = ((same & (new != current)[None, :]) * position).amax(1)
    return torch.where(last > 0, new[(last - 1).clamp(min=0)], current)


class LabelTable(nn.Module):
    """The training labels a relabelling method trains on, indexed by training position."""

    def __init__(self, observed: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("labels", observed.clone().long())
        # The observed labels are known from TrainInfo at every start: not checkpointed.
        self.register_buffer("observed", observed.clone().long(), persistent=False)

    def lookup(self, index: torch.Tensor) -> torch.Tensor:
        return self.labels[index.to(self.labels.device)]

    def update(
        self,
        index: torch.Tensor,
        probs: torch.Tensor,
        margin: float,
        candidates: torch.Tensor | None = None,
    ) -> None:
        """Apply the rule to the rows of ``probs`` (all, or where ``candidates`` is True);
        an index repeated in the batch takes its last relabelled occurrence's label."""
        index = index.to(self.labels.device)
        current = self.labels[index]
        new = relabel(probs.float(), current, margin)
        if candidates is not None:
            new = torch.where(candidates, new, current)
        self.labels[index] = last_relabelled(index, current, new)

    def changed_fraction(self) -> torch.Tensor:
        """Share of training labels that now differ from the observed ones (a 0-dim
        tensor: a log the trainer reads once per epoch)."""
        return (self.labels != self.observed).float().mean()
