from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import LibraryError
from engine.storage.vector_index import VectorIndex, exact_search, sidecar_path

DIM = 64


def clustered(n: int, dim: int, *, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors around ``clusters`` random centres (per-cluster spread), float32 (n, dim)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    which = rng.integers(0, clusters, n)
    spread = rng.uniform(0.3, 0.9, clusters).astype(np.float32)[which, None] / np.sqrt(dim)
    x = centres[which] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    vectors = clustered(20_000, DIM)
    ids = np.arange(1, 20_001, dtype=np.int64) * 3  # labels that are not row numbers
    path = tmp_path_factory.mktemp("big") / "vectors.hnsw"
    index = VectorIndex.rebuild(
        DIM, path, [(ids[i : i + 5000], vectors[i : i + 5000]) for i in range(0, 20_000, 5000)],
        generation=1, M=16, ef_construction=100, capacity=20_000,
    )  # fmt: skip
    return index, ids, vectors


def small_index(tmp_path: Path, n: int = 500, *, seed: int = 1, **kw) -> tuple[VectorIndex, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = unit(rng, n, 16)
    index = VectorIndex(16, tmp_path / "small.hnsw", M=8, ef_construction=64, **kw)
    index.add(np.arange(n), vectors)
    return index, vectors


def all_ids(index: VectorIndex) -> set[int]:
    """Every live id, found by an exhaustive search (k = count, so ef >= count on a small graph)."""
    ids, _ = index.search(np.ones(index.dim, dtype=np.float32) / np.sqrt(index.dim), index.count)
    return set(ids[0].tolist())


# ---------------------------------------------------------------------------- exact search


def test_exact_search_matches_a_full_sort() -> None:
    rng = np.random.default_rng(3)
    vectors, queries = unit(rng, 300, 8), unit(rng, 5, 8)
    ids = rng.permutation(1000)[:300]
    got_ids, got_scores = exact_search(vectors, ids, queries, 10, block=37)
    full = queries @ vectors.T
    for row in range(5):
        order = np.argsort(-full[row], kind="stable")[:10]
        assert got_ids[row].tolist() == ids[order].tolist()
        np.testing.assert_allclose(got_scores[row], full[row, order], rtol=1e-6)
    one_ids, _ = exact_search(vectors, ids, queries[0], 500)
    assert one_ids.shape == (1, 300)


def test_exact_search_empty() -> None:
    ids, scores = exact_search(np.empty((0, 4), np.float32), np.empty(0, np.int64), np.ones(4), 5)
    assert ids.shape == scores.shape == (1, 0)


# ---------------------------------------------------------------------------- recall and search


def test_recall_at_16_against_exact_search(big: tuple[VectorIndex, np.ndarray, np.ndarray]) -> None:
    index, ids, vectors = big
    rng = np.random.default_rng(7)
    seeds = rng.choice(len(vectors), 200, replace=False)
    queries = vectors[seeds] + 0.5 / np.sqrt(DIM) * rng.standard_normal((200, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    got, got_scores = index.search(queries, 16)
    want, want_scores = exact_search(vectors, ids, queries, 16)
    recall = np.mean([len(set(g) & set(w)) / 16 for g, w in zip(got.tolist(), want.tolist(), strict=True)])
    assert recall >= 0.98, recall
    assert got.dtype == np.int64 and got_scores.dtype == np.float32 and got.shape == (200, 16)
    assert np.all(np.diff(got_scores, axis=1) <= 1e-6)  # best first
    # scores are inner products of the stored vectors
    row_of = {int(label): i for i, label in enumerate(ids)}
    first = np.array([row_of[int(g)] for g in got[:, 0]])
    np.testing.assert_allclose(got_scores[:, 0], np.sum(vectors[first] * queries, axis=1), atol=1e-5)
    np.testing.assert_allclose(got_scores[:, 0], want_scores[:, 0], atol=1e-5)


def test_single_query_shape_and_self_match(big: tuple[VectorIndex, np.ndarray, np.ndarray]) -> None:
    index, ids, vectors = big
    got, scores = index.search(vectors[123], 5)
    assert got.shape == scores.shape == (1, 5)
    assert got[0, 0] == ids[123] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_search_on_empty_index_returns_empty_arrays(tmp_path: Path) -> None:
    index = VectorIndex(8, tmp_path / "e.hnsw")
    ids, scores = index.search(np.ones(8), 16)
    assert ids.shape == scores.shape == (1, 0) and ids.dtype == np.int64
    ids, _ = index.search(np.ones((3, 8)), 16)
    assert ids.shape == (3, 0)
    with pytest.raises(ValueError):
        index.search(np.ones(7), 1)


def test_k_is_clipped_to_count(tmp_path: Path) -> None:
    index, _ = small_index(tmp_path, 5)
    ids, scores = index.search(np.ones(16), 16)
    assert ids.shape == (1, 5) and sorted(ids[0].tolist()) == [0, 1, 2, 3, 4]


def test_ef_search_property_and_k_above_ef(tmp_path: Path) -> None:
    index, vectors = small_index(tmp_path, 400)
    index.ef_search = 4
    assert index.ef_search == 4
    ids, _ = index.search(vectors[0], 50)  # hnswlib searches with max(ef, k)
    assert ids.shape == (1, 50) and ids[0, 0] == 0
    want, _ = exact_search(vectors, np.arange(400), vectors[0], 50)
    assert len(set(ids[0].tolist()) & set(want[0].tolist())) >= 45
    with pytest.raises(ValueError):
        index.ef_search = 0


# ---------------------------------------------------------------------------- add / delete / grow


def test_delete_then_readd(tmp_path: Path) -> None:
    index, vectors = small_index(tmp_path, 500)
    index.delete(range(100))
    index.delete([100_000, 5, -3])  # unknown, already deleted, invalid: ignored
    assert index.count == 400 and index.deleted_count == 100
    assert all_ids(index) == set(range(100, 500))

    rng = np.random.default_rng(9)
    fresh = unit(rng, 10, 16)
    index.add(np.arange(10), fresh)  # deleted ids come back with new vectors
    assert index.count == 410 and index.deleted_count == 90
    got, scores = index.search(fresh, 1)
    assert got[:, 0].tolist() == list(range(10))
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert all_ids(index) == set(range(10)) | set(range(100, 500))


def test_new_ids_reuse_deleted_slots(tmp_path: Path) -> None:
    index, vectors = small_index(tmp_path, 500)
    index.delete(range(50))
    slots = index.count + index.deleted_count
    new_ids = np.arange(1000, 1050)
    index.add(new_ids, vectors[:50])  # new labels, the deleted ones' vectors
    assert index.count == 500 and index.deleted_count == 0
    assert index.count + index.deleted_count == slots  # no new slots used
    assert all_ids(index) == set(range(50, 500)) | set(new_ids.tolist())
    got, _ = index.search(vectors[:50], 1)
    assert got[:, 0].tolist() == new_ids.tolist()


def test_update_live_id_and_duplicates_in_one_batch(tmp_path: Path) -> None:
    index, vectors = small_index(tmp_path, 200)
    rng = np.random.default_rng(11)
    a, b = unit(rng, 2, 16)
    index.add(np.array([7, 7]), np.stack([a, b]))  # the last occurrence wins
    assert index.count == 200 and index.deleted_count == 0
    got, scores = index.search(b, 1)
    assert got[0, 0] == 7 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    got, scores = index.search(a, 200)  # id 7 now scores as vector b, not a
    row = got[0].tolist().index(7)
    assert scores[0, row] == pytest.approx(float(np.dot(a, b)), abs=1e-5)


def test_update_with_deleted_slots_present(tmp_path: Path) -> None:
    index, vectors = small_index(tmp_path, 200)
    index.delete([1, 2, 3])
    rng = np.random.default_rng(12)
    new = unit(rng, 3, 16)
    index.add(np.array([10, 2, 999]), new)  # live update, revive, brand-new (takes a deleted slot)
    assert index.count == 199 and index.deleted_count == 1
    got, _ = index.search(new, 1)
    assert got[:, 0].tolist() == [10, 2, 999]
    assert all_ids(index) == (set(range(200)) - {1, 3}) | {999}


def test_growth_past_initial_capacity(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    vectors = unit(rng, 1000, 16)
    index = VectorIndex(16, tmp_path / "g.hnsw", M=8, ef_construction=64, capacity=8)
    for start in range(0, 1000, 100):
        index.add(np.arange(start, start + 100), vectors[start : start + 100])
    assert index.count == 1000 and index.capacity >= 1000
    assert index.capacity < 4000  # amortised doubling, not one slot per add
    got, _ = index.search(vectors, 1)
    assert np.mean(got[:, 0] == np.arange(1000)) >= 0.99


def test_add_rejects_bad_input(tmp_path: Path) -> None:
    index = VectorIndex(4, tmp_path / "b.hnsw")
    good = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError):
        index.add(np.arange(3), good)  # length mismatch
    with pytest.raises(ValueError):
        index.add(np.arange(4), np.ones((4, 5), np.float32))  # wrong dim
    with pytest.raises(ValueError):
        index.add(np.array([0, 1, 2, -1]), good)
    with pytest.raises(ValueError):
        index.add(np.arange(4), np.full((4, 4), np.nan, np.float32))
    with pytest.raises(ValueError):
        index.add(np.array([0.5, 1, 2, 3]), good)
    index.add(np.empty(0, np.int64), np.empty((0, 4), np.float32))
    assert index.count == 0


def test_searches_run_while_another_thread_adds(tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    vectors = clustered(6000, DIM, seed=14)
    index = VectorIndex(DIM, tmp_path / "c.hnsw", M=16, ef_construction=100, num_threads=1)
    index.add(np.arange(500), vectors[:500])
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            index.add(np.arange(500, 6000), vectors[500:])
            index.delete(range(0, 6000, 7))
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)
        finally:
            done.set()

    searches_during_add = 0
    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        got, scores = index.search(unit(rng, 1), 16)
        assert got.shape[1] == 16 and np.all((got >= 0) & (got < 6000))
        searches_during_add += 1
        time.sleep(0.001)
    thread.join()
    assert not errors
    assert searches_during_add >= 3  # the writer works in slices; readers get in between
    assert index.count == 6000 - len(range(0, 6000, 7))
    got, _ = index.search(vectors[1:2], 1)
    assert got[0, 0] == 1


# ---------------------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path: Path) -> None:
    index, vectors = small_index(tmp_path, 300)
    index.delete(range(20))
    index.save(generation=42)
    assert index.generation == 42
    meta = json.loads(sidecar_path(index.path).read_text())
    assert meta["dim"] == 16 and meta["count"] == 280 and meta["generation"] == 42
    assert meta["M"] == 8 and meta["ef_construction"] == 64 and meta["file_size"] == index.path.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.hnsw", "small.hnsw.json"]  # no temp files

    loaded = VectorIndex.load(16, index.path, 42)
    assert loaded is not None
    assert loaded.count == 280 and loaded.deleted_count == 20 and loaded.generation == 42
    assert (loaded.M, loaded.ef_construction) == (8, 64)
    a, sa = index.search(vectors[:50], 10)
    b, sb = loaded.search(vectors[:50], 10)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb)
    loaded.add(np.arange(5), vectors[:5])  # a loaded index is fully usable
    assert loaded.count == 285 and loaded.deleted_count == 15
    loaded.save(43)  # overwrite in place
    again = VectorIndex.load(16, index.path, 43)
    assert again is not None and again.count == 285


def test_stale_generation_and_allow_stale(tmp_path: Path) -> None:
    index, _ = small_index(tmp_path, 50)
    index.save(5)
    assert VectorIndex.load(16, index.path, 6) is None
    assert VectorIndex.load(16, index.path, 4) is None
    old = VectorIndex.load(16, index.path, 6, allow_stale=True)
    assert old is not None and old.generation == 5
    assert VectorIndex.load(16, index.path, 4, allow_stale=True) is None  # newer than the DB: unusable


def test_dim_mismatch_and_missing_files(tmp_path: Path) -> None:
    index, _ = small_index(tmp_path, 50)
    assert VectorIndex.load(16, index.path, 1) is None  # never saved
    index.save(1)
    assert VectorIndex.load(17, index.path, 1) is None
    sidecar_path(index.path).unlink()
    assert VectorIndex.load(16, index.path, 1) is None
    index.save(1)
    index.path.unlink()
    assert VectorIndex.load(16, index.path, 1) is None


def _truncate(path: Path, _meta: dict) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _truncate_and_fix_sidecar(path: Path, meta: dict) -> None:
    _truncate(path, meta)
    meta["file_size"] = path.stat().st_size


def _zero_bytes(path: Path, meta: dict) -> None:
    path.write_bytes(b"")
    meta["file_size"] = 0


def _garbage(path: Path, meta: dict) -> None:
    rng = np.random.default_rng(0)
    path.write_bytes(rng.integers(0, 256, path.stat().st_size, dtype=np.uint8).tobytes())


def _garbage_header(path: Path, meta: dict) -> None:
    data = bytearray(path.read_bytes())
    data[8:16] = (2**62).to_bytes(8, "little")  # max_elements: a huge allocation if trusted
    data[16:24] = (2**40).to_bytes(8, "little")  # cur_element_count
    path.write_bytes(bytes(data))


def _bad_neighbour(path: Path, meta: dict) -> None:
    data = bytearray(path.read_bytes())
    # first element's level-0 list: 2-byte count, flags, pad, then neighbour ids (uint32)
    data[96:98] = (1).to_bytes(2, "little")
    data[100:104] = (10**9).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def _wrong_deleted_count(path: Path, meta: dict) -> None:
    meta["count"] -= 1


def _garbage_sidecar(path: Path, meta: dict) -> None:
    meta.clear()
    meta["not"] = "valid"


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _truncate_and_fix_sidecar,
        _zero_bytes,
        _garbage,
        _garbage_header,
        _bad_neighbour,
        _wrong_deleted_count,
        _garbage_sidecar,
    ],
)
def test_corrupt_files_load_as_none(tmp_path: Path, damage) -> None:
    index, _ = small_index(tmp_path, 200)
    index.save(3)
    meta = json.loads(sidecar_path(index.path).read_text())
    damage(index.path, meta)
    sidecar_path(index.path).write_text(json.dumps(meta))
    assert VectorIndex.load(16, index.path, 3) is None


def test_unreadable_sidecar_json(tmp_path: Path) -> None:
    index, _ = small_index(tmp_path, 20)
    index.save(1)
    sidecar_path(index.path).write_bytes(b"\xff\x00{not json")
    assert VectorIndex.load(16, index.path, 1) is None


def test_save_failure_raises_library_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    index = VectorIndex(4, blocker / "sub" / "v.hnsw")
    index.add(np.arange(4), np.eye(4, dtype=np.float32))
    with pytest.raises(LibraryError):
        index.save(1)


def test_rebuild_from_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    vectors = unit(rng, 1000, 16)
    ids = np.arange(5000, 6000)
    batches = ((ids[i : i + 128], vectors[i : i + 128]) for i in range(0, 1000, 128))
    path = tmp_path / "nested" / "r.hnsw"
    built = VectorIndex.rebuild(16, path, batches, generation=9, M=8, ef_construction=64, ef_search=40)
    assert built.count == 1000 and built.generation == 9 and built.ef_search == 40
    loaded = VectorIndex.load(16, path, 9)
    assert loaded is not None and loaded.count == 1000
    got, _ = loaded.search(vectors[:20], 1)
    assert got[:, 0].tolist() == ids[:20].tolist()


def test_an_unchanged_file_skips_the_full_pass_and_a_touched_one_gets_it(tmp_path: Path, monkeypatch) -> None:
    """Opening a big library must not read its index file three times (issue 11); any sign that the file
    or its sidecar changed since the save brings the full checksum and walk back."""
    import os

    import engine.storage.vector_index as vi

    index, _ = small_index(tmp_path, 300)
    index.save(3)
    calls = []
    real = vi._crc32
    monkeypatch.setattr(vi, "_crc32", lambda p: calls.append(p) or real(p))
    assert VectorIndex.load(16, index.path, 3) is not None and calls == []
    meta = json.loads(sidecar_path(index.path).read_text())
    assert vi.unchanged_since_save(index.path, meta)
    st = index.path.stat()
    os.utime(index.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # rewritten in place, say
    assert not vi.unchanged_since_save(index.path, meta)
    assert VectorIndex.load(16, index.path, 3) is not None and len(calls) == 1
    os.utime(index.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    edited = {**meta, "count": meta["count"] - 1}  # a sidecar edited by hand: its own checksum fails
    sidecar_path(index.path).write_text(json.dumps(edited))
    assert not vi.unchanged_since_save(index.path, edited)
    assert VectorIndex.load(16, index.path, 3) is None and len(calls) == 2
