"""Puts a :class:`~desktop_app.session.SearchResult` on screen: the table's rows and columns, the line
above it, the selection kept across refreshes; re-lists the library when the user sorts a partial
listing, and re-runs the query while indexing adds files."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal

from desktop_app.relevance import relevance
from desktop_app.results_model import COL, ResultsModel
from desktop_app.search_controller import SearchController
from desktop_app.session import SearchResult
from desktop_app.views.main_window import MainWindow

# browse: the header a column sorts by → engine.browse sort key
BROWSE_SORT = {"Name": "name", "Folder": "folder", "Duration": "duration", "Rate": "rate", "Added": "added"}
REFRESH_MIN_S = 2.0  # re-run the query at most this often while files are being added
REFRESH_BROWSE_S = 10.0  # the library listing (up to BROWSE_LIMIT rows to rebuild): less often


def visible_columns(kind: str, filled: dict[str, bool]) -> dict[str, bool]:
    """Which columns show for a result list of ``kind`` (``'text'``, ``'similar'``, ``'browse'``): every
    column that has a value in some row, the name always; the relevance, "matched by" and best-match
    time only for queries, the date added only when browsing."""
    browse = kind == "browse"
    shown = {name: bool(filled.get(name)) for name in COL}
    shown["Name"] = True
    for name in ("Relevance", "Matched by", "Match"):
        shown[name] = shown[name] and not browse
    shown["Added"] = shown["Added"] and browse
    return shown


class ResultsPresenter(QObject):
    shown = Signal(object)  # SearchResult, after it is on screen

    def __init__(
        self, window: MainWindow, model: ResultsModel, search: SearchController, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.window, self.model, self.search = window, model, search
        self.result: SearchResult | None = None
        self.restoring = False  # True while the selection is put back after a refresh
        self._files: int | None = None
        self._last_refresh = 0.0
        window.results.sorted_by.connect(self._sorted)

    def show(self, result: SearchResult) -> None:
        w, res = self.window, self.window.results
        same_query = self.result is not None and self.result.query == result.query
        keep = res.current_hit().path if same_query and res.current_hit() is not None else None
        self.result = result
        graded = any(relevance(h) is not None for h in result.hits)
        self.model.set_hits(result.hits, facts=result.facts, reference=result.reference, graded=graded)
        res.show_columns(visible_columns(result.query.kind, self.model.filled_columns))
        res.layout_rows()
        w.set_results_label(result.summary())
        if keep is not None:
            self.restoring = True
            try:
                res.select_path(keep)
            finally:
                self.restoring = False
        self.shown.emit(result)

    def _sorted(self, column: int, ascending: bool) -> None:
        """A header click: the view sorts what it holds; a partial library listing is listed again from
        the first file in that order."""
        r = self.result
        names = {i: n for n, i in COL.items()}
        key = BROWSE_SORT.get(names.get(column, ""))
        if r is None or r.query.kind != "browse" or key is None:
            return
        if r.total is not None and r.total > len(r.hits):
            self.search.sort_browse(key, not ascending)
        else:
            self.search.browse_sort = (key, not ascending)

    def library_changed(self, status: dict) -> None:
        """A status refresh: when the library holds a different number of files, run the query again
        (at most every :data:`REFRESH_MIN_S` seconds) so files being indexed appear in the results."""
        files = int(status.get("files", 0) or 0)
        before, self._files = self._files, files
        if before is None or before == files or self.search.current is None:
            return
        now = time.monotonic()
        wait = REFRESH_BROWSE_S if self.search.current.kind == "browse" else REFRESH_MIN_S
        if now - self._last_refresh < wait and not self._idle():
            self._files = before  # try again at the next refresh
            return
        self._last_refresh = now
        self.search.rerun()

    def _idle(self) -> bool:
        return not self.window.indexing.isVisible()
