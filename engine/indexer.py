"""Incremental indexing: scan → diff against the database → decode → embed → store (DESIGN §2).

* new / changed (size or mtime) / moved (same content fingerprint: windows and vectors kept) / deleted
  files are told apart; unchanged files cost one ``stat``.
* Decoding runs in a producer thread, overlapped with inference in the caller's thread.
* Finished files are committed in batches, one transaction each; a kill at any moment loses at most the
  batch in flight, and the next run redoes only that.
* Corrupt, truncated, empty, non-audio, unreadable and vanished files are recorded with a reason and skipped;
  so is a file whose audio or vectors are not finite (NaN/Inf samples): vectors are checked before they are
  committed, never after.
* Records are never deleted because a root *looks* empty or unreadable: a root that had files and now shows
  none, or would lose more than :data:`MASS_DELETE_SHARE` of them (and at least
  :data:`MASS_DELETE_MIN` files) in one run, is reported as unavailable and kept as it was, unless the
  caller passes ``allow_mass_delete``. Files under a folder that could not be listed are kept too.
* Folders and entries the scan could not read are remembered per root (``status --failed`` lists them).
* Progress goes through a callback and cancellation through a token: this module never prints.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select, update

from engine import keyword
from engine.audio import AUDIO_EXTENSIONS, AudioInfo, iter_windows, probe
from engine.errors import AudioError, LibraryError
from engine.library import Library
from engine.metadata import FileMetadata, read_metadata
from engine.reproject import feature_keys, reproject
from engine.storage import db
from engine.storage.scanner import ScannedFile, content_hash, scan, to_rel_posix

log = logging.getLogger(__name__)

MASS_DELETE_SHARE = 0.5
MASS_DELETE_MIN = 20


def _rel_prefix(root: Path, path: str) -> str | None:
    try:
        return to_rel_posix(root, Path(path))
    except ValueError:
        return None


def _remember_scan_errors(conn, root_id: int, root: Path, errors: list[tuple[str, str]]) -> None:
    """Keep what the scan of a root could not read (``status --failed`` lists it); names that are not valid
    UTF-8 are stored with backslash escapes."""
    clean = [[os.fsencode(p).decode("utf-8", "backslashreplace"), r] for p, r in errors[:1000]]
    db.put_meta(conn, f"scan_errors:{root_id}", json.dumps(clean, ensure_ascii=False))


class CancelToken:
    """Set from any thread (Ctrl-C handler, GUI button); the indexer stops at the next chunk."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class Progress:
    phase: str  # "scan" | "embed" | "names" | "done"
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    audio_s_done: float = 0.0
    current: str = ""


@dataclass
class IndexSummary:
    new: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    failed: int = 0
    unchanged: int = 0
    windows: int = 0
    audio_s: float = 0.0
    seconds: float = 0.0
    cancelled: bool = False
    missing_roots: list[str] = field(default_factory=list)
    # roots kept as they were because they look unmounted or emptied: {path, known, found, vanished, reason}
    unavailable_roots: list[dict] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason, message)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Job:
    kind: str  # "new" | "changed" | "resume"
    root_id: int
    root: Path
    file: ScannedFile
    file_id: int | None  # existing row (changed / resume)
    fingerprint: str | None = None

    @property
    def abspath(self) -> Path:
        return self.root / self.file.rel_path


@dataclass
class _Done:
    job: _Job
    info: AudioInfo | None
    meta: FileMetadata | None = None
    starts: list[np.ndarray] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    features: list[dict[str, np.ndarray]] = field(default_factory=list)  # per chunk: {backbone name: (n, F)}
    error: tuple[str, str] | None = None


_END = object()


class Indexer:
    """Index folders into a library. The library must not be opened by another writer."""

    def __init__(self, library: Library, *, batch_windows: int = 64, commit_windows: int = 1024,
                 commit_seconds: float = 10.0, save_seconds: float = 120.0) -> None:
        self.lib = library
        self.bundle = library.bundle
        self.feature_keys = feature_keys(self.bundle)
        self.batch_windows = batch_windows
        self.commit_windows = commit_windows
        self.commit_seconds = commit_seconds
        self.save_seconds = save_seconds

    # -- planning -------------------------------------------------------------------------------

    def _root_row(self, conn, root: Path) -> int:
        posix = root.as_posix()
        rid = conn.execute(select(db.Root.id).where(db.Root.path == posix)).scalar()
        if rid is None:
            rid = conn.execute(insert(db.Root).values(path=posix, added_at=time.time())).inserted_primary_key[0]
        return int(rid)

    def _plan(self, roots: Sequence[Path], summary: IndexSummary, cancel: CancelToken,
              on_progress: Callable[[Progress], None], allow_mass_delete: bool = False,
              ) -> tuple[list[_Job], list[int]]:
        jobs: list[_Job] = []
        vanished: dict[int, tuple[str | None, int]] = {}  # file_id -> (fingerprint, size)
        with self.lib.engine.begin() as conn:
            with_vectors = set(
                conn.execute(
                    select(db.Window.file_id)
                    .join(db.Vector, db.Vector.window_id == db.Window.id)
                    .where(db.Vector.bundle_id == self.bundle.bundle_id)
                    .distinct()
                ).scalars()
            )
            for root in roots:
                if not root.is_dir():
                    summary.missing_roots.append(str(root))
                    continue
                rid = self._root_row(conn, root)
                rows = {
                    r.rel_path: r
                    for r in conn.execute(
                        select(db.File.id, db.File.rel_path, db.File.size, db.File.mtime_ns, db.File.status,
                               db.File.content_hash).where(db.File.root_id == rid)
                    )
                }
                seen: set[str] = set()
                scan_errors: list[tuple[str, str]] = []

                def on_error(path: str, reason: str, _errs=scan_errors) -> None:
                    _errs.append((path, reason))

                root_jobs: list[_Job] = []
                unchanged = 0
                try:  # the scan raises before its first file when the root itself cannot be read
                    for sf in scan(root, AUDIO_EXTENSIONS, cancel=lambda: cancel.cancelled, on_error=on_error):
                        seen.add(sf.rel_path)
                        row = rows.get(sf.rel_path)
                        if row is None:
                            root_jobs.append(_Job("new", rid, root, sf, None))
                        elif row.size != sf.size or row.mtime_ns != sf.mtime_ns:
                            root_jobs.append(_Job("changed", rid, root, sf, row.id))
                        elif row.status == "ok" and row.id not in with_vectors:
                            root_jobs.append(_Job("resume", rid, root, sf, row.id))
                        else:
                            unchanged += 1
                        if len(seen) % 500 == 0:
                            on_progress(Progress("scan", files_done=len(seen), current=sf.rel_path))
                except LibraryError as exc:  # root unreadable: keep everything under it
                    summary.unavailable_roots.append({"path": str(root), "known": len(rows), "found": 0,
                                                      "vanished": 0, "reason": str(exc)})
                    continue
                jobs.extend(root_jobs)
                summary.unchanged += unchanged
                for path, reason in scan_errors:
                    summary.errors.append((path, "unreadable", reason))
                _remember_scan_errors(conn, rid, root, scan_errors)
                if cancel.cancelled:
                    return [], []
                # Files under a folder the scan could not list are not gone: keep them.
                blocked = [_rel_prefix(root, p) for p, _ in scan_errors]
                blocked = [b for b in blocked if b is not None]
                gone = {rel: row for rel, row in rows.items()
                        if rel not in seen and not any(rel == b or rel.startswith(b + "/") for b in blocked)}
                if gone and not allow_mass_delete and (
                    not seen or (len(gone) > MASS_DELETE_SHARE * len(rows) and len(gone) >= MASS_DELETE_MIN)
                ):
                    reason = ("it had files and now shows none" if not seen else
                              f"{len(gone)} of its {len(rows)} files would be removed at once")
                    log.warning("root %s looks unavailable (%s); kept as it was", root, reason)
                    summary.unavailable_roots.append({"path": str(root), "known": len(rows), "found": len(seen),
                                                      "vanished": len(gone), "reason": reason})
                    gone = {}
                for row in gone.values():
                    vanished[row.id] = (row.content_hash, row.size)
        # Moves: a new file whose fingerprint matches a vanished one keeps its windows and vectors.
        by_print: dict[tuple[str, int], list[int]] = {}
        for fid, (fp, size) in vanished.items():
            if fp:
                by_print.setdefault((fp, size), []).append(fid)
        remaining: list[_Job] = []
        moved: list[tuple[_Job, int]] = []
        vanished_sizes = {size for _, size in vanished.values()}
        for job in jobs:
            # Fingerprint now only what could be a move (same size as a vanished file); the rest is
            # fingerprinted by the decoding thread, so planning a big new folder reads no audio.
            if job.kind == "new" and job.file.size in vanished_sizes:
                try:
                    job.fingerprint = content_hash(job.abspath)
                except OSError:
                    job.fingerprint = None
            if job.kind == "new" and job.fingerprint and by_print.get((job.fingerprint, job.file.size)):
                old = by_print[(job.fingerprint, job.file.size)].pop()
                vanished.pop(old)
                moved.append((job, old))
            else:
                remaining.append(job)
        if moved:
            with self.lib.engine.begin() as conn:
                for job, old in moved:
                    conn.execute(
                        update(db.File).where(db.File.id == old).values(
                            root_id=job.root_id, rel_path=job.file.rel_path, mtime_ns=job.file.mtime_ns
                        )
                    )
                    meta = conn.execute(select(db.File.metadata_json).where(db.File.id == old)).scalar()
                    keyword.put_document(conn, old, keyword.document_for(
                        job.file.rel_path, job.root.as_posix(), json.loads(meta) if meta else None))
            summary.moved = len(moved)
        return remaining, list(vanished)

    # -- decoding (producer thread) -------------------------------------------------------------

    def _produce(self, jobs: list[_Job], out: queue.Queue, stop: threading.Event) -> None:
        b = self.bundle
        try:
            for job in jobs:
                if stop.is_set():
                    return
                try:
                    if job.fingerprint is None and job.kind != "resume":
                        job.fingerprint = content_hash(job.abspath)
                    info = probe(job.abspath)
                    out.put(("start", job, (info, read_metadata(job.abspath))))
                    for starts, windows in iter_windows(job.abspath, b.sample_rate, b.window_s, b.hop_s,
                                                        batch=self.batch_windows):
                        if stop.is_set():
                            return
                        if not np.isfinite(windows).all():
                            raise AudioError(f"{job.abspath} contains NaN or infinite samples; it cannot be "
                                             "indexed (re-export it from your editor)", reason="non_finite")
                        out.put(("chunk", job, (starts, windows)))
                    out.put(("end", job, None))
                except AudioError as exc:
                    out.put(("error", job, (exc.reason, str(exc))))
                except FileNotFoundError as exc:
                    out.put(("error", job, ("missing", f"{job.abspath} vanished during indexing: {exc}")))
                except PermissionError as exc:
                    out.put(("error", job, ("unreadable", f"cannot read {job.abspath}: {exc}")))
                except Exception as exc:  # a decoder bug must not kill the run: record and go on
                    log.exception("unexpected error decoding %s", job.abspath)
                    out.put(("error", job, ("decode_error", f"{type(exc).__name__}: {exc}")))
        finally:
            out.put(_END)

    # -- run ------------------------------------------------------------------------------------

    def run(self, roots: Sequence[str | Path] | None = None, *,
            on_progress: Callable[[Progress], None] | None = None,
            cancel: CancelToken | None = None, retry_failed: bool = False,
            allow_mass_delete: bool = False) -> IndexSummary:
        """Index ``roots`` (default: every root already in the library). Returns the summary.

        ``allow_mass_delete``: the user confirmed that a root which now looks empty (or lost most of its
        files) really was emptied; without it such a root is reported in ``unavailable_roots`` and kept."""
        t0 = time.perf_counter()
        cancel = cancel or CancelToken()
        on_progress = on_progress or (lambda p: None)
        summary = IndexSummary()
        if not self.lib.is_writer:
            self.lib.acquire_writer()
        if roots is None:  # every known folder; one that is missing (unmounted drive) is reported, not emptied
            with self.lib.engine.connect() as conn:
                root_paths = [Path(p) for p in conn.execute(select(db.Root.path)).scalars()]
        else:
            root_paths = [Path(r).expanduser().resolve() for r in roots]
            for r in root_paths:
                if not r.is_dir():
                    raise LibraryError(f"folder not found: {r}")
        if retry_failed:
            with self.lib.engine.begin() as conn:
                conn.execute(update(db.File).where(db.File.status == "error").values(size=-1))

        reproject(self.lib, cancel=lambda: cancel.cancelled)  # another model over stored features: no decoding
        self.lib.sync_index()
        jobs, vanished = self._plan(root_paths, summary, cancel, on_progress, allow_mass_delete)
        if vanished:
            with self.lib.engine.begin() as conn:
                db.delete_files(conn, vanished, db.generation(conn) + 1)
                db.bump_generation(conn)
            self.lib.sync_index()  # drops the tombstoned windows from the in-memory index
            summary.deleted = len(vanished)
        if not cancel.cancelled:
            self._embed_all(jobs, summary, cancel, on_progress)
        if not cancel.cancelled:  # the files' own words, for semantic metadata search
            self.lib.sync_file_texts(
                on_progress=lambda done, total: on_progress(Progress("names", files_done=done, files_total=total)),
                cancelled=lambda: cancel.cancelled)
        with self.lib.engine.begin() as conn:
            skipped = {u["path"] for u in summary.unavailable_roots} | set(summary.missing_roots)
            for r in root_paths:
                if str(r) in skipped:
                    continue
                conn.execute(update(db.Root).where(db.Root.path == r.as_posix()).values(last_indexed_at=time.time()))
        self.lib.save_index()
        summary.cancelled = cancel.cancelled
        summary.seconds = time.perf_counter() - t0
        on_progress(Progress("done", files_done=len(jobs), files_total=len(jobs)))
        return summary

    def _embed_all(self, jobs: list[_Job], summary: IndexSummary, cancel: CancelToken,
                   on_progress: Callable[[Progress], None]) -> None:
        if not jobs:
            return
        encoder = self.lib.encoder
        q: queue.Queue = queue.Queue(maxsize=16)
        stop = threading.Event()
        producer = threading.Thread(target=self._produce, args=(jobs, q, stop), name="earshot-decode", daemon=True)
        producer.start()
        progress = Progress("embed", files_total=len(jobs), bytes_total=sum(j.file.size for j in jobs))
        on_progress(progress)
        active: dict[int, _Done] = {}
        pending: list[tuple[_Done, np.ndarray, np.ndarray]] = []  # (file, starts, windows) not yet embedded
        ready: list[_Done] = []
        ended: list[_Done] = []
        last_commit = last_save = time.monotonic()

        def flush_embed() -> None:
            if not pending:
                return
            batch = np.concatenate([w for _, _, w in pending])
            vecs, feats = encoder.embed_audio_features(batch)
            i = 0
            for done, starts, w in pending:
                done.starts.append(starts)
                done.vectors.append(vecs[i : i + len(w)])
                done.features.append({k: f[i : i + len(w)] for k, f in feats.items()})
                i += len(w)
            pending.clear()
            ready.extend(ended)
            ended.clear()

        def commit() -> None:
            nonlocal last_commit
            if ready:
                self._commit(ready, summary)
                for d in ready:
                    progress.files_done += 1
                    progress.bytes_done += d.job.file.size
                    if d.info is not None and d.error is None:
                        progress.audio_s_done += d.info.duration_s
                ready.clear()
                on_progress(progress)
            last_commit = time.monotonic()

        try:
            while True:
                if cancel.cancelled:
                    break
                item = q.get()
                if item is _END:
                    break
                kind, job, payload = item
                key = id(job)
                if kind == "start":
                    active[key] = _Done(job, *payload)
                    progress.current = job.file.rel_path
                elif kind == "chunk":
                    starts, windows = payload
                    pending.append((active[key], starts, windows))
                    if sum(len(w) for _, _, w in pending) >= self.batch_windows:
                        flush_embed()
                elif kind == "end":
                    ended.append(active.pop(key))
                    if not pending:
                        ready.extend(ended)
                        ended.clear()
                elif kind == "error":
                    done = active.pop(key, None) or _Done(job, None)
                    pending[:] = [p for p in pending if p[0] is not done]
                    done.error = payload
                    ready.append(done)
                n_ready = sum(sum(len(s) for s in d.starts) for d in ready)
                if n_ready >= self.commit_windows or (ready and time.monotonic() - last_commit > self.commit_seconds):
                    flush_embed()
                    commit()
                if time.monotonic() - last_save > self.save_seconds:
                    self.lib.save_index()
                    self.lib.sync_file_texts(only_missing=True)  # names become searchable as indexing goes
                    last_save = time.monotonic()
            if not cancel.cancelled:
                flush_embed()
            commit()
        finally:
            stop.set()
            while producer.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    producer.join(timeout=0.05)

    def _commit(self, done: list[_Done], summary: IndexSummary) -> None:
        """One transaction: file rows, old windows out (tombstoned), new windows and vectors in."""
        b = self.bundle
        for d in done:  # validate before anything is written: a bad vector never reaches the database
            if d.error is None and any(not np.isfinite(v).all() for v in d.vectors):
                d.error = ("non_finite", f"{d.job.abspath}: the model gives vectors that are not finite for this "
                           "audio (extreme or NaN sample values?); it cannot be indexed")
        added_ids: list[np.ndarray] = []
        added_vecs: list[np.ndarray] = []
        replaced: list[int] = [d.job.file_id for d in done if d.job.file_id is not None]
        now = time.time()
        with self.lib.engine.begin() as conn:
            gen = db.generation(conn) + 1
            dead = conn.execute(select(db.Window.id).where(db.Window.file_id.in_(replaced))).scalars().all() if replaced else []
            if replaced:
                db.delete_file_windows(conn, replaced, gen)
            for d in done:
                job, sf = d.job, d.job.file
                values = {
                    "root_id": job.root_id, "rel_path": sf.rel_path, "size": sf.size, "mtime_ns": sf.mtime_ns,
                    "content_hash": job.fingerprint, "indexed_at": now,
                }
                if d.info is not None:
                    values.update(duration_s=d.info.duration_s, sample_rate=d.info.sample_rate,
                                  channels=d.info.channels, format=d.info.format, subtype=d.info.subtype)
                if d.meta is not None:
                    values["metadata_json"] = db.metadata_dumps(d.meta.as_dict())
                if d.error is None:
                    values.update(status="ok", error_reason=None, error_message=None)
                else:
                    values.update(status="error", error_reason=d.error[0], error_message=d.error[1])
                if job.file_id is None:
                    fid = conn.execute(insert(db.File).values(**values)).inserted_primary_key[0]
                else:
                    fid = job.file_id
                    if job.kind != "resume" or d.error is not None:
                        conn.execute(update(db.File).where(db.File.id == fid).values(**values))
                if d.error is None:
                    keyword.put_document(conn, fid, keyword.document_for(sf.rel_path, job.root.as_posix(), d.meta))
                else:
                    keyword.delete_document(conn, fid)
                    summary.failed += 1
                    summary.errors.append((str(job.abspath), d.error[0], d.error[1]))
                    continue
                starts = np.concatenate(d.starts) if d.starts else np.zeros(0)
                vecs = np.concatenate(d.vectors) if d.vectors else np.zeros((0, b.dim), np.float32)
                # A window's reported end stops where the audio stops (short files are zero-padded).
                ends = np.maximum(np.minimum(starts + b.window_s, d.info.duration_s), starts + 1e-3)
                feats = {key: np.concatenate([f[name] for f in d.features]) for name, key in self.feature_keys.items()
                         if d.features}  # kept so another bundle over these backbones re-projects (engine.reproject)
                ids = db.insert_windows(conn, fid, starts, ends, vecs, b.bundle_id, gen, feats)
                added_ids.append(ids)
                # Store what the database holds (float16) so a rebuilt index is identical.
                added_vecs.append(vecs.astype(db.VECTOR_DTYPE).astype(np.float32))
                summary.windows += len(ids)
                summary.audio_s += d.info.duration_s
                if job.kind == "new":
                    summary.new += 1
                elif job.kind == "changed":
                    summary.changed += 1
            db.bump_generation(conn)
        ids = np.concatenate(added_ids) if added_ids else np.zeros(0, np.int64)
        vecs = np.concatenate(added_vecs) if added_vecs else np.zeros((0, b.dim), np.float32)
        self.lib.apply_commit(gen, ids, vecs, dead)
