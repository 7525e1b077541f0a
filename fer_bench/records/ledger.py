"""Changes that leave recorded runs current: one declared table, each entry with its reason.

The experiment identity and the method-code fingerprint (fer_bench.records.identity)
are computed by today's code, yet must keep naming runs recorded before a change of
that code. Two kinds of change do so, and each is declared here once:

- :class:`NeutralField`: a config field added after runs were recorded. At ``value``,
  which reproduces what ran before the field existed, it is left out of the identity,
  so adding a knob renames no run. A new config field belongs here.
- :class:`SameCode`: a method's code fingerprint as runs recorded it, and the one its
  code has today, where the two compute the same numbers: today's code is that code
  under a new fingerprint function, or an edit proven not to change a number. A
  further edit of the method gives a fingerprint not listed, and its runs turn stale.

tests/test_ledger.py checks that every entry is used: a neutral field is a config
field, and a recorded fingerprint is held by a committed run of its method and maps to
the fingerprint its method has today.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NeutralField:
    key: str  # the config field, dotted (aug.flip_p)
    value: Any  # the value that reproduces the runs recorded before the field existed
    why: str


@dataclass(frozen=True)
class SameCode:
    method: str
    recorded: str  # method_code as records hold it
    today: str  # method_code of today's code
    why: str


# Issue 49: the fingerprint stopped counting where the core modules a method imports live
# (any import from fer_bench, however grouped, counts as the sorted names the code uses);
# the code itself is the same. Entries marked "+ issue 23", "+ issue 47" or "+ the label
# table's write" also carry the number-preserving edits recorded runs were kept current
# through, before or since.
_FINGERPRINT_V2 = "fingerprint made location-independent (issue 49), same code"
# Issue 23: logs kept on the device (``.item()`` -> ``.detach()`` in the logs dicts; the
# trainer sums both forms in float64 in step order; tests/test_step_sync.py), and SCN's
# empty-group check told by the group's size, floor(beta * B), not by reading its mask.
_ISSUE_23 = " + issue 23: logs kept on the device, summed alike (tests/test_step_sync.py)"
# Issue 47: ELR's target update for an index repeated in a batch: without repeats (a
# permutation: every recorded run, none used --sampler balanced) bit for bit the update
# before (tests/test_elr.py).
_ISSUE_47 = " + issue 47: ELR's update for repeated indices, identical without (tests/test_elr.py)"
# SCN's relabelling table (SCN, RUL's option) for an index repeated in a batch: the last
# occurrence the rule relabels sets the label; without repeats bit for bit the write before
# (tests/test_relabel.py::test_without_repeats_the_table_is_the_plain_write_bit_for_bit).
_RELABEL_REPEATS = (
    " + the label table's write for repeated indices, identical without (tests/test_relabel.py)"
)

LEDGER: tuple[NeutralField | SameCode, ...] = (
    NeutralField("recipe", "shared", "recipes added; runs before trained the profile's"),
    NeutralField("sampler", "uniform", "samplers added; runs before drew uniformly"),
    NeutralField("aug.flip_p", 0.5, "the mirror's probability, fixed at 0.5 before"),
    NeutralField("aug.flip_noise_exclusive", False, "SCN/RUL's one-of draw; before: independent"),
    NeutralField("aug.second_view_noise", True, "EAC's noiseless second view; before: noisy"),
    SameCode("bsoftmax", "a282196aaced8ae6", "f54866a7ccc08987", _FINGERPRINT_V2),
    SameCode("ce", "c8eb8835201d0b89", "e980aff42a88c1ea", _FINGERPRINT_V2),
    SameCode("coteach", "65ff6bba3abb8f5d", "475f2cb1044bbaa7", _FINGERPRINT_V2),
    SameCode("dividemix", "1b5a83414f7a1488", "6f51359583cf1e08", _FINGERPRINT_V2),
    SameCode("dmue", "00527cd228a2febb", "106967f3138a60fa", _FINGERPRINT_V2),
    SameCode("eac", "bfed178ab0a5b117", "25ab70af1a076f5c", _FINGERPRINT_V2 + _ISSUE_23),
    SameCode("elr", "5d3e26bbb0a21110", "f048e890ceea530f", _FINGERPRINT_V2 + _ISSUE_47),
    SameCode("gce", "678597305d3c8dbd", "fd226e396662b651", _FINGERPRINT_V2),
    SameCode("la", "f000b417d8307c7f", "35088131dd2ff389", _FINGERPRINT_V2),
    SameCode("ldam", "36faaa13fada0287", "2a19e1f58f41fd34", _FINGERPRINT_V2),
    SameCode("ls", "3b630d678caf5e77", "cda1da8f9e88199f", _FINGERPRINT_V2),
    SameCode("nla", "1e038b10a87fb20f", "f3e0f9a8c0310ba8", _FINGERPRINT_V2 + _ISSUE_23),
    SameCode(
        "rul",
        "566f66987d0504f5",
        "c6be631222a8febb",
        _FINGERPRINT_V2 + _ISSUE_23 + _RELABEL_REPEATS,
    ),
    SameCode("sce", "bc7f0b6550ceee34", "152704365e632430", _FINGERPRINT_V2),
    SameCode(
        "scn",
        "7bd64514d302dfe0",
        "92edd932d9dbaa29",
        _FINGERPRINT_V2 + _ISSUE_23 + _RELABEL_REPEATS,
    ),
)


def neutral_fields() -> dict[str, Any]:
    """Dotted config key -> the value at which it is left out of the identity."""
    return {e.key: e.value for e in LEDGER if isinstance(e, NeutralField)}


def same_code(recorded: str | None, today: str) -> bool:
    """Whether a run recorded with fingerprint ``recorded`` ran the code that has
    fingerprint ``today``."""
    if recorded == today:
        return True
    return any(
        isinstance(e, SameCode) and e.recorded == recorded and e.today == today for e in LEDGER
    )
