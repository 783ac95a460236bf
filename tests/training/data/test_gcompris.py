"""Tests for the GCompris source (training/data/debian/gcompris.py): a synthetic Qt resource bundle is
inventoried and built by the corpus builder through the ``.rcc`` container reader."""

from __future__ import annotations

import soundfile as sf

from training.data.debian import build, gcompris

from .coverage_fixtures import unpacked, wav_bytes
from .test_rcc import write_rcc


def _package(cache):
    root = unpacked(cache, gcompris.PACKAGE)
    rcc_dir = root / gcompris.RCC_DIR
    rcc_dir.mkdir(parents=True)
    files = {
        "gcompris/src/activities/explore_farm_animals/resource/animals/cow.ogg": wav_bytes(0.4, 200),
        "gcompris/src/activities/explore_farm_animals/resource/animals/Dog.ogg": wav_bytes(0.3, 600),
        "gcompris/src/activities/explore_farm_animals/resource/animals/unknown_beast.wav": wav_bytes(0.2),
        "gcompris/src/activities/explore_farm_animals/resource/cow.svg": b"<svg/>",
        "gcompris/src/activities/explore_farm_animals/resource/animals/sheep.ogg": b"not audio",
    }
    (rcc_dir / "explore_farm_animals.rcc").write_bytes(write_rcc(files, compress=frozenset(list(files)[:1])))
    (rcc_dir / "broken.rcc").write_bytes(b"garbage")
    return root


def test_captions_come_from_the_hand_written_table():
    assert gcompris.captions_for("gcompris/src/activities/x/resource/animals/cow.ogg")[0] == "cow mooing"
    assert (
        gcompris.captions_for("gcompris/src/activities/instruments/resource/cello.ogg")[0] == "cello playing"
    )
    assert gcompris.captions_for("gcompris/src/activities/x/resource/intro.ogg") == []


def test_inventory_lists_captioned_audio_and_says_why_others_are_left_out(tmp_path):
    root = _package(tmp_path)
    rows, left_out = gcompris.inventory_rows(root, "3.1-2")
    assert [r.member_path.rsplit("/", 1)[1] for r in rows] == ["Dog.ogg", "cow.ogg"]
    assert rows[1].container == f"{gcompris.RCC_DIR}/explore_farm_animals.rcc"
    assert rows[1].duration_s == 0.4 and rows[1].concept_key == "cow mooing"
    assert left_out == {"no caption": 1, "undecodable": 1, "unreadable bundle": 1}


def test_the_corpus_builder_extracts_bundle_members(tmp_path):
    cache = tmp_path / "cache"
    _package(cache)
    rows, _ = gcompris.inventory_rows(cache / "extracted" / gcompris.PACKAGE)
    report = build.build_corpus(rows, cache, tmp_path / "out", skip_rules=False)
    assert [r.status for r in report.rows] == ["ok", "ok"]
    assert sf.info(str(tmp_path / "out" / rows[1].corpus_path)).duration == 0.4
