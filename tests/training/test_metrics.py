"""Retrieval metrics against a naive reference and hand-computed cases (|R| normalisation, ties, k < |R|)."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    average_precision_at_k,
    map_at_k,
    ranked_relevance,
    retrieval_metrics,
    top_k_relevance,
)


def naive_ap(scores: list[float], relevant: set[int], k: int) -> float:
    """AP@k straight from the definition, ties ranked pessimistically (irrelevant first)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i in relevant))
    total, hits = 0.0, 0
    for rank, item in enumerate(order[:k], start=1):
        if item in relevant:
            hits += 1
            total += hits / rank
    return total / len(relevant)


def naive_recall(scores: list[float], relevant: set[int], k: int) -> float:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i in relevant))
    return len(set(order[:k]) & relevant) / len(relevant)


def test_hand_computed_ap_divides_by_the_number_of_relevant_items() -> None:
    # Relevant items 1 and 3 land at ranks 2 and 4: AP = (1/2) * (1/2 + 2/4) = 0.5.
    m = retrieval_metrics(np.array([[0.9, 0.8, 0.7, 0.6]]), [{1, 3}])
    assert m["map@16"] == pytest.approx(0.5)
    assert m["R@1"] == 0.0 and m["R@5"] == 1.0


def test_k_smaller_than_the_relevant_set_caps_ap_below_one() -> None:
    # Three relevant items, perfectly ranked, but only 2 fit in the top 2: AP@2 = (1/3) * (1 + 1) = 2/3.
    ranked = ranked_relevance(np.array([[0.9, 0.8, 0.7, 0.1]]), [{0, 1, 2}])[0]
    assert average_precision_at_k(ranked, 3, k=2) == pytest.approx(2 / 3)
    scores = np.zeros((1, 20))
    scores[0, :18] = np.linspace(1.0, 0.5, 18)
    assert map_at_k(scores, [set(range(18))], k=16) == pytest.approx(16 / 18)


def test_ties_are_ranked_pessimistically_and_ignore_item_order() -> None:
    # All scores equal: the one relevant item ranks last wherever it sits.
    for rel in ({0}, {1}, {2}):
        assert map_at_k(np.array([[0.5, 0.5, 0.5]]), [rel]) == pytest.approx(1 / 3)
    # A tie between a relevant and an irrelevant item at the top: the relevant one is second.
    assert map_at_k(np.array([[0.9, 0.9, 0.1]]), [{0}]) == pytest.approx(0.5)
    assert retrieval_metrics(np.array([[0.9, 0.9, 0.1]]), [{0}])["R@1"] == 0.0


def test_queries_without_relevant_items_are_left_out() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    m = retrieval_metrics(scores, [{0}, set()])
    assert m["queries"] == 1.0 and m["map@16"] == 1.0
    assert map_at_k(scores, [set(), set()]) == 0.0


def test_bool_matrix_and_index_sets_agree_and_bad_indices_fail() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random((4, 7))
    rel = rng.random((4, 7)) < 0.3
    rel[:, 0] = True
    sets = [set(np.flatnonzero(r).tolist()) for r in rel]
    assert retrieval_metrics(scores, rel) == retrieval_metrics(scores, sets)
    with pytest.raises(ValueError):
        retrieval_metrics(scores, [{9}, set(), set(), set()])


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_naive_reference_on_random_cases_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q, n = 12, 40
    scores = rng.integers(0, 6, size=(q, n)).astype(float) / 5  # few distinct values: many ties
    relevant = [set(rng.choice(n, size=int(rng.integers(1, 25)), replace=False).tolist()) for _ in range(q)]
    m = retrieval_metrics(scores, relevant)
    for k in (16, 10):
        ref = np.mean([naive_ap(list(scores[i]), relevant[i], k) for i in range(q)])
        assert m[f"map@{k}"] == pytest.approx(ref, abs=1e-12)
        assert map_at_k(scores, relevant, k) == pytest.approx(ref, abs=1e-12)
    for k in (1, 5, 10):
        ref = np.mean([naive_recall(list(scores[i]), relevant[i], k) for i in range(q)])
        assert m[f"R@{k}"] == pytest.approx(ref, abs=1e-12)
    # The top-k fast path equals the head of the full ranking.
    full = ranked_relevance(scores, relevant)
    assert np.array_equal(top_k_relevance(scores, relevant, 16), full[:, :16])


def test_miss_at_16_counts_queries_with_nothing_relevant_on_the_first_page() -> None:
    scores = np.tile(np.linspace(1.0, 0.0, 20), (3, 1))  # item i ranks i + 1 for every query
    m = retrieval_metrics(scores, [{0}, {15}, {16, 19}])
    assert m["miss@16"] == pytest.approx(1 / 3)  # only the third query has nothing in ranks 1..16
    assert retrieval_metrics(scores, [{17}, {18}, {19}])["miss@16"] == 1.0
