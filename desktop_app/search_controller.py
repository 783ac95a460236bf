"""Search as you type (debounced), "find similar", filters, the search mode and the back/forward history.
An empty search box lists the whole library (browse), sorted by a column the user picks."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal

from desktop_app.history import History, Query
from desktop_app.session import SearchResult, Session
from desktop_app.view_filters import ViewFilters

log = logging.getLogger(__name__)

DEBOUNCE_MS = 250
MIN_CHARS = 2


class SearchController(QObject):
    """Turns typing and clicks into :meth:`Session.search` calls and keeps the history."""

    query_shown = Signal(object)  # Query: what the search box should show (history moves, similar)
    history_changed = Signal(bool, bool)  # can_back, can_forward
    results = Signal(object)  # SearchResult of the current query
    failed = Signal(str)
    searching = Signal(bool)

    def __init__(
        self,
        session: Session,
        history: History | None = None,
        parent: QObject | None = None,
        *,
        debounce_ms: int = DEBOUNCE_MS,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.history = history or History()
        self.filters = ViewFilters()
        self.browse_sort: tuple[str, bool] = ("name", False)
        self.mode = "both"
        self.current: Query | None = None
        self._pending_text = ""
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._debounce.timeout.connect(self._fire)
        session.results_ready.connect(self._on_results)
        session.search_failed.connect(self._on_failed)

    # -- input ----------------------------------------------------------------------------------

    def text_edited(self, text: str) -> None:
        """Each keystroke: (re)start the debounce timer."""
        self._pending_text = text
        if not text.strip():
            self._debounce.stop()
            self.browse()
            return
        self._debounce.start()

    def submit(self, text: str | None = None) -> None:
        """Enter: search now."""
        if text is not None:
            self._pending_text = text
        self._debounce.stop()
        self._fire()

    def _fire(self) -> None:
        text = self._pending_text.strip()
        if len(text) < MIN_CHARS:
            return
        self._run(Query.of_text(text), record=True)

    def find_similar(self, path: str, start_s: float | None = None, end_s: float | None = None) -> None:
        self._debounce.stop()
        q = Query.similar_to(path, start_s, end_s)
        self.query_shown.emit(q)
        self._run(q, record=True)

    def browse(self) -> None:
        """List the library (the empty search box), in the last sort order picked."""
        self._run(Query.browse(*self.browse_sort), record=False)

    def sort_browse(self, key: str, descending: bool) -> None:
        """The user sorted the listed library by ``key``: list it again from the first file in that order
        (only needed when the list holds part of the library; the view sorts what it has)."""
        self.browse_sort = (key, descending)
        if self.current is not None and self.current.kind == "browse":
            self._run(Query.browse(key, descending), record=False)

    def set_filters(self, filters: ViewFilters) -> None:
        if filters == self.filters:
            return
        self.filters = filters
        if self.current is not None:
            self._run(self.current, record=False)

    def set_mode(self, mode: str) -> None:
        """``"both"``, ``"content"`` or ``"keywords"``: re-runs the current text query."""
        if mode == self.mode:
            return
        self.mode = mode
        if self.current is not None and self.current.kind == "text":
            self._run(self.current, record=False)

    def rerun(self) -> None:
        """Run the current query again (the library changed): the view keeps the selected file."""
        if self.current is not None:
            self._run(self.current, record=False, quiet=True)

    # -- history --------------------------------------------------------------------------------

    def back(self) -> None:
        q = self.history.back()
        if q is not None:
            self._goto(q)

    def forward(self) -> None:
        q = self.history.forward()
        if q is not None:
            self._goto(q)

    def _goto(self, q: Query) -> None:
        self._debounce.stop()
        self.query_shown.emit(q)
        self._emit_history()
        self._run(q, record=False)

    def _emit_history(self) -> None:
        self.history_changed.emit(self.history.can_back, self.history.can_forward)

    # -- running --------------------------------------------------------------------------------

    def _run(self, q: Query, *, record: bool, quiet: bool = False) -> None:
        self.current = q
        if record:
            self.history.push(q)
            self._emit_history()
        if not quiet:
            self.searching.emit(True)
        self.session.search(q, self.filters, mode=self.mode)

    def _on_results(self, result: SearchResult) -> None:
        if result.query != self.current or result.filters != self.filters:
            return
        if result.query.kind == "text" and result.mode != self.mode:
            return
        self.searching.emit(False)
        self.results.emit(result)

    def _on_failed(self, query: Query, message: str) -> None:
        if query != self.current:
            return
        self.searching.emit(False)
        self.failed.emit(message)
