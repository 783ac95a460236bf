"""Evaluation of trained runs on a retrieval set: mAP@16, mAP@10, R@1/5/10 (see :mod:`training.metrics`);
with a DCASE 2025 multi-relevance file, its metrics and the single-relevance ones (``single/…``).

Queries are normalised with the bundle's rules; with ``eval.scoring = "windows"`` a file scores as its
best window (what search returns), with ``"clip"`` as one whole-clip embedding (the DCASE protocol).
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

import numpy as np

from engine.encoder import normalise_text
from engine.errors import EarshotError
from training.config import Recipe
from training.data.readers import EvalSet, build_eval_set
from training.embedding import Embedder, clip_scores
from training.metrics import retrieval_metrics
from training.model import load_run, write_json

log = logging.getLogger(__name__)


def eval_set_for(recipe: Recipe, name: str) -> EvalSet:
    """The recipe's evaluation set ``data.eval.<name>``."""
    if name not in recipe.data.eval:
        raise EarshotError(
            f"the recipe has no evaluation set {name!r} (data.eval has {sorted(recipe.data.eval)})"
        )
    return build_eval_set(recipe.data.eval[name])


def row_scores(
    embedder: Embedder, eval_set: EvalSet, mode: str, queries: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores float32 [Q, R], offsets [N + 1])``: every query (default ``eval_set.queries``) against
    every audio row of every clip."""
    normalise = partial(normalise_text, rules=embedder.recipe.model.text_normalisation)
    q = embedder.texts([normalise(t) for t in (eval_set.queries if queries is None else queries)])
    a, offsets = embedder.audio(eval_set.clips, mode)
    return q @ a.T, offsets


def evaluate_embedder(embedder: Embedder, eval_set: EvalSet, mode: str | None = None) -> dict[str, float]:
    """Metrics of one model on one evaluation set.

    With multi-relevance queries (DCASE 2025) the unprefixed metrics are theirs, and the single-relevance
    metrics of the caption queries come beside them as ``single/<metric>``.
    """
    t0 = time.perf_counter()
    mode = mode or embedder.recipe.eval.scoring
    queries = list(eval_set.queries)
    if eval_set.single is not None:
        queries += eval_set.single[0]
    scores, offsets = row_scores(embedder, eval_set, mode, queries)
    clip = clip_scores(scores, offsets)
    n = len(eval_set.queries)
    metrics = retrieval_metrics(clip[:n], eval_set.relevant)
    if eval_set.single is not None:
        single = retrieval_metrics(clip[n:], eval_set.single[1])
        metrics.update({f"single/{k}": v for k, v in single.items()})
    metrics["clips"] = float(len(eval_set.clips))
    log.debug(
        "evaluated %d queries x %d clips in %.1f s",
        len(queries),
        len(eval_set.clips),
        time.perf_counter() - t0,
    )
    return metrics


def evaluate_run(
    run_dir: str | Path, eval_name: str, recipe: Recipe | None = None, device: str = "cpu"
) -> dict[str, float]:
    """Evaluate a run directory on ``eval_name`` (of ``recipe``, default the run's own recipe); the result
    is also written to ``<run>/eval-<name>.json``."""
    run = load_run(run_dir)
    recipe = recipe or run.recipe
    metrics = evaluate_embedder(Embedder(recipe, run.model, device), eval_set_for(recipe, eval_name))
    write_json(Path(run_dir) / f"eval-{eval_name}.json", metrics)
    return metrics


def format_metrics(metrics: dict[str, float]) -> str:
    names = ("map@16", "map@10", "R@1", "R@5", "R@10")
    text = ", ".join(f"{k} {100 * metrics[k]:.2f}" for k in names if k in metrics)
    text += f" ({int(metrics.get('queries', 0))} queries)"
    if "single/map@16" in metrics:
        single = ", ".join(f"{k} {100 * metrics['single/' + k]:.2f}" for k in names if "single/" + k in metrics)
        text += f"; single-relevance: {single} ({int(metrics.get('single/queries', 0))} queries)"
    return text
