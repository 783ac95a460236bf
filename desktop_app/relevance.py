"""How good a hit is, in words a results list can show (no Qt).

The engine gives every hit a calibrated ``relevance`` (0–100, the same meaning in every search mode), the
evidence it ``matched_by`` (``"sound"``, ``"name"``, ``"description"``, ``"category"``) and decides with
``engine.search.is_good_match(hit)`` whether it clears the calibrated cut-off. An engine without them
(older hits, listed files) still works: no relevance, nothing marked, every hit counted as a match.

For "find similar", :func:`duplicate_kind` flags files that are the reference again: byte-identical
(the same content fingerprint) or sounding the same (an ensemble cosine of at least
:data:`SAME_SOUND_SCORE`), and near duplicates (at least :data:`NEAR_DUPLICATE_SCORE`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.search import Hit

MATCHED_BY_ORDER = ("sound", "name", "description", "category")
MATCHED_BY_SHORT = {"sound": "sound", "name": "name", "description": "desc", "category": "cat"}
SAME_SOUND_SCORE = 0.999
NEAR_DUPLICATE_SCORE = 0.97


def relevance(hit: Hit) -> float | None:
    """The hit's calibrated relevance in [0, 100], or ``None`` when the engine gives none."""
    value = getattr(hit, "relevance", None)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(value):
        return None
    return min(100.0, max(0.0, value))


def matched_by(hit: Hit) -> tuple[str, ...]:
    """What the hit matched on, in a fixed order (unknown names kept at the end)."""
    raw = getattr(hit, "matched_by", None) or ()
    if isinstance(raw, str):
        raw = (raw,)
    names = [str(x) for x in raw]
    known = [m for m in MATCHED_BY_ORDER if m in names]
    return tuple(known + [m for m in names if m not in MATCHED_BY_ORDER])


def matched_by_text(hit: Hit) -> str:
    """The marker in the results list: ``'sound · name'`` (``''`` when the engine says nothing)."""
    return " · ".join(MATCHED_BY_SHORT.get(m, m) for m in matched_by(hit))


def is_good(hit: Hit) -> bool:
    """Above the engine's calibrated cut-off (True when the engine has no cut-off for this hit)."""
    if relevance(hit) is None:
        return True
    try:
        from engine.search import is_good_match
    except ImportError:
        return True
    try:
        return bool(is_good_match(hit))
    except (AttributeError, TypeError, ValueError):
        return True


def split_good(hits: Sequence[Hit]) -> tuple[list[Hit], list[Hit]]:
    """``(good, weak)``, each in the engine's order."""
    good, weak = [], []
    for h in hits:
        (good if is_good(h) else weak).append(h)
    return good, weak


def duplicate_kind(hit: Hit, reference_hash: str | None, hit_hash: str | None) -> str:
    """``'duplicate'`` (the same file content, or the same sound), ``'near duplicate'`` or ``''``."""
    if reference_hash and hit_hash and reference_hash == hit_hash:
        return "duplicate"
    if hit.score >= SAME_SOUND_SCORE:
        return "duplicate"
    if hit.score >= NEAR_DUPLICATE_SCORE:
        return "near duplicate"
    return ""


@dataclass(frozen=True)
class Counts:
    """What the line above the results counts."""

    good: int
    weak: int
    graded: bool  # the engine graded the hits (relevance + cut-off); else every hit is a "result"


def count(hits: Sequence[Hit]) -> Counts:
    good, weak = split_good(hits)
    return Counts(len(good), len(weak), any(relevance(h) is not None for h in hits))
