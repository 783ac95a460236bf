"""Ensemble weights by grid search on a validation set (weights on a ``step`` grid, summing to 1).

The ensemble score is the one search computes from the fused vectors (DESIGN §3): per window the
weighted sum of member cosines, per file the best window. Members must therefore cut audio the same way
(same sample rate, window and hop). A member whose best weight is 0 is dropped at export.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from engine.errors import EarshotError
from training.config import Recipe
from training.embedding import Embedder, clip_scores
from training.evaluate import eval_set_for, row_scores
from training.metrics import map_at_k, retrieval_metrics
from training.model import load_run, write_json

log = logging.getLogger(__name__)

ENSEMBLE_FILE = "ensemble.json"


def weight_grid(n: int, step: float) -> Iterator[tuple[float, ...]]:
    """Every ``n``-vector of non-negative multiples of ``step`` summing to 1 (``step`` must divide 1)."""
    units = round(1.0 / step)
    if abs(units * step - 1.0) > 1e-9:
        raise EarshotError(f"ensemble.step {step} does not divide 1")
    for cuts in itertools.combinations(range(units + n - 1), n - 1):
        parts = np.diff([-1, *cuts, units + n - 1]) - 1
        yield tuple(float(p) / units for p in parts)


def _metric(scores: np.ndarray, relevant: Sequence[set[int]], metric: str) -> float:
    if metric.startswith("map@"):
        return map_at_k(scores, relevant, int(metric[4:]))
    return retrieval_metrics(scores, relevant)[metric]


def search_weights(
    member_scores: Sequence[np.ndarray],
    offsets: np.ndarray,
    relevant: Sequence[set[int]],
    *,
    step: float = 0.1,
    metric: str = "map@16",
    max_members: int = 0,
    tolerance: float = 0.0,
) -> tuple[tuple[float, ...], float]:
    """Chosen weights and their metric. ``member_scores``: per member float ``[Q, R]`` (queries × audio
    rows), rows grouped into clips by ``offsets`` ``[N + 1]``. Among the grid points within ``tolerance``
    of the best value (0: equally good ones) the most balanced (closest to uniform) wins, then the earliest
    grid point. ``max_members`` > 0 keeps only grid points with at most that many non-zero weights."""
    stacked = np.stack([np.asarray(s, dtype=np.float32) for s in member_scores])
    uniform = np.full(len(member_scores), 1.0 / len(member_scores))
    points: list[tuple[tuple[float, ...], float, float]] = []
    for w in weight_grid(len(member_scores), step):
        if max_members > 0 and sum(x > 0 for x in w) > max_members:
            continue
        fused = np.tensordot(np.asarray(w, dtype=np.float32), stacked, axes=1)
        value = _metric(clip_scores(fused, offsets), relevant, metric)
        points.append((w, value, float(np.abs(np.asarray(w) - uniform).sum())))
    best = max(p[1] for p in points)
    near = [p for p in points if p[1] >= best - max(tolerance, 0.0) - 1e-12]
    chosen = min(near, key=lambda p: round(p[2], 9))  # min keeps the earliest of equal spreads
    return chosen[0], chosen[1]


def grid_size(n: int, step: float) -> int:
    """Points of :func:`weight_grid` for ``n`` members: ``C(1/step + n - 1, n - 1)``."""
    return math.comb(round(1.0 / step) + n - 1, n - 1)


def coordinate_weights(
    member_scores: Sequence[np.ndarray],
    offsets: np.ndarray,
    relevant: Sequence[set[int]],
    *,
    step: float = 0.1,
    metric: str = "map@16",
    rounds: int = 10,
) -> tuple[tuple[float, ...], float]:
    """Coordinate ascent for many members (where the full grid is too large): start from uniform
    weights; repeatedly move ``step`` of weight from one member to another when that raises the metric
    (the best such move per round), until no move helps or ``rounds`` × members moves were made.
    Weights stay non-negative and sum to 1."""
    stacked = np.stack([np.asarray(s, dtype=np.float32) for s in member_scores])
    n = len(stacked)

    def value(w: np.ndarray) -> float:
        fused = np.tensordot(w.astype(np.float32), stacked, axes=1)
        return _metric(clip_scores(fused, offsets), relevant, metric)

    w = np.full(n, 1.0 / n)
    best = value(w)
    for _ in range(rounds * n):
        move: tuple[float, np.ndarray] | None = None
        for i in range(n):
            for j in range(n):
                if i == j or w[j] < step - 1e-9:
                    continue
                cand = w.copy()
                cand[i] += step
                cand[j] -= step
                v = value(cand)
                if v > best + 1e-12 and (move is None or v > move[0]):
                    move = (v, cand)
        if move is None:
            break
        best, w = move
    return tuple(float(x) for x in np.clip(w, 0.0, None)), best


#: Ensemble weight searches: ``grid`` (every point of the step grid), ``coordinate`` (ascent from uniform
#: weights), ``uniform`` (equal weights, no search); ``auto``: grid up to :data:`MAX_GRID` points.
SEARCHES = ("auto", "grid", "coordinate", "uniform")
MAX_GRID = 20000


def run_ensemble(recipe: Recipe, device: str = "cpu") -> dict:
    """Score the validation set with every member, search the weights, write ``<out>/ensemble.json``."""
    e = recipe.ensemble
    if not e.members:
        raise EarshotError("ensemble.members lists no runs")
    if not e.out:
        raise EarshotError("ensemble.out names no directory")
    eval_set = eval_set_for(recipe, e.eval_set)
    scores, singles = [], []
    offsets = None
    windowing = None
    t0 = time.perf_counter()
    for member in e.members:
        run = load_run(member)
        m = run.recipe.model
        key = (m.sample_rate, m.window_s, m.hop_s)
        if windowing is not None and key != windowing:
            raise EarshotError(f"{member} cuts audio differently ({key}) from the first member ({windowing})")
        windowing = key
        s, off = row_scores(Embedder(run.recipe, run.model, device), eval_set, recipe.eval.scoring)
        if offsets is not None and not np.array_equal(off, offsets):
            raise EarshotError(
                f"{member} embeds a different number of windows per clip than the first member"
            )
        offsets = off
        scores.append(s)
        singles.append(retrieval_metrics(clip_scores(s, off), eval_set.relevant))
        log.info("member %s: map@16 %.2f", member, 100 * singles[-1]["map@16"])
    assert offsets is not None
    search = e.search
    if search == "auto":
        search = "grid" if grid_size(len(scores), e.step) <= MAX_GRID else "coordinate"
    if e.max_members > 0 and search != "grid":
        raise EarshotError(f"ensemble.max_members needs search = \"grid\" (this one is {search!r})")
    if search == "grid":
        weights, value = search_weights(
            scores,
            offsets,
            eval_set.relevant,
            step=e.step,
            metric=e.metric,
            max_members=e.max_members,
            tolerance=e.tolerance,
        )
    elif search == "coordinate":
        weights, value = coordinate_weights(scores, offsets, eval_set.relevant, step=e.step, metric=e.metric)
    elif search == "uniform":
        weights = tuple(1.0 / len(scores) for _ in scores)
        fused = np.tensordot(np.asarray(weights, dtype=np.float32), np.stack(scores), axes=1)
        value = _metric(clip_scores(fused, offsets), eval_set.relevant, e.metric)
    else:
        raise EarshotError(f"ensemble.search must be one of {SEARCHES}, not {e.search!r}")
    log.info("ensemble: %s search over %d members", search, len(scores))
    fused = np.tensordot(np.asarray(weights, dtype=np.float32), np.stack(scores), axes=1)
    metrics = retrieval_metrics(clip_scores(fused, offsets), eval_set.relevant)
    doc = {
        "members": [{"run": str(Path(m)), "weight": w} for m, w in zip(e.members, weights, strict=True)],
        "eval_set": e.eval_set,
        "metric": e.metric,
        "value": value,
        "metrics": metrics,
        "single": [{"run": str(m), **s} for m, s in zip(e.members, singles, strict=True)],
        "grid_step": e.step,
        "search": search,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(Path(e.out) / ENSEMBLE_FILE, doc)
    log.info(
        "ensemble weights %s → %s %.2f (best single %.2f)",
        weights,
        e.metric,
        100 * value,
        100 * max(s["map@16"] for s in singles),
    )
    return doc
