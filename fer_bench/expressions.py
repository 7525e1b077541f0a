"""The common class vocabulary: every dataset maps its classes onto these names.

Tables and cross-dataset protocols line up by name, never by a dataset's own
integer ids (FER2013, FER+, RAF-DB and AffectNet each order classes differently).
"""

from __future__ import annotations

EXPRESSIONS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)

_ALIASES = {
    "happy": "happiness",
    "sad": "sadness",
    "angry": "anger",
    "surprised": "surprise",
    "fearful": "fear",
    "disgusted": "disgust",
    "neutrality": "neutral",
}

# The seven basic expressions in FER2013's own order (0=angry ... 6=neutral).
FER2013_ORDER: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
    "neutral",
)
# RAF-DB basic labels 1..7.
RAFDB_ORDER: tuple[str, ...] = (
    "surprise",
    "fear",
    "disgust",
    "happiness",
    "sadness",
    "anger",
    "neutral",
)
# AffectNet expression ids 0..7.
AFFECTNET_ORDER: tuple[str, ...] = (
    "neutral",
    "happiness",
    "sadness",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
)


def canonical(name: str) -> str:
    """Map a dataset's class name (any case, common synonyms) to the vocabulary."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in EXPRESSIONS:
        raise ValueError(f"unknown expression {name!r}; known: {', '.join(EXPRESSIONS)}")
    return key
