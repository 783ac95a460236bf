"""Augmentation: word-level caption variants, mixing, the stored augmented set, the pair table."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from training.augment.augmented import (
    AUGMENTED_FILE,
    apply_augmented_set,
    build_augmented_set,
    read_augmented_set,
)
from training.augment.mix import mix_signals
from training.augment.text_ops import caption_variants, synonym_replacement, word_deletion
from training.config import AugmentConfig
from training.data.pairs import build_pairs
from training.data.readers import Clip


def test_word_deletion_keeps_something_and_changes_the_caption() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        out = word_deletion("a heavy wooden door slams shut", rng, p=0.9)
        assert out and out != "a heavy wooden door slams shut"
        assert set(out.split()) <= set("a heavy wooden door slams shut".split())
    assert word_deletion("door slam", rng, p=1.0) == "door slam"  # too short to delete from


def test_synonym_replacement_works_on_whole_words_only() -> None:
    rng = np.random.default_rng(0)
    syn = {"hum": ("drone",), "car": ("vehicle",)}
    assert synonym_replacement("a hummingbird", rng, syn) == "a hummingbird"
    assert synonym_replacement("a low hum", rng, syn) == "a low drone"
    assert synonym_replacement("Car passing by", rng, syn) == "vehicle passing by"


def test_caption_variants_are_distinct_and_reproducible() -> None:
    a = caption_variants("a loud car engine idles in the rain", 4, np.random.default_rng(3))
    b = caption_variants("a loud car engine idles in the rain", 4, np.random.default_rng(3))
    assert a == b and len(a) == 4 and len(set(a)) == 4
    assert "a loud car engine idles in the rain" not in a
    assert caption_variants("zzz", 3, np.random.default_rng(0)) == []


def test_mixing_pads_applies_the_gain_and_never_clips() -> None:
    a = np.full(100, 0.1, np.float32)
    b = np.full(50, 0.1, np.float32)
    m = mix_signals(a, b, -6.0)
    assert m.shape == (100,) and m.dtype == np.float32
    assert m[0] == pytest.approx(0.1 + 0.1 * 10 ** (-6 / 20)) and m[99] == pytest.approx(0.1)
    loud = mix_signals(np.full(10, 0.9, np.float32), np.full(10, 0.9, np.float32), 0.0)
    assert np.abs(loud).max() == pytest.approx(0.99)


def _clips() -> list[Clip]:
    return [
        Clip(key=f"/x/{n}.wav", path=Path(f"/x/{n}.wav"), captions=caps, concept=caps[0])
        for n, caps in (
            ("dog", ("a dog barks", "dog barking")),
            ("rain", ("rain falls",)),
            ("bell", ("a bell rings",)),
        )
    ]


def test_augmented_set_is_built_once_stored_and_applied(tmp_path: Path) -> None:
    cfg = AugmentConfig(backtranslations=2, mixes=4, seed=1)
    rows = build_augmented_set(_clips(), cfg, tmp_path)
    bt = [r for r in rows if r["kind"] == "backtranslation"]
    mixes = [r for r in rows if r["kind"] == "mix"]
    assert len(bt) <= 8 and len(mixes) == 4 and all(r["generator"] == "rules" for r in rows)
    assert all(m["a"] != m["b"] and -6.0 <= m["gain_db"] <= 0.0 for m in mixes)
    meta, stored = read_augmented_set(tmp_path / AUGMENTED_FILE)
    assert stored == rows and meta["generator"] == "rules"
    # A rerun reads the stored set; a changed setting rebuilds it.
    mtime = (tmp_path / AUGMENTED_FILE).stat().st_mtime_ns
    assert build_augmented_set(_clips(), cfg, tmp_path) == rows
    assert (tmp_path / AUGMENTED_FILE).stat().st_mtime_ns == mtime
    assert (
        len([r for r in build_augmented_set(_clips(), replace(cfg, mixes=1), tmp_path) if r["kind"] == "mix"])
        == 1
    )
    clips = apply_augmented_set(_clips(), rows)
    assert len(clips) == 3 + 4 and all(c.mix is not None for c in clips[3:])
    dog = clips[0]
    assert dog.captions[:2] == ("a dog barks", "dog barking") and len(dog.captions) >= 3
    assert json.loads(json.dumps(clips[3].mix)) == [mixes[0]["a"], mixes[0]["b"], mixes[0]["gain_db"]]


def test_pair_table_with_variants() -> None:
    clips = [replace(_clips()[0], captions=("A Dog  barks loudly", "a dog barks loudly", "dog barking"))]
    table = build_pairs(clips, lambda s: " ".join(s.lower().split()), n_variants=3, seed=0)
    assert table.texts == ["a dog barks loudly", "dog barking"]  # normalised duplicates collapse
    assert table.pair_clip.tolist() == [0, 0] and table.pair_text.tolist() == [0, 1]
    variants = [table.all_texts[i] for i in table.variants[0]]
    assert variants and all(v != "a dog barks loudly" for v in variants)
    assert table.all_texts[: len(table.texts)] == table.texts
