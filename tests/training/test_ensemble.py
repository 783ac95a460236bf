"""Ensemble weight search: the grid, and a case where only a mixture of members ranks everything right."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import EarshotError
from training.ensemble import search_weights, weight_grid


def test_grid_covers_the_simplex_in_steps() -> None:
    grid = list(weight_grid(3, 0.25))
    assert len(grid) == 15  # C(4 + 2, 2)
    assert all(sum(w) == pytest.approx(1.0) and min(w) >= 0 for w in grid)
    assert len(set(grid)) == len(grid) and (1 / 3, 1 / 3, 1 / 3) not in grid
    with pytest.raises(EarshotError, match="does not divide 1"):
        list(weight_grid(2, 0.3))


def test_the_mixture_that_ranks_every_query_right_is_found() -> None:
    # Two queries, three clips of one window each. Member A gets query 0 right and query 1 wrong by a
    # little; member B the reverse, by a lot. Fused with weight w on A, query 0 is right when
    # 0.9w > 0.1w + 1.3(1 - w) (w > 0.62) and query 1 when 1 - 0.5w > 0.55w (w < 0.95).
    a = np.array([[0.9, 0.1, 0.0], [0.55, 0.5, 0.0]])
    b = np.array([[0.0, 1.3, 0.0], [0.0, 1.0, 0.0]])
    offsets = np.arange(4)
    relevant = [{0}, {1}]
    weights, value = search_weights([a, b], offsets, relevant, step=0.1)
    assert value == pytest.approx(1.0)
    assert weights == pytest.approx((0.7, 0.3))  # of the perfect 0.7, 0.8, 0.9: the most balanced
    alone, v_alone = search_weights([a], offsets, relevant, step=0.1)
    assert alone == (1.0,) and v_alone == pytest.approx(0.75)  # AP 1 and 1/2


def test_a_tolerance_prefers_balanced_weights_that_are_nearly_as_good() -> None:
    # The members of the test above: only w = 0.7-0.9 on A rank both queries right (mean AP 1.0); at
    # 0.5 query 0's clip comes second (AP 1/2, mean 0.75); at 0.6 the same.
    a = np.array([[0.9, 0.1, 0.0], [0.55, 0.5, 0.0]])
    b = np.array([[0.0, 1.3, 0.0], [0.0, 1.0, 0.0]])
    offsets = np.arange(4)
    relevant = [{0}, {1}]
    strict, v_strict = search_weights([a, b], offsets, relevant, step=0.1, tolerance=0.2)
    assert strict == pytest.approx((0.7, 0.3)) and v_strict == pytest.approx(1.0)
    loose, v_loose = search_weights([a, b], offsets, relevant, step=0.1, tolerance=0.3)
    assert loose == pytest.approx((0.5, 0.5)) and v_loose == pytest.approx(0.75)


def test_fused_windows_are_scored_per_clip_by_their_best_window() -> None:
    # One query, two clips; clip 0 has two windows. The ensemble score of a window is the weighted sum
    # of member scores, and a clip scores as its best fused window (not the sum of per-member maxima).
    a = np.array([[1.0, 0.0, 0.6]])
    b = np.array([[0.0, 1.0, 0.6]])
    offsets = np.array([0, 2, 3])
    # Per-member maxima would give clip 0 a fused 1.0 > 0.6; per fused window it has only 0.5 < 0.6.
    weights, value = search_weights([a, b], offsets, [{1}], step=0.5)
    assert weights == (0.5, 0.5) and value == pytest.approx(1.0)


def test_max_members_limits_the_non_zero_weights() -> None:
    # Four members, each ranking a different query right: the unconstrained best uses all four.
    n = 4
    scores = []
    for m in range(n):
        s = np.zeros((n, n), dtype=np.float32)
        s[m, m] = 1.0
        scores.append(s)
    offsets = np.arange(n + 1)
    relevant = [{q} for q in range(n)]
    free, v_free = search_weights(scores, offsets, relevant, step=0.25)
    assert sum(w > 0 for w in free) == 4
    capped, v_capped = search_weights(scores, offsets, relevant, step=0.25, max_members=2)
    assert sum(w > 0 for w in capped) == 2 and v_capped < v_free
