"""Tests for the blind-set builder (training/data/blind/build.py) and the committed blind set.

The builder runs on synthetic unpacked packages (WAV files written here) and, end to end, on a tiny
``.deb`` built with ``dpkg-deb`` (skipped where it is missing); no network, no apt.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data.blind import build as bb

SR = 16000
COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2024 Somebody
License: GPL-2+

Files: sounds/special/*
Copyright: 2024 Somebody Else
License: CC0-1.0
"""


def _wav(path: Path, seconds: float, freq: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)


def _package_tree(root: Path, package: str = "kpat") -> Path:
    """A ``dpkg -x`` tree: kept clips, a too-short and a too-long one, a non-audio file, a copyright."""
    _wav(root / "usr/share/kpat/sounds/card-down.wav", 0.5)
    _wav(root / "usr/share/kpat/sounds/special/shuffle.wav", 1.25, 660.0)
    _wav(root / "usr/share/kpat/sounds/tick.wav", 0.05)
    _wav(root / "usr/share/kpat/sounds/long.wav", 31.0)
    (root / "usr/share/kpat/readme.txt").write_text("not audio")
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    return root


# ------------------------------------------------------------------------------------------------ rules


def test_path_rules_leave_out_music_voices_outside_sfx_and_named_files():
    assert bb.path_exclusion("scratch", "usr/share/scratch/Media/Sounds/Animal/Dog1.wav") is None
    assert (
        bb.path_exclusion("scratch", "usr/share/scratch/Media/Sounds/Music Loops/Techno.mp3")
        == "excluded_folder"
    )
    assert (
        bb.path_exclusion("scratch", "usr/share/scratch/Media/Sounds/Vocals/Singer1.wav") == "excluded_folder"
    )
    stk = "usr/share/games/supertuxkart/data/"
    assert bb.path_exclusion("supertuxkart-data", stk + "sfx/horn.ogg") is None
    assert bb.path_exclusion("supertuxkart-data", stk + "music/Lava.ogg") == "outside_sfx"
    assert bb.path_exclusion("supertuxkart-data", stk + "sfx/sara_airport_pa.ogg") == "speech"
    assert bb.path_exclusion("supertuxkart-data", stk + "sfx/anvil.ogg") == "training_source"
    assert bb.path_exclusion("kpat", "usr/share/kpat/sounds/card.txt") == "not_audio"
    assert bb.path_exclusion("kpat", "usr/share/doc/kpat/example.wav") == "not_audio"


def test_duration_rules():
    assert bb.duration_exclusion(None) == "undecodable"
    assert bb.duration_exclusion(0.099) == "too_short"
    assert bb.duration_exclusion(0.1) is None
    assert bb.duration_exclusion(30.0) is None
    assert bb.duration_exclusion(30.01) == "too_long"


def test_reserved_and_foreign_packages_are_refused(tmp_path):
    with pytest.raises(bb.BlindSetError, match="reserved"):
        bb.check_blind(["kpat", "lugaru-data"])
    with pytest.raises(bb.BlindSetError, match="not a blind-set package"):
        bb.check_blind(["freedink-data"])  # a training package
    inv = tmp_path / "inventory.csv"
    bb.write_inventory(inv, [bb.BlindClip("qabcs-data", "1", "a.wav", 1.0, "GPL-2")])
    with pytest.raises(bb.BlindSetError, match="reserved"):
        bb.read_inventory(inv)


# --------------------------------------------------------------------------------------------- scanning


def test_scan_keeps_clips_by_rule_with_their_licences(tmp_path):
    tree = _package_tree(tmp_path / "x")
    clips, left_out = bb.scan_package(tree, "kpat", "4:1.0")
    assert [c.member_path for c in clips] == [
        "usr/share/kpat/sounds/card-down.wav",
        "usr/share/kpat/sounds/special/shuffle.wav",
    ]
    assert clips[0].duration_s == pytest.approx(0.5) and clips[1].duration_s == pytest.approx(1.25)
    assert [c.licence for c in clips] == ["GPL-2+", "CC0-1.0"]  # the special folder has its own paragraph
    assert all(c.version == "4:1.0" for c in clips)
    assert left_out == {"too_short": 1, "too_long": 1}


def test_inventory_round_trip(tmp_path):
    clips, _ = bb.scan_package(_package_tree(tmp_path / "x"), "kpat", "1")
    bb.write_inventory(tmp_path / "inv.csv", clips[::-1])
    assert bb.read_inventory(tmp_path / "inv.csv") == sorted(clips, key=lambda c: c.member_path)


# ---------------------------------------------------------------------------------------------- layout


def test_build_lays_out_checks_durations_and_records_failures(tmp_path):
    tree = _package_tree(tmp_path / "x")
    out = tmp_path / "out"
    clips = [
        bb.BlindClip("kpat", "1", "usr/share/kpat/sounds/card-down.wav", 0.5, "GPL-2+"),
        bb.BlindClip("kpat", "1", "usr/share/kpat/sounds/special/shuffle.wav", 2.0, "CC0-1.0"),  # changed
        bb.BlindClip("kpat", "1", "usr/share/kpat/sounds/gone.wav", 1.0, "GPL-2+"),
        bb.BlindClip("kolf", "1", "usr/share/kolf/sounds/hit.wav", 1.0, "GPL-2+"),
    ]
    # a stale copy of the changed clip must not survive: a query would be scored against another sound
    _wav(out / "kpat/usr/share/kpat/sounds/special/shuffle.wav", 2.0)

    def unpacker(package: str, cache: Path) -> Path:
        if package == "kolf":
            raise bb.BlindSetError("Could not download the package kolf")
        return tree

    rows = bb.build(clips, tmp_path / "cache", out, unpacker)
    status = {path: s for path, s, _, _ in rows}
    assert status == {
        "kpat/usr/share/kpat/sounds/card-down.wav": "ok",
        "kpat/usr/share/kpat/sounds/special/shuffle.wav": "duration_mismatch",
        "kpat/usr/share/kpat/sounds/gone.wav": "missing",
        "kolf/usr/share/kolf/sounds/hit.wav": "package_failed",
    }
    assert sf.info(str(out / "kpat/usr/share/kpat/sounds/card-down.wav")).duration == pytest.approx(0.5)
    assert not (out / "kpat/usr/share/kpat/sounds/special/shuffle.wav").exists()
    assert not list(out.rglob("*.part"))
    with open(out / "manifest.csv", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert [r["status"] for r in manifest] == ["ok", "duration_mismatch", "missing", "package_failed"]
    assert float(manifest[1]["measured_duration_s"]) == pytest.approx(1.25)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_main_scans_and_builds_from_a_deb_in_the_cache(tmp_path, monkeypatch):
    """``--scan`` then a build, through the real fetch (the .deb is already cached) and ``dpkg -x``."""
    src = _package_tree(tmp_path / "src")
    (src / "DEBIAN").mkdir()
    (src / "DEBIAN/control").write_text(
        "Package: kpat\nVersion: 4:0.1-test\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: fixture\n"
    )
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(src), str(cache / "debs/kpat_0.1-test_all.deb")],
        check=True,
        capture_output=True,
    )
    monkeypatch.setattr(bb, "BLIND_PACKAGES", ("kpat",))
    inv = tmp_path / "inventory.csv"
    assert bb.main(["--scan", "--cache", str(cache), "--inventory", str(inv)]) == 0
    clips = bb.read_inventory(inv)
    assert [c.path for c in clips] == [
        "kpat/usr/share/kpat/sounds/card-down.wav",
        "kpat/usr/share/kpat/sounds/special/shuffle.wav",
    ]
    assert clips[0].version == "4:0.1-test"
    out = tmp_path / "clips"
    assert bb.main(["--cache", str(cache), "--inventory", str(inv), "--out", str(out)]) == 0
    assert (out / "kpat/usr/share/kpat/sounds/special/shuffle.wav").is_file()
    # the inventory now disagrees with the package: the build fails and says so
    bb.write_inventory(inv, [bb.BlindClip("kpat", "1", clips[0].member_path, 3.0, "GPL-2+")])
    assert bb.main(["--cache", str(cache), "--inventory", str(inv), "--out", str(out)]) == 1


def test_main_refuses_an_inventory_with_a_reserved_package(tmp_path):
    inv = tmp_path / "inventory.csv"
    bb.write_inventory(inv, [bb.BlindClip("openttd-opensfx", "1", "a.wav", 1.0, "GPL-2")])
    assert (
        bb.main(["--inventory", str(inv), "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o")]) == 2
    )
    assert not (tmp_path / "c").exists()


def test_leak_check_finds_a_copy_in_a_training_corpus(tmp_path):
    rng = np.random.default_rng(0)
    noise = (0.2 * rng.standard_normal(SR)).astype(np.float32)
    noise *= np.linspace(0, 1, SR, dtype=np.float32) ** 2  # a shape the fingerprint can follow
    blind = tmp_path / "blind"
    (blind / "kpat").mkdir(parents=True)
    sf.write(blind / "kpat/a.wav", noise, SR)
    _wav(blind / "kpat/b.wav", 1.0)
    train = tmp_path / "train/some-package"
    train.mkdir(parents=True)
    sf.write(train / "copy.ogg", noise, SR)  # re-encoded copy of a.wav
    _wav(train / "other.wav", 1.0, 3000.0)
    clips = [bb.BlindClip("kpat", "1", "a.wav", 1.0, "x"), bb.BlindClip("kpat", "1", "b.wav", 1.0, "x")]
    leaks = bb.find_leaks(blind, clips, [tmp_path / "train"])
    assert [(b, Path(t).name) for b, t, _ in leaks] == [("kpat/a.wav", "copy.ogg")]


# --------------------------------------------------------------------------------------------- queries

CLIPS = [
    bb.BlindClip("scratch", "1", "Sounds/Animal/Dog1.wav", 0.2, "x"),
    bb.BlindClip("scratch", "1", "Sounds/Animal/Dog2.wav", 0.2, "x"),
    bb.BlindClip("kbounce", "1", "sounds/death.wav", 0.2, "x"),
    bb.BlindClip("kbounce", "1", "sounds/reflect.wav", 0.2, "x"),
]


def test_expand_queries_resolves_keys_and_same_sound_groups():
    text = "# comment\n= kbo:death kbo:reflect\nanimal | dog  barking | sc:Dog1 sc:Dog2\nui | bounce | kbo:reflect\n"
    entries = bb.expand_queries(text, CLIPS)
    assert entries == [
        ("animal", "dog barking", ["scratch/Sounds/Animal/Dog1.wav", "scratch/Sounds/Animal/Dog2.wav"]),
        ("ui", "bounce", ["kbounce/sounds/death.wav", "kbounce/sounds/reflect.wav"]),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("animal | cat | sc:Cat\n", "unknown clip key sc:Cat"),
        ("animal | dog | sc:Dog1\nanimal | Dog | sc:Dog2\n", "repeated"),
        ("animal | dog\n", "expected 'category | query | keys'"),
        ("= sc:Dog1 sc:Nope\n", "unknown clip key sc:Nope"),
    ],
)
def test_expand_queries_rejects_bad_lines(text, message):
    with pytest.raises(bb.BlindSetError, match=message):
        bb.expand_queries(text, CLIPS)


def test_check_queries_reports_unknown_paths_and_unnamed_clips():
    problems = bb.check_queries({"dog": {"scratch/Sounds/Animal/Dog1.wav", "scratch/x.wav"}}, CLIPS[:2])
    assert problems == [
        "'dog' names scratch/x.wav, which is not in the inventory",
        "no query names scratch/Sounds/Animal/Dog2.wav",
    ]


# ------------------------------------------------------------------------------------ the committed set


def test_committed_blind_set_is_consistent():
    clips = bb.read_inventory()  # also refuses reserved and non-blind packages
    assert len(clips) >= 200
    assert all(bb.MIN_S <= c.duration_s <= bb.MAX_S and c.licence for c in clips)
    queries = bb.read_queries()
    assert len(queries) >= 200
    assert bb.check_queries(queries, clips) == []
    # queries.csv and query_categories.csv are exactly what queries.txt expands to
    entries = bb.expand_queries((bb.HERE / "queries.txt").read_text(encoding="utf-8"), clips)
    assert {q: set(p) for _, q, p in entries} == queries
    with open(bb.HERE / "query_categories.csv", newline="", encoding="utf-8") as fh:
        cats = {r["query"]: r["category"] for r in csv.DictReader(fh)}
    assert cats == {q: c for c, q, _ in entries}
    assert {
        "animal",
        "human",
        "instrument",
        "household",
        "vehicle",
        "weather",
        "explosion",
        "impact",
        "machinery",
        "ui",
    } <= set(cats.values())


def test_recipe_blind_eval_set_is_every_inventory_clip(tmp_path):
    """``data.eval.blind`` of the sfx-small recipe reads queries.csv; with the clips in place its candidate
    pool is the whole inventory and every query has a relevant clip."""
    from training.config import QueriesConfig, load_recipe
    from training.data.readers import build_eval_set

    recipe = load_recipe(bb.HERE.parents[1] / "recipes" / "sfx-small" / "stage3.toml")
    blind = recipe.data.eval["blind"]
    assert Path(blind.queries.path) == Path("training/data/blind/queries.csv") and not blind.sources
    clips = bb.read_inventory()
    for c in clips:  # build_eval_set only needs the files to exist
        (tmp_path / c.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / c.path).touch()
    queries = QueriesConfig(path=str(bb.QUERIES), audio_root=str(tmp_path))
    eval_set = build_eval_set(type(blind)(sources=(), queries=queries))
    assert len(eval_set.clips) == len(clips)
    assert len(eval_set.queries) == len(bb.read_queries()) and all(eval_set.relevant)
