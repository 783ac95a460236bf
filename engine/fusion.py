"""Blend ranked result lists (semantic and keyword search) into one ranking.

Two pure functions, so the search layer can measure and choose:

- :func:`rrf`: reciprocal-rank fusion, ``score(d) = sum_i w_i / (k + rank_i(d))`` with 1-based ranks;
  it needs only the order of each list, so scores on different scales (cosine, BM25) never need
  calibrating.
- :func:`weighted_scores`: each list's scores min-max normalised to [0, 1], then a weighted sum (a file
  missing from a list gets 0 from it); keeps how far apart the scores were, not only their order.

Ties are broken by the best rank a file reached in any list, then by id, so results are deterministic.

:class:`TrustFusion` replaces equal-weight rank fusion in the search: a logistic model per mode over the
evidence for one (query, file) pair — the sound's cosine, the similarity of the file's own words weighted
by how informative they are, lexical hits — calibrated to the probability that the file is relevant.
Its weights are fitted to rank each query's candidates (:func:`fit_ranking`: a listwise softmax loss, then
a one-feature logistic calibration), so no query's share of irrelevant candidates sets how much a signal
is trusted.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
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


# ------------------------------------------------------------------------------------- fusion by trust


@dataclass(frozen=True)
class Evidence:
    """What search knows about one (query, file) pair.

    ``content``: ensemble cosine of the file's best window with the query (``None``: not computed);
    ``name``: cosine of the query with the file's own text in the name encoder's space (``None``: the
    file has no text); ``informativeness``: how much the file's words can be trusted (0 … 1, see
    :func:`engine.names.file_text`); ``lexical``: share of the query's words found in the file's words
    (0 … 1, from the keyword index).
    """

    content: float | None = None
    name: float | None = None
    informativeness: float = 0.0
    lexical: float = 0.0


@dataclass(frozen=True)
class LogisticModel:
    """``P(relevant) = sigmoid(bias + Σ weights[f] · feature f)``; features by name (see :func:`features`)."""

    bias: float
    weights: Mapping[str, float]

    def logit(self, ev: Evidence) -> float:
        x = features(ev)
        return self.bias + sum(w * x[name] for name, w in self.weights.items())

    def probability(self, ev: Evidence) -> float:
        return _sigmoid(self.logit(ev))

    def probabilities(self, evidence: Sequence[Evidence]) -> list[float]:
        """:meth:`probability` of many pairs at once, the same numbers (the features and the logit as numpy
        float64 columns, term by term in the same order): a hybrid query fuses ~600 candidates."""
        import numpy as np

        if not evidence:
            return []
        cols = np.array([(ev.content, ev.name, ev.informativeness, ev.lexical) for ev in evidence], np.float64)
        has_name = ~np.isnan(cols[:, 1])
        x = _feature_values(np.nan_to_num(cols[:, 0]), np.nan_to_num(cols[:, 1]), cols[:, 2], cols[:, 3], has_name)
        z = self.bias + sum(w * x[name] for name, w in self.weights.items())
        return [_sigmoid(v) for v in np.broadcast_to(z, (len(evidence),)).tolist()]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0


def features(ev: Evidence) -> dict[str, float]:
    """The fusion's features. The name similarity counts only as far as the file's words are
    informative (``name_trusted``), so a ``ZOOM0042`` file is ranked by its sound alone;
    ``content_x_name`` lets the sound's weight depend on how well the file's trusted words match (fitted
    negative for 2.0.0: where the words match strongly, the sound has less left to say)."""
    return _feature_values(0.0 if ev.content is None else ev.content, 0.0 if ev.name is None else ev.name,
                           ev.informativeness, ev.lexical, ev.name is not None)


def _feature_values(c, n, informativeness, lexical, has_name):
    """:func:`features` from the evidence's values: floats, or numpy columns with one row per pair (``c``
    and ``n`` with 0 for a missing value; ``has_name``: whether the file has words to compare at all)."""
    inf = informativeness * has_name
    return {
        "content": c,
        "name_trusted": inf * n,
        "name_trusted_sq": inf * n * n,
        "informative": inf,
        "lexical": lexical,
        "lexical_trusted": inf * lexical,
        "content_x_name": c * inf * n,
    }


@dataclass(frozen=True)
class TrustFusion:
    """One calibrated model per search mode: ``both`` (every signal), ``content`` (the sound alone) and
    ``keywords`` (the words alone). Each gives the probability that a file is relevant to the query, so a
    relevance of 70 means the same in every mode. Fitted on validation queries (benchmarks/fit_fusion.py),
    never on an evaluation set."""

    both: LogisticModel
    content: LogisticModel
    keywords: LogisticModel
    fitted_on: str = ""
    #: The probability of relevance (in percent) from which a hit counts as a good match (the honest
    #: cut-off), chosen on the same validation queries: the threshold with the best F1 of "good" against
    #: "relevant". :meth:`relevance` maps it to 50.
    good_match: float = 50.0

    def relevance(self, mode: str, ev: Evidence) -> float:
        """The 0–100 relevance shown to people: the calibrated probability ``p`` of the mode's model, bent
        by ``100 · p**γ`` so that the good-match cut-off lands on 50 in every mode and for every bundle
        (γ = log 0.5 / log cut-off): above 50 is a good match, 90+ a near-certain one. Monotone in ``p``,
        so it ranks exactly as the probability does."""
        p = self.model(mode).probability(ev)
        cut = min(max(self.good_match / 100.0, 1e-6), 1 - 1e-6)
        return 100.0 * p ** (math.log(0.5) / math.log(cut))

    def model(self, mode: str) -> LogisticModel:
        return {"both": self.both, "content": self.content, "keywords": self.keywords}[mode]

    @classmethod
    def from_dict(cls, data: Mapping) -> TrustFusion:
        def lm(d: Mapping) -> LogisticModel:
            unknown = set(d["weights"]) - set(features(Evidence()))
            if unknown:
                raise ValueError(f"unknown fusion features {sorted(unknown)}")
            return LogisticModel(float(d["bias"]), {k: float(v) for k, v in d["weights"].items()})

        return cls(lm(data["both"]), lm(data["content"]), lm(data["keywords"]), str(data.get("fitted_on", "")),
                   float(data.get("good_match", 50.0)))

    def as_dict(self) -> dict:
        def lm(m: LogisticModel) -> dict:
            return {"bias": m.bias, "weights": dict(m.weights)}

        return {"both": lm(self.both), "content": lm(self.content), "keywords": lm(self.keywords),
                "fitted_on": self.fitted_on, "good_match": self.good_match}


def fit_logistic(x: Sequence[Mapping[str, float]], y: Sequence[int], names: Sequence[str],
                 l2: float = 1e-2, iters: int = 50) -> LogisticModel:
    """Maximum-likelihood logistic regression (Newton's method, small L2 penalty on the weights) on
    feature dicts ``x`` with 0/1 labels ``y``, using the features ``names``."""
    import numpy as np

    X = np.array([[1.0] + [float(row[n]) for n in names] for row in x], dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    if X.shape[0] == 0 or t.min() == t.max():
        raise ValueError("fitting needs both relevant and irrelevant examples")
    w = np.zeros(X.shape[1])
    penalty = np.full(X.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -60, 60)))
        grad = X.T @ (p - t) + penalty * w
        hess = (X * (p * (1 - p))[:, None]).T @ X + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return LogisticModel(float(w[0]), {n: float(v) for n, v in zip(names, w[1:], strict=True)})


def fit_listwise(groups: Sequence[tuple[Sequence[Mapping[str, float]], Sequence[int]]], names: Sequence[str],
                 l2: float = 1e-2, iters: int = 50) -> dict[str, float]:
    """Weights ``w`` that rank each group's relevant items first: minimises, over groups (one query's
    candidates ``(feature dicts, 0/1 labels)``), the cross-entropy between the softmax of ``w · x`` and the
    labels spread evenly over the relevant items, plus ``l2/2 · |w|²`` (convex; Newton's method). Groups
    without a relevant item carry no information and are skipped. No bias: within a query it cancels."""
    import numpy as np

    data = []
    for x, y in groups:
        t = np.asarray(y, dtype=np.float64)
        if t.sum() > 0:
            data.append((np.array([[float(row[n]) for n in names] for row in x], dtype=np.float64), t / t.sum()))
    if not data:
        raise ValueError("fitting needs at least one group with a relevant item")

    def loss(w):
        total = 0.5 * l2 * float(w @ w)
        for X, t in data:
            s = X @ w
            m = s.max()
            total -= float(t @ (s - m - np.log(np.exp(s - m).sum())))
        return total

    w = np.zeros(len(names))
    current = loss(w)
    for _ in range(iters):
        grad, hess = l2 * w, np.diag(np.full(len(names), l2 + 1e-9))
        for X, t in data:
            s = X @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            grad += X.T @ (p - t)
            xp = X.T @ p
            hess += (X * p[:, None]).T @ X - np.outer(xp, xp)
        step = np.linalg.solve(hess, grad)
        scale = 1.0  # damped Newton: halve the step until the loss falls
        while scale > 1e-6 and loss(w - scale * step) > current:
            scale /= 2
        w = w - scale * step
        current = loss(w)
        if np.abs(scale * step).max() < 1e-7:
            break
    return {n: float(v) for n, v in zip(names, w, strict=True)}


def fit_ranking(groups: Sequence[tuple[Sequence[Mapping[str, float]], Sequence[int]]], names: Sequence[str],
                l2: float = 1e-2) -> LogisticModel:
    """A :class:`LogisticModel` whose order is :func:`fit_listwise`'s and whose probabilities are calibrated
    on the same pairs: ``P = sigmoid(a + b · (w · x))`` with ``a, b`` from a one-feature logistic fit."""
    w = fit_listwise(groups, names, l2)
    x = [{"score": sum(w[n] * float(row[n]) for n in names)} for rows, _ in groups for row in rows]
    y = [int(v) for _, labels in groups for v in labels]
    cal = fit_logistic(x, y, ["score"], l2=0.0)
    b = cal.weights["score"]
    if not b > 0:
        raise ValueError("the fitted ranking does not order relevant items first on its own data")
    return LogisticModel(cal.bias, {n: b * v for n, v in w.items()})


def best_f1_threshold(probabilities: Sequence[float], labels: Sequence[int]) -> float:
    """The probability threshold (0–1) that maximises F1 of ``p >= t`` against the 0/1 ``labels``."""
    pairs = sorted(zip(probabilities, labels, strict=True), key=lambda pl: -pl[0])
    positives = sum(labels)
    best, best_t, tp = 0.0, 0.5, 0
    for i, (p, y) in enumerate(pairs, 1):
        tp += y
        f1 = 2 * tp / (i + positives) if positives else 0.0
        if f1 > best and (i == len(pairs) or pairs[i][0] < p):
            best, best_t = f1, p
    return best_t

