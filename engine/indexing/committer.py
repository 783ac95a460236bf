"""Commit stage: the one writer of an indexing run. Owns every transaction and the vector-index update.

* :meth:`Committer.root_ids` and :meth:`Committer.known` read what the database knows (for the plan);
* :meth:`Committer.apply_plan` records scan errors, applies moves and deletes vanished files;
* :meth:`Committer.commit` stores a batch of finished files in one transaction — file rows, old windows out
  (tombstoned), new windows and vectors in, keyword rows — then updates the in-memory HNSW index. A kill at
  any moment loses at most the batch in flight. Vectors are checked before anything is written: a file
  whose vectors are not finite is recorded as failed, never stored.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select, update

from engine import keyword
from engine.indexing.batcher import FileResult
from engine.indexing.plan import Change, KnownFile, Plan
from engine.indexing.progress import IndexSummary
from engine.library import Library
from engine.reproject import feature_keys
from engine.storage import db, fts

_ROW_KEYS = ("duration_s", "sample_rate", "channels", "format", "subtype", "metadata_json")


class Committer:
    def __init__(self, lib: Library, summary: IndexSummary) -> None:
        self.lib = lib
        self.bundle = lib.bundle
        self.summary = summary
        self.feature_keys = feature_keys(lib.bundle)  # {backbone name: key} of the features kept per window

    # -- reads for the plan ----------------------------------------------------------------------

    def root_ids(self, roots: Sequence[Path]) -> dict[Path, int]:
        """The row id of each root, created when new."""
        out = {}
        with self.lib.engine.begin() as conn:
            for root in roots:
                posix = root.as_posix()
                rid = conn.execute(select(db.Root.id).where(db.Root.path == posix)).scalar()
                if rid is None:
                    rid = conn.execute(insert(db.Root).values(path=posix, added_at=time.time())).inserted_primary_key[0]
                out[root] = int(rid)
        return out

    def known(self, root_ids: Sequence[int]) -> dict[int, dict[str, KnownFile]]:
        """Per root id, its files as the database knows them (one query for the vectors, one per root)."""
        with self.lib.engine.connect() as conn:
            with_vectors = set(
                conn.execute(
                    select(db.Window.file_id)
                    .join(db.Vector, db.Vector.window_id == db.Window.id)
                    .where(db.Vector.bundle_id == self.bundle.bundle_id)
                    .distinct()
                ).scalars()
            )
            out: dict[int, dict[str, KnownFile]] = {}
            for rid in root_ids:
                rows = conn.execute(
                    select(db.File.id, db.File.rel_path, db.File.size, db.File.mtime_ns, db.File.status,
                           db.File.content_hash).where(db.File.root_id == rid)
                )
                out[rid] = {r.rel_path: KnownFile(r.id, r.rel_path, r.size, r.mtime_ns, r.status == "ok",
                                                  r.content_hash, r.id in with_vectors) for r in rows}
        return out

    # -- plan ------------------------------------------------------------------------------------

    def remember_scan_errors(self, root_id: int, errors: list[tuple[str, str]]) -> None:
        """Keep what the scan of a root could not read (``status --failed`` lists it); names that are not
        valid UTF-8 are stored with backslash escapes."""
        clean = [[os.fsencode(p).decode("utf-8", "backslashreplace"), r] for p, r in errors[:1000]]
        with self.lib.engine.begin() as conn:
            db.put_meta(conn, f"scan_errors:{root_id}", json.dumps(clean, ensure_ascii=False))

    def apply_plan(self, plan: Plan) -> None:
        """Moves keep their rows (windows and vectors) under the new path; vanished files are deleted."""
        if plan.moved:
            with self.lib.engine.begin() as conn:
                for mv in plan.moved:
                    conn.execute(update(db.File).where(db.File.id == mv.file_id).values(
                        root_id=mv.root_id, rel_path=mv.file.rel_path, mtime_ns=mv.file.mtime_ns))
                    meta = conn.execute(select(db.File.metadata_json).where(db.File.id == mv.file_id)).scalar()
                    keyword.put_document(conn, mv.file_id, keyword.document_for(
                        mv.file.rel_path, mv.file.root.as_posix(), json.loads(meta) if meta else None))
            self.summary.moved += len(plan.moved)
        if plan.vanished:
            with self.lib.engine.begin() as conn:
                db.delete_files(conn, plan.vanished, db.generation(conn) + 1)
                db.bump_generation(conn)
            self.lib.sync_index()  # drops the tombstoned windows from the in-memory index
            self.summary.deleted += len(plan.vanished)

    # -- results ---------------------------------------------------------------------------------

    def commit(self, results: Sequence[FileResult]) -> None:
        """One transaction: file rows, old windows out (tombstoned), new windows and vectors in."""
        if not results:
            return
        b = self.bundle
        for r in results:  # validate before anything is written: a bad vector never reaches the database
            if r.error is None and not np.isfinite(r.vectors).all():
                r.error = ("non_finite", f"{r.job.path}: the model gives vectors that are not finite for this "
                           "audio (extreme or NaN sample values?); it cannot be indexed")
        replaced = [r.job.file_id for r in results if r.job.file_id is not None]
        now = time.time()
        s = self.summary
        with self.lib.engine.begin() as conn:
            gen = db.generation(conn) + 1
            dead: list[int] = []
            if replaced:
                for chunk in db.chunks(replaced, 900):
                    dead.extend(conn.execute(select(db.Window.id).where(db.Window.file_id.in_(chunk))).scalars())
                db.delete_file_windows(conn, replaced, gen)
            fids = self._file_rows(conn, results, now)
            good = [(fid, r) for fid, r in zip(fids, results, strict=True) if r.error is None]
            failed = [(fid, r) for fid, r in zip(fids, results, strict=True) if r.error is not None]
            for start in range(0, len(failed), 900):
                keyword.delete_documents(conn, [fid for fid, _ in failed[start : start + 900]])
            for _, r in failed:
                assert r.error is not None
                s.failed += 1
                s.errors.append((str(r.job.path), r.error[0], r.error[1]))
            keyword.put_documents(conn, [(fid, keyword.document_for(r.job.file.rel_path, r.job.root.as_posix(), r.meta))
                                         for fid, r in good])
            # A window's reported end stops where the audio stops (short files are zero-padded).
            ids = db.insert_windows_many(conn, [
                (fid, r.starts, np.maximum(np.minimum(r.starts + b.window_s, r.audio_s), r.starts + 1e-3), r.vectors)
                for fid, r in good], b.bundle_id, gen,
                [{key: r.features[name] for name, key in self.feature_keys.items() if name in r.features}
                 for _, r in good])
            for (_, r), wids in zip(good, ids, strict=True):
                s.windows += len(wids)
                s.audio_s += r.audio_s
                if r.job.change is Change.NEW:
                    s.new += 1
                elif r.job.change is Change.CHANGED:
                    s.changed += 1
            db.bump_generation(conn)
        all_ids = np.concatenate(ids) if good else np.zeros(0, np.int64)
        # Store what the database holds (float16) so a rebuilt index is identical.
        vecs = (np.concatenate([r.vectors for _, r in good]).astype(db.VECTOR_DTYPE).astype(np.float32) if good
                else np.zeros((0, b.dim), np.float32))
        self.lib.apply_commit(gen, all_ids, vecs, dead)

    def _file_rows(self, conn, results: Sequence[FileResult], now: float) -> list[int]:
        """Insert (one statement for all new files) or update the ``files`` rows of results; a resumed
        file's complete row is left alone. Returns the row ids, in order."""
        values = [self._row_values(r, now) for r in results]
        # one executemany needs the same keys in every row: what a failed file lacks is NULL
        new = [{**dict.fromkeys(_ROW_KEYS), **v} for r, v in zip(results, values, strict=True) if r.job.file_id is None]
        new_ids = iter(conn.execute(insert(db.File).returning(db.File.id, sort_by_parameter_order=True), new).scalars().all()
                       if new else [])
        out = []
        for r, v in zip(results, values, strict=True):
            job = r.job
            if job.file_id is None:
                out.append(int(next(new_ids)))
                continue
            if job.change is not Change.RESUMED or r.error is not None:
                conn.execute(update(db.File).where(db.File.id == job.file_id).values(**v))
            out.append(job.file_id)
        return out

    @staticmethod
    def _row_values(r: FileResult, now: float) -> dict:
        job, sf = r.job, r.job.file
        values = {
            "root_id": job.root_id, "rel_path": sf.rel_path, "size": sf.size, "mtime_ns": sf.mtime_ns,
            "content_hash": job.fingerprint, "indexed_at": now,
        }
        if r.info is not None:
            values.update(duration_s=r.info.duration_s, sample_rate=r.info.sample_rate,
                          channels=r.info.channels, format=r.info.format, subtype=r.info.subtype)
        if r.meta is not None:
            values["metadata_json"] = db.metadata_dumps(r.meta.as_dict())
        if r.error is None:
            values.update(status="ok", error_reason=None, error_message=None)
        else:
            values.update(status="error", error_reason=r.error[0], error_message=r.error[1])
        return values

    def finish(self, roots: Sequence[Path], skipped: set[str]) -> None:
        """Stamp the roots indexed (but the ones skipped as unavailable), merge the keyword tables after a run
        that rewrote many files' rows (:func:`engine.storage.fts.optimize`) and save the HNSW index."""
        s = self.summary
        with self.lib.engine.begin() as conn:
            for r in roots:
                if str(r) not in skipped:
                    conn.execute(update(db.Root).where(db.Root.path == r.as_posix()).values(last_indexed_at=time.time()))
            if s.new + s.changed + s.moved + s.deleted >= fts.OPTIMIZE_AFTER:
                fts.optimize(conn)
        self.lib.save_index()
