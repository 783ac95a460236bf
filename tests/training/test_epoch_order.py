"""The pairs an epoch draws: every pair once, or each pair with its clip's sample weight."""

from __future__ import annotations

import numpy as np

from training.loop import Trainer


class _Pairs:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def _trainer(weights: np.ndarray | None, n: int) -> Trainer:
    t = Trainer.__new__(Trainer)  # only the two attributes the epoch order reads
    t.pairs = _Pairs(n)  # type: ignore[assignment]
    t.pair_weight = weights
    return t


def test_unweighted_epochs_draw_every_pair_once() -> None:
    order = _trainer(None, 100)._epoch_order(np.random.default_rng(0), 96)
    assert len(order) == 96 and len(set(order.tolist())) == 96


def test_weighted_epochs_draw_pairs_in_proportion_to_their_weight() -> None:
    # 1,000 pairs of full weight and 3,000 of weight 1/3: an epoch of ~2,000 draws each kind about equally.
    weights = np.r_[np.ones(1000), np.full(3000, 1 / 3)]
    t = _trainer(weights, 4000)
    heavy = light = 0
    for epoch in range(20):
        order = t._epoch_order(np.random.default_rng([0, epoch]), 1984)
        assert len(order) == 1984
        heavy += int((order < 1000).sum())
        light += int((order >= 1000).sum())
    assert 0.9 < heavy / light < 1.1
    # Every full-weight pair is kept in every epoch (the cut to the epoch's size drops a few at random).
    order = t._epoch_order(np.random.default_rng(5), 1984)
    assert (order < 1000).sum() > 900


def test_an_epoch_is_drawn_even_when_chance_keeps_no_pair() -> None:
    t = _trainer(np.full(4, 1e-9), 4)
    order = t._epoch_order(np.random.default_rng(0), 2)
    assert len(order) == 2 and set(order.tolist()) <= {0, 1, 2, 3}
