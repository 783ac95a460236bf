"""Tests for caption rules (training/data/captions.py) and the committed captions/query tables."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from training.data import captions as cap
from training.data.debian import corpus, scan

DATA = Path(cap.__file__).resolve().parent


# ------------------------------------------------------------------------------------------------ rules


def test_split_words_camel_case_digits_and_separators():
    assert cap.split_words("SmlExpl_02.ogg") == ["sml", "expl", "02", "ogg"]
    assert cap.split_words("Oxygen-Im-Cant-Connect") == ["oxygen", "im", "cant", "connect"]
    assert cap.split_words("machgf1b") == ["machgf", "1", "b"]
    assert cap.split_words("atomic huge~") == ["atomic", "huge"]
    assert cap.split_words("HTTPServer") == ["http", "server"]


def test_drop_noise_removes_numbers_variants_and_filler():
    assert cap.drop_noise(["pain", "25", "1"]) == ["pain"]
    assert cap.drop_noise(["machgf", "1", "b"]) == ["machgf"]
    assert cap.drop_noise(["default", "gravel", "footstep"]) == ["gravel", "footstep"]
    assert cap.drop_noise(["bullet", "chaingun", "10x"]) == ["bullet", "chaingun"]
    assert cap.drop_noise(["a"]) == ["a"]  # a single word is kept even if it is a letter


def test_abbreviations_are_expanded():
    assert cap.clean_name("SmlExpl") == "small explosion"
    assert cap.clean_name("LrgCan2") == "large can"
    assert cap.clean_name("amb_waterdrip_2") == "ambience waterdrip"
    assert cap.expand_abbreviations(["sfx", "door"]) == ["sound", "effect", "door"]


def test_terms_map_jargon_to_what_the_sound_is():
    terms = {"quaddamage": "power-up pickup sound", "x hit": "pain grunt", "x": "unused"}
    assert cap.apply_terms("quaddamage", terms) == "power-up pickup sound"
    assert cap.apply_terms("player x hit", terms) == "player pain grunt"  # longest phrase first
    assert cap.apply_terms("xylophone", terms) == "xylophone"  # whole words only
    assert cap.clean_name("quaddamage_out", {"quaddamage": "power-up"}) == "power-up out"


def test_clean_name_of_numbers_only_is_empty():
    assert cap.clean_name("sound001") == ""
    assert cap.clean_name("01_02") == ""


def test_dedupe_ignores_case_spacing_and_punctuation():
    got = cap.dedupe_captions(["Door slam", "door  slam.", "door-slam", "", "heavy door slam"])
    assert got == ["door slam", "heavy door slam"]


def test_synonym_variants_swap_the_longest_key():
    syn = {"explosion": ["blast", "detonation"], "big explosion": ["huge blast"]}
    assert cap.synonym_variants("big explosion", syn) == ["huge blast"]
    assert cap.synonym_variants("small explosion", syn, limit=1) == ["small blast"]
    assert cap.synonym_variants("door", syn) == []


def test_clip_rule_matches_a_trailing_part_of_the_path():
    rule = cap.ClipRule("footsteps/gravel*", ("x",))
    assert rule.matches("sound/footsteps/Gravel1.ogg")
    assert not rule.matches("sound/footsteps/grass1.ogg")
    assert not rule.matches("sound/myfootsteps/gravel1.ogg")


def _jargon():
    return cap.parse_jargon(
        {
            "terms": {"richet": "ricochet"},
            "synonyms": {"explosion": ["blast"]},
            "packages": {
                "pkg": {
                    "clips": {
                        "voice/*": "drop: speech",
                        "sfx/boom*": ["big explosion", "Big explosion!", "boom"],
                        "sfx/*": ["generic sound", "sound"],
                    }
                }
            },
        }
    )


def test_caption_clip_first_matching_rule_wins_and_fills_synonyms():
    j = _jargon()
    got = cap.caption_clip("pkg", "data/sfx/boom2.wav", j)
    assert got.captions == ("big explosion", "boom", "big blast")
    assert got.concept == "big explosion" and got.source == "map"
    assert cap.caption_clip("pkg", "data/sfx/door.wav", j).captions == ("generic sound", "sound")
    dropped = cap.caption_clip("pkg", "data/voice/hello.wav", j)
    assert dropped.captions == () and dropped.dropped == "speech"


def test_caption_clip_falls_back_to_the_name_rules():
    j = _jargon()
    got = cap.caption_clip("other", "snd/richet3.ogg", j)
    assert got.captions == ("ricochet",) and got.source == "rules"
    assert cap.caption_clip("other", "snd/SmlExpl.ogg", j).captions == ("small explosion", "small blast")
    assert cap.caption_clip("other", "snd/sound001.wav", j).dropped == "uninformative name"


def test_parse_jargon_rejects_malformed_values():
    with pytest.raises(cap.CaptionError):
        cap.parse_jargon({"packages": {"p": {"clips": {"a*": "no reason given"}}}})
    with pytest.raises(cap.CaptionError):
        cap.parse_jargon({"packages": {"p": {"clips": {"a*": []}}}})
    with pytest.raises(cap.CaptionError):
        cap.parse_jargon({"synonyms": {"a": "not a list"}})


def test_build_caption_rows_uses_manifest_status_split_and_exclusions():
    j = _jargon()
    manifest = [
        {"path": "pkg/data/sfx/boom.wav", "package": "pkg", "member_path": "data/sfx/boom.wav", "status": "ok",
         "duration_s": "1.000", "measured_duration_s": "1.010", "licence": "CC0-1.0"},
        {"path": "pkg/data/voice/hi.wav", "package": "pkg", "member_path": "data/voice/hi.wav", "status": "ok",
         "duration_s": "1.0", "measured_duration_s": "1.0", "licence": "CC0-1.0"},
        {"path": "pkg/data/sfx/gone.wav", "package": "pkg", "member_path": "data/sfx/gone.wav",
         "status": "missing", "duration_s": "1.0", "measured_duration_s": "", "licence": ""},
        {"path": "pkg/data/sfx/dup.wav", "package": "pkg", "member_path": "data/sfx/dup.wav", "status": "ok",
         "duration_s": "1.0", "measured_duration_s": "1.0", "licence": "CC0-1.0"},
    ]  # fmt: skip
    rows, left_out = cap.build_caption_rows(
        manifest, j, split_of={"pkg": "val"}, exclude_paths=["pkg/data/sfx/dup.wav"]
    )
    assert {r["path"] for r in rows} == {"pkg/data/sfx/boom.wav"}
    assert [r["caption"] for r in rows] == ["big explosion", "boom", "big blast"]
    assert {(r["split"], r["licence"], r["duration_s"], r["concept"]) for r in rows} == {
        ("val", "CC0-1.0", "1.010", "big explosion")
    }
    assert left_out == {"dropped: speech": 1, "missing": 1, "duplicate of held-out audio": 1}


def test_write_and_read_captions_round_trip(tmp_path):
    rows = [dict.fromkeys(cap.CAPTION_COLUMNS, "x")]
    cap.write_captions(tmp_path / "c.csv", rows)
    assert cap.read_captions(tmp_path / "c.csv") == rows
    (tmp_path / "bad.csv").write_text("path,caption\n", encoding="utf-8")
    with pytest.raises(cap.CaptionError):
        cap.read_captions(tmp_path / "bad.csv")


# ------------------------------------------------------------------------------------- committed tables


@pytest.fixture(scope="module")
def table() -> list[dict[str, str]]:
    return cap.read_captions(DATA / "debian_sfx_captions.csv")


@pytest.fixture(scope="module")
def by_path(table) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in table:
        grouped[r["path"]].append(r)
    return grouped


def test_table_rows_are_well_formed(table, by_path):
    assert len(by_path) > 3000
    for path, rows in by_path.items():
        package = rows[0]["package"]
        assert path.startswith(package + "/")
        assert 2 <= len(rows) <= 4, path
        assert len({r["caption"] for r in rows}) == len(rows), path
        assert {(r["package"], r["split"], r["licence"], r["concept"], r["duration_s"]) for r in rows} == {
            (package, rows[0]["split"], rows[0]["licence"], rows[0]["concept"], rows[0]["duration_s"])
        }
        assert rows[0]["concept"] == rows[0]["caption"]
        assert rows[0]["licence"] and float(rows[0]["duration_s"]) > 0
        assert all(r["caption"] == r["caption"].strip().lower() and r["caption"] for r in rows)


def test_splits_are_by_package_and_match_split_of(table):
    splits_of_package: dict[str, set[str]] = defaultdict(set)
    for r in table:
        splits_of_package[r["package"]].add(r["split"])
    assert all(len(s) == 1 for s in splits_of_package.values())
    for package, splits in splits_of_package.items():
        assert splits == {corpus.split_of(package)}
    assert not set(splits_of_package) & corpus.RESERVED_PACKAGES
    assert {"hydrogen-drumkits", "bucklespring-data"}.isdisjoint(splits_of_package)
    clips = {r["path"]: r["split"] for r in table}
    share = {s: sum(v == s for v in clips.values()) / len(clips) for s in ("train", "val", "test")}
    # held-out packages are fixed, so their share falls as training packages are added
    assert 0.08 <= share["test"] <= 0.20 and 0.05 <= share["val"] <= 0.15


def test_held_out_splits_are_frozen(table):
    """Val/test clips stay exactly those of the first corpus (3,506 clips), so scores stay comparable:
    widening the corpus only ever adds training packages."""
    clips = {r["path"]: r["split"] for r in table}
    assert sum(s == "test" for s in clips.values()) == 492
    assert sum(s == "val" for s in clips.values()) == 340
    assert corpus.EXTRA_TRAIN_PACKAGES.isdisjoint(corpus.TEST_PACKAGES | corpus.VAL_PACKAGES | corpus.RESERVED_PACKAGES)


def _extra_inventory() -> list[corpus.InventoryRow]:
    return corpus.read_inventory(DATA / "extra_inventory.csv")


def test_extra_inventory_follows_the_scan_rules():
    rows = _extra_inventory()
    assert {r.package for r in rows} == set(corpus.EXTRA_TRAIN_PACKAGES)
    for r in rows:
        assert scan.scan_exclusion(r.member_path, r.duration_s) is None, r.member_path
        assert r.version and r.concept_key is not None
    assert all(r.container for r in rows if r.package == "0ad-data")  # all inside public.zip


def test_extra_packages_are_captioned_for_training_without_held_out_copies(table, by_path):
    jargon = cap.load_jargon()
    rows = _extra_inventory()
    in_table = {r.corpus_path for r in rows} & set(by_path)
    for package in corpus.EXTRA_TRAIN_PACKAGES:
        clips = [p for p in in_table if p.startswith(package + "/")]
        assert len(clips) > 200, package
        assert {by_path[p][0]["split"] for p in clips} == {"train"}
        assert all(by_path[p][0]["licence"].startswith("CC-BY") for p in clips), package
    # every inventoried clip is captioned, dropped by the jargon map, or one of the few copies of
    # held-out audio (14 when this was written: 7 in each package)
    unexplained = [
        r.corpus_path
        for r in rows
        if r.corpus_path not in by_path and not cap.caption_clip(r.package, r.member_path, jargon).dropped
    ]
    assert len(unexplained) <= 20, unexplained
    # cube2-data (validation) ships copies of some 0 A.D. and Red Eclipse sounds: none may be in training
    held_names = {
        p.rsplit("/", 1)[1].lower() for p in by_path if p.startswith("cube2-data/") and "/0ad/" in p
    }
    assert held_names, "cube2-data no longer ships 0 A.D. sounds: update this test"
    zero_ad = {p.rsplit("/", 1)[1].lower() for p in in_table if p.startswith("0ad-data/")}
    assert not held_names & zero_ad
    for shared in ("sfx/burning.ogg", "sfx/itemspawn.ogg", "weapons/tink.ogg", "weapons/explode.ogg"):
        assert f"redeclipse-data/usr/share/games/redeclipse/data/sounds/{shared}" not in by_path


def test_table_is_reproduced_by_the_jargon_map(by_path):
    """The committed captions are what the committed jargon.toml gives (no hand edits to the CSV)."""
    jargon = cap.load_jargon()
    for path, rows in by_path.items():
        package, member = path.split("/", 1)
        got = cap.caption_clip(package, member, jargon)
        assert list(got.captions) == [r["caption"] for r in rows], path


def _queries(name: str) -> dict[str, list[str]]:
    with open(DATA / name, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["query", "path"]
        out: dict[str, list[str]] = defaultdict(list)
        for r in reader:
            out[r["query"]].append(r["path"])
    return out


@pytest.mark.parametrize(("name", "split", "minimum"), [("debian_sfx_queries_test.csv", "test", 150),
                                                         ("debian_sfx_queries_val.csv", "val", 60)])  # fmt: skip
def test_queries_point_at_clips_of_their_split(by_path, name, split, minimum):
    queries = _queries(name)
    assert len(queries) >= minimum
    for query, paths in queries.items():
        assert query == query.strip() and paths, query
        assert len(set(paths)) == len(paths), query
        for p in paths:
            assert p in by_path, (query, p)
            assert by_path[p][0]["split"] == split, (query, p)
