"""The development set (training/data/dev): the committed files agree with each other, with the val split of
the captions table and with the recipe; the measurements say what a sine and a noise are."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from training.data.blind.build import BlindSetError, read_queries
from training.data.dev import build as dev


def test_committed_dev_set_is_the_val_split_and_its_authoring_file():
    keys = dev.clip_keys()
    val = {path for _, path in dev.val_clips()}
    assert set(keys.values()) == val and len(keys) == len(val) >= 300  # every val clip, each once
    entries = dev.expand_authoring(dev.AUTHORING.read_text(encoding="utf-8"), keys)
    assert len(entries) >= 200
    assert {q: set(p) for _, q, p in entries} == read_queries(dev.HERE / "queries.csv")
    with open(dev.HERE / "query_categories.csv", newline="", encoding="utf-8") as fh:
        assert {r["query"]: r["category"] for r in csv.DictReader(fh)} == {q: c for c, q, _ in entries}
    covered = {p for _, _, paths in entries for p in paths}
    assert len(covered) >= 0.9 * len(val)


def test_recipe_chooses_ensemble_weights_on_the_dev_set():
    from training.config import load_recipe

    recipe = load_recipe(dev.HERE.parents[1] / "recipes" / "sfx-small" / "ensemble.toml")
    assert recipe.ensemble.eval_set == "dev"
    d = recipe.data.eval["dev"]
    assert d.queries.path == "training/data/dev/queries.csv"
    assert [s.split for s in d.sources] == ["val"]


def test_unknown_key_is_refused():
    with pytest.raises(BlindSetError, match="unknown clip key v9999"):
        dev.expand_authoring("ui | click | v9999", {"v0000": "p/a.wav"})


def test_measure_tells_a_tone_from_noise():
    sr = 22050
    t = np.arange(sr) / sr
    tone = dev.measure((0.5 * np.sin(2 * np.pi * 440 * t))[:, None].astype(np.float32), sr)
    noise = dev.measure(np.random.default_rng(0).uniform(-0.5, 0.5, (sr, 2)).astype(np.float32), sr)
    assert tone["dur_s"] == "1.00" and tone["ch"] == "1" and noise["ch"] == "2"
    assert abs(int(tone["pitch_hz"]) - 440) < 10 and noise["pitch_hz"] == ""
    assert float(tone["flatness"]) < 0.05 < 0.3 < float(noise["flatness"])
    assert abs(int(tone["centroid_hz"]) - 440) < 100 < 3000 < int(noise["centroid_hz"])
    assert len(tone["env_db_8seg"].split()) == 8
