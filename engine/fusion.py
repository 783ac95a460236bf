"""Blend ranked result lists (semantic and keyword search) into one ranking.

Two pure functions, so the search layer can measure and choose:

- :func:`rrf`: reciprocal-rank fusion, ``score(d) = sum_i w_i / (k + rank_i(d))`` with 1-based ranks;
  it needs only the order of each list, so scores on different scales (cosine, BM25) never need
  calibrating.
- :func:`weighted_scores`: each list's scores min-max normalised to [0, 1], then a weighted sum (a file
  missing from a list gets 0 from it); keeps how far apart the scores were, not only their order.

Ties are broken by the best rank a file reached in any list, then by id, so results are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def _check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0] * n
    w = [float(x) for x in weights]
    if len(w) != n:
        raise ValueError(f"got {len(w)} weights for {n} lists")
    if any(not math.isfinite(x) or x < 0 for x in w):
        raise ValueError(f"weights must be finite and non-negative, got {w}")
    return w


def _order(scores: dict[K, float], best_rank: dict[K, int]) -> list[tuple[K, float]]:
    def key(item: tuple[K, float]) -> tuple:
        doc, score = item
        return (-score, best_rank[doc], str(type(doc)), doc)

    return sorted(scores.items(), key=key)


def rrf(
    rankings: Sequence[Sequence[K]], *, k: float = 60.0, weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """Reciprocal-rank fusion of ``rankings`` (each a list of ids, best first; repeats within a list are
    dropped, as if the list were de-duplicated). ``k`` (> 0) damps the advantage of the very top ranks (60 is
    the usual choice); ``weights`` (one per list, default all 1) scale each list's contribution.

    Returns ``[(id, score)]``, best first, covering every id in any list.
    """
    if not k > 0:
        raise ValueError(f"k must be > 0, got {k}")
    w = _check_weights(weights, len(rankings))
    scores: dict[K, float] = {}
    best_rank: dict[K, int] = {}
    for ranking, weight in zip(rankings, w, strict=True):
        seen: set[K] = set()
        for doc in ranking:
            if doc in seen:
                continue
            seen.add(doc)
            rank = len(seen)
            scores[doc] = scores.get(doc, 0.0) + weight / (k + rank)
            best_rank[doc] = min(best_rank.get(doc, rank), rank)
    return _order(scores, best_rank)


def weighted_scores(
    score_lists: Sequence[Mapping[K, float]], weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """Weighted sum of min-max normalised scores. Each mapping is ``{id: score}`` (higher is better, any
    scale); within a list, scores become ``(s - min) / (max - min)`` (all 1.0 when every score is
    equal); non-finite scores are ignored. ``weights``: one per list, default all 1.

    Returns ``[(id, fused score)]``, best first; fused scores lie in ``[0, sum(weights)]``.
    """
    w = _check_weights(weights, len(score_lists))
    scores: dict[K, float] = {}
    best_rank: dict[K, int] = {}
    for mapping, weight in zip(score_lists, w, strict=True):
        finite = {doc: float(s) for doc, s in mapping.items() if math.isfinite(float(s))}
        if not finite:
            continue
        lo, hi = min(finite.values()), max(finite.values())
        span = hi - lo
        ranked = sorted(finite.items(), key=lambda item: -item[1])
        for rank, (doc, s) in enumerate(ranked, start=1):
            norm = (s - lo) / span if span > 0 else 1.0
            scores[doc] = scores.get(doc, 0.0) + weight * norm
            best_rank[doc] = min(best_rank.get(doc, rank), rank)
    return _order(scores, best_rank)
