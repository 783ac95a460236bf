"""Tests for the Debian sound-effects corpus builder (training/data/debian/).

The builder runs for real on a tiny ``.deb`` built here with ``dpkg-deb`` (skipped where it is missing):
plain WAV files, a zip container, a copyright file; no network, no apt.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data.debian import build, cli, corpus, duplicates, fetch, licences, scan

PKG = "earshot-fixture-sfx"
SR = 16000

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fixture

Files: *
Copyright: 2024 Somebody
License: GPL-2+

Files: data/sounds/sub/*
Copyright: 2024 Somebody Else
License: CC0-1.0

Files: debian/*
Copyright: 2024 Packager
License: GPL-2+
"""


def _tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def fixture_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .deb holding boom.wav (0.5 s), sub/beep.wav (0.25 s), a drum, and data.pk3 with zap.wav (0.3 s)."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    root = tmp_path_factory.mktemp("deb") / "tree"
    sounds = root / "usr/share/games/fixture/sounds"
    (sounds / "sub").mkdir(parents=True)
    (sounds / "drums").mkdir()
    sf.write(sounds / "boom.wav", _tone(0.5, 80.0), SR)
    sf.write(sounds / "sub" / "beep.wav", _tone(0.25, 1000.0), SR)
    sf.write(sounds / "drums" / "kick.wav", _tone(0.2, 60.0), SR)
    zap = root.parent / "zap.wav"
    sf.write(zap, _tone(0.3, 2000.0), SR)
    with zipfile.ZipFile(root / "usr/share/games/fixture/data.pk3", "w") as zf:
        zf.write(zap, "sound/weapons/zap.wav")
    doc = root / "usr/share/doc" / PKG
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT, encoding="utf-8")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        f"Package: {PKG}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Test <t@example.org>\n"
        "Description: fixture sounds\n",
        encoding="utf-8",
    )
    deb = root.parent / f"{PKG}_1.0-1_all.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True
    )
    return deb


def _inventory(path: Path) -> Path:
    rows = [
        # package, version, container, member_path, duration_s, concept_key, auto_query_draft
        (PKG, "1.0-1", "", "usr/share/games/fixture/sounds/boom.wav", "0.500", "boom", "boom"),
        (PKG, "1.0-1", "", "usr/share/games/fixture/sounds/sub/beep.wav", "0.900", "beep", "beep"),
        (PKG, "1.0-1", "usr/share/games/fixture/data.pk3", "sound/weapons/zap.wav", "0.300", "zap", "zap"),
        (PKG, "1.0-1", "", "usr/share/games/fixture/sounds/gone.wav", "1.000", "gone", "gone"),
        (PKG, "1.0-1", "", "usr/share/games/fixture/sounds/drums/kick.wav", "0.200", "kick", "kick"),
    ]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(corpus.INVENTORY_COLUMNS)
        writer.writerows(rows)
    return path


@pytest.fixture()
def cache_with_deb(tmp_path: Path, fixture_deb: Path) -> Path:
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    shutil.copy(fixture_deb, cache / "debs" / fixture_deb.name)
    return cache


def _no_apt(cmd, cwd):  # a runner that fails the test if the builder tries to download anything
    raise AssertionError(f"unexpected command {cmd}")


def test_build_extracts_files_and_zip_members_checks_durations_and_licences(tmp_path, cache_with_deb):
    rows = corpus.read_inventory(_inventory(tmp_path / "inv.csv"))
    out = tmp_path / "corpus"
    report = build.build_corpus(rows, cache_with_deb, out, runner=_no_apt)

    by_member = {r.row.member_path: r for r in report.rows}
    boom = by_member["usr/share/games/fixture/sounds/boom.wav"]
    assert boom.status == "ok" and boom.measured_duration_s == pytest.approx(0.5, abs=1e-3)
    assert (out / PKG / "usr/share/games/fixture/sounds/boom.wav").is_file()
    # a member of the zip container lands at OUT/PKG/<member path>
    zap = by_member["sound/weapons/zap.wav"]
    assert zap.status == "ok"
    assert sf.info(str(out / PKG / "sound/weapons/zap.wav")).duration == pytest.approx(0.3, abs=1e-3)
    # the inventory says 0.9 s, the package holds 0.25 s: recorded, not fatal
    beep = by_member["usr/share/games/fixture/sounds/sub/beep.wav"]
    assert beep.status == "duration_mismatch" and beep.measured_duration_s == pytest.approx(0.25, abs=1e-3)
    assert by_member["usr/share/games/fixture/sounds/gone.wav"].status == "missing"
    assert by_member["usr/share/games/fixture/sounds/drums/kick.wav"].status == "skipped:drum_one_shot"
    assert not (out / PKG / "usr/share/games/fixture/sounds/drums/kick.wav").exists()
    # licences: "Files: *" for most clips, the more specific paragraph for sub/
    assert boom.licence == "GPL-2+" and zap.licence == "GPL-2+"
    assert beep.licence == "CC0-1.0"
    assert boom.version == "1.0-1"

    manifest = {r["member_path"]: r for r in corpus.read_manifest(out / "manifest.csv")}
    assert set(manifest) == set(by_member)
    assert manifest["sound/weapons/zap.wav"]["path"] == f"{PKG}/sound/weapons/zap.wav"
    assert manifest["usr/share/games/fixture/sounds/sub/beep.wav"]["licence"] == "CC0-1.0"
    assert report.counts()["ok"] == 2
    assert report.hours() == pytest.approx((0.5 + 0.25 + 0.3) / 3600, rel=1e-3)


def test_second_run_reuses_the_extraction(tmp_path, cache_with_deb):
    rows = corpus.read_inventory(_inventory(tmp_path / "inv.csv"))
    out = tmp_path / "corpus"
    first = build.build_corpus(rows, cache_with_deb, out, runner=_no_apt)
    assert first.extracted == [PKG]
    marker = cache_with_deb / "extracted" / PKG / ".earshot-extracted"
    stamp = marker.stat().st_mtime_ns
    # without the .deb a re-fetch or re-extraction would fail; a resumed run must not need it
    for deb in (cache_with_deb / "debs").glob("*.deb"):
        deb.unlink()
    second = build.build_corpus(rows, cache_with_deb, out, runner=_no_apt)
    assert second.extracted == []
    assert marker.stat().st_mtime_ns == stamp
    assert [r.status for r in second.rows] == [r.status for r in first.rows]


def test_fetch_downloads_with_apt_and_retries_after_update(tmp_path, fixture_deb):
    calls: list[list[str]] = []

    def runner(cmd, cwd):
        calls.append(list(cmd))
        if cmd[:2] == ["apt-get", "download"] and len([c for c in calls if c[1] == "download"]) == 1:
            raise subprocess.CalledProcessError(100, cmd, stderr="E: Unable to locate package")
        if cmd[:2] == ["apt-get", "download"]:
            shutil.copy(fixture_deb, Path(cwd) / fixture_deb.name)

    deb = fetch.fetch_deb(PKG, tmp_path / "debs", runner)
    assert deb.name == fixture_deb.name
    assert calls == [["apt-get", "download", PKG], ["apt-get", "update"], ["apt-get", "download", PKG]]
    calls.clear()
    assert fetch.fetch_deb(PKG, tmp_path / "debs", runner) == deb  # cached: apt is not asked again
    assert calls == []


def test_download_failure_is_recorded_not_fatal(tmp_path):
    def runner(cmd, cwd):
        raise subprocess.CalledProcessError(100, cmd, stderr="E: no network")

    rows = [corpus.InventoryRow("no-such-pkg", "1", "", "a/b.wav", 1.0, "b", "b")]
    report = build.build_corpus(rows, tmp_path / "cache", tmp_path / "out", runner=runner)
    assert [r.status for r in report.rows] == ["package_error"]
    assert "no-such-pkg" in report.package_failures


@pytest.mark.parametrize("package", sorted(corpus.RESERVED_PACKAGES))
def test_reserved_packages_are_refused(tmp_path, package):
    with pytest.raises(corpus.CorpusError, match="reserved"):
        fetch.fetch_deb(package, tmp_path, _no_apt)
    with pytest.raises(corpus.CorpusError):
        corpus.split_of(package)
    rows = [corpus.InventoryRow(package, "1", "", "x.wav", 1.0, "x", "x")]
    with pytest.raises(corpus.CorpusError):
        build.build_corpus(rows, tmp_path / "cache", tmp_path / "out", runner=_no_apt)
    with pytest.raises(corpus.CorpusError):
        corpus.select_rows(rows, packages=[package])


def test_main_refuses_a_reserved_package(tmp_path):
    inv = _inventory(tmp_path / "inv.csv")
    argv = ["--inventory", str(inv), "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o")]
    assert cli.main([*argv, "--packages", "lugaru-data", "--no-progress"]) == 2
    assert not (tmp_path / "c").exists()


def test_skip_rules():
    def row(pkg, path):
        return corpus.InventoryRow(pkg, "1", "", path, 1.0, "", "")

    assert corpus.skip_reason(row("hydrogen-drumkits", "usr/share/hydrogen/x.wav")) == "drum_one_shot"
    assert corpus.skip_reason(row("bucklespring-data", "usr/share/buckle/wav/17-0.wav")) == "keyboard_click"
    assert (
        corpus.skip_reason(row("sonic-pi-samples", "usr/share/sonic-pi/samples/bd_boom.flac")) == "drum_one_shot"
    )
    assert (
        corpus.skip_reason(row("sonic-pi-samples", "usr/share/sonic-pi/samples/elec_hi_snare.flac"))
        == "drum_one_shot"
    )
    assert corpus.skip_reason(row("lmms-common", "usr/share/lmms/samples/drums/snare01.ogg")) == "drum_one_shot"
    assert corpus.skip_reason(row("sonic-pi-samples", "usr/share/sonic-pi/samples/elec_beep.flac")) is None
    assert corpus.skip_reason(row("wesnoth-1.16-data", "data/core/sounds/ambient/wardrums.ogg")) is None


def test_copyright_parsing_prefers_the_most_specific_paragraph():
    text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nLicense: GPL-2\n\n"
        "Files: share/hedgewars/Data/Sounds/*\nLicense: GFDL-1.3\n\n"
        "Files: share/hedgewars/Data/Sounds/Droplet*.ogg\nLicense: CC-BY-SA-3.0\n\n"
        "Files: hedgewars/*\nLicense: GPL-2\n\n"
        "Files: data/sounds/*\nCopyright: x\nLicense:\n Public Domain\n"
    )
    entries = licences.parse_copyright(text)
    assert (("data/sounds/*",), "public-domain") in entries
    installed = "usr/share/games/hedgewars/Data/Sounds/bee.ogg"
    assert licences.licence_for_path(entries, [installed]) == "GFDL-1.3"
    assert (
        licences.licence_for_path(entries, ["usr/share/games/hedgewars/Data/Sounds/Droplet1.ogg"]) == "CC-BY-SA-3.0"
    )
    assert licences.licence_for_path(entries, ["usr/share/games/hedgewars/Data/Maps/x.txt"]) == "GPL-2"
    assert licences.licence_for_path(entries, ["usr/share/tuxmath/data/sounds/pop.wav"]) == "public-domain"
    assert licences.licence_for_path([], ["a.wav"]) is None


def test_free_text_copyright():
    text = "This package is licensed under the GNU General Public License, either version 2 or later."
    assert licences.summarise_licence(licences.parse_copyright(text)) == "GPL-2+"


def _write_clip(path: Path, y: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, rate)


def test_duplicates_found_across_formats_and_rates(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(int(0.6 * SR)) / SR
    env = np.exp(-4 * t)
    sound = (0.5 * env * (np.sin(2 * np.pi * 300 * t) + 0.3 * rng.standard_normal(len(t)))).astype(np.float32)
    other = (0.5 * np.exp(-1 * t) * np.sin(2 * np.pi * 2500 * t)).astype(np.float32)
    _write_clip(tmp_path / "a/x.wav", sound, SR)
    resampled = np.interp(np.arange(int(0.6 * 22050)) / 22050, t, sound).astype(np.float32)
    _write_clip(tmp_path / "b/y.ogg", resampled, 22050)
    _write_clip(tmp_path / "c/z.wav", other, SR)
    fps = {p: duplicates.fingerprint(tmp_path / p) for p in ("a/x.wav", "b/y.ogg", "c/z.wav")}
    pairs = duplicates.find_duplicates(fps)
    assert [(a, b) for a, b, _ in pairs] == [("a/x.wav", "b/y.ogg")]


def test_leaking_duplicates_keep_the_held_out_copy():
    splits = {"t": "train", "v": "val", "x": "test"}
    pairs = [("t/1", "x/1", 1.0), ("v/2", "t/2", 1.0), ("v/3", "x/3", 1.0), ("t/4", "t/5", 1.0)]
    drop = duplicates.leaking_duplicates(pairs, lambda p: splits[p.split("/")[0]])
    assert drop == {"t/1", "t/2", "v/3"}


def test_splits_are_disjoint_and_deterministic():
    assert not corpus.TEST_PACKAGES & corpus.VAL_PACKAGES
    assert not (corpus.TEST_PACKAGES | corpus.VAL_PACKAGES) & corpus.RESERVED_PACKAGES
    assert {corpus.split_of(p) for p in corpus.TEST_PACKAGES} == {"test"}
    assert {corpus.split_of(p) for p in corpus.VAL_PACKAGES} == {"val"}
    assert corpus.split_of("nexuiz-data") == "train"


def test_durations_match_tolerance():
    assert corpus.durations_match(1.04, 1.0)
    assert not corpus.durations_match(1.2, 1.0)
    assert corpus.durations_match(10.15, 10.0)  # 2 % of long clips
    assert not corpus.durations_match(10.3, 10.0)


# ------------------------------------------------------------------------------------------------ scanning


def _scan_tree(root: Path) -> Path:
    """An unpacked package: loose clips, a zip container, music/voice folders, too short/long clips."""
    base = root / "usr/share/games/fixture"
    for rel, seconds in [
        ("sounds/door_creak.wav", 0.5),
        ("sounds/amb/wind_loop.wav", 2.0),
        ("sounds/blip.wav", 0.05),  # too short
        ("sounds/long_drone.wav", 31.0),  # too long
        ("music/track1.wav", 1.0),
        ("sounds/voice/hello.wav", 0.8),
        ("sounds/menu_theme.wav", 1.0),
    ]:
        _write_clip(base / rel, _tone(seconds), SR)
    (base / "sounds/readme.txt").write_text("not audio", encoding="utf-8")
    (base / "sounds/broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    zap = root.parent / "zap_src.wav"
    _write_clip(zap, _tone(0.3, 2000.0), SR)
    with zipfile.ZipFile(base / "public.zip", "w") as zf:
        zf.write(zap, "audio/attack/zap_01.wav")
        zf.write(zap, "audio/voice/greek/civ/attack_1.wav")
        zf.writestr("audio/notes.txt", "text")
    doc = root / "usr/share/doc" / PKG
    doc.mkdir(parents=True)
    _write_clip(doc / "example.wav", _tone(0.5), SR)  # documentation is ignored
    return root


def test_scan_exclusion_rules():
    assert scan.scan_exclusion("a/b/boom.ogg", 0.09) == "too_short"
    assert scan.scan_exclusion("a/b/boom.ogg", 30.5) == "too_long"
    assert scan.scan_exclusion("sounds/music/track_01.ogg", 10.0) == "music"
    assert scan.scan_exclusion("sounds/main_theme.ogg", 10.0) == "music"
    assert scan.scan_exclusion("sounds/announcer/fight.ogg", 1.0) == "speech"
    assert scan.scan_exclusion("audio/voice/greek/civ/attack.ogg", 1.0) == "speech"
    assert scan.scan_exclusion("sounds/ambience/voicebox_hum.ogg", 1.0) is None  # a word, not a folder
    assert scan.scan_exclusion("sounds/player/pain.ogg", 0.3) is None


def test_scan_package_reads_files_and_zip_members_and_applies_rules(tmp_path):
    root = _scan_tree(tmp_path / "tree")
    rows, left_out = scan.scan_package(root, PKG, "2.0-1")
    got = {(r.container, r.member_path): r for r in rows}
    assert set(got) == {
        ("", "usr/share/games/fixture/sounds/amb/wind_loop.wav"),
        ("", "usr/share/games/fixture/sounds/door_creak.wav"),
        ("usr/share/games/fixture/public.zip", "audio/attack/zap_01.wav"),
    }
    door = got[("", "usr/share/games/fixture/sounds/door_creak.wav")]
    assert door.duration_s == pytest.approx(0.5, abs=1e-3) and door.version == "2.0-1"
    assert door.concept_key == "door creak" and door.auto_query_draft == "door creak"  # "sounds" is noise
    wind = got[("", "usr/share/games/fixture/sounds/amb/wind_loop.wav")]
    assert wind.auto_query_draft == "ambience wind loop"  # the folder is expanded and prefixed
    assert got[("usr/share/games/fixture/public.zip", "audio/attack/zap_01.wav")].duration_s == pytest.approx(
        0.3
    )
    assert left_out == {"too_short": 1, "too_long": 1, "music": 2, "speech": 2, "undecodable": 1}
    with pytest.raises(corpus.CorpusError):
        scan.scan_package(root, "lugaru-data")


def test_write_inventory_merges_by_package(tmp_path):
    inv = tmp_path / "inv.csv"
    a = corpus.InventoryRow("pkg-a", "1", "", "x/boom.wav", 1.0, "boom", "x boom")
    b1 = corpus.InventoryRow("pkg-b", "1", "c.zip", "y/zap.wav", 0.25, "zap", "y zap")
    b2 = corpus.InventoryRow("pkg-b", "2", "", "y/new.wav", 2.5, "new", "y new")
    corpus.write_inventory(inv, [b1, a])
    assert corpus.read_inventory(inv) == [a, b1]
    corpus.write_inventory(inv, [b2])  # a rescan of pkg-b replaces its rows, pkg-a stays
    assert corpus.read_inventory(inv) == [a, b2]


def test_main_scans_a_package_into_the_inventory_and_builds_it(tmp_path, cache_with_deb):
    inv = tmp_path / "extra_inventory.csv"
    out = tmp_path / "corpus"
    argv = ["--inventory", str(inv), "--cache", str(cache_with_deb), "--out", str(out), "--no-progress"]
    assert cli.main([*argv, "--scan-package", PKG]) == 0
    scanned = {r.member_path for r in corpus.read_inventory(inv)}
    # the drum folder is inventoried (the builder skips it by rule), the zip member too
    assert scanned == {
        "usr/share/games/fixture/sounds/boom.wav",
        "usr/share/games/fixture/sounds/sub/beep.wav",
        "usr/share/games/fixture/sounds/drums/kick.wav",
        "sound/weapons/zap.wav",
    }
    statuses = {r["member_path"]: r["status"] for r in corpus.read_manifest(out / "manifest.csv")}
    assert statuses["sound/weapons/zap.wav"] == "ok"
    assert statuses["usr/share/games/fixture/sounds/sub/beep.wav"] == "ok"  # scanned durations agree
    assert statuses["usr/share/games/fixture/sounds/drums/kick.wav"] == "skipped:drum_one_shot"
    assert (out / PKG / "sound/weapons/zap.wav").is_file()


def test_near_duplicates_of_held_out_clips_need_the_same_name(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(int(0.8 * SR)) / SR
    sound = (0.5 * np.exp(-3 * t) * rng.standard_normal(len(t))).astype(np.float32)
    # a remastered copy: 4 % longer (a tail added), slightly filtered and noisier
    longer = np.concatenate([sound, 0.01 * rng.standard_normal(int(0.032 * SR)).astype(np.float32)])
    remaster = np.convolve(longer, [0.6, 0.4], mode="same") + 0.02 * rng.standard_normal(len(longer))
    _write_clip(tmp_path / "held/sfx/explode.wav", sound, SR)
    _write_clip(tmp_path / "train/weapons/explode2.wav", remaster.astype(np.float32), SR)
    _write_clip(tmp_path / "train/weapons/blast.wav", remaster.astype(np.float32), SR)
    rows = [
        {"path": p, "status": "ok"}
        for p in ("held/sfx/explode.wav", "train/weapons/explode2.wav", "train/weapons/blast.wav")
    ]
    splits = {"held": "val", "train": "train"}
    train_pair = ("train/weapons/blast.wav", "train/weapons/explode2.wav")
    strict = duplicates.build_duplicates(tmp_path, rows)
    assert [(a, b) for a, b, _ in strict] == [train_pair]  # the remaster fails the strict test
    pairs = duplicates.build_duplicates(tmp_path, rows, split_of_path=lambda p: splits[p.split("/")[0]])
    # the loose test pairs it with the held-out clip of the same name, not the differently named copy
    assert [(a, b) for a, b, _ in pairs] == [
        ("held/sfx/explode.wav", "train/weapons/explode2.wav"),
        train_pair,
    ]
    assert [(a, b) for a, b, _ in duplicates.read_duplicates(tmp_path / "duplicates.csv")] == [
        (a, b) for a, b, _ in pairs
    ]
