"""The results table: keyboard first (↑/↓ move, Space, Esc, ←/→, L, Enter), sortable, resizable columns,
rows draggable as files, a context menu built from the window's actions."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from desktop_app.results_model import COL, MARK_ROLE, ROW_ROLE, SORT_ROLE, ResultsModel
from engine.search import Hit

# Fixed-format columns: sized from their widest possible text, without measuring every row.
SAMPLE_TEXT = {"Relevance": "100", "Matched by": "sound · name · desc", "Duration": "0.00 s", "Match": "00:00.0",
               "Rate": "192 kHz", "Channels": "stereo", "Bits": "32-bit float", "Format": "AIFF",
               "Added": "2026-12-31 23:59"}
# Columns that give way when the table is narrow, with the width they keep (pixels) and how much of the
# table they may take at most; the others always get their content's width.
FLEXIBLE = {"Name": (160, 1.0), "Description": (110, 0.3), "Category": (90, 0.18), "Folder": (100, 0.22)}
NAME_MIN = FLEXIBLE["Name"][0]


def share_widths(avail: int, fixed: int, natural: dict[str, int]) -> dict[str, int]:
    """Widths of the flexible columns (``natural``: name → content width) in ``avail - fixed`` pixels.
    Each wants its content width, up to its share of ``avail``. When all fit, the Name column also takes
    what is left; otherwise each keeps its floor and the rest is shared in proportion to what each still
    wants, the Name column's want counting double (names matter most)."""
    room = max(0, avail - fixed)
    want = {n: max(FLEXIBLE[n][0], min(w, int(FLEXIBLE[n][1] * avail))) for n, w in natural.items()}
    if sum(want.values()) <= room:
        out = dict(want)
        if "Name" in out:
            out["Name"] += room - sum(want.values())
        return out
    floors = {n: FLEXIBLE[n][0] for n in want}
    weight = {n: (2.0 if n == "Name" else 1.0) * (want[n] - floors[n]) for n in want}
    spare = max(0, room - sum(floors.values()))
    total = sum(weight.values())
    out = {n: floors[n] + (min(want[n] - floors[n], int(spare * weight[n] / total)) if total else 0) for n in want}
    if "Name" in out:
        out["Name"] += max(0, room - sum(out.values()))
    return out


class ResultsView(QTableView):
    current_hit_changed = Signal(object)  # Hit | None
    toggle_play = Signal()
    stop = Signal()
    seek_step = Signal(int)  # -1 | +1
    toggle_loop = Signal()
    activated_hit = Signal(object)  # Enter / double click: Hit
    type_ahead = Signal(str)  # a printable key: the search box takes it
    focus_search = Signal()  # ↑ on the first row
    zoom = Signal(int)  # + / -: zoom the waveform in (+1) or out (-1)
    sorted_by = Signal(int, bool)  # column (-1: rank order), ascending

    def __init__(self, model: ResultsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = model
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterRole(MARK_ROLE)  # sorted by a column: the divider row is filtered out
        self.proxy.setFilterKeyColumn(0)
        self.setModel(self.proxy)
        head = self.horizontalHeader()
        head.sortIndicatorChanged.connect(self._sort_changed)  # before the view's own sort
        self.setSortingEnabled(True)
        self.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # rank order until a header is clicked
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setShowGrid(False)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().hide()
        head.setSectionsMovable(True)
        head.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        head.setStretchLastSection(False)
        head.setSortIndicatorClearable(True)
        head.setMinimumSectionSize(36)
        head.setResizeContentsPrecision(40)  # content widths from the first rows: cheap on every result list
        self.user_sized: set[int] = set()  # columns the user resized: left alone by fit_columns
        self._fitting = False
        head.sectionResized.connect(self._section_resized)
        self.proxy.layoutChanged.connect(self._resorted)
        self.selectionModel().currentRowChanged.connect(self._current_changed)
        self.doubleClicked.connect(lambda idx: self._emit_activated(idx))

    # -- columns --------------------------------------------------------------------------------

    def show_columns(self, shown: dict[str, bool]) -> None:
        """Show or hide columns by header name (empty columns hide)."""
        self._fitting = True
        try:
            for name, on in shown.items():
                self.setColumnHidden(COL[name], not on)
        finally:
            self._fitting = False
        cur = self.currentIndex()
        if cur.isValid() and self.isColumnHidden(cur.column()):  # keep ↑/↓ working
            self.selectionModel().setCurrentIndex(
                cur.siblingAtColumn(self._first_column()), self.selectionModel().SelectionFlag.NoUpdate
            )
        self.fit_columns()

    def _section_resized(self, column: int, old: int, new: int) -> None:
        if not self._fitting:
            self.user_sized.add(column)

    def set_user_widths(self, widths: dict[str, int]) -> None:
        """Widths the user chose earlier (by header name); those columns keep them."""
        for name, width in widths.items():
            if name in COL and width > 0:
                self.setColumnWidth(COL[name], int(width))
                self.user_sized.add(COL[name])

    def user_widths(self) -> dict[str, int]:
        names = {i: n for n, i in COL.items()}
        return {names[c]: self.columnWidth(c) for c in sorted(self.user_sized) if c in names}

    def fit_columns(self) -> None:
        """Size the columns to their content, the flexible ones (:data:`FLEXIBLE`) within the table's
        width, the Name column taking the rest; columns the user resized keep their width."""
        self._fitting = True
        try:
            avail = max(1, self.viewport().width())
            head = self.horizontalHeader()
            fixed, natural = 0, {}
            for name, col in COL.items():
                if self.isColumnHidden(col):
                    continue
                if name in SAMPLE_TEXT:
                    cell = self.fontMetrics().horizontalAdvance(SAMPLE_TEXT[name]) + 12
                else:
                    cell = self.sizeHintForColumn(col)
                content = max(cell, head.sectionSizeHint(col)) + 6
                if col in self.user_sized:
                    fixed += self.columnWidth(col)
                elif name in FLEXIBLE:
                    natural[name] = content
                else:
                    self.setColumnWidth(col, content)
                    fixed += content
            for name, width in share_widths(avail, fixed, natural).items():
                self.setColumnWidth(COL[name], width)
        finally:
            self._fitting = False

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_columns()

    # -- rows -----------------------------------------------------------------------------------

    def layout_rows(self) -> None:
        """After new results: the divider spans the row; it shows only in rank order."""
        head = self.horizontalHeader()
        column = head.sortIndicatorSection() if head.sortIndicatorSection() < self.proxy.columnCount() else -1
        self.source.pin_reference_for_sort(column, head.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder)
        self.clearSpans()
        self._place_divider(column)

    def _place_divider(self, column: int) -> None:
        row = self.source.divider_row
        if row is None or column >= 0:
            return
        proxy_row = self.proxy.mapFromSource(self.source.index(row, 0)).row()
        if proxy_row >= 0:
            self.setSpan(proxy_row, 0, 1, self.proxy.columnCount())

    def _sort_changed(self, column: int, order: Qt.SortOrder) -> None:
        ascending = order == Qt.SortOrder.AscendingOrder
        self.source.pin_reference_for_sort(column, ascending)
        self.clearSpans()
        self.proxy.setFilterRegularExpression("" if column < 0 else "^(?!divider$)")
        self.sorted_by.emit(column, ascending)

    def _resorted(self, *_) -> None:
        """The proxy re-ordered its rows: the divider moved (and shows only in rank order)."""
        head = self.horizontalHeader()
        column = head.sortIndicatorSection() if head.sortIndicatorSection() < self.proxy.columnCount() else -1
        self.clearSpans()
        self._place_divider(column)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.fit_columns()

    # -- content --------------------------------------------------------------------------------
    def hit_at(self, index: QModelIndex) -> Hit | None:
        """The hit of a row of this view (an index of the sorting proxy)."""
        return self.source.hit(index.siblingAtColumn(0).data(ROW_ROLE)) if index.isValid() else None

    def current_hit(self) -> Hit | None:
        return self.hit_at(self.currentIndex())

    def selected_hits(self) -> list[Hit]:
        rows = sorted({i.row() for i in self.selectionModel().selectedRows()})
        return [h for h in (self.hit_at(self.proxy.index(r, 0)) for r in rows) if h is not None]

    def select_row(self, row: int) -> None:
        """Make ``row`` (in the displayed order) current and selected; the divider row is skipped."""
        if 0 <= row < self.proxy.rowCount():
            if self.hit_at(self.proxy.index(row, 0)) is None and row + 1 < self.proxy.rowCount():
                row += 1
            self.setCurrentIndex(self.proxy.index(row, self._first_column()))

    def _first_column(self) -> int:
        """The leftmost visible column (the current cell must be visible for ↑/↓ to move)."""
        head = self.horizontalHeader()
        for v in range(head.count()):
            c = head.logicalIndex(v)
            if not head.isSectionHidden(c):
                return c
        return 0

    def select_path(self, path: str) -> bool:
        """Make the row of ``path`` current (False when it is not in the list)."""
        for r in range(self.proxy.rowCount()):
            hit = self.hit_at(self.proxy.index(r, 0))
            if hit is not None and hit.path == path:
                self.setCurrentIndex(self.proxy.index(r, self._first_column()))
                return True
        return False

    def _current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        self.current_hit_changed.emit(self.hit_at(current))

    def _emit_activated(self, index: QModelIndex) -> None:
        hit = self.hit_at(index)
        if hit is not None:
            self.activated_hit.emit(hit)

    def _first_row(self) -> bool:
        row = self.currentIndex().row()
        return row <= 0 or all(self.isRowHidden(r) or not self.proxy.index(r, 0).flags() for r in range(row))

    # -- keys -----------------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, mods = event.key(), event.modifiers()
        plain = not (mods & ~Qt.KeyboardModifier.KeypadModifier)
        if plain and key == Qt.Key.Key_Space:
            self.toggle_play.emit()
        elif plain and key == Qt.Key.Key_Escape:
            self.stop.emit()
        elif plain and key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            self.seek_step.emit(-1 if key == Qt.Key.Key_Left else 1)
        elif plain and key == Qt.Key.Key_L:
            self.toggle_loop.emit()
        elif plain and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._emit_activated(self.currentIndex())
        elif plain and key == Qt.Key.Key_Up and self._first_row():
            self.focus_search.emit()
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal, Qt.Key.Key_Minus) and not (
            mods & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
        ):
            self.zoom.emit(-1 if key == Qt.Key.Key_Minus else 1)
        elif (
            event.text()
            and event.text().isprintable()
            and not event.text().isspace()
            and not mods
            & (
                Qt.KeyboardModifier.ControlModifier
                | Qt.KeyboardModifier.AltModifier
                | Qt.KeyboardModifier.MetaModifier
            )
        ):
            self.type_ahead.emit(event.text())
        else:
            super().keyPressEvent(event)
            return
        event.accept()
