"""Tests for the plainly named game sounds source (training/data/debian/named.py)."""

from __future__ import annotations

import soundfile as sf

from training.data.captions import Jargon
from training.data.debian import named

from .coverage_fixtures import SR, tone, unpacked


def test_scan_keeps_named_clips_in_the_sound_folders_and_caps_repeats(tmp_path, monkeypatch):
    root = unpacked(tmp_path, "earshot-fixture-named")
    sounds = root / "usr/share/games/fixture/sounds"
    sounds.mkdir(parents=True)
    for i in range(4):
        (sounds / f"plane{i}").mkdir()
        sf.write(sounds / f"plane{i}" / "engine_start.wav", tone(0.5, 100 + i), SR)
    sf.write(sounds / "SmlExpl2.wav", tone(0.3), SR)
    sf.write(sounds / "02.wav", tone(0.3), SR)
    sf.write(sounds / "tick.wav", tone(0.05), SR)  # too short
    (root / "usr/share/doc").mkdir(parents=True)
    sf.write(root / "usr/share/games/fixture/outside.wav", tone(0.3), SR)
    monkeypatch.setitem(named.PACKAGES, "earshot-fixture-named", ("usr/share/games/fixture/sounds/",))
    monkeypatch.setattr(named, "MAX_PER_CONCEPT", 3)
    rows, caps, left_out = named.scan("earshot-fixture-named", root, "1", Jargon())
    names = sorted(r.member_path.split("sounds/", 1)[1] for r in rows)
    assert names == [
        "SmlExpl2.wav",
        "plane0/engine_start.wav",
        "plane1/engine_start.wav",
        "plane2/engine_start.wav",
    ]
    assert caps[next(r.member_path for r in rows if "SmlExpl2" in r.member_path)][0] == "small explosion"
    assert left_out["over the per-caption cap"] == 1
    assert left_out["outside the sound folders"] == 1
    assert left_out["too_short"] == 1
    assert left_out["dropped: uninformative name"] == 1
