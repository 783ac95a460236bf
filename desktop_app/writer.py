"""The one writer: every change to the library (indexing, removing a folder) goes through here, one job
at a time, on a dedicated worker thread, while searches keep running on the readers' pool.

Progress is reported through Qt signals (queued to the GUI thread), at most ten times a second, with an
ETA from the bytes decoded so far. :meth:`LibraryWriter.cancel` stops the running job at the indexer's
next chunk (what was committed stays) and drops the queued ones.

A folder that looks unmounted or emptied (it had files and now shows none, or would lose most of them at
once) is kept as it was by the engine; the writer then emits :attr:`LibraryWriter.roots_unavailable` and
:func:`ask_about_unavailable_roots` shows a non-modal dialog: *Keep* (the default: nothing is removed,
reconnect the drive and re-index) or *Remove their records*, which re-indexes those folders with
``allow_mass_delete``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop_app.formatting import eta_seconds
from desktop_app.tasks import TaskRunner, freeze_heap
from engine.errors import LibraryLockedError
from engine.indexing import CancelToken, Indexer, IndexSummary, Progress

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.1
# A search that rebuilds the vector index saves it under the library's write lock, for a moment; the
# writer waits this long for the lock before reporting another process as the writer.
LOCK_WAIT_S = 3.0


def acquire_writer(lib, token: CancelToken | None = None, wait_s: float = LOCK_WAIT_S) -> None:
    """``lib.acquire_writer()``, retried for up to ``wait_s`` seconds while the lock is busy (raises
    :class:`~engine.errors.LibraryLockedError` after that, or at once when ``token`` is cancelled)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            lib.acquire_writer()
            return
        except LibraryLockedError:
            if time.monotonic() >= deadline or (token is not None and token.cancelled):
                raise
            time.sleep(0.05)


@dataclass(frozen=True)
class IndexProgress:
    """What the progress bar shows. ``eta_s`` is None until there is enough to estimate from."""

    phase: str  # "scan" | "embed" | "done"
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    current: str
    elapsed_s: float
    eta_s: float | None

    @property
    def fraction(self) -> float | None:
        """Done fraction by bytes (files as a fallback), None while scanning."""
        if self.phase == "scan":
            return None
        if self.bytes_total > 0:
            return min(1.0, self.bytes_done / self.bytes_total)
        return min(1.0, self.files_done / self.files_total) if self.files_total else None


def _cpu_threads_for_indexing() -> int:
    """Leave one core to the GUI and the searches."""
    return max(1, (os.cpu_count() or 2) - 1)


def _lower_thread_priority(niceness: int = 10) -> None:
    """Make the calling thread (and the decoder thread it starts) yield the CPU to the GUI (Linux: nice
    is per thread and inherited by threads it creates; elsewhere this does nothing)."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        except OSError as exc:
            log.debug("cannot lower the writer thread's priority: %s", exc)


class LibraryWriter(QObject):
    """Queues write jobs on ``runner`` (a one-thread runner, or a synchronous one in tests)."""

    started = Signal(str)  # "index" | "remove" | "learn" | "undo" | "reproject"
    progress = Signal(object)  # IndexProgress
    # kind, IndexSummary (index), number of files removed (remove), the learn report (learn), undo's dict
    # (undo), ReprojectSummary (reproject)
    finished = Signal(str, object)
    failed = Signal(str, str)  # kind, message
    busy_changed = Signal(bool)
    roots_unavailable = Signal(list)  # [{path, known, found, vanished, reason}] kept as they were

    def __init__(
        self,
        runner: TaskRunner,
        parent: QObject | None = None,
        *,
        commit_windows: int = 256,
        commit_seconds: float = 2.0,
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.lib = None
        self.commit_windows = commit_windows
        self.commit_seconds = commit_seconds
        self._jobs = 0
        self._cancel = CancelToken()
        self._threads_set = False
        self._lock = threading.Lock()

    def set_library(self, lib) -> None:
        self.lib = lib

    @property
    def busy(self) -> bool:
        return self._jobs > 0

    # -- jobs -----------------------------------------------------------------------------------

    def index(self, roots: list[str] | None = None, *, retry_failed: bool = False,
              allow_mass_delete: bool = False) -> None:
        """Add folders / bring them up to date (``None``: every folder of the library).
        ``allow_mass_delete``: the user confirmed that folders reported unavailable really were emptied."""
        self._submit("index", lambda lib, token: self._run_index(lib, token, roots, retry_failed, allow_mass_delete))

    def confirm_removal(self, roots: list[str]) -> None:
        """The user confirmed: forget the files of these (unavailable-looking) folders that are gone."""
        self.index(list(roots), allow_mass_delete=True)

    def remove_folder(self, folder: str) -> None:
        """Forget a folder and everything indexed under it (its files are untouched)."""
        from engine.status import remove_root

        def job(lib, token):
            try:
                acquire_writer(lib)
                return remove_root(lib, Path(folder))
            finally:
                lib.release_writer()

        self._submit("remove", job)

    def learn(self) -> None:
        """Teach the model the library's own words (``earshot learn``, through the ``earshot.plugins`` entry
        point); ``finished("learn", report)`` carries the before/after numbers. Cancel leaves the model."""
        from engine import plugins

        def job(lib, token):
            learn = plugins.load("learn")
            steps = _StepProgress(self, "learn")
            return learn(lib, None, on_progress=steps, cancel=lambda: token.cancelled)

        self._submit("learn", job)

    def undo_learn(self) -> None:
        """Go back to the model a learned one came from (seconds: its vectors are still stored)."""
        from engine.reproject import undo_learned

        def job(lib, token):
            acquire_writer(lib, token)
            try:
                return undo_learned(lib)
            finally:
                lib.release_writer()

        self._submit("undo", job)

    def reproject(self) -> None:
        """Give the library's model the vectors it lacks from the stored backbone features (a model switch)."""
        from engine.reproject import reproject

        def job(lib, token):
            steps = _StepProgress(self, "reproject")
            acquire_writer(lib, token)
            try:
                return reproject(lib, cancel=lambda: token.cancelled,
                                 on_progress=lambda done, total: steps("reproject", done, total))
            finally:
                lib.release_writer()

        self._submit("reproject", job)

    def cancel(self) -> None:
        """Stop the running job after its current chunk and drop the queued ones."""
        with self._lock:
            self._cancel.cancel()

    # -- internals ------------------------------------------------------------------------------

    def _submit(self, kind: str, job) -> None:
        lib = self.lib
        if lib is None:
            self.failed.emit(kind, "no library is open")
            return
        with self._lock:
            if self._cancel.cancelled:  # jobs queued before cancel() keep the cancelled token
                self._cancel = CancelToken()
            token = self._cancel
        self._jobs += 1
        if self._jobs == 1:
            self.busy_changed.emit(True)

        def run():
            if token.cancelled:
                return None
            if not self.runner.synchronous:
                _lower_thread_priority()
            self.started.emit(kind)
            return job(lib, token)

        self.runner.submit(
            run, lambda result: self._done(kind, result, token), lambda exc: self._error(kind, exc)
        )

    def _run_index(
        self, lib, token: CancelToken, roots: list[str] | None, retry_failed: bool, allow_mass_delete: bool = False
    ) -> IndexSummary:
        if not self._threads_set:
            from engine.models.device import set_cpu_threads

            set_cpu_threads(_cpu_threads_for_indexing())
            self._threads_set = True
        t0 = time.perf_counter()
        last = {"t": 0.0, "phase": "", "frozen": False}

        def on_progress(p: Progress) -> None:
            if p.phase == "embed" and not last["frozen"]:
                freeze_heap()  # the audio model is loaded by now
                last["frozen"] = True
            now = time.perf_counter()
            if p.phase == last["phase"] and p.phase != "done" and now - last["t"] < PROGRESS_INTERVAL_S:
                return
            last["t"], last["phase"] = now, p.phase
            elapsed = now - t0
            self.progress.emit(
                IndexProgress(
                    phase=p.phase,
                    files_done=p.files_done,
                    files_total=p.files_total,
                    bytes_done=p.bytes_done,
                    bytes_total=p.bytes_total,
                    current=p.current,
                    elapsed_s=elapsed,
                    eta_s=eta_seconds(p.bytes_done, p.bytes_total, elapsed) if p.phase == "embed" else None,
                )
            )

        indexer = Indexer(lib, commit_windows=self.commit_windows, commit_seconds=self.commit_seconds)
        try:
            acquire_writer(lib, token)
            return indexer.run(roots, on_progress=on_progress, cancel=token, retry_failed=retry_failed,
                               allow_mass_delete=allow_mass_delete)
        finally:
            lib.release_writer()

    def _done(self, kind: str, result, token: CancelToken) -> None:
        self._finish_one()
        if result is None and token.cancelled:
            result = IndexSummary(cancelled=True) if kind == "index" else 0
        self.finished.emit(kind, result)
        if kind == "index" and getattr(result, "unavailable_roots", None):
            self.roots_unavailable.emit(list(result.unavailable_roots))

    def _error(self, kind: str, exc: BaseException) -> None:
        self._finish_one()
        self.failed.emit(kind, str(exc))

    def _finish_one(self) -> None:
        self._jobs -= 1
        if self._jobs == 0:
            self.busy_changed.emit(False)


class _StepProgress:
    """``(phase, done, total)`` callbacks of learning and re-projection as :class:`IndexProgress` (``phase``
    ``"learn:<step>"`` or ``"reproject"``), at most ten a second."""

    def __init__(self, writer: LibraryWriter, kind: str) -> None:
        self.writer, self.kind = writer, kind
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last < PROGRESS_INTERVAL_S and done < total:
            return
        self.last = now
        elapsed = now - self.t0
        label = phase if self.kind == phase else f"{self.kind}:{phase}"
        self.writer.progress.emit(IndexProgress(label, done, total, 0, 0, "", elapsed,
                                                eta_seconds(done, total, elapsed)))


def unavailable_text(roots: list[dict]) -> str:
    """What the app says about folders kept because they look unmounted or emptied."""
    lines = [f"• {r['path']} — {r['reason']}" for r in roots]
    return (
        ("This folder looks" if len(roots) == 1 else "These folders look")
        + " unavailable (an unplugged drive?), so nothing in the library was removed:\n"
        + "\n".join(lines)
        + "\n\nReconnect the drive and re-index, or remove the records of the files that are gone."
    )


def ask_about_unavailable_roots(parent, writer: LibraryWriter, roots: list[dict]):
    """A non-modal dialog: *Keep* (default) or *Remove their records* (re-index with mass delete allowed).
    Returns the dialog (tests press its buttons)."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Folder unavailable")
    box.setText(unavailable_text(roots))
    keep = box.addButton("Keep", QMessageBox.ButtonRole.RejectRole)
    remove = box.addButton("Remove their records", QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(keep)
    paths = [r["path"] for r in roots]

    def done(_result=None) -> None:
        if box.clickedButton() is remove:
            writer.confirm_removal(paths)

    box.finished.connect(done)
    box.open()
    return box
