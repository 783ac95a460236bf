"""The results table: keyboard first (↑/↓ move, Space, Esc, ←/→, L, Enter), sortable, resizable columns,
rows draggable as files, a context menu built from the window's actions."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from desktop_app.results_model import COL, ROW_ROLE, SORT_ROLE, ResultsModel
from engine.search import Hit


class ResultsView(QTableView):
    current_hit_changed = Signal(object)  # Hit | None
    toggle_play = Signal()
    stop = Signal()
    seek_step = Signal(int)  # -1 | +1
    toggle_loop = Signal()
    activated_hit = Signal(object)  # Enter / double click: Hit
    type_ahead = Signal(str)  # a printable key: the search box takes it
    focus_search = Signal()  # ↑ on the first row

    def __init__(self, model: ResultsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = model
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(model)
        self.proxy.setSortRole(SORT_ROLE)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # rank order until a header is clicked
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setShowGrid(False)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        head = self.horizontalHeader()
        head.setSectionsMovable(True)
        head.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        head.setStretchLastSection(True)
        head.setSortIndicatorClearable(True)
        for col, width in (
            ("Name", 240),
            ("Description", 280),
            ("Category", 130),
            ("Score", 60),
            ("Duration", 75),
            ("Match", 60),
            ("Rate", 75),
            ("Channels", 70),
            ("Format", 60),
        ):
            self.setColumnWidth(COL[col], width)
        self.selectionModel().currentRowChanged.connect(self._current_changed)
        self.doubleClicked.connect(lambda idx: self._emit_activated(idx))

    def set_optional_columns(self, shown: dict[str, bool]) -> None:
        """Show or hide columns by header name (the metadata columns, when no result has metadata)."""
        for name, on in shown.items():
            self.setColumnHidden(COL[name], not on)

    # -- content --------------------------------------------------------------------------------

    def hit_at(self, index: QModelIndex) -> Hit | None:
        """The hit of a row of this view (an index of the sorting proxy)."""
        return self.source.hit(index.data(ROW_ROLE)) if index.isValid() else None

    def current_hit(self) -> Hit | None:
        return self.hit_at(self.currentIndex())

    def selected_hits(self) -> list[Hit]:
        rows = sorted({i.row() for i in self.selectionModel().selectedRows()})
        return [h for h in (self.hit_at(self.proxy.index(r, 0)) for r in rows) if h is not None]

    def select_row(self, row: int) -> None:
        """Make ``row`` (in the displayed order) current and selected."""
        if 0 <= row < self.proxy.rowCount():
            self.setCurrentIndex(self.proxy.index(row, 0))

    def _current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        self.current_hit_changed.emit(self.hit_at(current))

    def _emit_activated(self, index: QModelIndex) -> None:
        hit = self.hit_at(index)
        if hit is not None:
            self.activated_hit.emit(hit)

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
        elif plain and key == Qt.Key.Key_Up and self.currentIndex().row() <= 0:
            self.focus_search.emit()
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
