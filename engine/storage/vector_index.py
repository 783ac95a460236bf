"""The HNSW vector index: a disposable cache of the vectors stored in the library database.

Vectors are L2-normalised float32 rows of length ``dim``; the index uses hnswlib's inner-product space,
so a score is the cosine similarity (higher is better). Labels are window ids (the int64 primary keys of
the ``windows`` table). When the index file is missing, stale or corrupt, :meth:`VectorIndex.load`
returns ``None`` and the caller rebuilds it from the database with :meth:`VectorIndex.rebuild` — never by
decoding audio.

Files: ``<path>`` is the hnswlib graph; ``<path>.json`` is a small sidecar
``{format, dim, count, elements, generation, library_id, M, ef_construction, file_size}`` that says which
database (``library_id``, a random id the database got when it was created) and which generation of it the
graph matches. Both are replaced atomically; the sidecar is removed before the graph is replaced and
written after it, so a crash in between leaves "missing", never a mismatched pair. A written graph is
read back and walked to its end before it replaces the old one (a full disk truncates it silently).

Loading checks the sidecar, the header and every level-0 record (neighbour ids in range, vectors finite
and unit length, labels unique); the caller also compares a sample of vectors with the database
(:meth:`VectorIndex.sample` and :meth:`VectorIndex.vectors`).

Threads: hnswlib does not allow searching while elements are inserted or deleted (nmslib/hnswlib#562),
so searches share a read lock and mutations take the write lock in short slices (about 50 ms each),
with waiting searches let in between slices. Only growth (``resize_index``) holds readers longer.

This module never imports torch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from engine.errors import LibraryError

log = logging.getLogger(__name__)

FORMAT = "earshot-hnsw-2"
"""Value of the sidecar's ``format`` field; bump it when the on-disk layout changes."""

# hnswlib 0.8 file header: offsetLevel0, max_elements, cur_element_count, size_data_per_element,
# label_offset, offsetData (size_t x6), maxlevel (int), enterpoint_node (uint32), maxM, maxM0, M (size_t),
# mult (double), ef_construction (size_t).
_HEADER = struct.Struct("<6QiI3QdQ")
_DELETE_MARK = 0x01
_SLICE_TARGET_S = 0.05
_VALIDATE_BYTES = 32 << 20
_HEAD_BYTES = 1 << 20


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class _ReadWriteLock:
    """Many readers or one writer.

    A waiting writer stops new readers from entering (so it is not starved), and when a writer releases
    the lock, the readers that were waiting go first (so a writer working in slices does not starve them).
    Not re-entrant.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._readers_waiting = 0
        self._readers_turn = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            self._readers_waiting += 1
            while self._writer or (self._writers_waiting and not self._readers_turn):
                self._cond.wait()
            self._readers_waiting -= 1
            if self._readers_waiting == 0:
                self._readers_turn = False
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers or (self._readers_turn and self._readers_waiting):
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
            self._readers_turn = False
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._readers_turn = self._readers_waiting > 0
                self._cond.notify_all()


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar that goes with the index file ``path`` (``<path>.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; its rename is durable enough.
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json_tmp(path: Path, payload: dict[str, Any]) -> str:
    """Write ``payload`` to a synced temporary file beside ``path``; return its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _as_ids(ids: Any) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ids must be integers, got {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and int(arr.min()) < 0:
        raise ValueError("ids must be non-negative")
    return arr


def _as_queries(query: Any, dim: int) -> np.ndarray:
    q = np.asarray(query, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"query must have shape ({dim},) or (q, {dim}), got {np.shape(query)}")
    return np.ascontiguousarray(q)


def _empty_result(nq: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((nq, 0), dtype=np.int64), np.empty((nq, 0), dtype=np.float32)


class VectorIndex:
    """HNSW k-NN index over L2-normalised float32 vectors labelled by window id.

    Args:
        dim: vector length.
        path: where :meth:`save` writes the index (the sidecar goes to ``<path>.json``).
        M: graph degree (memory per element is about ``4*dim + 8*M + 16`` bytes plus upper levels); 16 keeps
            1M × 512-d under 2.5 GB (benchmarks/RESULTS.md).
        ef_construction: build-time beam width (build time grows about linearly with it).
        ef_search: query-time beam width; hnswlib always searches with ``max(ef_search, k)``. 512 gives
            recall@16 ≥ 0.98 for text-like (far) queries at 1M windows with p95 ≈ 2 ms.
        capacity: initial number of slots; the index grows by doubling as needed.
        num_threads: threads hnswlib uses for batch add/search (default ``min(4, cpu_count)``).
    """

    def __init__(
        self,
        dim: int,
        path: Path,
        *,
        M: int = 16,
        ef_construction: int = 200,
        ef_search: int = 512,
        capacity: int = 1024,
        num_threads: int | None = None,
    ) -> None:
        if dim < 1 or M < 2 or ef_construction < 1:
            raise ValueError(f"invalid index parameters dim={dim} M={M} ef_construction={ef_construction}")
        index = hnswlib.Index(space="ip", dim=int(dim))
        index.init_index(
            max_elements=max(1, int(capacity)),
            M=int(M),
            ef_construction=int(ef_construction),
            random_seed=100,
            allow_replace_deleted=True,
        )
        self._setup(index, dim, path, M, ef_construction, ef_search, num_threads, count=0, generation=None)

    def _setup(
        self,
        index: hnswlib.Index,
        dim: int,
        path: Path,
        M: int,
        ef_construction: int,
        ef_search: int,
        num_threads: int | None,
        *,
        count: int,
        generation: int | None,
    ) -> None:
        if ef_search < 1:
            raise ValueError(f"ef_search must be >= 1, got {ef_search}")
        self._index = index
        self._dim = int(dim)
        self._path = Path(path)
        self._M = int(M)
        self._ef_construction = int(ef_construction)
        self._ef_search = int(ef_search)
        self._threads = _default_threads() if num_threads is None else max(1, int(num_threads))
        self._count = int(count)
        self._generation = generation
        self._rw = _ReadWriteLock()
        self._writer = threading.Lock()  # serialises mutators (add, delete, save) among themselves
        self._slice = 256
        index.set_num_threads(self._threads)
        index.set_ef(self._ef_search)

    # ------------------------------------------------------------------ properties

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def path(self) -> Path:
        return self._path

    @property
    def count(self) -> int:
        """Number of live (not deleted) vectors."""
        return self._count

    @property
    def deleted_count(self) -> int:
        """Slots held by deleted vectors (reused by later adds; a rebuild drops them)."""
        return int(self._index.element_count) - self._count

    @property
    def capacity(self) -> int:
        return int(self._index.max_elements)

    @property
    def M(self) -> int:
        return self._M

    @property
    def ef_construction(self) -> int:
        return self._ef_construction

    @property
    def generation(self) -> int | None:
        """Database generation of the last :meth:`save` or :meth:`load`; ``None`` for a new index."""
        return self._generation

    @property
    def ef_search(self) -> int:
        """Query beam width; the effective value for a search of ``k`` is ``max(ef_search, k)``."""
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        value = int(value)
        if value < 1:
            raise ValueError(f"ef_search must be >= 1, got {value}")
        with self._rw.write():
            self._index.set_ef(value)
            self._ef_search = value

    # ------------------------------------------------------------------ mutation

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace vectors.

        Args:
            ids: int64 array ``(n,)`` of non-negative window ids. An id already present is updated; a
                deleted id comes back to life with the new vector. Duplicates in one call: the last wins.
            vectors: float32 array ``(n, dim)``, L2-normalised (not checked; inner product = cosine only
                for unit vectors).
        """
        self._add(ids, vectors, sliced=True)

    def _add(self, ids: np.ndarray, vectors: np.ndarray, *, sliced: bool) -> None:
        ids = _as_ids(ids)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[1] != self._dim or vecs.shape[0] != ids.shape[0]:
            raise ValueError(f"vectors must have shape ({ids.shape[0]}, {self._dim}), got {vecs.shape}")
        if ids.size == 0:
            return
        if not np.isfinite(vecs).all():
            raise ValueError("vectors contain NaN or infinity")
        rev_unique, rev_first = np.unique(ids[::-1], return_index=True)
        if rev_unique.size != ids.size:  # keep the last occurrence of each id
            keep = np.sort(ids.size - 1 - rev_first)
            ids, vecs = ids[keep], vecs[keep]
        n = ids.size
        with self._writer:
            self._reserve(n)
            start = 0
            while start < n:
                stop = n if not sliced else min(n, start + self._slice)
                t0 = time.perf_counter()
                with self._rw.write():
                    self._add_slice(ids[start:stop], vecs[start:stop])
                if sliced:  # aim for about _SLICE_TARGET_S of exclusive time per slice
                    elapsed = max(time.perf_counter() - t0, 1e-4)
                    ratio = min(4.0, max(0.25, _SLICE_TARGET_S / elapsed))
                    self._slice = int(min(16384, max(16, self._slice * ratio)))
                start = stop

    def _reserve(self, n: int) -> None:
        needed = int(self._index.element_count) + n
        cap = int(self._index.max_elements)
        if needed <= cap:
            return
        new_cap = max(needed, 2 * cap)
        t0 = time.perf_counter()
        try:
            with self._rw.write():
                self._index.resize_index(new_cap)
        except (RuntimeError, MemoryError) as exc:
            raise LibraryError(
                f"Not enough memory to grow the search index to {new_cap:,} windows ({exc})."
            ) from exc
        log.debug("index resized %d -> %d in %.3fs", cap, new_cap, time.perf_counter() - t0)

    def _add_slice(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Add one slice; caller holds the writer mutex and the write lock."""
        index = self._index
        try:
            if index.element_count == self._count:
                # No deleted slots: a plain add inserts new ids and updates live ones.
                before = int(index.element_count)
                index.add_items(vecs, ids, num_threads=self._threads)
                self._count += int(index.element_count) - before
                return
            update = np.zeros(ids.size, dtype=bool)
            for i, label in enumerate(ids.tolist()):
                try:
                    index.unmark_deleted(label)  # deleted -> live again; then updated in place
                    self._count += 1
                    update[i] = True
                    continue
                except RuntimeError:
                    pass
                try:
                    index.get_items([label])  # raises unless live
                    update[i] = True
                except RuntimeError:
                    pass
            if update.any():
                index.add_items(vecs[update], ids[update], num_threads=self._threads)
            new = ~update
            if new.any():
                # New ids take the slots of deleted elements first (their old labels disappear).
                index.add_items(vecs[new], ids[new], num_threads=self._threads, replace_deleted=True)
                self._count += int(new.sum())
        except RuntimeError as exc:
            raise LibraryError(f"The search index could not be updated ({exc}).") from exc

    def delete(self, ids: Iterable[int]) -> None:
        """Mark window ids as deleted (their slots are reused by later adds); unknown ids are ignored."""
        labels = [int(i) for i in ids]
        with self._writer:
            for start in range(0, len(labels), 4096):
                with self._rw.write():
                    for label in labels[start : start + 4096]:
                        if label < 0:
                            continue
                        try:
                            self._index.mark_deleted(label)
                        except RuntimeError:  # unknown or already deleted
                            continue
                        self._count -= 1

    def labels(self) -> list[int]:
        """The ids of the live (not deleted) vectors."""
        with self._rw.read():
            ids = self._index.get_ids_list()
            deleted = set()
            if self.deleted_count:
                for label in ids:
                    try:
                        self._index.get_items([label])
                    except RuntimeError:
                        deleted.add(label)
        return [int(i) for i in ids if i not in deleted]

    # ------------------------------------------------------------------ search

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate k nearest neighbours by inner product.

        Args:
            query: float32 ``(dim,)`` or ``(q, dim)``, L2-normalised.
            k: neighbours wanted per query; clipped to :attr:`count`.

        Returns:
            ``(ids, scores)``: int64 ``(q, k')`` window ids and float32 ``(q, k')`` inner products, best
            first (``q = 1`` for a 1-D query). Empty ``(q, 0)`` arrays when the index is empty. In the
            rare case the graph cannot reach ``k'`` live elements for some query (heavy deletion), that
            row is padded with id ``-1`` and score ``-inf``.
        """
        q = _as_queries(query, self._dim)
        nq = q.shape[0]
        with self._rw.read():
            kk = min(int(k), self._count)
            if kk <= 0:
                return _empty_result(nq)
            threads = 1 if nq == 1 else self._threads
            try:
                labels, dist = self._index.knn_query(q, k=kk, num_threads=threads)
            except RuntimeError:
                labels, dist = self._search_ragged(q, kk)
        ids = labels.astype(np.int64)
        scores = (1.0 - dist).astype(np.float32)
        if (labels == np.iinfo(np.uint64).max).any():
            missing = labels == np.iinfo(np.uint64).max
            ids[missing] = -1
            scores[missing] = -np.inf
        return ids, scores

    def _search_ragged(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-query fallback that finds as many results as the graph yields; caller holds the read lock."""
        labels = np.full((q.shape[0], k), np.iinfo(np.uint64).max, dtype=np.uint64)
        dist = np.full((q.shape[0], k), np.inf, dtype=np.float32)
        for row in range(q.shape[0]):
            kk = k
            while kk > 0:
                try:
                    lab, d = self._index.knn_query(q[row : row + 1], k=kk, num_threads=1)
                except RuntimeError:
                    kk //= 2
                    continue
                labels[row, :kk], dist[row, :kk] = lab[0], d[0]
                break
        return labels, dist

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """Up to ``n`` live labels (int64) picked at random."""
        with self._rw.read():
            labels = self._index.get_ids_list()
            if not labels:
                return np.zeros(0, np.int64)
            # the standard library's generator: numpy.random costs ~10 ms to import, on every cold search
            rng = random.Random(seed)
            want = min(n, len(labels)) * 2
            pick = rng.choices(labels, k=want) if len(labels) < 2 * n else rng.sample(labels, want)
            live = []
            for label in dict.fromkeys(pick):
                try:
                    self._index.get_items([label])
                except RuntimeError:  # deleted
                    continue
                live.append(label)
                if len(live) >= n:
                    break
            return np.asarray(live, dtype=np.int64)

    def vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """``{label: float32 (dim,)}`` for the live labels among ``ids`` (others are left out)."""
        out: dict[int, np.ndarray] = {}
        with self._rw.read():
            for label in ids:
                try:
                    out[int(label)] = np.asarray(self._index.get_items([int(label)], return_type="numpy"),
                                                 dtype=np.float32)[0]
                except RuntimeError:
                    continue
        return out

    # ------------------------------------------------------------------ persistence

    def save(self, generation: int, library_id: str = "") -> None:
        """Write the index atomically, stamped with the database ``generation`` (and the database's
        ``library_id``) it matches.

        Searches keep running while the file is written; mutations wait.

        Raises:
            LibraryError: the file could not be written (disk full, permissions, ...).
        """
        path = self._path
        sidecar = sidecar_path(path)
        t0 = time.perf_counter()
        with self._writer, self._rw.read():
            tmp: str | None = None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
                os.close(fd)
                self._index.save_index(tmp)
                _fsync_file(Path(tmp))
                problem = _check_written(Path(tmp), int(self._index.element_count), self._dim)
                if problem:
                    raise OSError(0, f"the written file is incomplete ({problem}); is the disk full?")
                meta = {
                    "format": FORMAT,
                    "dim": self._dim,
                    "count": self._count,
                    "elements": int(self._index.element_count),
                    "generation": int(generation),
                    "library_id": str(library_id),
                    "M": self._M,
                    "ef_construction": self._ef_construction,
                    "file_size": os.path.getsize(tmp),
                    "crc32": _crc32(Path(tmp)),
                    "stamp": _stamp(Path(tmp)),  # os.replace keeps the inode and the modification time
                    "head_crc32": _head_crc32(Path(tmp)),
                    "hnswlib": getattr(hnswlib, "__version__", "unknown"),
                }
                meta["sidecar_crc32"] = _meta_crc32(meta)
                side_tmp = _write_json_tmp(sidecar, meta)  # fails here, not half-way, on a full disk
                try:
                    sidecar.unlink(missing_ok=True)
                    os.replace(tmp, path)
                    tmp = None
                    os.replace(side_tmp, sidecar)
                    side_tmp = None
                finally:
                    if side_tmp is not None:
                        Path(side_tmp).unlink(missing_ok=True)
                _fsync_dir(path.parent)
            except (OSError, RuntimeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise LibraryError(f"Could not save the search index to {path}: {reason}") from exc
            finally:
                if tmp is not None:
                    Path(tmp).unlink(missing_ok=True)
            self._generation = int(generation)
        log.info(
            "saved index %s: %d vectors, generation %d, %.2fs",
            path,
            self._count,
            generation,
            time.perf_counter() - t0,
        )

    @staticmethod
    def read_meta(path: Path) -> dict[str, Any] | None:
        """The sidecar of the index file ``path`` as a dict, or ``None`` if missing or unreadable."""
        try:
            meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        return meta if isinstance(meta, dict) else None

    @classmethod
    def load(
        cls,
        dim: int,
        path: Path,
        expected_generation: int,
        *,
        library_id: str | None = None,
        allow_stale: bool = False,
        ef_search: int = 512,
        num_threads: int | None = None,
    ) -> VectorIndex | None:
        """Load a saved index, or ``None`` when it is missing, of another dim, stale or corrupt.

        Args:
            dim: vector length the caller expects.
            path: the index file.
            expected_generation: database generation the index must match.
            library_id: the id of the database the index must have been built from (``None``: not checked).
            allow_stale: also accept an index saved at an *older* generation (``index.generation`` tells
                which), for a caller that catches up from the database's tombstones and newer vectors.

        Never raises for a bad file: every failure is logged and answered with ``None``.
        """
        path = Path(path)
        meta = cls.read_meta(path)
        if meta is None:
            log.info("no usable index sidecar for %s", path)
            return None
        problem = _check_meta(meta, dim, expected_generation, allow_stale)
        if not problem and library_id is not None and meta.get("library_id") != library_id:
            problem = "it was built from another database"
        if problem:
            log.info("index %s not used: %s", path, problem)
            return None
        t0 = time.perf_counter()
        try:
            problem = _check_file(path, meta)
            if problem:
                log.warning("index %s is corrupt: %s", path, problem)
                return None
            elements = int(meta["elements"])
            index = hnswlib.Index(space="ip", dim=int(dim))
            index.load_index(str(path), max_elements=max(1, elements), allow_replace_deleted=True)
            if int(index.element_count) != elements or int(index.M) != int(meta["M"]):
                log.warning("index %s is corrupt: loaded graph does not match its sidecar", path)
                return None
        except Exception as exc:  # any failure of a cache file means "rebuild it"
            log.warning("index %s could not be loaded: %s", path, exc)
            return None
        obj = cls.__new__(cls)
        obj._setup(
            index,
            dim,
            path,
            int(meta["M"]),
            int(meta["ef_construction"]),
            ef_search,
            num_threads,
            count=int(meta["count"]),
            generation=int(meta["generation"]),
        )
        log.info("loaded index %s: %d vectors in %.2fs", path, obj.count, time.perf_counter() - t0)
        return obj

    @classmethod
    def rebuild(
        cls,
        dim: int,
        path: Path,
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        *,
        generation: int,
        library_id: str = "",
        **params: Any,
    ) -> VectorIndex:
        """Build a fresh index from ``(ids int64 (n,), vectors float32 (n, dim))`` batches, then save it.

        ``params`` go to the constructor (``M``, ``ef_construction``, ``ef_search``, ``capacity``,
        ``num_threads``); pass ``capacity`` = the number of vectors to avoid regrowing.
        """
        t0 = time.perf_counter()
        index = cls(dim, path, **params)
        for ids, vectors in batches:
            index._add(ids, vectors, sliced=False)  # nobody else holds this object yet
        index.save(generation, library_id)
        log.info("rebuilt index %s: %d vectors in %.1fs", path, index.count, time.perf_counter() - t0)
        return index


def _check_meta(meta: dict[str, Any], dim: int, expected_generation: int, allow_stale: bool) -> str | None:
    if meta.get("format") != FORMAT:
        return f"format {meta.get('format')!r} is not {FORMAT!r}"
    keys = ("dim", "count", "elements", "generation", "M", "ef_construction", "file_size", "crc32")
    if not all(isinstance(meta.get(k), int) and not isinstance(meta.get(k), bool) for k in keys):
        return "sidecar fields missing or not integers"
    if meta["dim"] != dim:
        return f"dim {meta['dim']} != {dim}"
    gen = meta["generation"]
    if gen != expected_generation and not (allow_stale and gen < expected_generation):
        return f"generation {gen} != {expected_generation}"
    if not (0 <= meta["count"] <= meta["elements"]) or meta["M"] < 2 or meta["ef_construction"] < 1:
        return "sidecar values out of range"
    return None


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_VALIDATE_BYTES):
            crc = zlib.crc32(chunk, crc)
    return crc


def _stamp(path: Path) -> list[int]:
    """What changes when a file is rewritten: inode, size, modification time (ns)."""
    st = os.stat(path)
    return [int(st.st_ino), int(st.st_size), int(st.st_mtime_ns)]


def _head_crc32(path: Path) -> int:
    with open(path, "rb") as fh:
        return zlib.crc32(fh.read(_HEAD_BYTES))


def _meta_crc32(meta: dict[str, Any]) -> int:
    """Checksum of a sidecar's own fields (all but ``sidecar_crc32``)."""
    body = {k: v for k, v in meta.items() if k != "sidecar_crc32"}
    return zlib.crc32(json.dumps(body, sort_keys=True).encode("utf-8"))


def unchanged_since_save(path: Path, meta: dict[str, Any]) -> bool:
    """Whether ``path`` and its sidecar are still exactly what :meth:`VectorIndex.save` wrote after walking
    the file: the sidecar's own checksum holds, and the file has the inode, size and modification time it
    recorded and the same checksum of its first MiB."""
    stamp = meta.get("stamp")
    if not (isinstance(stamp, list) and isinstance(meta.get("head_crc32"), int)):
        return False
    if meta.get("sidecar_crc32") != _meta_crc32(meta):
        return False
    try:
        return _stamp(path) == stamp and _head_crc32(path) == meta["head_crc32"]
    except OSError:
        return False


def _check_file(path: Path, meta: dict[str, Any]) -> str | None:
    """Validate the hnswlib file against its sidecar before hnswlib reads it (bad sizes there can mean
    huge allocations; bad neighbour ids can mean a crash at search time; a changed byte anywhere, wrong
    scores or files).

    A file that is unchanged since it was saved (:func:`unchanged_since_save`) gets the header checks only:
    the full pass (a checksum of every byte, every level-0 record walked) reads the whole file twice more,
    seconds at a million windows, for a file this process family wrote and walked itself (issue 11: open
    time). A same-size rewrite within the file system's timestamp granularity (a few ms) after the save
    that spares the first MiB would go unnoticed; anything else is caught as before."""
    size = path.stat().st_size
    if size != meta["file_size"]:
        return f"file size {size} != {meta['file_size']}"
    quick = unchanged_since_save(path, meta)
    if not quick and meta.get("crc32") != _crc32(path):
        return "checksum does not match"
    if size < _HEADER.size:
        return "file shorter than its header"
    with open(path, "rb") as fh:
        header = _HEADER.unpack(fh.read(_HEADER.size))
    (off0, _max_el, cur, per_elem, label_off, data_off, max_level, entry, max_m, max_m0, m, mult, efc) = (
        header
    )
    dim, elements = int(meta["dim"]), int(meta["elements"])
    expected_data_off = max_m0 * 4 + 4
    if (
        off0 != 0
        or cur != elements
        or m != meta["M"]
        or max_m != m
        or max_m0 != 2 * m
        or efc != meta["ef_construction"]
        or data_off != expected_data_off
        or label_off != data_off + 4 * dim
        or per_elem != label_off + 8
        or not (0 <= max_level < 64 or (elements == 0 and max_level == -1))  # -1: empty (a fresh library)
        or not (math.isfinite(mult) and mult > 0)
        or (elements and entry >= elements)
    ):
        return "header does not match the sidecar"
    if size < _HEADER.size + elements * (per_elem + 4):
        return "file too short for its element count"
    if elements == 0 or quick:
        return None
    record = np.dtype(
        [
            ("links", "<u2"),
            ("flags", "u1"),
            ("pad", "u1"),
            ("neighbours", "<u4", (max_m0,)),
            ("vector", "<f4", (dim,)),
            ("label", "<u8"),
        ]
    )
    rows = max(1, _VALIDATE_BYTES // record.itemsize)
    slot = np.arange(max_m0)
    deleted = 0
    labels: list[np.ndarray] = []
    with open(path, "rb") as fh:
        fh.seek(_HEADER.size)
        for start in range(0, elements, rows):
            block = np.fromfile(fh, dtype=record, count=min(rows, elements - start))
            if block.shape[0] != min(rows, elements - start):
                return "file ends inside the level-0 data"
            links = block["links"]
            if int(links.max()) > max_m0:
                return "level-0 link count out of range"
            used = slot[None, :] < links[:, None]
            if used.any() and int(block["neighbours"][used].max()) >= elements:
                return "level-0 neighbour id out of range"
            deleted += int(np.count_nonzero(block["flags"] & _DELETE_MARK))
            live = (block["flags"] & _DELETE_MARK) == 0
            vecs = block["vector"][live]
            if vecs.size:
                if not np.isfinite(vecs).all():
                    return "a stored vector is not finite"
                norms = np.sqrt(np.einsum("ij,ij->i", vecs, vecs, dtype=np.float64))
                if not (norms < 1.01).all():
                    return "a stored vector is longer than unit length"
            labels.append(block["label"])
    all_labels = np.concatenate(labels)
    if np.unique(all_labels).size != all_labels.size:
        return "duplicate labels"
    if deleted != elements - int(meta["count"]):
        return f"{deleted} deleted elements in the file, sidecar says {elements - int(meta['count'])}"
    return None


def _check_written(path: Path, elements: int, dim: int) -> str | None:
    """Walk a file hnswlib just wrote to its end the way ``loadIndex`` reads it: header, level-0 records,
    then one ``(size, links)`` list per element. hnswlib does not report write errors, so this is how a
    file cut short by a full disk is caught before it replaces a good one."""
    size = path.stat().st_size
    if size < _HEADER.size:
        return "shorter than its header"
    with open(path, "rb") as fh:
        header = _HEADER.unpack(fh.read(_HEADER.size))
        cur, per_elem, max_m = header[2], header[3], header[8]
        if cur != elements:
            return f"{cur} elements in the header, {elements} in memory"
        body = _HEADER.size + cur * per_elem
        if size < body + 4 * cur:
            return f"{size} bytes, at least {body + 4 * cur} expected"
        fh.seek(body)
        words = np.fromfile(fh, dtype="<u4").tolist()
    links_per_level = max_m * 4 + 4
    pos = 0
    n = len(words)
    for _ in range(cur):
        if pos >= n:
            return "ends inside the upper-level links"
        nbytes = words[pos]
        if nbytes % links_per_level:
            return "an upper-level link list has a bad size"
        pos += 1 + nbytes // 4
    if pos != n or body + 4 * pos != size:
        return "does not end where its last link list ends"
    return None


def exact_search(
    vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int, *, block: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force k nearest neighbours by inner product: the reference the HNSW index is tested against.

    Args:
        vectors: float32 ``(n, dim)``.
        ids: int ``(n,)`` labels of the rows.
        query: float32 ``(dim,)`` or ``(q, dim)``.
        k: neighbours per query; clipped to ``n``.
        block: rows scored at a time (bounds memory to ``q * block`` floats).

    Returns:
        ``(ids int64 (q, k'), scores float32 (q, k'))`` best first (equal scores: smaller id first).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    ids = np.asarray(ids).astype(np.int64, copy=False)
    if vectors.ndim != 2 or ids.shape != (vectors.shape[0],):
        raise ValueError(f"vectors {vectors.shape} and ids {ids.shape} do not match")
    q = _as_queries(query, vectors.shape[1])
    n = vectors.shape[0]
    kk = min(int(k), n)
    if kk <= 0:
        return _empty_result(q.shape[0])
    best_ids = np.empty((q.shape[0], 0), dtype=np.int64)
    best_scores = np.empty((q.shape[0], 0), dtype=np.float32)
    for start in range(0, n, block):
        scores = q @ vectors[start : start + block].T
        cand_ids = np.broadcast_to(ids[start : start + block], scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, cand_ids], axis=1)
        if all_scores.shape[1] > kk:
            part = np.argpartition(-all_scores, kk - 1, axis=1)[:, :kk]
            all_scores = np.take_along_axis(all_scores, part, axis=1)
            all_ids = np.take_along_axis(all_ids, part, axis=1)
        best_scores, best_ids = all_scores, all_ids
    order = np.lexsort((best_ids, -best_scores), axis=-1)
    return np.take_along_axis(best_ids, order, axis=1), np.take_along_axis(best_scores, order, axis=1)
