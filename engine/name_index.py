"""Keep each file's text embedding (semantic metadata search) in step with the library, and search it.

* :func:`sync_file_texts` (the writer, after each commit and at the end of an index run): computes the
  text of every given file (:func:`engine.names.file_text`), embeds those whose text or name encoder
  changed, and stores them under a new ``names_generation``. Moves, metadata changes and schema upgrades
  are all "the text changed"; deleted files lose their row by cascade. Rebuildable from the database.
* :class:`NameIndex` (every reader): an in-memory HNSW index over those vectors (labels are file ids) that
  catches up by generation, saved as a cache file beside the window index and rebuilt from the
  database when missing or corrupt — never from audio. Files that share one text (a folder of
  ``Untitled_001.wav``…: the same words, so the same vector) enter the graph once, as the lowest file id of
  the text, and search hands back all of them: many identical points in an HNSW graph can cut the other
  files off from search (measured: a library with 246 such files answered "explosion" wrong in 1 build
  of 40).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from engine.names import file_text
from engine.storage import db
from engine.storage.vector_index import VectorIndex

log = logging.getLogger(__name__)

SYNC_BATCH = 512


def sync_file_texts(engine, embed: Callable[[list[str]], np.ndarray], encoder_id: str,
                    file_ids: Iterable[int] | None = None, *, only_missing: bool = False,
                    on_progress: Callable[[int, int], None] | None = None,
                    cancelled: Callable[[], bool] | None = None) -> int:
    """Bring the stored file texts of ``file_ids`` (default: every file) up to date; return how many were
    (re-)embedded. ``embed``: texts -> float32 (n, dim) unit rows (:meth:`NameEncoder.embed`);
    ``only_missing``: look only at files that have no text row yet (cheap: used while indexing);
    ``on_progress(done, total)`` after each stored batch; ``cancelled()`` stops between batches (what was
    stored stays; the next sync does the rest). Files that failed to index lose their row."""
    wanted = None if file_ids is None else sorted({int(f) for f in file_ids})
    with engine.connect() as conn:
        q = (select(db.File.id, db.File.rel_path, db.File.metadata_json, db.Root.path)
             .join(db.Root, db.Root.id == db.File.root_id).where(db.File.status == "ok"))
        if only_missing:
            q = q.outerjoin(db.FileText, db.FileText.file_id == db.File.id).where(db.FileText.file_id.is_(None))
        failed = conn.execute(
            select(db.FileText.file_id).join(db.File, db.File.id == db.FileText.file_id)
            .where(db.File.status != "ok")
        ).scalars().all()
        rows = []
        if wanted is None:
            rows = conn.execute(q).all()
        else:
            for chunk in db.chunks(wanted, 900):
                rows.extend(conn.execute(q.where(db.File.id.in_(chunk))).all())
        stored = db.file_texts(conn, None if wanted is None else [r[0] for r in rows])
    todo = []
    for fid, rel, meta, root in rows:
        ft = file_text(rel, root, json.loads(meta) if meta else None)
        if stored.get(fid) != (ft.text, encoder_id, ft.informativeness):
            todo.append((fid, ft))
    if failed:
        with engine.begin() as conn:
            db.delete_file_texts(conn, failed)
    for start in range(0, len(todo), SYNC_BATCH):
        if cancelled is not None and cancelled():
            break
        part = todo[start : start + SYNC_BATCH]
        vecs = embed([ft.text for _, ft in part])
        with engine.begin() as conn:
            db.put_file_texts(conn, [(fid, ft.text, ft.informativeness, v) for (fid, ft), v in zip(part, vecs, strict=True)],
                              encoder_id)
        if on_progress is not None:
            on_progress(min(start + SYNC_BATCH, len(todo)), len(todo))
    if todo:
        log.info("embedded the texts of %d files", len(todo))
    return len(todo)


class NameIndex:
    """The file-text vectors of one library and name encoder, searchable by inner product (cosine)."""

    def __init__(self, engine, path: Path, encoder_id: str, dim: int) -> None:
        self.engine = engine
        self.path = path
        self.encoder_id = encoder_id
        self.dim = dim
        self._index: VectorIndex | None = None
        self._gen = -1
        self._lock = threading.RLock()
        self._by_text: dict[str, list[int]] | None = None  # texts of several files -> their ids, ascending
        self._shared: dict[int, list[int]] = {}  # the same keyed by the lowest id, which stands for the text

    def _group(self, conn, texts: Iterable[str] | None) -> dict[str, list[int]]:
        """``{text: [file ids, ascending]}`` of the given texts (default: every text) that several files share
        (answered by the ``(encoder, text)`` index, without a sort of the table)."""
        base = select(db.FileText.text, db.FileText.file_id).where(db.FileText.encoder == self.encoder_id)
        if texts is None:
            shared = (select(db.FileText.text)
                      .where(db.FileText.encoder == self.encoder_id, db.FileText.text != "")
                      .group_by(db.FileText.text).having(func.count() > 1))
            queries = [base.where(db.FileText.text.in_(shared))]
        else:
            queries = [base.where(db.FileText.text.in_(chunk)) for chunk in db.chunks(sorted(texts), 900)]
        groups: dict[str, list[int]] = {}
        for q in queries:
            for text, fid in conn.execute(q.order_by(db.FileText.file_id)):
                groups.setdefault(text, []).append(int(fid))
        return {t: sorted(f) for t, f in groups.items() if len(f) > 1}

    def _shared_texts(self, conn, since: int | None) -> dict[str, list[int]]:
        """The shared texts now: all of them when nothing is known (``since`` None), else the known ones
        updated by the file texts stored after generation ``since`` (files deleted since stay listed until
        :meth:`sync` prunes them)."""
        if since is None or self._by_text is None:
            return self._group(conn, None)
        changed = conn.execute(
            select(db.FileText.file_id, db.FileText.text)
            .where(db.FileText.encoder == self.encoder_id, db.FileText.generation > since)
        ).all()
        moved = {int(f) for f, _ in changed}
        out = {t: [f for f in fids if f not in moved] for t, fids in self._by_text.items()}
        touched = {t for _, t in changed if t}
        out.update({t: [] for t in touched})  # regrouped below (an untouched text cannot gain a file)
        out.update(self._group(conn, touched))
        return {t: fids for t, fids in out.items() if len(fids) > 1}

    def sync(self) -> VectorIndex:
        """The in-memory index at the database's current names generation (loaded, caught up or rebuilt)."""
        with self._lock, self.engine.connect() as conn:
            gen = db.names_generation(conn)
            if self._index is not None and self._gen == gen:
                return self._index
            loaded = False
            if self._index is None:
                idx = VectorIndex.load(self.dim, self.path, expected_generation=gen, allow_stale=True,
                                       library_id=db.library_id(conn))  # never a cache of another database
                if idx is not None and idx.generation <= gen:
                    self._index, self._gen, loaded = idx, int(idx.generation), True
            by_text = self._shared_texts(conn, None if self._gen < 0 else self._gen)
            others = {f for fids in by_text.values() for f in fids[1:]}  # never in the graph
            rebuilt = bool(loaded and others and others.intersection(self._index.labels()))
            if rebuilt:
                self._index = None  # a cache that holds copies of one vector (written before): rebuilt
            if self._index is None:
                self._index = VectorIndex(self.dim, self.path)
                self._gen = -1
            left_out = np.fromiter(others, np.int64, len(others))
            for ids, vecs in db.iter_file_text_vectors(
                conn, self.encoder_id, self.dim, after_generation=None if self._gen < 0 else self._gen
            ):
                first = ~np.isin(ids, left_out) if others else slice(None)
                self._index.add(ids[first], vecs[first])
            live = conn.execute(
                select(func.count()).select_from(db.FileText)
                .where(db.FileText.encoder == self.encoder_id, db.FileText.text != "")
            ).scalar_one()
            # Files deleted, failed or left without words since; or a shared text that lost its first file
            # or gained one (another file of it stands for it now): bring the graph to the wanted set.
            if live - len(others) != self._index.count or by_text != self._by_text:
                keep = set(conn.execute(
                    select(db.FileText.file_id)
                    .where(db.FileText.encoder == self.encoder_id, db.FileText.text != "")
                ).scalars())
                by_text = {t: fids for t, fids in ((t, [f for f in fids if f in keep]) for t, fids in by_text.items())
                           if len(fids) > 1}  # files deleted since leave their text's list
                keep -= {f for fids in by_text.values() for f in fids[1:]}
                have = set(self._index.labels())
                self._index.delete(sorted(have - keep))
                missing = db.file_text_vectors(conn, sorted(keep - have), self.encoder_id, self.dim)
                if missing:
                    ids = np.array(sorted(missing), np.int64)
                    self._index.add(ids, np.stack([missing[int(i)][0] for i in ids]))
            self._by_text, self._shared = by_text, {fids[0]: fids for fids in by_text.values()}
            self._gen = gen
            self._save(force=rebuilt)
            return self._index

    def _save(self, force: bool = False) -> None:
        saved = VectorIndex.read_meta(self.path)
        if not force and saved and isinstance(saved.get("generation"), int) and saved["generation"] >= self._gen:
            return  # the usual case, a reader that loaded the saved file: no lock taken (nor filelock imported)
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.path) + ".lock", timeout=5):
                saved = VectorIndex.read_meta(self.path)
                if not force and saved and isinstance(saved.get("generation"), int) and saved["generation"] >= self._gen:
                    return
                with self.engine.connect() as conn:
                    library_id = db.library_id(conn)
                self._index.save(self._gen, library_id)
        except (Timeout, OSError, Exception) as exc:  # a cache that cannot be written is only slower
            log.warning("name index %s not saved: %s", self.path, exc)

    def search(self, qvec: np.ndarray, k: int) -> list[tuple[int, float]]:
        """``[(file_id, cosine)]`` best first, at most ``k``. Files deleted since are left for the caller
        to drop (their ids no longer resolve)."""
        index = self.sync()
        if index.count == 0:
            return []
        ids, scores = index.search(np.asarray(qvec, np.float32).reshape(1, -1), min(k, index.count))
        out = []
        for i, s in zip(ids[0], scores[0], strict=True):
            if i >= 0:
                out += [(f, float(s)) for f in self._shared.get(int(i), [int(i)])]
        return out[:k]
