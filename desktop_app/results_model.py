"""The results table's model: one row per hit, sortable by raw values, draggable as files.

It is a ``QStandardItemModel`` filled once per result list, on purpose: the view then paints, scrolls
and sorts in C++ without calling back into Python for every cell. With a Python ``data()`` each of those
thousands of calls must take the GIL, which the indexing and decoding threads hold much of the time,
and repainting the table would stall the event loop for hundreds of milliseconds while indexing.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QStandardItem, QStandardItemModel

from desktop_app.details import category_text, description_text, hit_tooltip
from desktop_app.formatting import fmt_channels, fmt_clock, fmt_duration, fmt_rate
from engine.search import Hit

SORT_ROLE = Qt.ItemDataRole.UserRole
ROW_ROLE = Qt.ItemDataRole.UserRole + 1  # the hit's rank (its index in ResultsModel.hits())

# (header, raw value for sorting, text shown)
COLUMNS: list[tuple[str, callable, callable]] = [
    ("Name", lambda h: Path(h.path).name.lower(), lambda h: Path(h.path).name),
    ("Description", lambda h: description_text(h.metadata).lower(), lambda h: description_text(h.metadata)),
    ("Category", lambda h: category_text(h.metadata).lower(), lambda h: category_text(h.metadata)),
    ("Score", lambda h: h.score, lambda h: f"{h.score:.3f}"),
    ("Duration", lambda h: h.duration_s, lambda h: fmt_duration(h.duration_s)),
    ("Match", lambda h: h.start_s, lambda h: fmt_clock(h.start_s)),
    ("Rate", lambda h: h.sample_rate or 0, lambda h: fmt_rate(h.sample_rate)),
    ("Channels", lambda h: h.channels or 0, lambda h: fmt_channels(h.channels)),
    ("Format", lambda h: (h.format or "").upper(), lambda h: (h.format or "").upper()),
    ("Folder", lambda h: h.folder.lower(), lambda h: h.folder),  # shown relative to its library folder
]
COL = {name: i for i, (name, _, _) in enumerate(COLUMNS)}
OPTIONAL = ("Description", "Category")  # metadata columns: hidden while no result has them
_RIGHT = {COL["Score"], COL["Duration"], COL["Match"], COL["Rate"]}
_ITEM_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled


def short_folder(folder: str, roots: list[str]) -> str:
    """``/media/sfx/Library/doors/wood`` under the library folder ``/media/sfx/Library`` →
    ``Library/doors/wood`` (the full path stays in the tooltip)."""
    for root in sorted(roots, key=len, reverse=True):
        if folder == root or folder.startswith(root.rstrip("/") + "/"):
            return Path(root).name + folder[len(root.rstrip("/")) :]
    return folder


def file_mime(paths: list[str]) -> QMimeData:
    """Mime data a DAW or a file manager accepts as dropped files (``text/uri-list`` + plain paths)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    mime.setText("\n".join(str(p) for p in paths))
    return mime


class ResultsModel(QStandardItemModel):
    """Hits in rank order. Sort through a ``QSortFilterProxyModel`` with ``sortRole = SORT_ROLE``."""

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels([name for name, _, _ in COLUMNS])
        self._hits: list[Hit] = []
        self.roots: list[str] = []
        self.filled_columns: dict[str, bool] = dict.fromkeys(OPTIONAL, False)  # has any hit a value?

    def set_roots(self, roots: list[str]) -> None:
        """The library's folders, to show each result's folder relative to its own (next result list)."""
        self.roots = list(roots)

    def set_hits(self, hits: list[Hit]) -> None:
        self._hits = list(hits)
        self.setRowCount(0)
        filled: set[str] = set()
        for rank, h in enumerate(self._hits):
            tip = hit_tooltip(h)
            row = []
            for col, (name, raw, text) in enumerate(COLUMNS):
                shown = short_folder(h.folder, self.roots) if col == COL["Folder"] else text(h)
                if shown and name in OPTIONAL:
                    filled.add(name)
                item = QStandardItem(shown)
                item.setData(raw(h), SORT_ROLE)
                item.setData(rank, ROW_ROLE)
                item.setFlags(_ITEM_FLAGS)
                item.setToolTip(tip)
                if col in _RIGHT:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                row.append(item)
            self.appendRow(row)
        self.filled_columns = {name: name in filled for name in OPTIONAL}

    def hits(self) -> list[Hit]:
        return list(self._hits)

    def hit(self, row: int) -> Hit | None:
        return self._hits[row] if 0 <= row < len(self._hits) else None

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list", "text/plain"]

    def mimeData(self, indexes) -> QMimeData:
        rows = sorted({i.row() for i in indexes if i.isValid()})
        return file_mime([self._hits[r].path for r in rows if r < len(self._hits)])

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction
