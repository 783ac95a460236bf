"""Tests for the Hydrogen drum-kit source (training/data/debian/hydrogen.py) on a synthetic kit."""

from __future__ import annotations

import pytest
import soundfile as sf

from training.data.debian import hydrogen

from .coverage_fixtures import SR, tone, unpacked


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ('Hi-Hat Closed (Paiste Alpha Metal edge 14")', "closed hi-hat"),
        ("Djembe1 Slap", "djembe slap"),
        ("BassDrum", "bass drum"),
        ("c3 - bass drum 1", "bass drum"),
        ("Kick", "kick drum"),
        ('Tom High (Tama Superstar 12")', "high tom drum"),
        ("VariBreaks Snare 2", "snare drum"),
        ("Closed HH", "closed hi-hat"),
        ("17", ""),
        ("Sample: beats_01-39.flac", ""),
        ("redo super opaco", ""),
    ],
)
def test_instrument_names_in_plain_words(name, words):
    assert hydrogen.instrument_words(name) == words


KIT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>Test</name>
 <instrumentList>
  <instrument><name>Kick</name>
   <layer><filename>kick_soft.wav</filename><min>0</min><max>0.4</max></layer>
   <layer><filename>kick_hard.wav</filename><min>0.7</min><max>1</max></layer>
  </instrument>
  <instrument><name>Snare</name><filename>snare.wav</filename></instrument>
  <instrument><name>Snare Again</name><filename>snare.wav</filename></instrument>
  <instrument><name>23</name><filename>mystery.wav</filename></instrument>
  <instrument><name>Closed HH</name>
   <layer><filename>hh1.wav</filename><min>0</min><max>1</max></layer>
   <layer><filename>hh2.wav</filename><min>0</min><max>0.5</max></layer>
  </instrument>
 </instrumentList>
</drumkit_info>
"""


def _kit(cache, name="Audiophob"):
    root = unpacked(cache, hydrogen.PACKAGE)
    kit = root / hydrogen.KITS_DIR / name
    kit.mkdir(parents=True)
    (kit / "drumkit.xml").write_text(KIT_XML, encoding="utf-8")
    for i, f in enumerate(
        ["kick_soft.wav", "kick_hard.wav", "snare.wav", "mystery.wav", "hh1.wav", "hh2.wav"]
    ):
        sf.write(kit / f, tone(0.2 + 0.01 * i, 100 + 50 * i), SR)
    return root


def test_kit_layers_are_captioned_capped_and_never_twice(tmp_path, monkeypatch):
    root = _kit(tmp_path)
    rows, caps, left_out = hydrogen.inventory_rows(root, "2017")
    names = [r.member_path.rsplit("/", 1)[1] for r in rows]
    assert sorted(names) == ["hh1.wav", "hh2.wav", "kick_hard.wav", "kick_soft.wav", "snare.wav"]
    assert left_out["same file as another instrument"] == 1
    kick_soft = next(r for r in rows if r.member_path.endswith("kick_soft.wav"))
    assert caps[kick_soft.member_path] == [
        "kick drum",
        "electronic kick drum",
        "kick drum one-shot",
        "soft kick drum hit",
    ]
    monkeypatch.setattr(hydrogen, "PER_KIT", 3)
    rows, _, left_out = hydrogen.inventory_rows(root, "2017")
    # round robin over instruments, loudest layer first: kick (hard), snare, hi-hat (full range)
    assert sorted(r.member_path.rsplit("/", 1)[1] for r in rows) == ["hh1.wav", "kick_hard.wav", "snare.wav"]
    assert left_out["over the per-kit cap"] == 2


def test_dynamic_words_follow_the_velocity_range():
    assert hydrogen.dynamic((0.0, 0.4)) == "soft"
    assert hydrogen.dynamic((0.7, 1.0)) == "hard"
    assert hydrogen.dynamic((0.0, 1.0)) == ""
