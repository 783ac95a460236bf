"""Tests for the coverage corpus (training/data/debian/coverage.py): a fake source is scanned, built,
checked against a held-out corpus for duplicate audio and captioned, all on small synthetic clips."""

from __future__ import annotations

import csv

import pytest
import soundfile as sf

from training.data import captions as cap
from training.data.debian import coverage
from training.data.debian.corpus import CorpusError, InventoryRow, ManifestRow, write_manifest

from .coverage_fixtures import SR, tone, unpacked

PKG = "earshot-fixture-coverage"
VAL_PKG = "minetest-data"  # a validation package of the first corpus


def _manifest_row(path, package, status="ok", duration="1.0", licence="CC0"):
    return {"path": path, "package": package, "status": status, "duration_s": duration,
            "measured_duration_s": duration, "licence": licence, "member_path": path.split("/", 1)[1]}  # fmt: skip


def test_caption_rows_are_training_rows_with_concepts_and_synonyms():
    manifest = [
        _manifest_row(f"{PKG}/a.wav", PKG),
        _manifest_row(f"{PKG}/b.wav", PKG, status="missing"),
        _manifest_row(f"{PKG}/c.wav", PKG),
        _manifest_row(f"{PKG}/d.wav", PKG),
    ]
    caps = {f"{PKG}/a.wav": ["dog barking", "dog bark", "Dog Bark!"], f"{PKG}/c.wav": ["cat"]}
    rows, left_out = coverage.caption_rows(
        manifest, caps, synonyms={"dog": ["hound"]}, exclude={f"{PKG}/d.wav"}, max_captions=3
    )
    assert [r["caption"] for r in rows if r["path"].endswith("a.wav")] == [
        "dog barking",
        "dog bark",
        "hound barking",
    ]
    assert {r["concept"] for r in rows if r["path"].endswith("a.wav")} == {"dog barking"}
    assert {r["split"] for r in rows} == {"train"} and set(rows[0]) == set(cap.CAPTION_COLUMNS)
    assert left_out == {"missing": 1, "duplicate of held-out audio": 1}
    with pytest.raises(CorpusError):
        coverage.caption_rows([_manifest_row(f"{VAL_PKG}/x.wav", VAL_PKG)], {f"{VAL_PKG}/x.wav": ["x"]})


def test_held_out_leaks_finds_copies_of_held_out_audio_only(tmp_path):
    new, held = tmp_path / "new", tmp_path / "held"
    for root in (new, held):
        (root / "p").mkdir(parents=True)
    sf.write(new / "p" / "copy.wav", tone(1.0, seed=1), SR)
    sf.write(held / "p" / "orig.wav", tone(1.0, seed=1) * 0.5, SR)  # same sound, quieter
    sf.write(new / "p" / "other.wav", tone(1.0, seed=2), SR)
    sf.write(new / "p" / "twin.wav", tone(1.0, seed=2), SR)  # duplicate inside the new clips: kept
    leaks = coverage.held_out_leaks(new, ["p/copy.wav", "p/other.wav", "p/twin.wav"], held, ["p/orig.wav"])
    assert leaks == {"p/copy.wav"}


def test_build_coverage_end_to_end(tmp_path, monkeypatch):
    cache, out, held = tmp_path / "cache", tmp_path / "out", tmp_path / "held"
    root = unpacked(cache, PKG)
    (root / "s").mkdir()
    sf.write(root / "s" / "moo.wav", tone(0.8, seed=3), SR)
    sf.write(root / "s" / "leak.wav", tone(0.9, seed=4), SR)
    (held / VAL_PKG).mkdir(parents=True)
    sf.write(held / VAL_PKG / "orig.wav", tone(0.9, seed=4), SR)
    held_row = InventoryRow(VAL_PKG, "1", "", "orig.wav", 0.9, "x", "x")
    write_manifest(held / "manifest.csv", [ManifestRow(held_row, "ok", "1", 0.9, licence="CC0")])

    def scan(extracted, version):
        rows = [
            InventoryRow(PKG, version, "", f"s/{n}.wav", d, n, n) for n, d in (("moo", 0.8), ("leak", 0.9))
        ]
        return rows, {"s/moo.wav": ["cow mooing", "cow moo"], "s/leak.wav": ["leaked sound"]}

    source = coverage.Source(PKG, scan, lambda member: "animals")
    monkeypatch.setattr(coverage, "SOURCES", {PKG: source})
    inventory, captions = tmp_path / "inv.csv", tmp_path / "caps.csv"
    captions.write_text(
        "path,caption,concept,package,licence,split,duration_s\nother/x.wav,x,x,other,CC0,train,1.000\n"
        f"{PKG}/old.wav,old,old,{PKG},CC0,train,1.000\n",
        encoding="utf-8",
    )
    blind = tmp_path / "blind"
    (blind / "kapman").mkdir(parents=True)
    sf.write(blind / "kapman" / "eat.wav", tone(0.8, seed=3), SR)  # the same sound as moo.wav
    (blind / "manifest.csv").write_text("path,status\nkapman/eat.wav,ok\n", encoding="utf-8")
    left_out = coverage.build_coverage([PKG], cache, out, inventory, captions, held, protect=[blind])
    assert left_out == {"duplicate of held-out audio": 2}
    assert not captions.read_text(encoding="utf-8").count(f"{PKG}/s/")
    left_out = coverage.build_coverage([PKG], cache, out, inventory, captions, held)
    assert left_out == {"duplicate of held-out audio": 1}
    rows = list(csv.DictReader(open(captions, encoding="utf-8")))
    assert [(r["path"], r["caption"]) for r in rows][:2] == [
        (f"{PKG}/s/moo.wav", "cow mooing"),
        (f"{PKG}/s/moo.wav", "cow moo"),
    ]
    assert {r["path"] for r in rows} == {f"{PKG}/s/moo.wav", "other/x.wav"}  # the package's old rows replaced
    assert (out / PKG / "s" / "moo.wav").is_file() and (out / "manifest.csv").is_file()
    assert [r["member_path"] for r in csv.DictReader(open(inventory, encoding="utf-8"))] == [
        "s/leak.wav",
        "s/moo.wav",
    ]
    summary = coverage.summary(cap.read_captions(captions))
    assert summary["category animals"] == {"clips": 1, "hours": 0.0, "concepts": 1}
    assert summary["total"]["clips"] == 2
    with pytest.raises(CorpusError):
        coverage.build_coverage(["qabcs-data"], cache, out, inventory, captions, held)


def test_every_source_package_is_a_training_package_and_none_is_reserved():
    from training.data.debian.corpus import RESERVED_PACKAGES, split_of

    assert not set(coverage.SOURCES) & RESERVED_PACKAGES
    assert {split_of(p) for p in coverage.SOURCES} == {"train"}


#: Packages of the blind evaluation set (training/data/blind/): never a training source.
BLIND = {"scratch", "supertuxkart-data", "kapman", "kbounce", "kolf", "granatier", "knavalbattle", "kblocks",
         "kgoldrunner", "kpat", "aisleriot", "pychess", "xboard"}  # fmt: skip


def test_no_source_is_a_blind_evaluation_package():
    assert not set(coverage.SOURCES) & BLIND
