"""Tests for the guitar-strum source (training/data/debian/strums.py)."""

from __future__ import annotations

import soundfile as sf

from training.data.debian import coverage, strums

from .coverage_fixtures import SR, tone, unpacked


def test_chord_names_of_the_kit_become_search_words():
    assert strums.chord_captions("Amajor_UP_01") == [
        "guitar chord strum",
        "guitar strum A major chord",
        "acoustic guitar strumming the A major chord",
        "major chord strummed on a guitar",
        "guitar upstroke strum",
    ]
    # The kit's spellings: a space before the quality, a seventh, "minro", "Down" in another case.
    assert strums.chord_captions("Asharp minro7b5_Down_00")[1:] == [
        "guitar strum A sharp minor chord",
        "acoustic guitar strumming the A sharp minor chord",
        "minor chord strummed on a guitar",
        "guitar downstroke strum",
    ]
    assert len(strums.chord_captions("Bflat major_00")) == 4  # no stroke named: no stroke caption
    assert strums.chord_captions("click") is None
    assert strums.chord_captions("Hmajor_00") is None


def test_inventory_keeps_the_first_take_of_each_chord_and_stroke(tmp_path):
    root = unpacked(tmp_path, strums.PACKAGE)
    kit = root / strums.KIT_DIR
    kit.mkdir(parents=True)
    for name in ("Amajor_00", "Amajor_01", "Amajor_UP_00", "Amajor_UP_03", "Cminor_Down_00", "drumkit_click"):
        sf.write(kit / f"{name}.flac", tone(0.5), SR)
    sf.write(root / "usr/share/hydrogen/data/Amajor_00.flac", tone(0.5), SR)  # outside the kit
    rows, caps, left_out = strums.inventory_rows(root, "1")
    kept = sorted(r.member_path.rsplit("/", 1)[1] for r in rows)
    assert kept == ["Amajor_00.flac", "Amajor_UP_00.flac", "Cminor_Down_00.flac"]
    assert all(caps[r.member_path][0] == strums.CONCEPT for r in rows)
    assert left_out["another take of the same chord"] == 2
    assert left_out["not a chord of the strum kit"] == 2


def test_strums_are_a_coverage_source():
    assert strums.PACKAGE in coverage.SOURCES
    assert coverage.SOURCES[strums.PACKAGE].category("x.flac") == "instruments"
