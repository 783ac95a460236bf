"""The open library and everything the app asks the engine: open, search, find similar, status.

Every engine call runs on the :class:`~desktop_app.tasks.TaskRunner`; results come back as Qt signals on
the GUI thread. Writes are handed to the :class:`~desktop_app.writer.LibraryWriter`. Engine errors
(:class:`engine.errors.EarshotError`) arrive as messages, never as crashes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from desktop_app import relevance as rel
from desktop_app.history import Query
from desktop_app.tasks import TaskRunner, freeze_heap
from desktop_app.view_filters import ViewFilters
from desktop_app.writer import LibraryWriter
from engine.browse import FileFacts
from engine.search import Hit

log = logging.getLogger(__name__)

RESULTS_K = 100
BIT_FILTER_K = 400  # hits fetched when the bit-depth filter (applied here) may drop many
BROWSE_LIMIT = 2000  # files listed at once with an empty search box (added to the view in chunks)
STATUS_REFRESH_MS = 2000
MODE_LABELS = {"both": "sound + keywords", "content": "sound", "keywords": "keywords"}
SORT_LABELS = {"name": "name", "folder": "folder", "duration": "length", "rate": "rate", "added": "date added"}


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


@dataclass
class SearchResult:
    query: Query
    filters: ViewFilters
    hits: list[Hit]
    seconds: float
    mode: str = "both"  # how a text query was matched (engine.search.Searcher.search)
    reference: Hit | None = None  # "find similar": the query's own file, pinned on top
    facts: dict[int, FileFacts] = field(default_factory=dict)  # bit depth, fingerprint, date added
    total: int | None = None  # browse: files that pass the filters (``hits`` may be the first of them)

    @property
    def counts(self) -> rel.Counts:
        return rel.count(self.hits)

    def summary(self) -> str:
        """The line above the results: ``'12 good matches for “door” · 3 weaker · sound + keywords · 8 ms'``;
        the count is the number of good matches."""
        q, n = self.query, len(self.hits)
        if q.kind == "browse":
            return self._browse_summary()
        if not q.text and q.kind == "text":
            return ""
        if n == 0:
            return f"No sounds match “{q.label}”" + ("" if self.filters.is_empty() else " with these filters")
        c = self.counts
        if not c.graded:
            text = f"{_plural(n, 'result')} for “{q.label}”"
        elif c.good == 0:
            text = f"No good matches for “{q.label}” · {_plural(c.weak, 'weaker match', 'weaker matches')} below"
        else:
            text = f"{_plural(c.good, 'good match', 'good matches')} for “{q.label}”"
            if c.weak:
                text += f" · {c.weak:,} weaker"
        if self.reference is not None:
            dups = self.duplicates
            if dups:
                text += f" · {_plural(dups, 'duplicate')}"
        how = f" · {MODE_LABELS.get(self.mode, self.mode)}" if q.kind == "text" else ""
        return f"{text}{how} · {self.seconds * 1000:.0f} ms"

    @property
    def duplicates(self) -> int:
        if self.reference is None:
            return 0
        ref = self.facts.get(self.reference.file_id)
        ref_hash = ref.content_hash if ref else None
        return sum(
            1
            for h in self.hits
            if rel.duplicate_kind(h, ref_hash, getattr(self.facts.get(h.file_id), "content_hash", None))
            == "duplicate"
        )

    def _browse_summary(self) -> str:
        n = len(self.hits)
        total = self.total if self.total is not None else n
        if total == 0:
            return "No sounds match these filters" if not self.filters.is_empty() else ""
        text = (
            f"All {_plural(total, 'sound')} in the library"
            if self.filters.is_empty()
            else f"{_plural(total, 'sound')} match these filters"
        )
        if n < total:
            by = SORT_LABELS.get(self.query.sort, self.query.sort)
            order = ", descending" if self.query.descending else ""
            text += f" · the first {n:,} by {by}{order}"
        return text + " · type to search, click a column to sort"


@dataclass
class ModelInfo:
    """An installed model bundle, as the settings dialog lists it."""

    path: str
    name: str
    version: str
    trained: bool
    description: str
    model_card: str
    error: str | None = None
    is_default: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def title(self) -> str:
        if self.error:
            return f"{Path(self.path).name} (broken)"
        return f"{self.name} {self.version}" + ("" if self.trained else " (untrained placeholder)")


def installed_models() -> list[ModelInfo]:
    """Every bundle the engine can find, with its model card (reads small files: call off the GUI thread)."""
    from engine.bundle import default_bundle_name, list_bundles

    default = default_bundle_name()
    out = []
    for path, spec in list_bundles():
        card_file = Path(path) / "MODEL_CARD.md"
        card = card_file.read_text(encoding="utf-8", errors="replace") if card_file.exists() else ""
        if isinstance(spec, Exception):
            out.append(ModelInfo(str(path), path.name, "", False, "", card, error=str(spec)))
            continue
        out.append(
            ModelInfo(
                str(path),
                spec["name"],
                spec["version"],
                bool(spec.get("trained", True)),
                spec.get("description", ""),
                card,
                is_default=path.name == default,
            )
        )
    return out


def run_query(lib, query: Query, filters: ViewFilters, k: int = RESULTS_K, mode: str = "both") -> SearchResult:
    """Answer ``query`` on ``lib`` (in a worker thread): hits, the file facts the list shows, and for
    "find similar" the reference file itself."""
    from engine import browse
    from engine.search import Searcher

    t0 = time.perf_counter()
    if query.kind == "browse":
        page = browse.list_files(
            lib,
            filters.engine,
            sort=query.sort or "name",
            descending=query.descending,
            limit=BROWSE_LIMIT,
            bit_depths=filters.bit_depths,
        )
        return SearchResult(
            query, filters, page.hits, time.perf_counter() - t0, mode, facts=page.facts, total=page.total
        )
    s = Searcher(lib)
    kk = max(k, BIT_FILTER_K) if filters.bit_depths else k
    reference = None
    if query.kind == "similar":
        hits = s.similar(query.path, kk, filters.engine, start_s=query.start_s, end_s=query.end_s)
        reference = browse.file_hit(lib, query.path)
    else:
        hits = s.search(query.text, kk, filters.engine, mode=mode)
    ids = [h.file_id for h in hits] + ([reference.file_id] if reference else [])
    facts = browse.file_facts(lib, ids)
    hits = [h for h in hits if filters.keep(h, facts)][:k]
    return SearchResult(query, filters, hits, time.perf_counter() - t0, mode, reference=reference, facts=facts)


class Session(QObject):
    """One open library (or none). Create on the GUI thread."""

    opened = Signal(object)  # status dict
    open_failed = Signal(str)
    status_changed = Signal(object)  # status dict (engine.status.library_status, every failed file)
    results_ready = Signal(object)  # SearchResult
    search_failed = Signal(object, str)  # Query, message
    message = Signal(str)  # transient status-bar text
    models_listed = Signal(object)  # list[ModelInfo]

    def __init__(self, runner: TaskRunner, writer: LibraryWriter, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.writer = writer
        self.lib = None
        self.status: dict | None = None
        self._pending_open: tuple | None = None
        self._warm_lock = threading.Lock()  # held while the text model loads
        self.model_ready = False
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_REFRESH_MS)
        self._status_timer.timeout.connect(self.refresh_status)
        writer.finished.connect(self._write_finished)
        writer.failed.connect(self._write_failed)
        writer.busy_changed.connect(self._writer_busy)

    # -- opening --------------------------------------------------------------------------------

    def open(self, path: str | None = None, model: str | None = None, device: str | None = None) -> None:
        """Open (or switch to) a library; ``opened`` or ``open_failed`` follows. A running indexing job is
        cancelled first (what it committed is kept)."""
        if self.writer.busy:
            self._pending_open = (path, model, device)
            self.writer.cancel()
            return
        old, self.lib = self.lib, None
        self.writer.set_library(None)
        self.runner.invalidate("search")

        def work():
            from engine.library import Library
            from engine.status import library_status

            if old is not None:
                old.close()
            from engine.reproject import needs_reprojection

            lib = Library(path or None, model or None, device=device or None)
            try:
                return lib, library_status(lib, failed_limit=None), needs_reprojection(lib)
            except Exception:
                lib.close()
                raise

        self.runner.submit(work, self._opened, lambda exc: self.open_failed.emit(str(exc)), group="open")

    def _opened(self, result) -> None:
        self.lib, self.status, switch = result
        self.writer.set_library(self.lib)
        if switch:  # another model over the stored features: its vectors, without decoding audio
            self.writer.reproject()
        self.opened.emit(self.status)
        self.status_changed.emit(self.status)
        self.warm_up()

    def warm_up(self) -> None:
        """Load the text model in the background as soon as a library is open (and run it once, so the
        first query does not pay for loading or for the first inference either). A text query submitted
        meanwhile waits for it instead of loading the model a second time."""
        lib = self.lib
        if lib is None:
            return
        self.model_ready = False
        lock = self._warm_lock

        def work():
            with lock:
                t0 = time.perf_counter()
                lib.text_encoder.embed_text(["warm up"])  # loads the text networks and runs them once
                seconds = time.perf_counter() - t0
                # Indexing and find-similar need torch. Importing it holds the GIL for long stretches (its C
                # extension loads under the import lock): done now, not in the middle of the user's first
                # indexing run, where it froze the window for 200–300 ms.
                import engine.encoder  # noqa: F401
                return seconds

        self.runner.submit(work, self._warmed, self._warm_failed, group="warm", priority=4)

    def _warmed(self, seconds: float) -> None:
        self.model_ready = True
        freeze_heap()
        log.info("text model ready in %.2f s", seconds)

    def _warm_failed(self, exc: BaseException) -> None:
        self.message.emit(f"cannot load the model: {exc}")

    def close(self, wait_ms: int = 10000) -> None:
        """Cancel indexing, wait for the workers (up to ``wait_ms`` each), close the library."""
        self._status_timer.stop()
        self._pending_open = None
        self.writer.cancel()
        self.writer.runner.close(wait_ms)
        self.runner.close(wait_ms)
        lib, self.lib = self.lib, None
        self.writer.set_library(None)
        if lib is not None:
            lib.close()

    # -- searching ------------------------------------------------------------------------------

    def search(
        self, query: Query, filters: ViewFilters | None = None, k: int = RESULTS_K, mode: str = "both"
    ) -> None:
        """Run a text, "similar" or browse query; ``results_ready`` or ``search_failed`` follows (stale
        ones are dropped). ``mode`` (text queries): ``"both"`` (sound and keywords, fused), ``"content"``
        (what files sound like) or ``"keywords"`` (names and metadata); see
        ``engine.search.Searcher.search``. A browse query lists the library (:func:`engine.browse.list_files`)."""
        filters = filters or ViewFilters()
        lib = self.lib
        if lib is None:
            self.search_failed.emit(query, "no library is open yet")
            return

        warm = self._warm_lock

        def work():
            if query.kind == "text":
                with warm:  # the model is being loaded in the background: wait for it, do not load it twice
                    pass
            return run_query(lib, query, filters, k, mode)

        self.runner.submit(
            work,
            self.results_ready.emit,
            lambda exc: self.search_failed.emit(query, str(exc)),
            group="search",
            priority=3,
        )

    def cancel_search(self) -> None:
        self.runner.invalidate("search")

    # -- status and writes ----------------------------------------------------------------------

    def refresh_status(self) -> None:
        lib = self.lib
        if lib is None:
            return
        from engine.status import library_status

        self.runner.submit(
            lambda: library_status(lib, failed_limit=None),
            self._status_ready,
            lambda exc: log.warning("status failed: %s", exc),
            group="status",
        )

    def _status_ready(self, status: dict) -> None:
        self.status = status
        self.status_changed.emit(status)

    def list_models(self) -> None:
        self.runner.submit(
            installed_models,
            self.models_listed.emit,
            lambda exc: self.message.emit(f"cannot list models: {exc}"),
            group="models",
        )

    def add_folders(self, folders: list[str]) -> None:
        folders = [str(Path(f).expanduser()) for f in folders if f]
        if folders:
            self.writer.index(folders)

    def reindex(self, roots: list[str] | None = None, *, retry_failed: bool = False) -> None:
        self.writer.index(roots, retry_failed=retry_failed)

    def remove_folder(self, folder: str) -> None:
        self.writer.remove_folder(folder)

    def _writer_busy(self, busy: bool) -> None:
        if busy:
            self._status_timer.start()
            return
        self._status_timer.stop()
        if self._pending_open is not None:
            args, self._pending_open = self._pending_open, None
            self.open(*args)

    def _write_finished(self, kind: str, result) -> None:
        if kind == "index":
            s = result
            text = (
                f"indexed: {s.new} new, {s.changed} changed, {s.moved} moved, {s.deleted} removed, "
                f"{s.failed} failed" + (" (stopped)" if s.cancelled else "")
            )
            for r in s.missing_roots:
                text += f"; folder missing: {r}"
            for r in getattr(s, "unavailable_roots", []):
                text += f"; folder unavailable, kept: {r['path']}"
            self.message.emit(text)
        elif kind == "remove":
            self.message.emit(f"removed {result} files from the library")
        elif kind == "learn" and result.get("cancelled"):
            self.message.emit(result.get("message", "stopped; the library keeps its model"))
        elif kind in ("learn", "undo") and self.lib is not None:
            self.message.emit(f"the library now uses {self.lib.bundle.name} {self.lib.bundle.version}")
            self.warm_up()  # the model changed: its text side loads again
        elif kind == "reproject":
            self.message.emit(f"{self.lib.bundle.name if self.lib else 'the model'}: {result.windows:,} windows "
                              "re-projected from stored features")
        self.refresh_status()

    def learn(self) -> None:
        """Library ▸ Teach Earshot my library…"""
        self.writer.learn()

    def undo_learn(self) -> None:
        self.writer.undo_learn()

    def _write_failed(self, kind: str, message: str) -> None:
        what = {"index": "indexing", "remove": "removing", "learn": "learning", "undo": "going back",
                "reproject": "switching the model"}.get(kind, kind)
        self.message.emit(f"{what} failed: {message}")
        self.refresh_status()
