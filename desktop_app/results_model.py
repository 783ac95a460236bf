"""The results table's model: one row per hit, sortable by raw values, draggable as files."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QMimeData, QModelIndex, QPersistentModelIndex, Qt, QUrl

from desktop_app.formatting import fmt_channels, fmt_clock, fmt_duration, fmt_rate
from engine.search import Hit

SORT_ROLE = Qt.ItemDataRole.UserRole
HIT_ROLE = Qt.ItemDataRole.UserRole + 1

# (header, raw value for sorting, text shown)
COLUMNS: list[tuple[str, callable, callable]] = [
    ("Name", lambda h: Path(h.path).name.lower(), lambda h: Path(h.path).name),
    ("Score", lambda h: h.score, lambda h: f"{h.score:.3f}"),
    ("Duration", lambda h: h.duration_s, lambda h: fmt_duration(h.duration_s)),
    ("Match", lambda h: h.start_s, lambda h: fmt_clock(h.start_s)),
    ("Rate", lambda h: h.sample_rate or 0, lambda h: fmt_rate(h.sample_rate)),
    ("Channels", lambda h: h.channels or 0, lambda h: fmt_channels(h.channels)),
    ("Format", lambda h: (h.format or "").upper(), lambda h: (h.format or "").upper()),
    ("Folder", lambda h: h.folder.lower(), lambda h: h.folder),
]
COL = {name: i for i, (name, _, _) in enumerate(COLUMNS)}
_RIGHT = {COL["Score"], COL["Duration"], COL["Match"], COL["Rate"]}


def file_mime(paths: list[str]) -> QMimeData:
    """Mime data a DAW or a file manager accepts as dropped files (``text/uri-list`` + plain paths)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    mime.setText("\n".join(str(p) for p in paths))
    return mime


class ResultsModel(QAbstractTableModel):
    """Hits in rank order. Sort through a ``QSortFilterProxyModel`` with ``sortRole = SORT_ROLE``."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._hits: list[Hit] = []

    # -- content --------------------------------------------------------------------------------

    def set_hits(self, hits: list[Hit]) -> None:
        self.beginResetModel()
        self._hits = list(hits)
        self.endResetModel()

    def hits(self) -> list[Hit]:
        return list(self._hits)

    def hit(self, row: int) -> Hit | None:
        return self._hits[row] if 0 <= row < len(self._hits) else None

    # -- QAbstractTableModel --------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._hits)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][0]
        if orientation == Qt.Orientation.Vertical and role == Qt.ItemDataRole.DisplayRole:
            return section + 1
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        h = self._hits[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[col][2](h)
        if role == SORT_ROLE:
            return COLUMNS[col][1](h)
        if role == HIT_ROLE:
            return h
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"{h.path}\nbest match {fmt_clock(h.start_s)}–{fmt_clock(h.end_s)} · score {h.score:.3f}")
        if role == Qt.ItemDataRole.TextAlignmentRole and col in _RIGHT:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return ["text/uri-list", "text/plain"]

    def mimeData(self, indexes) -> QMimeData:  # noqa: N802
        rows = sorted({i.row() for i in indexes if i.isValid()})
        return file_mime([self._hits[r].path for r in rows])

    def supportedDragActions(self) -> Qt.DropAction:  # noqa: N802
        return Qt.DropAction.CopyAction
