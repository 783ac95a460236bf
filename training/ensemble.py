"""Ensemble weights by grid search on a validation set (weights on a ``step`` grid, summing to 1).

The ensemble score is the one search computes from the fused vectors (DESIGN §3): per window the
weighted sum of member cosines, per file the best window. Members must therefore cut audio the same way
(same sample rate, window and hop). A member whose best weight is 0 is dropped at export.
"""

from __future__ import annotations

import itertools
import logging
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
) -> tuple[tuple[float, ...], float]:
    """Best weights and their metric. ``member_scores``: per member float ``[Q, R]`` (queries × audio rows),
    rows grouped into clips by ``offsets`` ``[N + 1]``. Among equally good weights the most balanced
    (closest to uniform) wins, then the earliest grid point. ``max_members`` > 0 keeps only grid points
    with at most that many non-zero weights."""
    best: tuple[tuple[float, ...], float, float] | None = None
    stacked = np.stack([np.asarray(s, dtype=np.float32) for s in member_scores])
    uniform = np.full(len(member_scores), 1.0 / len(member_scores))
    for w in weight_grid(len(member_scores), step):
        if max_members > 0 and sum(x > 0 for x in w) > max_members:
            continue
        fused = np.tensordot(np.asarray(w, dtype=np.float32), stacked, axes=1)
        value = _metric(clip_scores(fused, offsets), relevant, metric)
        spread = float(np.abs(np.asarray(w) - uniform).sum())
        if (
            best is None
            or value > best[1] + 1e-12
            or (abs(value - best[1]) <= 1e-12 and spread < best[2] - 1e-12)
        ):
            best = (w, value, spread)
    assert best is not None
    return best[0], best[1]


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
    weights, value = search_weights(
        scores, offsets, eval_set.relevant, step=e.step, metric=e.metric, max_members=e.max_members
    )
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
