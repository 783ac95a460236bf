"""The indexing run: plan → apply the plan → decode + embed (an executor) → commit → file texts.

The stages live in their own modules (:mod:`~engine.indexing.plan`, :mod:`~engine.indexing.decode`,
:mod:`~engine.indexing.batcher`, :mod:`~engine.indexing.committer`); an executor runs decode + embed, on
this machine (:class:`~engine.indexing.local.LocalExecutor`) or on a Ray cluster
(:class:`~engine.indexing.cluster.RayExecutor`), and this module drives them the same way either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from sqlalchemy import select, update

from engine.errors import LibraryError
from engine.indexing.batcher import FileResult
from engine.indexing.committer import Committer
from engine.indexing.decode import fingerprint_or_none
from engine.indexing.local import LocalExecutor
from engine.indexing.plan import Job, Plan, RootListing, plan, scan_root
from engine.indexing.progress import CancelToken, IndexSummary, Progress
from engine.library import Library
from engine.reproject import reproject
from engine.storage import db

log = logging.getLogger(__name__)


class Executor(Protocol):
    def results(self, jobs: Sequence[Job], cancel: CancelToken) -> Iterator[FileResult]:
        """Decode and embed ``jobs``; yield each finished (or failed) file."""
        ...


class Indexer:
    """Index folders into a library. The library must not be opened by another writer.

    ``executor``: who decodes and embeds (default: this machine, :class:`LocalExecutor`)."""

    def __init__(self, library: Library, *, batch_windows: int = 64, commit_windows: int = 1024,
                 commit_seconds: float = 10.0, save_seconds: float = 120.0,
                 executor: Executor | None = None) -> None:
        self.lib = library
        self.bundle = library.bundle
        self.batch_windows = batch_windows
        self.commit_windows = commit_windows
        self.commit_seconds = commit_seconds
        self.save_seconds = save_seconds
        self.executor = executor

    def _executor(self) -> Executor:
        if self.executor is None:
            self.executor = LocalExecutor(self.bundle, self.lib.encoder.embed_audio_features, batch_windows=self.batch_windows)
        return self.executor

    def plan(self, roots: Sequence[Path], committer: Committer, summary: IndexSummary, cancel: CancelToken,
             on_progress: Callable[[Progress], None], allow_mass_delete: bool = False) -> Plan | None:
        """Scan the roots and plan the run (``None`` when cancelled while scanning)."""
        present = []
        for root in roots:
            if root.is_dir():
                present.append(root)
            else:
                summary.missing_roots.append(str(root))
        ids = committer.root_ids(present)
        known = committer.known(list(ids.values()))
        listings: list[RootListing] = []
        for root in present:
            listing = scan_root(root, ids[root], known[ids[root]], cancelled=lambda: cancel.cancelled,
                                on_file=lambda n, rel: on_progress(Progress("scan", files_done=n, current=rel)))
            if listing.found is not None:
                committer.remember_scan_errors(ids[root], listing.scan_errors)
            listings.append(listing)
            if cancel.cancelled:
                return None
        p = plan(listings, fingerprint=fingerprint_or_none, allow_mass_delete=allow_mass_delete)
        summary.unchanged += p.unchanged
        summary.unavailable_roots.extend(p.unavailable_roots)
        summary.errors.extend(p.scan_errors)
        return p

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
        committer = Committer(self.lib, summary)
        p = self.plan(root_paths, committer, summary, cancel, on_progress, allow_mass_delete)
        jobs = p.jobs if p is not None else []
        if p is not None:
            committer.apply_plan(p)
        if not cancel.cancelled:
            self._embed_all(jobs, committer, cancel, on_progress)
        if not cancel.cancelled:  # the files' own words, for semantic metadata search
            self.lib.sync_file_texts(
                on_progress=lambda done, total: on_progress(Progress("names", files_done=done, files_total=total)),
                cancelled=lambda: cancel.cancelled)
        committer.finish(root_paths, {u["path"] for u in summary.unavailable_roots} | set(summary.missing_roots))
        summary.cancelled = cancel.cancelled
        summary.seconds = time.perf_counter() - t0
        on_progress(Progress("done", files_done=len(jobs), files_total=len(jobs)))
        return summary

    def _embed_all(self, jobs: list[Job], committer: Committer, cancel: CancelToken,
                   on_progress: Callable[[Progress], None]) -> None:
        if not jobs:
            return
        progress = Progress("embed", files_total=len(jobs), bytes_total=sum(j.file.size for j in jobs))
        on_progress(progress)
        ready: list[FileResult] = []
        last_commit = last_save = time.monotonic()

        def commit() -> None:
            nonlocal last_commit
            if ready:
                committer.commit(ready)
                for r in ready:
                    progress.files_done += 1
                    progress.bytes_done += r.job.file.size
                    progress.audio_s_done += r.audio_s
                progress.current = ready[-1].job.file.rel_path
                ready.clear()
                on_progress(progress)
            last_commit = time.monotonic()

        results = self._executor().results(jobs, cancel)
        try:
            for r in results:
                ready.append(r)
                if (sum(x.windows for x in ready) >= self.commit_windows
                        or time.monotonic() - last_commit > self.commit_seconds):
                    commit()
                if time.monotonic() - last_save > self.save_seconds:
                    self.lib.save_index()
                    self.lib.sync_file_texts(only_missing=True)  # names become searchable as indexing goes
                    last_save = time.monotonic()
                if cancel.cancelled:
                    break
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()
        commit()
