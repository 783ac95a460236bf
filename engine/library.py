"""A library: one folder holding the database, the HNSW index cache and the writer lock.

```
<library>/earshot.db            SQLite (WAL): roots, files, windows, vectors, ...
<library>/index/<bundle>.hnsw   HNSW cache of the vectors of one bundle (+ .json sidecar)
<library>/write.lock            held by the one process that writes
```

Readers never block on the writer: SQLite WAL lets them read while it writes, and each reader keeps its
in-memory index in step with the database through the *generation* counter: windows added since the
index's generation are read from the ``vectors`` table, windows removed are read from ``tombstones``.
Only a missing, corrupt or foreign index file is rebuilt in full — from the database, never from audio.

Trust: a saved index is used only if it was built from *this* database (the ``library_id`` the database
got when it was created), its checksum and structure hold, and a sample of its vectors equals the
database's (both ways); after catching up it must hold as many vectors as the database. Anything else:
rebuilt. Vectors that are not finite never enter the index (an older Earshot could store them; the writer
marks their files as failed).

Damage: an empty database file beside a saved index is reported, not taken for a new library. When the
previous writer died (a non-empty ``-wal`` and nobody holds the write lock), the write-ahead log is
validated before SQLite replays it and ``PRAGMA quick_check`` runs after opening.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import delete, func, select

from engine.bundle import Bundle, load_bundle, read_spec, resolve_bundle
from engine.errors import BundleError, LibraryDamagedError, LibraryError, LibraryLockedError
from engine.name_index import NameIndex, sync_file_texts
from engine.names import NAME_DIM, NAME_ENCODER_ID
from engine.storage import db
from engine.storage.vector_index import VectorIndex

if TYPE_CHECKING:
    from filelock import FileLock

log = logging.getLogger(__name__)

DB_NAME = "earshot.db"
BUNDLE_STAMPS = "bundles-verified.json"  # bundles whose weights hashed right, by file stamps (engine.bundle)
SAMPLE = 32  # vectors of a loaded index compared with the database, each way
QUERY_CACHE = 64  # query embeddings remembered per library


def _version_key(version: str) -> tuple:
    """``"2.0.0"`` → comparable key; a suffix ranks a part below the plain number (``1.0.0rc1`` < ``1.0.0``)."""
    key = []
    for part in str(version).replace("-", ".").split("."):
        m = re.match(r"(\d*)(.*)", part)
        num, rest = m.group(1), m.group(2)  # type: ignore[union-attr]
        key.append((int(num) if num else -1, 0 if rest else 1, rest))
    return tuple(key)


def default_library_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(os.environ.get("EARSHOT_LIBRARY") or Path(user_data_dir("earshot", appauthor=False)) / "library")


class Library:
    """Open a library folder (created if needed) with a model bundle.

    ``bundle``: a bundle path/name; ``None`` means the bundle this library last used, or the default.
    The encoder (torch) is created only when something needs to embed.
    """

    def __init__(self, path: str | os.PathLike | None = None, bundle: str | os.PathLike | Bundle | None = None,
                 *, device: str | None = None) -> None:
        self.path = Path(path).expanduser().resolve() if path else default_library_dir()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"cannot create the library folder {self.path}: {exc}") from exc
        self.engine = self._open_database()
        self.device = device
        if isinstance(bundle, Bundle):
            self.bundle = bundle
        else:
            if bundle is None:
                with self.engine.connect() as conn:
                    recorded = db.get_meta(conn, "bundle_path")
                if recorded and Path(recorded).exists():
                    bundle = recorded
            self.bundle = load_bundle(resolve_bundle(bundle), stamps=self.path / "index" / BUNDLE_STAMPS)
        self._encoder = None
        self._text_encoder = None
        self._name_encoder = None
        self._name_index: NameIndex | None = None
        self._query_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        #: ``{(repr(filters), generation, names generation): sorted file ids}`` of recent filters (filled by
        #: engine.search).
        self.filter_cache: dict[tuple[str, int, int], np.ndarray] = {}
        self._index: VectorIndex | None = None
        self._index_gen = -1
        self._index_lock = threading.RLock()
        self._write_lock: FileLock | None = None

    def _open_database(self):
        path = self.path / DB_NAME
        wal = db.wal_path(path)
        try:
            empty = path.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0)
        except OSError:
            empty = False
        if empty and any((self.path / "index").glob("*.hnsw")):
            raise LibraryDamagedError(
                f"the library database {path} is empty (0 bytes) although this library has a search index: "
                "it was truncated or damaged. Restore the library folder from a backup, or move "
                f"{DB_NAME} away and index your folders again (their audio is decoded again)."
            )
        probe = None
        try:
            if wal.exists() and wal.stat().st_size > 0:
                from filelock import FileLock, Timeout  # here and below: ~10 ms of a cold search's imports

                lock = FileLock(str(self.path / "write.lock"))
                try:
                    lock.acquire(timeout=0)
                    probe = lock  # nobody writes, yet a log was left behind: the last writer died
                except Timeout:
                    pass
        except OSError:
            probe = None
        try:
            engine = db.open_engine(path, check=probe is not None)
            if probe is not None:
                try:  # fold the checked log into the database, so the next opening is clean again
                    with engine.connect() as conn:
                        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                except Exception as exc:  # a busy reader: the log stays, checked again next time
                    log.info("could not checkpoint %s: %s", wal, exc)
                log.info("library %s was not closed cleanly; its database checked out fine", self.path)
            return engine
        finally:
            if probe is not None:
                probe.release()

    @property
    def store(self):  # -> engine.storage.store.Store
        """The database behind named operations (:mod:`engine.storage.store`)."""
        from engine.storage.store import Store

        if getattr(self, "_store", None) is None:
            self._store = Store(self.engine)
        return self._store

    @property
    def library_id(self) -> str:
        """The id of this library's database (see :func:`engine.storage.db.library_id`)."""
        if getattr(self, "_library_id", None) is None:
            with self.engine.connect() as conn:
                self._library_id = db.library_id(conn)
        return self._library_id

    # -- model ----------------------------------------------------------------------------------

    @property
    def encoder(self):  # -> engine.encoder.Encoder (imported lazily: torch)
        if self._encoder is None:
            from engine.encoder import Encoder

            self._encoder = Encoder(self.bundle, device=self.device)
        return self._encoder

    @property
    def text_encoder(self):  # -> NumpyTextEncoder, or the torch Encoder for a text side numpy cannot run
        """What embeds queries: :class:`engine.text_encoder.NumpyTextEncoder` (no torch import; the same
        vectors) when the bundle allows it, else :attr:`encoder`. ``$EARSHOT_TEXT_BACKEND=torch`` forces
        the torch encoder."""
        if self._text_encoder is None:
            from engine.text_encoder import NumpyTextEncoder

            backend = os.environ.get("EARSHOT_TEXT_BACKEND", "auto").lower()
            if backend not in ("auto", "numpy", "torch"):
                raise LibraryError(f"EARSHOT_TEXT_BACKEND must be auto, numpy or torch, not {backend!r}")
            if backend != "torch" and NumpyTextEncoder.supports(self.bundle):
                self._text_encoder = NumpyTextEncoder(self.bundle)
            elif backend == "numpy":
                raise LibraryError(f"the model {self.bundle.name} has a text side that needs torch "
                                   "(EARSHOT_TEXT_BACKEND=numpy cannot run it)")
            else:
                self._text_encoder = self.encoder
        return self._text_encoder

    def newer_default(self) -> dict | None:
        """The default bundle when it is a newer version of the model this library uses, else ``None``.

        A library keeps the bundle it was indexed with (its vectors belong to that bundle), so after an
        update that ships a new default it goes on searching with the old one; this tells the caller that
        re-indexing with the new default is possible. Returns ``{"name", "version", "bundle_id", "path",
        "current_version", "command"}``: same bundle ``name``, strictly higher ``version``.
        """
        try:
            path = resolve_bundle(None)
            spec = read_spec(path)
        except BundleError:
            return None
        b = self.bundle
        if spec.get("name") != b.name or spec.get("bundle_id") == b.bundle_id:
            return None
        if _version_key(spec.get("version", "")) <= _version_key(b.version):
            return None
        return {
            "name": spec["name"],
            "version": spec["version"],
            "bundle_id": spec.get("bundle_id", ""),
            "path": str(path),
            "current_version": b.version,
            "command": f"earshot index --model {path.name}",
        }

    def reindex_notice(self) -> str | None:
        """One line telling the user that a newer default model can re-index this library, or ``None``."""
        newer = self.newer_default()
        if newer is None:
            return None
        return (
            f"a newer default model is available: {newer['name']} {newer['version']} (this library uses "
            f"{newer['current_version']}); re-index to use it: {newer['command']}"
        )
    def _shared_text_backbone(self) -> str | None:
        """The bundle's text backbone that *is* the name encoder's network, if any (shared, not loaded twice)."""
        from engine.name_encoder import shares_backbone

        used = {m.text_backbone for m in self.bundle.members}
        return next((n for n, e in self.bundle.text_backbones.items() if n in used and shares_backbone(e)), None)

    @property
    def name_encoder(self):  # -> engine.name_encoder.NameEncoder (torch)
        if self._name_encoder is None:
            from engine.name_encoder import NameEncoder

            shared = self._shared_text_backbone()
            module = self.encoder.text_backbones[shared] if shared else None
            self._name_encoder = NameEncoder(module, device=self.encoder.device)
        return self._name_encoder

    @property
    def name_index(self) -> NameIndex:
        """The semantic index of the files' own words (:mod:`engine.name_index`)."""
        if self._name_index is None:
            self._name_index = NameIndex(
                self.engine, self.path / "index" / f"names-{NAME_ENCODER_ID}.hnsw", NAME_ENCODER_ID, NAME_DIM
            )
        return self._name_index

    def sync_file_texts(self, file_ids=None, **kwargs) -> int:
        """Writer: embed the texts of ``file_ids`` (default all files) that changed; keyword arguments as
        :func:`engine.name_index.sync_file_texts`."""
        # the name encoder (torch, MiniLM) loads only when a text has changed
        return sync_file_texts(self.engine, lambda texts: self.name_encoder.embed(texts), NAME_ENCODER_ID, file_ids,
                               **kwargs)

    def embed_query(self, text: str):
        """A query in both spaces: ``(content vector float32 (1, bundle.dim), name vector float32 (384,))``.
        The last :data:`QUERY_CACHE` queries are remembered (typing, switching modes, paging re-ask them)."""
        got = self._query_cache.get(text)
        if got is not None:
            return got
        shared = self._shared_text_backbone()
        if shared:
            cvec, raw = self.text_encoder.embed_text_and_features([text])
            nvec = raw[shared][0]
            nvec = (nvec / max(float(np.linalg.norm(nvec)), 1e-12)).astype(np.float32)
        else:
            cvec, nvec = self.text_encoder.embed_text([text]), self.name_encoder.embed([text])[0]
        with self._index_lock:
            self._query_cache[text] = (cvec, nvec)
            while len(self._query_cache) > QUERY_CACHE:
                self._query_cache.pop(next(iter(self._query_cache)))
        return cvec, nvec

    # -- writer lock ----------------------------------------------------------------------------

    def acquire_writer(self, *, record_bundle: bool = True) -> None:
        """Become the one writer of this library, or raise :class:`LibraryLockedError` at once.
        ``record_bundle``: make this bundle the library's model now (a re-projection records it only when
        its vectors are complete, see :meth:`record_bundle`)."""
        if self._write_lock is not None:
            return
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / "write.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise LibraryLockedError(
                f"another Earshot process is already indexing the library {self.path}; "
                "wait for it to finish (searching keeps working meanwhile)"
            ) from None
        self._write_lock = lock
        if record_bundle:
            self.record_bundle()

    def record_bundle(self) -> None:
        """Writer: make ``self.bundle`` the model this library opens with (``meta.bundle_path``)."""
        with self.engine.begin() as conn:
            db.put_meta(conn, "bundle_path", str(self.bundle.path.resolve()))
            db.record_bundle(conn, self.bundle.bundle_id, self.bundle.name, self.bundle.version, self.bundle.dim)

    def use_bundle(self, bundle: Bundle) -> None:
        """Search and embed with another bundle from now on (its encoder and index are loaded when needed).
        The library's recorded model changes only through :meth:`record_bundle`."""
        with self._index_lock:
            self.bundle = bundle
            self._encoder = None
            self._text_encoder = None
            self._name_encoder = None
            self._query_cache.clear()
            self._index = None
            self._index_gen = -1

    def release_writer(self) -> None:
        if self._write_lock is not None:
            self._write_lock.release()
            self._write_lock = None

    @property
    def is_writer(self) -> bool:
        return self._write_lock is not None

    # -- index ----------------------------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        return self.path / "index" / f"{self.bundle.bundle_id[:16]}.hnsw"

    def _finite(self, ids: np.ndarray, vecs: np.ndarray, bad: list[int]) -> tuple[np.ndarray, np.ndarray]:
        ok = np.isfinite(vecs).all(axis=1)
        if ok.all():
            return ids, vecs
        bad.extend(int(i) for i in ids[~ok])
        return ids[ok], vecs[ok]

    def _drop_bad_vectors(self, bad: list[int]) -> None:
        """Vectors that are not finite (stored by an older Earshot): keep them out of the index and, as the
        writer, mark their files as failed so the library is whole again."""
        if not bad:
            return
        log.warning("%d stored vectors are not finite; they are left out of the search index", len(bad))
        if not self.is_writer:
            return
        with self.engine.begin() as conn:
            fids = set()
            for chunk in db.chunks(sorted(set(bad)), 900):
                fids.update(conn.execute(select(db.Window.file_id).where(db.Window.id.in_(chunk))).scalars())
            gen = db.generation(conn) + 1
            db.delete_file_windows(conn, sorted(fids), gen)
            for fid in fids:
                db.set_file_error(conn, fid, "non_finite",
                                  "the audio gives vectors that are not finite (NaN or infinite samples?)")
            db.bump_generation(conn)
        self._index = None
        self._index_gen = -1

    def _rebuild(self, conn) -> None:
        log.info("rebuilding the vector index of %s from the database", self.path)
        gen = db.generation(conn)
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        self._index = VectorIndex(self.bundle.dim, self.index_path)
        bad: list[int] = []
        for ids, vecs in db.iter_vectors(conn, self.bundle.bundle_id, self.bundle.dim):
            ids, vecs = self._finite(ids, vecs, bad)
            self._index.add(ids, vecs)
        self._index_gen = gen
        if bad and self.is_writer:
            conn.rollback()
            self._drop_bad_vectors(bad)
            self._rebuild(conn)
            return
        self.save_index()  # a reader shares its rebuild too: saving takes only the index file's lock

    def _verify(self, conn, idx: VectorIndex) -> str | None:
        """Compare a sample of a loaded index with the database it claims to mirror, both ways: labels
        of the index must be stored (or removed after the index's generation) with the same vector, and
        vectors stored up to that generation must be in the index."""
        b, g = self.bundle, int(idx.generation or 0)
        labels = idx.sample(SAMPLE)
        got = idx.vectors(labels)
        stored: dict[int, bytes] = dict(conn.execute(
            select(db.Vector.window_id, db.Vector.data)
            .where(db.Vector.bundle_id == b.bundle_id, db.Vector.window_id.in_([int(x) for x in labels]))
        ).all())
        missing = [int(x) for x in labels if int(x) not in stored]
        if missing:
            dead = set(conn.execute(
                select(db.Tombstone.window_id)
                .where(db.Tombstone.window_id.in_(missing), db.Tombstone.generation > g)
            ).scalars())
            if set(missing) - dead:
                return f"window {sorted(set(missing) - dead)[0]} is in the index but not in the database"
        for wid, blob in stored.items():
            if wid in got and not np.allclose(got[wid], db.decode_vectors([blob], b.dim)[0], atol=1e-3):
                return f"the vector of window {wid} differs from the database"
        lo, hi = conn.execute(
            select(func.min(db.Vector.window_id), func.max(db.Vector.window_id))
        ).one()
        if lo is None:
            return None if idx.count == 0 else "the index has vectors, the database none"
        rng = random.Random()  # not numpy.random: ~10 ms to import on every cold search
        for start in (rng.randint(int(lo), int(hi)) for _ in range(SAMPLE // 2)):
            row = conn.execute(
                select(db.Vector.window_id, db.Vector.data)
                .where(db.Vector.bundle_id == b.bundle_id, db.Vector.window_id >= int(start),
                       db.Vector.generation <= g)
                .order_by(db.Vector.window_id).limit(1)
            ).first()
            if row is None:
                continue
            vec = db.decode_vectors([row[1]], b.dim)[0]
            if not np.isfinite(vec).all():
                continue
            mine = idx.vectors([row[0]]).get(int(row[0]))
            if mine is None:
                return f"window {row[0]} is in the database but not in the index"
            if not np.allclose(mine, vec, atol=1e-3):
                return f"the vector of window {row[0]} differs from the database"
        return None

    def sync_index(self) -> VectorIndex:
        """The in-memory index, brought up to the database's current generation."""
        with self._index_lock, self.engine.connect() as conn:
            gen = db.generation(conn)
            if self._index is not None and self._index_gen == gen:
                return self._index
            pruned = int(db.get_meta(conn, "tombstones_pruned_upto", "0"))
            loaded = False
            if self._index is None or self._index_gen < pruned:
                # Tombstones this index would need are gone: take the saved file (newer), else rebuild.
                idx = VectorIndex.load(self.bundle.dim, self.index_path, expected_generation=gen,
                                       library_id=self.library_id, allow_stale=True)
                problem = None
                if idx is not None and idx.generation >= pruned:
                    problem = self._verify(conn, idx)
                    if problem:
                        log.warning("index %s does not match the database (%s); rebuilding it",
                                    self.index_path, problem)
                if idx is None or idx.generation < pruned or problem:
                    self._rebuild(conn)
                    return self._index
                self._index, self._index_gen = idx, int(idx.generation)
                loaded = True
            # Catch up: windows removed since the index's generation, then windows stored after it.
            dead = conn.execute(
                select(db.Tombstone.window_id).where(db.Tombstone.generation > self._index_gen)
            ).scalars().all()
            if dead:
                self._index.delete(dead)
            bad: list[int] = []
            for ids, vecs in db.iter_vectors(conn, self.bundle.bundle_id, self.bundle.dim,
                                             after_generation=self._index_gen):
                ids, vecs = self._finite(ids, vecs, bad)
                self._index.add(ids, vecs)
            self._index_gen = gen
            if bad and self.is_writer:
                conn.rollback()
                self._drop_bad_vectors(bad)
                return self.sync_index()
            if loaded and not bad:
                q = select(func.count()).select_from(db.Vector)
                if conn.execute(select(db.BundleRow.bundle_id)).scalars().all() != [self.bundle.bundle_id]:
                    q = q.where(db.Vector.bundle_id == self.bundle.bundle_id)  # else: a fast covering count
                stored = conn.execute(q).scalar_one()
                if stored != self._index.count:
                    log.warning("index %s holds %d vectors, the database %d; rebuilding it",
                                self.index_path, self._index.count, stored)
                    self._rebuild(conn)
            return self._index

    def apply_commit(self, gen: int, ids: np.ndarray, vectors: np.ndarray, removed: list[int]) -> None:
        """Writer's fast path after committing generation ``gen``: apply what it just stored without
        reading it back; falls back to :meth:`sync_index` if the in-memory index is not at ``gen - 1``."""
        with self._index_lock:
            if self._index is None or self._index_gen != gen - 1:
                self.sync_index()
                return
            if removed:
                self._index.delete(removed)
            if len(ids):
                self._index.add(ids, vectors)
            self._index_gen = gen

    def save_index(self) -> None:
        """Save the index atomically with the generation it matches (never over a newer saved one); the
        writer then prunes the tombstones that the saved file already reflects."""
        from filelock import FileLock, Timeout

        with self._index_lock:
            if self._index is None:
                return
            try:
                with FileLock(str(self.index_path) + ".lock", timeout=30):
                    saved = VectorIndex.read_meta(self.index_path)
                    if saved and isinstance(saved.get("generation"), int) and saved["generation"] > self._index_gen:
                        return
                    self._index.save(self._index_gen, self.library_id)
            except Timeout:
                log.warning("index %s is locked by another process; not saved", self.index_path)
                return
            if self.is_writer:
                with self.engine.begin() as conn:
                    conn.execute(delete(db.Tombstone).where(db.Tombstone.generation <= self._index_gen))
                    db.put_meta(conn, "tombstones_pruned_upto", str(self._index_gen))

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        self.release_writer()
        self.engine.dispose()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
