"""Index a generated folder with a tiny bundle, then search it: incremental sync, moves, deletions,
bad files, HNSW rebuild, filters, find-similar, the writer lock."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.errors import LibraryLockedError, QueryError
from engine.indexing import CancelToken, Indexer
from engine.library import Library
from engine.search import Filters, Searcher
from engine.status import library_status, remove_root
from tests import audio_fixtures as af
from tests.bundles import make_tiny_bundle


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def _sounds(root: Path) -> dict[str, Path]:
    files = {
        "tone440.wav": (af.tone(440, 2.0, 44100), 44100, None),
        "tone3k.flac": (af.tone(3000, 3.0, 48000, channels=2), 48000, None),
        "noise_long.wav": (af.noise(12.0, 22050, color="pink"), 22050, "PCM_24"),
        "clicks.ogg": (af.clicks(4.0, 44100), 44100, None),
        "sub/chirp.aiff": (af.chirp(200, 8000, 5.0, 32000), 32000, None),
        "sub/short.wav": (af.tone(1000, 0.05, 16000), 16000, None),
        "sub/deep/brown.wav": (af.noise(6.0, 96000, channels=6, color="brown"), 96000, "FLOAT"),
    }
    out = {}
    for rel, (data, sr, subtype) in files.items():
        out[rel] = af.write(root / rel, data, sr, subtype=subtype)
    return out


def _index(lib: Library, *roots, **kw):
    return Indexer(lib, commit_windows=16).run([*roots] if roots else None, **kw)


def test_index_search_and_incremental_sync(tmp_path, bundle_dir):
    root = tmp_path / "Sounds"
    files = _sounds(root)
    bad = af.make_bad_files(root / "bad")
    libdir = tmp_path / "lib"
    with Library(libdir, bundle_dir) as lib:
        s = _index(lib, root)
        readable_anyway = {"truncated_wav"} | ({"no_permission"} if os.geteuid() == 0 else set())
        expect_fail = {
            bad[name].name: reason
            for name, (_, reason) in af.BAD_FILE_REASONS.items()
            if bad[name].is_file() and name not in readable_anyway
        }
        assert s.new == len(files) + len(readable_anyway)
        assert {Path(p).name: r for p, r, _ in s.errors} == expect_fail
        assert s.failed == len(expect_fail)
        files.update({name: bad[name] for name in readable_anyway})
        st = library_status(lib)
        assert st["files"] == len(files) and st["errors"] == s.failed
        # The windows of each file cover it: count follows the bundle's window/hop rule.
        assert st["windows"] == s.windows
        # Second run: nothing to do (failed files stay failed until they change).
        s2 = _index(lib, root)
        assert (s2.new, s2.changed, s2.moved, s2.deleted, s2.failed) == (0, 0, 0, 0, 0)
        assert s2.unchanged == len(files) + s.failed

        searcher = Searcher(lib)
        hits = searcher.search_text("a pure high tone", k=5)
        assert 1 <= len(hits) <= 5
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all(Path(h.path).is_absolute() and Path(h.path).exists() for h in hits)
        for h in hits:
            assert 0 <= h.start_s < h.end_s <= h.duration_s + 1e-6

        # HNSW ranking == brute force over every stored window (the whole pipeline, checked independently).
        q = lib.encoder.embed_text(["a pure high tone"])[0]
        best = {}
        from engine.audio import iter_windows

        for p in files.values():
            wins = np.concatenate([w for _, w in iter_windows(p, lib.bundle.sample_rate, lib.bundle.window_s,
                                                              lib.bundle.hop_s)])
            best[str(p.resolve())] = float((lib.encoder.embed_audio(wins) @ q).max())
        top5 = sorted(best.values(), reverse=True)[:5]
        assert [h.score for h in hits] == pytest.approx(top5, abs=2e-3)  # float16 storage; ties may swap
        for h in hits:
            assert h.score == pytest.approx(best[h.path], abs=2e-3)

        # Changed file → re-embedded; deleted → gone; moved → windows kept (same ids).
        af.write(files["tone440.wav"], af.tone(880, 3.0, 44100), 44100)
        os.utime(files["tone440.wav"], ns=(1, 10**18))
        (files["clicks.ogg"]).unlink()
        moved_to = root / "moved" / "chirp_renamed.aiff"
        moved_to.parent.mkdir()
        from sqlalchemy import select

        from engine.storage import db

        with lib.engine.connect() as conn:
            before = conn.execute(select(db.Window.id).join(db.File).where(db.File.rel_path == "sub/chirp.aiff")).scalars().all()
        shutil.move(files["sub/chirp.aiff"], moved_to)
        s3 = _index(lib, root)
        assert (s3.changed, s3.deleted, s3.moved, s3.new) == (1, 1, 1, 0)
        with lib.engine.connect() as conn:
            after = conn.execute(select(db.Window.id).join(db.File).where(db.File.rel_path == "moved/chirp_renamed.aiff")).scalars().all()
        assert before and before == after
        paths = {h.path for h in Searcher(lib).search_text("clicks", k=50)}
        assert str(files["clicks.ogg"].resolve()) not in paths
        assert str(moved_to.resolve()) in paths
        assert len(paths) == len(files) - 1

        # A fresh reader (another process) sees the same thing after loading the saved index.
    with Library(libdir) as lib2:
        assert lib2.bundle.bundle_id == lib.bundle.bundle_id
        h2 = Searcher(lib2).search_text("clicks", k=50)
        assert {h.path for h in h2} == paths


def test_similar_and_filters(tmp_path, bundle_dir):
    root = tmp_path / "S"
    files = _sounds(root)
    with Library(tmp_path / "lib", bundle_dir) as lib:
        _index(lib, root)
        s = Searcher(lib)
        q = files["tone440.wav"]
        hits = s.similar(q, k=10)
        assert str(q.resolve()) not in {h.path for h in hits}
        assert len(hits) == len(files) - 1
        # A region query and an unindexed file both work.
        assert s.similar(files["noise_long.wav"], k=3, start_s=2.0, end_s=5.0)
        outside = tmp_path / "outside.wav"
        af.write(outside, af.tone(440, 2.0, 44100), 44100)
        out_hits = s.similar(outside, k=3)
        # Same audio as tone440.wav → that file is its nearest neighbour with cosine ≈ 1.
        assert out_hits[0].path == str(q.resolve()) and out_hits[0].score > 0.99

        def paths(f):
            return {Path(h.path).name for h in s.search_text("sound", k=50, filters=f)}

        assert paths(Filters(min_duration=4.5)) == {"noise_long.wav", "chirp.aiff", "brown.wav"}
        assert paths(Filters(max_duration=1.0)) == {"short.wav"}
        assert paths(Filters(channels=(6,))) == {"brown.wav"}
        assert paths(Filters(formats=("flac",))) == {"tone3k.flac"}
        assert paths(Filters(formats=("aif",))) == {"chirp.aiff"}
        assert paths(Filters(sample_rates=(44100,))) == {"tone440.wav", "clicks.ogg"}
        assert paths(Filters(min_sample_rate=48000)) == {"tone3k.flac", "brown.wav"}
        assert paths(Filters(folder=str(root / "sub"))) == {"chirp.aiff", "short.wav", "brown.wav"}
        assert paths(Filters(folder=str(root / "su"))) == set()
        assert paths(Filters(folder=str(root / "sub"), min_duration=5.5)) == {"brown.wav"}


def test_bad_queries_get_clear_errors(tmp_path, bundle_dir):
    with Library(tmp_path / "lib", bundle_dir) as lib:
        s = Searcher(lib)
        for bad in ("", "   ", "?!..."):
            with pytest.raises(QueryError):
                s.search_text(bad)
        with pytest.raises(QueryError):
            s.search_text("dog", k=0)
        assert s.search_text("dog barking") == []  # empty library: no results, no crash
        assert s.search_text("x" * 100_000, k=3) == []


def test_index_rebuilt_from_db_when_missing_or_corrupt(tmp_path, bundle_dir, monkeypatch):
    root = tmp_path / "S"
    _sounds(root)
    libdir = tmp_path / "lib"
    with Library(libdir, bundle_dir) as lib:
        _index(lib, root)
        expected = [(h.path, round(h.score, 4)) for h in Searcher(lib).search_text("noise", k=5)]
        index_file = lib.index_path
    import engine.audio

    def no_decoding(*a, **k):
        raise AssertionError("rebuilding the index must not decode audio")

    monkeypatch.setattr(engine.audio, "iter_windows", no_decoding)
    for damage in ("delete", "garbage", "truncate"):
        if damage == "delete":
            index_file.unlink()
        elif damage == "garbage":
            index_file.write_bytes(os.urandom(4096))
        else:
            data = index_file.read_bytes()
            index_file.write_bytes(data[: len(data) // 3])
        with Library(libdir) as lib:
            got = [(h.path, round(h.score, 4)) for h in Searcher(lib).search_text("noise", k=5)]
        assert got == expected, damage
        assert index_file.exists()


def test_stale_index_catches_up_without_rebuild(tmp_path, bundle_dir):
    root = tmp_path / "S"
    files = _sounds(root)
    libdir = tmp_path / "lib"
    with Library(libdir, bundle_dir) as reader:
        with Library(libdir, bundle_dir) as writer:
            _index(writer, root)
        assert len(Searcher(reader).search_text("tone", k=50)) == len(files)
        # The writer removes a file and adds one while the reader holds its in-memory index.
        files["tone440.wav"].unlink()
        af.write(root / "new.wav", af.noise(2.0, 44100, seed=3), 44100)
        with Library(libdir, bundle_dir) as writer:
            _index(writer, root)
        names = {Path(h.path).name for h in Searcher(reader).search_text("tone", k=50)}
        assert "tone440.wav" not in names and "new.wav" in names and len(names) == len(files)


def test_second_writer_is_refused_and_readers_still_work(tmp_path, bundle_dir):
    root = tmp_path / "S"
    _sounds(root)
    libdir = tmp_path / "lib"
    with Library(libdir, bundle_dir) as w1:
        _index(w1, root)
        w1.acquire_writer()
        with Library(libdir, bundle_dir) as w2:
            with pytest.raises(LibraryLockedError, match="already indexing"):
                w2.acquire_writer()
            assert Searcher(w2).search_text("tone", k=3)


def test_cancel_then_resume(tmp_path, bundle_dir):
    root = tmp_path / "S"
    files = _sounds(root)
    libdir = tmp_path / "lib"
    token = CancelToken()
    seen = []

    def on_progress(p):
        if p.phase == "embed" and p.files_done >= 2:
            seen.append(p.files_done)
            token.cancel()

    with Library(libdir, bundle_dir) as lib:
        s1 = Indexer(lib, batch_windows=2, commit_windows=1, commit_seconds=0).run([root], on_progress=on_progress, cancel=token)
    assert s1.cancelled and 2 <= s1.new < len(files)
    with Library(libdir, bundle_dir) as lib:
        s2 = _index(lib, root)
    assert s2.new == len(files) - s1.new and s2.unchanged == s1.new


def test_missing_root_is_left_alone(tmp_path, bundle_dir):
    root = tmp_path / "Drive"
    files = _sounds(root)
    libdir = tmp_path / "lib"
    with Library(libdir, bundle_dir) as lib:
        _index(lib, root)
        shutil.rmtree(root)  # an unmounted drive looks like this
        s = Indexer(lib).run(None)
        assert s.missing_roots == [str(root.resolve())] and s.deleted == 0
        assert library_status(lib)["files"] == len(files)
        assert remove_root(lib, root) == len(files)
        assert library_status(lib)["files"] == 0
        assert Searcher(lib).search_text("tone") == []


def test_a_graph_that_leaves_files_out_does_not_drop_them(tmp_path, bundle_dir, monkeypatch):
    """Asked for every window, an HNSW graph (small or full of identical vectors) can return fewer: the
    files it left out are scored exactly instead of missing from the answer."""
    root = tmp_path / "Sounds"
    files = _sounds(root)
    with Library(tmp_path / "lib", bundle_dir) as lib:
        _index(lib, root)
        exact = {h.path: h.score for h in Searcher(lib).search_text("a pure high tone", k=50)}
        assert len(exact) == len(files)
        index = lib.sync_index()
        full = index.search

        def loses_files(qvecs, kk):  # every window asked for, only the best one returned
            ids, scores = full(qvecs, kk)
            return ids[:, :1], scores[:, :1]

        monkeypatch.setattr(index, "search", loses_files)
        hits = Searcher(lib).search_text("a pure high tone", k=50)
        assert {h.path: h.score for h in hits} == pytest.approx(exact, abs=1e-6)
        assert len(Searcher(lib).search_text("a pure high tone", k=3)) == 3


def test_files_that_failed_do_not_make_a_complete_answer_look_short(tmp_path, bundle_dir, monkeypatch):
    """A file that failed to decode has no windows: when the graph returned every indexed file, the search
    does not go on to score the whole library exactly because the failed files are missing from it."""
    root = tmp_path / "Sounds"
    files = _sounds(root)
    af.make_bad_files(root / "bad")
    with Library(tmp_path / "lib", bundle_dir) as lib:
        _index(lib, root)
        assert library_status(lib)["errors"] > 0
        calls = []
        exact = Searcher._exact

        def counted(self, *a, **kw):
            calls.append(1)
            return exact(self, *a, **kw)

        monkeypatch.setattr(Searcher, "_exact", counted)
        hits = Searcher(lib).search_text("a pure high tone", k=50)
        assert {Path(h.path).name for h in hits} >= {Path(p).name for p in files.values()}
        assert calls == []
