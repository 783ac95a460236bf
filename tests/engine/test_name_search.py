"""Semantic metadata search end to end: file texts embedded at index time, kept in step with moves,
deletions and failures, searched by meaning, fused by trust, with relevance and matched_by on each hit."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sqlalchemy import select

from engine.fusion import Evidence, TrustFusion, fit_logistic
from engine.indexing import Indexer
from engine.library import Library
from engine.names import NAME_ENCODER_ID
from engine.search import GOOD_MATCH, Searcher, is_good_match
from engine.storage import db
from tests import metadata_fixtures as mf
from tests.bundles import make_tiny_bundle

NAMES = ["cattle/cow_moo_03.wav", "instruments/harmonica.wav", "ZOOM0042.WAV", "glass_shatter.wav",
         "weather/thunder_rumble_far.wav", "take_017.wav"]


@pytest.fixture()
def lib(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "b")
    root = tmp_path / "Library"
    for rel in NAMES:
        mf.write_wav(root / rel, dur_s=1.0)
    mf.write_wav(root / "rec" / "ZOOM0099.WAV",
                 [mf.chunk(b"bext", mf.bext_payload("Dog barking in the distance, suburban"))], dur_s=1.0)
    library = Library(tmp_path / "lib", bundle)
    Indexer(library).run([root])
    yield library, root
    library.close()


# The tiny test bundle's sound model is random, so these tests weigh it lightly: they are about the words.
WORDS_FIRST = TrustFusion.from_dict({
    "both": {"bias": -3.0, "weights": {"content": 0.5, "name_trusted": 8.0, "lexical": 2.0}},
    "content": {"bias": -3.0, "weights": {"content": 4.0}},
    "keywords": {"bias": -2.0, "weights": {"lexical": 3.0}},
    "good_match": 30.0,
})


def searcher(library):
    return Searcher(library, WORDS_FIRST)


def base(hits):
    return [h.path.rsplit("/", 1)[-1] for h in hits]


def stored_texts(library):
    with library.engine.connect() as conn:
        rows = conn.execute(select(db.File.rel_path, db.FileText.text, db.FileText.encoder)
                            .join(db.FileText, db.FileText.file_id == db.File.id)).all()
    return {rel: (text, enc) for rel, text, enc in rows}


def test_index_stores_one_text_per_file(lib):
    library, _ = lib
    texts = stored_texts(library)
    assert set(texts) == {*NAMES, "rec/ZOOM0099.WAV"}
    assert texts["cattle/cow_moo_03.wav"][0].startswith("cow moo")
    assert texts["ZOOM0042.WAV"][0] == ""
    assert "dog barking" in texts["rec/ZOOM0099.WAV"][0]
    assert {enc for _, enc in texts.values()} == {NAME_ENCODER_ID}


def test_search_finds_files_by_the_meaning_of_their_words(lib):
    s = searcher(lib[0])
    # No shared word: lexical matching alone finds nothing, meaning does.
    assert s.search("livestock bellowing", k=5, mode="keywords") == []
    assert base(s.search("livestock bellowing", k=3))[0] == "cow_moo_03.wav"
    assert base(s.search("cattle lowing", k=3))[0] == "cow_moo_03.wav"
    assert base(s.search("blues harp", k=3))[0] == "harmonica.wav"
    assert base(s.search("a hound yapping", k=3))[0] == "ZOOM0099.WAV"  # by its bext description
    assert base(s.search("storm", k=3))[0] == "thunder_rumble_far.wav"


def test_hits_carry_relevance_and_matched_by(lib):
    s = searcher(lib[0])
    hit = s.search("cow", k=3)[0]
    assert base([hit]) == ["cow_moo_03.wav"]
    assert 0.0 <= hit.relevance <= 100.0
    assert "name" in hit.matched_by
    d = hit.as_dict()
    assert set(d) >= {"relevance", "matched_by", "path", "score", "start_s", "end_s"}
    assert json.loads(json.dumps(d))["matched_by"] == hit.matched_by
    dog = next(h for h in s.search("dog barking", k=3) if base([h]) == ["ZOOM0099.WAV"])
    assert "description" in dog.matched_by
    for mode in ("both", "content", "keywords"):
        for h in s.search("thunder", k=7, mode=mode):
            assert 0.0 <= h.relevance <= 100.0, mode
    # The best match for a plain, informative name clears the cut-off; an opaque file found by nothing
    # but a random sound model does not.
    assert is_good_match(hit) and hit.relevance >= GOOD_MATCH
    assert not is_good_match(next(h for h in s.search("cow", k=7) if base([h]) == ["ZOOM0042.WAV"]))


def test_moves_renames_and_deletions_follow(lib):
    library, root = lib
    s = searcher(library)
    shutil.move(root / "glass_shatter.wav", root / "bottle_smash.wav")
    (root / "cattle" / "cow_moo_03.wav").unlink()
    Indexer(library).run([root])
    texts = stored_texts(library)
    assert "bottle_smash.wav" in texts and texts["bottle_smash.wav"][0] == "bottle smash"
    assert "cattle/cow_moo_03.wav" not in texts and "glass_shatter.wav" not in texts
    assert "cow_moo_03.wav" not in base(s.search("cow", k=10))
    assert base(s.search("broken bottle", k=2))[0] == "bottle_smash.wav"


def test_name_index_is_a_cache_rebuilt_from_the_database(lib, tmp_path):
    library, _ = lib
    first = base(searcher(library).search("cattle lowing", k=3))
    for f in (library.path / "index").glob("names-*"):
        f.unlink()
    with Library(library.path, library.bundle) as again:
        assert base(searcher(again).search("cattle lowing", k=3)) == first
        assert again.name_index.sync().count == 5  # the files whose words say something


def test_an_upgraded_library_gets_its_texts_on_the_next_index_run(lib):
    library, root = lib
    with library.engine.begin() as conn:
        conn.execute(db.FileText.__table__.delete())
    assert stored_texts(library) == {}
    Indexer(library).run([root])
    assert len(stored_texts(library)) == len(NAMES) + 1


def test_fusion_fit_recovers_a_known_model():
    rng = np.random.default_rng(0)
    c = rng.uniform(-0.2, 0.6, 4000)
    n = rng.uniform(0, 1, 4000)
    inf = rng.choice([0.0, 1.0], 4000)
    true = -5 + 6 * c + 4 * inf * n
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-true))).astype(int)
    x = [{"content": a, "name_trusted": b * d, "informative": d} for a, b, d in zip(c, n, inf, strict=True)]
    m = fit_logistic(x, y, ["content", "name_trusted"], l2=1e-6)
    assert m.bias == pytest.approx(-5, abs=0.6)
    assert m.weights["content"] == pytest.approx(6, abs=1.5)
    assert m.weights["name_trusted"] == pytest.approx(4, abs=1.0)
    # An opaque file (informativeness 0) gets nothing from a high name cosine.
    fusion = TrustFusion(m, m, m)
    assert fusion.both.probability(Evidence(content=0.2, name=0.9, informativeness=0.0)) == pytest.approx(
        fusion.both.probability(Evidence(content=0.2)))
    with pytest.raises(ValueError):
        fit_logistic(x[:10], [0] * 10, ["content"])
    with pytest.raises(ValueError):
        TrustFusion.from_dict({k: {"bias": 0, "weights": {"bogus": 1}} for k in ("both", "content", "keywords")})


def _file_names(library) -> dict[int, str]:
    with library.engine.connect() as conn:
        return dict(conn.execute(select(db.File.id, db.File.rel_path)).all())


def test_files_that_share_one_text_enter_the_graph_once_and_are_all_found(tmp_path):
    """A folder of opaque names gives its files one text (the folder's words), hence identical vectors;
    many identical points can cut the other files off in an HNSW graph, so they enter it once."""
    from engine.storage.vector_index import VectorIndex

    bundle = make_tiny_bundle(tmp_path / "b")
    root = tmp_path / "Library"
    for i in range(40):
        mf.write_wav(root / "foley" / f"clip_{i:04d}.wav", dur_s=0.3)
    for rel in NAMES:
        mf.write_wav(root / rel, dur_s=0.3)
    with Library(tmp_path / "lib", bundle) as library:
        Indexer(library).run([root])
        texts = stored_texts(library)
        folder = {t for rel, (t, _) in texts.items() if rel.startswith("foley/")}
        assert len(folder) == 1 and folder != {""}
        worded = sum(1 for rel, (t, _) in texts.items() if t and not rel.startswith("foley/"))
        assert worded >= 3
        assert library.name_index.sync().count == worded + 1  # the folder's 40 files once
        _, q = library.embed_query("storm")
        names = _file_names(library)
        found = [names[f] for f, _ in library.name_index.search(q, 100)]
        assert found[0] == "weather/thunder_rumble_far.wav"
        assert sorted(f for f in found if f.startswith("foley/")) == [f"foley/clip_{i:04d}.wav" for i in range(40)]
        assert len(library.name_index.search(q, 7)) == 7
        # Caught up in the same reader: a file joins the folder, another one leaves it under a worded name.
        mf.write_wav(root / "foley" / "clip_0040.wav", dur_s=0.3)
        shutil.move(root / "foley" / "clip_0039.wav", root / "foley" / "door_slam_heavy.wav")
        Indexer(library).run([root])
        assert library.name_index.sync().count == worded + 2
        names = _file_names(library)
        found = [names[f] for f, _ in library.name_index.search(q, 100) if f in names]
        assert sorted(f for f in found if f.startswith("foley/clip_")) == [
            f"foley/clip_{i:04d}.wav" for i in (*range(39), 40)]
        _, door = library.embed_query("door slam")
        assert names[library.name_index.search(door, 1)[0][0]] == "foley/door_slam_heavy.wav"
        worded += 1
        # The file that stood for the text goes (ids of deleted files are the caller's to drop, as before):
        # the other 39 are still found, and a reader that opens the library anew uses one of them.
        (root / "foley" / "clip_0000.wav").unlink()
        Indexer(library).run([root])
        names = _file_names(library)
        found = [names[f] for f, _ in library.name_index.search(q, 100) if f in names]
        assert sum(f.startswith("foley/clip_") for f in found) == 39
        path, gen = library.name_index.path, library.name_index._gen
        with library.engine.connect() as conn:
            library_id = db.library_id(conn)
            ids, vecs = zip(*db.iter_file_text_vectors(conn, NAME_ENCODER_ID, 384), strict=True)
    with Library(tmp_path / "lib", bundle) as again:
        assert again.name_index.sync().count == worded + 1
        labels = set(again.name_index.sync().labels())
        assert len(labels & {f for f, rel in _file_names(again).items() if rel.startswith("foley/clip_")}) == 1
    # A cache written before (every copy in the graph) is rebuilt when opened, and saved again.
    old = VectorIndex(384, path)
    old.add(np.concatenate(ids), np.concatenate(vecs))
    old.save(gen, library_id)
    assert VectorIndex.read_meta(path)["count"] == worded + 39
    with Library(tmp_path / "lib", bundle) as again:
        assert again.name_index.sync().count == worded + 1
        assert sum(_file_names(again)[f].startswith("foley/clip_") for f, _ in again.name_index.search(q, 100)) == 39
    assert VectorIndex.read_meta(path)["count"] == worded + 1
