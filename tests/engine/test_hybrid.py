"""Metadata read at index time, keyword search (FTS5), UCS category filter and hybrid fusion, end to end."""

from __future__ import annotations

import json

import pytest

from engine.errors import QueryError
from engine.indexing import Indexer
from engine.library import Library
from engine.search import Filters, Searcher
from tests import metadata_fixtures as mf
from tests.bundles import make_tiny_bundle


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hybrid")
    bundle = make_tiny_bundle(tmp / "b")
    root = tmp / "Library"
    mf.write_wav(root / "DOORWood_Creak Open Slow_JD_Barn.wav", dur_s=1.0)
    mf.write_wav(root / "take_017.wav", [mf.chunk(b"bext", mf.bext_payload("Thunder rumble, distant, long tail"))],
                 dur_s=1.0)
    mf.write_wav(root / "amb" / "x1.wav", [mf.chunk(b"iXML", mf.ixml_document(
        user={"DESCRIPTION": "Rain on a tin roof, heavy", "KEYWORDS": "rain, roof, metal", "LIBRARY": "StormPack"}
    ).encode())], dur_s=1.0)
    mf.write_wav(root / "metal_door_slam.wav", dur_s=1.0)
    mf.write_wav(root / "noname.wav", dur_s=1.0)
    with Library(tmp / "lib", bundle) as library:
        Indexer(library).run([root])
        yield library, root


def names(hits):
    return [h.path.rsplit("/", 1)[-1] for h in hits]


def test_metadata_is_stored_and_returned(lib):
    library, root = lib
    hits = Searcher(library).search("thunder", k=5, mode="keywords")
    assert names(hits) == ["take_017.wav"]
    assert "Thunder rumble" in hits[0].metadata["description"]
    assert json.dumps(hits[0].as_dict())  # JSON-ready


def test_keyword_syntax(lib):
    s = Searcher(lib[0])
    assert names(s.search("door", k=10, mode="keywords")) and set(names(s.search("door", k=10, mode="keywords"))) == {
        "DOORWood_Creak Open Slow_JD_Barn.wav", "metal_door_slam.wav"}
    assert names(s.search("door -metal", k=10, mode="keywords")) == ["DOORWood_Creak Open Slow_JD_Barn.wav"]
    assert set(names(s.search("thunder OR rain", k=10, mode="keywords"))) == {"take_017.wav", "x1.wav"}
    assert names(s.search('"tin roof"', k=10, mode="keywords")) == ["x1.wav"]
    assert names(s.search("thund*", k=10, mode="keywords")) == ["take_017.wav"]
    assert names(s.search("library:stormpack", k=10, mode="keywords")) == ["x1.wav"]
    assert isinstance(s.search('NEAR( "door', k=5, mode="keywords"), list)  # odd syntax never raises
    with pytest.raises(QueryError):
        s.search("", mode="both")
    with pytest.raises(QueryError):
        s.search("door", mode="fuzzy")


def test_ucs_category_filter(lib):
    s = Searcher(lib[0])
    for cat in ("DOORWood", "DOORS", "wood"):
        got = names(s.search("sound", k=10, filters=Filters(category=cat), mode="content"))
        assert got == ["DOORWood_Creak Open Slow_JD_Barn.wav"], cat


def test_hybrid_fuses_both_lists(lib):
    library, _ = lib
    s = Searcher(library)
    content = s.search("door", k=5, mode="content")
    kw = s.search("door", k=5, mode="keywords")
    both = s.search("door", k=5, mode="both")
    assert len(content) == 5 and len(kw) == 2
    # Keyword matches are present in the fused list and ranked at the top (found by both lists).
    assert set(names(kw)) <= set(names(both))
    assert set(names(both)[:2]) == set(names(kw))
    # Field filters and excludes restrict the content side too.
    assert "metal_door_slam.wav" not in names(s.search("door -metal", k=5, mode="content"))
    assert names(s.search("sound library:stormpack", k=5, mode="content")) == ["x1.wav"]


def test_moves_keep_keyword_index_in_step(lib, tmp_path):
    library, root = lib
    (root / "metal_door_slam.wav").rename(root / "amb" / "gate_clang.wav")
    s = Indexer(library).run([root])
    assert s.moved == 1
    searcher = Searcher(library)
    assert names(searcher.search("gate", k=5, mode="keywords")) == ["gate_clang.wav"]
    assert "metal_door_slam.wav" not in names(searcher.search("door", k=5, mode="keywords"))
    (root / "amb" / "gate_clang.wav").unlink()
    Indexer(library).run([root])
    assert searcher.search("gate", k=5, mode="keywords") == []


def test_a_big_index_run_merges_the_keyword_tables(tmp_path, monkeypatch):
    from engine.storage import fts

    calls = []
    monkeypatch.setattr(fts, "optimize", lambda conn: calls.append(conn))
    monkeypatch.setattr(fts, "OPTIMIZE_AFTER", 2)
    root = tmp_path / "Library"
    mf.write_wav(root / "a_door.wav", dur_s=0.5)
    mf.write_wav(root / "b_rain.wav", dur_s=0.5)
    with Library(tmp_path / "lib", make_tiny_bundle(tmp_path / "b")) as library:
        Indexer(library).run([root])
        assert len(calls) == 1  # two new files: the threshold
        Indexer(library).run([root])
        assert len(calls) == 1  # nothing changed: nothing to merge
