from __future__ import annotations

import math
import random

import pytest

from engine.fusion import features, rrf, weighted_scores


def _naive_rrf(rankings: list[list[int]], k: float, weights: list[float]) -> dict[int, float]:
    """Reference: the formula written out, one id at a time."""
    ids = {d for r in rankings for d in r}
    out = {}
    for d in ids:
        out[d] = sum(w / (k + r.index(d) + 1) for r, w in zip(rankings, weights, strict=True) if d in r)
    return out


def test_rrf_hand_built_case() -> None:
    semantic = [10, 20, 30, 40]
    keyword = [30, 50, 10]
    fused = rrf([semantic, keyword], k=60)
    # 10: 1/61 + 1/63; 30: 1/63 + 1/61 (tie, 30 and 10 both reached rank 1 -> smaller id first);
    # 20: 1/62; 50: 1/62 (tie, both best rank 2); 40: 1/64
    assert [d for d, _ in fused] == [10, 30, 20, 50, 40]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 63)
    assert fused[-1][1] == pytest.approx(1 / 64)


def test_rrf_weights_change_the_winner() -> None:
    a, b = [1, 2], [2, 1]
    assert rrf([a, b])[0][1] == rrf([a, b])[1][1]  # symmetric: a tie
    assert [d for d, _ in rrf([a, b], weights=[2.0, 1.0])] == [1, 2]
    assert [d for d, _ in rrf([a, b], weights=[1.0, 2.0])] == [2, 1]
    assert [d for d, _ in rrf([a, b], weights=[0.0, 1.0])] == [2, 1]


def test_rrf_k_trades_top_rank_against_agreement() -> None:
    lists = [["x", "y"], ["z", "y"]]  # x, z: rank 1 once; y: rank 2 twice
    # y: 2/(k+2) vs x: 1/(k+1): y wins for every k > 0, by more as k grows
    for k in (0.5, 1, 60, 1000):
        fused = dict(rrf(lists, k=k))
        assert fused["y"] > fused["x"] == fused["z"]
    lists = [["x", "w", "v", "y"], ["z", "u", "t", "y"]]  # y: rank 4 twice
    assert rrf(lists, k=0.5)[0][0] == "x"  # 1/1.5 > 2/4.5
    assert rrf(lists, k=60)[0][0] == "y"  # 2/64 > 1/61


def test_rrf_matches_naive_reference_on_random_lists() -> None:
    rng = random.Random(0)
    for _ in range(50):
        rankings = [rng.sample(range(40), rng.randint(0, 25)) for _ in range(rng.randint(1, 4))]
        weights = [rng.uniform(0, 3) for _ in rankings]
        k = rng.choice([1, 10, 60])
        got = rrf(rankings, k=k, weights=weights)
        ref = _naive_rrf(rankings, k, weights)
        assert {d for d, _ in got} == set(ref)
        for d, s in got:
            assert s == pytest.approx(ref[d])
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True)


def test_rrf_repeated_id_counts_once() -> None:
    assert rrf([[1, 1, 2]]) == rrf([[1, 2]])


def test_rrf_empty_and_errors() -> None:
    assert rrf([]) == [] and rrf([[], []]) == []
    with pytest.raises(ValueError):
        rrf([[1]], k=0)
    with pytest.raises(ValueError):
        rrf([[1], [2]], weights=[1.0])
    with pytest.raises(ValueError):
        rrf([[1]], weights=[-1.0])


def test_weighted_scores_hand_built_case() -> None:
    semantic = {1: 0.9, 2: 0.5, 3: 0.1}  # -> 1.0, 0.5, 0.0
    keyword = {3: 30.0, 4: 10.0, 1: 0.0}  # -> 1.0, 1/3, 0.0
    fused = weighted_scores([semantic, keyword], [0.5, 0.5])
    assert fused == [
        (1, pytest.approx(0.5)),
        (3, pytest.approx(0.5)),
        (2, pytest.approx(0.25)),
        (4, pytest.approx(1 / 6)),
    ]
    # 1 and 3 tie at 0.5; 1 reached rank 1 in semantic, 3 rank 1 in keyword: smaller id first
    heavy_keyword = weighted_scores([semantic, keyword], [0.2, 0.8])
    assert [d for d, _ in heavy_keyword][:2] == [3, 4]


def test_weighted_scores_scale_free() -> None:
    a = {1: 3.0, 2: 2.0, 3: 1.0}
    b = {1: 300.0, 2: 200.0, 3: 100.0}
    assert weighted_scores([a]) == weighted_scores([b])


def test_weighted_scores_constant_list_and_non_finite() -> None:
    assert weighted_scores([{5: 2.0, 6: 2.0}]) == [(5, 1.0), (6, 1.0)]
    fused = dict(weighted_scores([{1: math.nan, 2: 1.0, 3: math.inf, 4: 0.0}]))
    assert fused == {2: 1.0, 4: 0.0}
    assert weighted_scores([{}, {}]) == []
    with pytest.raises(ValueError):
        weighted_scores([{1: 1.0}], [1.0, 2.0])


def test_best_f1_threshold_against_brute_force():
    from engine.fusion import best_f1_threshold

    rng = random.Random(3)
    for _ in range(20):
        p = [round(rng.random(), 2) for _ in range(60)]
        y = [int(rng.random() < x) for x in p]
        if not any(y):
            continue

        def f1(t, p=p, y=y):
            tp = sum(1 for a, b in zip(p, y, strict=True) if a >= t and b)
            n = sum(1 for a in p if a >= t)
            return 2 * tp / (n + sum(y))

        t = best_f1_threshold(p, y)
        assert f1(t) == pytest.approx(max(f1(x) for x in set(p)))


def test_relevance_puts_the_cut_off_at_50_and_keeps_the_order():
    from engine.fusion import Evidence, LogisticModel, TrustFusion

    m = LogisticModel(-6.0, {"content": 10.0})
    fusion = TrustFusion(m, m, m, good_match=15.0)
    cut = next(c / 1000 for c in range(0, 1000) if m.probability(Evidence(content=c / 1000)) >= 0.15)
    assert fusion.relevance("content", Evidence(content=cut)) == pytest.approx(50.0, abs=0.5)
    values = [fusion.relevance("both", Evidence(content=c / 10)) for c in range(-3, 11)]
    assert values == sorted(values) and 0.0 <= values[0] < values[-1] <= 100.0


def _ranking_groups(rng, w_true, n_groups=300, n_items=40):
    """Queries whose one relevant candidate is drawn from the softmax of a known score ``w_true · x``."""
    import numpy as np

    groups = []
    for _ in range(n_groups):
        x = rng.normal(size=(n_items, len(w_true)))
        s = x @ w_true
        p = np.exp(s - s.max())
        p /= p.sum()
        y = np.zeros(n_items, dtype=int)
        y[rng.choice(n_items, p=p)] = 1
        groups.append(([{f"f{j}": float(v) for j, v in enumerate(row)} for row in x], list(y)))
    return groups


def test_fit_listwise_recovers_a_known_ranking_model():
    import numpy as np

    from engine.fusion import fit_listwise

    rng = np.random.default_rng(0)
    w_true = np.array([3.0, -2.0, 0.0])
    groups = _ranking_groups(rng, w_true)
    names = ["f0", "f1", "f2"]
    w = fit_listwise(groups, names, l2=1e-6)
    assert w["f0"] == pytest.approx(3.0, abs=0.6)
    assert w["f1"] == pytest.approx(-2.0, abs=0.5)
    assert abs(w["f2"]) < 0.4
    # a group without any relevant item changes nothing; no relevant item at all is an error
    empty = ([{"f0": 9.0, "f1": 0.0, "f2": 0.0}], [0])
    assert fit_listwise(groups + [empty], names, l2=1e-6) == pytest.approx(w)
    with pytest.raises(ValueError):
        fit_listwise([empty], names)


def test_fit_ranking_orders_like_the_listwise_fit_and_calibrates():
    import numpy as np

    from engine.fusion import Evidence, TrustFusion, fit_listwise, fit_ranking

    rng = np.random.default_rng(1)
    groups = []
    for _ in range(200):  # content, name and informativeness; relevance from content + trusted name
        rows, ys = [], []
        for _ in range(30):
            ev = Evidence(content=float(rng.uniform(-0.1, 0.6)), name=float(rng.uniform(0, 1)),
                          informativeness=float(rng.choice([0.0, 1.0])))
            rows.append(ev)
            ys.append(int(rng.uniform() < 1 / (1 + math.exp(-(-6 + 8 * ev.content + 5 * ev.informativeness * ev.name)))))
        groups.append(([features(ev) for ev in rows], ys, rows))
    names = ["content", "name_trusted", "content_x_name"]
    model = fit_ranking([(x, y) for x, y, _ in groups], names)
    w = fit_listwise([(x, y) for x, y, _ in groups], names)
    scale = model.weights["content"] / w["content"]
    assert scale > 0
    assert {n: model.weights[n] / scale for n in names} == pytest.approx(w)
    assert model.weights["content"] > 0 and model.weights["name_trusted"] > 0
    # calibrated: the mean predicted probability matches the share of relevant pairs
    probs = [model.probability(ev) for _, _, evs in groups for ev in evs]
    share = sum(sum(y) for _, y, _ in groups) / len(probs)
    assert sum(probs) / len(probs) == pytest.approx(share, rel=0.1)
    # an opaque file (informativeness 0) gets nothing from a high name cosine, interaction included
    fusion = TrustFusion(model, model, model)
    assert fusion.both.probability(Evidence(content=0.3, name=0.95, informativeness=0.0)) == pytest.approx(
        fusion.both.probability(Evidence(content=0.3)))
