"""Listing a library without a query (engine.browse): sorting, filters, paging, facts, category counts."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from engine import browse
from engine.errors import QueryError
from engine.indexing import Indexer
from engine.library import Library
from engine.search import Filters
from engine.storage import db
from tests import audio_fixtures as af
from tests import metadata_fixtures as mf
from tests.bundles import make_tiny_bundle


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browse")
    bundle = make_tiny_bundle(tmp / "b")
    root = tmp / "Sounds"
    made = af.make_library(root)
    mf.write_wav(root / "ucs" / "DOORWood_Creak Open Slow_JD_Barn.wav", dur_s=1.0)
    mf.write_wav(root / "ucs" / "DOORMetl_Slam_JD_Barn.wav", dur_s=1.0)
    shutil.copy2(made["clicks"], root / "ucs" / "clicks_copy.wav")  # byte-identical to foley/clicks
    with Library(tmp / "lib", bundle) as library:
        Indexer(library).run([root])
        yield library, root, made


def names(hits) -> list[str]:
    return [Path(h.path).name for h in hits]


def test_lists_every_ok_file_sorted_by_name(lib) -> None:
    library, root, made = lib
    page = browse.list_files(library)
    expected = sorted((p.name for p in root.rglob("*") if p.is_file()), key=str.lower)
    assert names(page.hits) == expected and page.total == len(expected)
    assert all(h.score == 0.0 and h.start_s == 0.0 and Path(h.path).is_file() for h in page.hits)
    desc = browse.list_files(library, descending=True)
    assert names(desc.hits) == expected[::-1]


@pytest.mark.parametrize(
    ("sort", "value"),
    [("duration", lambda h: h.duration_s), ("rate", lambda h: h.sample_rate), ("folder", lambda h: h.folder.lower())],
)
def test_sort_keys(lib, sort, value) -> None:
    hits = browse.list_files(lib[0], sort=sort).hits
    values = [value(h) for h in hits]
    assert values == sorted(values) and len(set(values)) > 1


def test_sort_by_date_added(lib) -> None:
    library, root, _ = lib
    with library.engine.begin() as conn:  # pretend the clicks file was added last
        conn.execute(update(db.File).values(indexed_at=db.File.id))
        conn.execute(update(db.File).where(db.File.rel_path == "foley/clicks_5s_44k.wav").values(indexed_at=time.time()))
    newest = browse.list_files(library, sort="added", descending=True, limit=1)
    assert names(newest.hits) == ["clicks_5s_44k.wav"] and newest.total > 1


def test_paging_filters_and_bit_depth(lib) -> None:
    library, root, _ = lib
    everything = names(browse.list_files(library).hits)
    page = browse.list_files(library, limit=3, offset=2)
    assert names(page.hits) == everything[2:5] and page.total == len(everything)
    flac = browse.list_files(library, Filters(formats=("flac",)))
    assert flac.hits and all(h.format == "FLAC" for h in flac.hits)
    assert flac.total == sum(1 for p in root.rglob("*.flac"))
    deep = browse.list_files(library, bit_depths=(24,))
    assert set(names(deep.hits)) == {
        "b1k_pcm24_48k_stereo.wav", "g880_96k_mono.flac", "m350_8k_mono.aif", "brown_8s_44k_6ch.wav",
        "chirp_1s_192k_stereo.flac",
    }
    assert all(deep.facts[h.file_id].bit_depth == 24 for h in deep.hits)
    folder = browse.list_files(library, Filters(folder=str(root / "ucs")))
    assert set(names(folder.hits)) == {"DOORWood_Creak Open Slow_JD_Barn.wav", "DOORMetl_Slam_JD_Barn.wav",
                                       "clicks_copy.wav"}
    with pytest.raises(QueryError):
        browse.list_files(library, sort="loudness")


def test_facts_and_file_hit(lib) -> None:
    library, root, made = lib
    hit = browse.file_hit(library, made["tone_wavfloat"])
    assert hit is not None and hit.path == str(made["tone_wavfloat"]) and hit.channels == 6
    facts = browse.file_facts(library, [hit.file_id])[hit.file_id]
    assert facts.subtype == "FLOAT" and browse.bit_depth_label(facts.subtype) == "32-bit float"
    assert browse.file_hit(library, root / "nope.wav") is None
    a = browse.file_hit(library, made["clicks"])
    b = browse.file_hit(library, root / "ucs" / "clicks_copy.wav")
    fa, fb = (browse.file_facts(library, [h.file_id])[h.file_id] for h in (a, b))
    assert fa.content_hash and fa.content_hash == fb.content_hash
    other = browse.file_facts(library, [hit.file_id])[hit.file_id]
    assert other.content_hash != fa.content_hash


def test_bit_depth_labels() -> None:
    assert browse.bit_depth_label("PCM_16") == "16-bit" and browse.bit_depth("PCM_24") == 24
    assert browse.bit_depth_label("DOUBLE") == "64-bit float"
    assert browse.bit_depth_label("VORBIS") == "" and browse.bit_depth(None) is None


def test_category_counts(lib) -> None:
    counts = browse.category_counts(lib[0])
    assert counts.by_cat_id == {"DOORWood": 1, "DOORMetl": 1}  # files without a category do not count
    assert counts.by_category == {"DOORS": 2}


def test_does_not_load_torch() -> None:
    import subprocess
    import sys

    code = "import sys, engine.browse; print('torch' in sys.modules)"
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"
