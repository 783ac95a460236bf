"""The card's stage tables (training/ablation.py) for every evaluation set of the sfx-small recipe."""

from __future__ import annotations

import json

import pytest

from training.ablation import KEYS, table


@pytest.mark.parametrize("eval_set", ["dev", "test", "blind"])
def test_stage_table_has_each_stage_the_bundle_and_chance(tmp_path, eval_set):
    runs, bundle = tmp_path / "runs", tmp_path / "bundle"
    for s, value in ((0, 0.2), (1, 0.3)):
        (runs / f"stage1-s{s}").mkdir(parents=True)
        (runs / f"stage1-s{s}" / f"eval-{eval_set}.json").write_text(json.dumps({k: value for k in KEYS}))
    bundle.mkdir()
    spec = {"members": [{}, {}, {}], "training": {"metrics": {eval_set: {k: 0.4 for k in KEYS}}}}
    (bundle / "bundle.json").write_text(json.dumps(spec))
    rows = table(runs, bundle, eval_set).splitlines()
    assert "| stage 1: contrastive (single model) | 2 seeds | 25.00 ± 5.00 |" in rows[2]
    assert rows[3].startswith("| **ensemble, exported bundle, through the engine** | 3 | 40.00 |")
    chance = rows[4].split(" | ")
    assert chance[0] == "| chance (random ranking)" and 0 < float(chance[2]) < 3  # mAP@16 of a random ranking
