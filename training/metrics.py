"""Retrieval metrics: pure functions of a score matrix and the relevant items of each query (STYLE §6).

DCASE 2025 Task 6 mAP@k: for a query with relevant set ``R``, ``AP@k = (1/|R|) · Σ_{relevant r ranked
≤ k} P(rank r)`` where ``P(rank r)`` = (relevant items at or above rank ``r``) / ``r`` (1-based). It divides
by ``|R|``, so a query with more relevant items than ``k`` can never reach 1. ``mAP@k`` is the mean over
queries; queries without any relevant item are left out.

``R@k`` (recall) is ``|R ∩ top k| / |R|`` averaged over queries (with one relevant item per query, as on
Clotho, it is the usual hit rate). ``miss@16`` is the share of queries with no relevant item in the top 16
(lower is better: the user saw nothing useful on the first page).

Ties: items with equal scores are ranked *pessimistically* — irrelevant items before relevant ones — so
a model that scores everything alike earns nothing by luck, and results never depend on item order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10)


def _relevance_matrix(relevant: Sequence[Iterable[int]] | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(relevant, np.ndarray) and relevant.dtype == bool:
        if relevant.shape != shape:
            raise ValueError(f"relevance matrix shape {relevant.shape} != score shape {shape}")
        return relevant
    if len(relevant) != shape[0]:
        raise ValueError(f"{len(relevant)} relevance sets for {shape[0]} queries")
    rel = np.zeros(shape, dtype=bool)
    for q, items in enumerate(relevant):
        idx = np.fromiter(items, dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= shape[1]):
            raise ValueError(f"query {q}: relevant item index out of range 0..{shape[1] - 1}")
        rel[q, idx] = True
    return rel


def rank_items(scores: np.ndarray, relevant_row: np.ndarray) -> np.ndarray:
    """Order of items for one query: by descending score, ties broken with irrelevant items first.

    ``scores``: float ``[N]``; ``relevant_row``: bool ``[N]`` → int64 ``[N]`` item indices, best first.
    """
    # lexsort sorts by the last key first: score descending, then relevant after irrelevant.
    return np.lexsort((relevant_row.astype(np.int8), -np.asarray(scores, dtype=np.float64)))


def ranked_relevance(scores: np.ndarray, relevant: Sequence[Iterable[int]] | np.ndarray) -> np.ndarray:
    """Bool ``[Q, N]``: whether the item at each rank (0-based column) is relevant to each query."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [queries, items], got shape {scores.shape}")
    rel = _relevance_matrix(relevant, scores.shape)
    out = np.zeros_like(rel)
    for q in range(scores.shape[0]):
        out[q] = rel[q, rank_items(scores[q], rel[q])]
    return out


def top_k_relevance(scores: np.ndarray, relevant: Sequence[Iterable[int]] | np.ndarray, k: int) -> np.ndarray:
    """Bool ``[Q, min(k, N)]``: relevance of the items at ranks 1…k, ordered as :func:`rank_items` does
    (exact, ties included), without sorting every item."""
    scores = np.asarray(scores, dtype=np.float64)
    rel = _relevance_matrix(relevant, scores.shape)
    n = scores.shape[1]
    k = min(k, n)
    out = np.zeros((scores.shape[0], k), dtype=bool)
    if k == 0:
        return out
    threshold = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    for q in range(scores.shape[0]):
        cand = np.flatnonzero(scores[q] >= threshold[q])
        order = np.lexsort((rel[q, cand].astype(np.int8), -scores[q, cand]))
        out[q] = rel[q, cand[order[:k]]]
    return out


def average_precision_at_k(ranked: np.ndarray, n_relevant: int, k: int) -> float:
    """AP@k of one query from the relevance of its ranked items (bool ``[N]``, best first)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if n_relevant <= 0:
        raise ValueError("AP is undefined for a query without relevant items")
    top = np.asarray(ranked[:k], dtype=bool)
    hits = np.cumsum(top)
    ranks = np.arange(1, len(top) + 1)
    return float((hits / ranks)[top].sum() / n_relevant)


def _mean_ap(top: np.ndarray, n_rel: np.ndarray, k: int) -> float:
    top = top[:, :k]
    hits = np.cumsum(top, axis=1)
    precision = hits / np.arange(1, top.shape[1] + 1)[None, :]
    return float(np.mean((precision * top).sum(axis=1) / n_rel))


def retrieval_metrics(
    scores: np.ndarray, relevant: Sequence[Iterable[int]] | np.ndarray, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """mAP@16, mAP@10 and R@k (``ks``) for a score matrix ``[Q queries, N items]`` (higher = better).

    ``relevant``: per query the indices of its relevant items, or a bool ``[Q, N]`` matrix. Returns
    ``{"map@16", "map@10", "R@1", "R@5", "R@10", "miss@16", "queries"}`` (metrics in [0, 1]; ``queries`` counts
    those with at least one relevant item, the only ones averaged).
    """
    scores = np.asarray(scores, dtype=np.float64)
    rel = _relevance_matrix(relevant, scores.shape)
    n_rel = rel.sum(axis=1)
    keep = n_rel > 0
    out: dict[str, float] = {"queries": float(keep.sum())}
    if not keep.any():
        return {**out, "map@16": 0.0, "map@10": 0.0, **{f"R@{k}": 0.0 for k in ks}, "miss@16": 1.0}
    top = top_k_relevance(scores[keep], rel[keep], max([16, *ks]))
    n_rel = n_rel[keep]
    for k in (16, 10):
        out[f"map@{k}"] = _mean_ap(top, n_rel, k)
    for k in ks:
        out[f"R@{k}"] = float(np.mean(top[:, :k].sum(axis=1) / n_rel))
    out["miss@16"] = float(np.mean(~top[:, :16].any(axis=1)))
    return out


def map_at_k(scores: np.ndarray, relevant: Sequence[Iterable[int]] | np.ndarray, k: int = 16) -> float:
    """Mean AP@k over queries with at least one relevant item (0.0 when there are none)."""
    scores = np.asarray(scores, dtype=np.float64)
    rel = _relevance_matrix(relevant, scores.shape)
    n_rel = rel.sum(axis=1)
    keep = n_rel > 0
    if not keep.any():
        return 0.0
    return _mean_ap(top_k_relevance(scores[keep], rel[keep], k), n_rel[keep], k)
