"""FER+ votes: the majority rule and soft labels, shared by ``ferplus`` and ``fer2013``.

Vote columns, in FER+ order: the eight emotions, then unknown and NF (not a
face). The majority rule follows the FER+ reference reader (Barsoum et al.
2016, microsoft/FERPlus ``_process_data``): counts of 1 are dropped as
outliers; the label is the column holding more than half of what remains; an
image without one, or whose winner is unknown or NF, is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOTE_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
FERPLUS_CLASSES = VOTE_COLUMNS[:8]
LABEL_MODES = {"majority": FERPLUS_CLASSES, "basic7": FERPLUS_CLASSES[:7]}
DEFAULT_MODE = "majority"


def classes_for(mode: str | None) -> tuple[str, ...]:
    mode = mode or DEFAULT_MODE
    if mode not in LABEL_MODES:
        raise ValueError(f"unknown FER+ label mode {mode!r}; known: {', '.join(LABEL_MODES)}")
    return LABEL_MODES[mode]


@dataclass
class VoteLabels:
    keep: np.ndarray  # bool (N,): rows the rule labels
    labels: np.ndarray  # int64 (n_kept,), index into the mode's classes
    soft: np.ndarray  # float32 (n_kept, K): votes over the mode's classes, normalised
    dropped: dict[str, int]  # rows left out, per rule


def majority_labels(votes: np.ndarray, mode: str | None) -> VoteLabels:
    """Apply the FER+ majority rule to (N, 10) vote counts."""
    classes = classes_for(mode)
    k = len(classes)
    trimmed = np.where(votes <= 1, 0, votes)
    winner = trimmed.argmax(axis=1)
    has_majority = 2 * trimmed.max(axis=1) > trimmed.sum(axis=1)
    no_majority = ~has_majority
    not_emotion = has_majority & (winner >= 8)
    outside_mode = has_majority & (winner < 8) & (winner >= k)
    keep = has_majority & (winner < k)
    dropped = {"no_majority": int(no_majority.sum()), "unknown_or_nf": int(not_emotion.sum())}
    if k < 8:
        dropped["contempt"] = int(outside_mode.sum())
    # soft label: raw votes (outliers included) over the mode's classes; the winner
    # holds at least two votes, so the sum is never zero
    kept_votes = votes[keep, :k].astype(np.float32)
    soft = kept_votes / kept_votes.sum(axis=1, keepdims=True)
    return VoteLabels(keep=keep, labels=winner[keep].astype(np.int64), soft=soft, dropped=dropped)
