"""The results table's model: one row per hit, sortable by raw values, draggable as files.

It is a ``QStandardItemModel`` filled once per result list, on purpose: the view then paints, scrolls
and sorts in C++ without calling back into Python for every cell. With a Python ``data()`` each of those
thousands of calls must take the GIL, which the indexing and decoding threads hold much of the time,
and repainting the table would stall the event loop for hundreds of milliseconds while indexing. For the
same reason the relevance bar is a gradient brush on the cell, not a Python delegate.

Row order (rank order, before any column is sorted): the pinned reference of a "find similar" query,
the good matches, a "weaker matches" divider row (not selectable), the weaker matches.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QBrush, QColor, QFont, QGradient, QLinearGradient, QStandardItem, QStandardItemModel

from desktop_app import relevance as rel
from desktop_app.details import category_text, description_text, hit_tooltip
from desktop_app.formatting import fmt_channels, fmt_clock, fmt_duration, fmt_rate
from engine.browse import FileFacts, bit_depth, bit_depth_label, is_float
from engine.search import Hit

# Plain ints: an enum member converted on each of thousands of setData calls costs real time.
SORT_ROLE = int(Qt.ItemDataRole.UserRole)
ROW_ROLE = SORT_ROLE + 1  # index into ResultsModel._rows (-1: the divider)
MARK_ROLE = SORT_ROLE + 2  # "reference" | "duplicate" | "near duplicate" | "weak" | ""
DIVIDER_TEXT = "weaker matches"
BAR_COLOR = QColor(70, 140, 220, 90)
WEAK_COLOR = QColor(128, 128, 128)
REFERENCE_BACKGROUND = QColor(255, 236, 170)
APPEND_BUDGET_S = 0.008  # time spent adding rows per event-loop turn (a long list arrives over several)
FIRST_ROWS = 50  # rows shown at once, whatever the budget: a screenful, and every row of a short list
_ALIGN_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


@dataclass(frozen=True)
class Row:
    """What one row shows: the hit, its file facts (bit depth, date added) and a mark."""

    hit: Hit
    facts: FileFacts | None = None
    mark: str = ""  # "reference" | "duplicate" | "near duplicate" | "weak" | ""

    @property
    def name(self) -> str:
        return self.hit.path.rpartition(os.sep)[2]

    @property
    def folder(self) -> str:
        return self.hit.path.rpartition(os.sep)[0] or os.sep


def _bits_sort(r: Row) -> float:
    st = r.facts.subtype if r.facts else None
    return float(bit_depth(st) or 0) + (0.5 if is_float(st) else 0.0)


def _added(r: Row) -> str:
    t = r.facts.indexed_at if r.facts else None
    if not t:
        return ""
    tm = time.localtime(t)  # (time.strftime costs ~0.1 ms a call: too slow for thousands of rows)
    return f"{tm.tm_year}-{tm.tm_mon:02d}-{tm.tm_mday:02d} {tm.tm_hour:02d}:{tm.tm_min:02d}"


def _relevance_text(r: Row) -> str:
    v = rel.relevance(r.hit)
    return "" if v is None else f"{v:.0f}"


def _matched_text(r: Row) -> str:
    if r.mark in ("reference", "duplicate", "near duplicate"):
        return {"reference": "reference", "duplicate": "= duplicate", "near duplicate": "≈ near dup."}[r.mark]
    return rel.matched_by_text(r.hit)


# (header, raw value for sorting (str or float), text shown)
COLUMNS: list[tuple[str, callable, callable]] = [
    ("Relevance", lambda r: rel.relevance(r.hit) if rel.relevance(r.hit) is not None else float(r.hit.score),
     _relevance_text),
    ("Matched by", lambda r: _matched_text(r).lower(), _matched_text),
    ("Name", lambda r: r.name.lower(), lambda r: r.name),
    ("Description", lambda r: description_text(r.hit.metadata).lower(),
     lambda r: description_text(r.hit.metadata)),
    ("Category", lambda r: category_text(r.hit.metadata).lower(), lambda r: category_text(r.hit.metadata)),
    ("Duration", lambda r: float(r.hit.duration_s), lambda r: fmt_duration(r.hit.duration_s)),
    ("Match", lambda r: float(r.hit.start_s), lambda r: fmt_clock(r.hit.start_s)),
    ("Rate", lambda r: float(r.hit.sample_rate or 0), lambda r: fmt_rate(r.hit.sample_rate)),
    ("Channels", lambda r: float(r.hit.channels or 0), lambda r: fmt_channels(r.hit.channels)),
    ("Bits", _bits_sort, lambda r: bit_depth_label(r.facts.subtype if r.facts else None)),
    ("Format", lambda r: (r.hit.format or "").upper(), lambda r: (r.hit.format or "").upper()),
    ("Folder", lambda r: r.folder.lower(), lambda r: r.folder),  # shown relative to its root
    ("Added", lambda r: float((r.facts.indexed_at if r.facts else 0) or 0), _added),
]
COL = {name: i for i, (name, _, _) in enumerate(COLUMNS)}
TEXT_COLUMNS = {COL[c] for c in ("Matched by", "Name", "Description", "Category", "Format", "Folder")}
_RIGHT = {COL[c] for c in ("Relevance", "Duration", "Match", "Rate", "Bits")}
_ITEM_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
# sort values that put the pinned reference first in either order
_FIRST = {True: "", False: "\U0010ffff"}  # text columns: ascending → "", descending → max
_FIRST_NUM = {True: -math.inf, False: math.inf}


def _weak(item: QStandardItem) -> None:
    item.setForeground(WEAK_COLOR)


def _reference(item: QStandardItem) -> None:
    bold = QFont()
    bold.setBold(True)
    item.setFont(bold)
    item.setBackground(REFERENCE_BACKGROUND)


_STYLES = {"weak": _weak, "reference": _reference}


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


_BARS: dict[int, QBrush] = {}


def _bar(value: float) -> QBrush:
    """A cell background filled ``value`` percent from the left (drawn by Qt, no Python per paint); one
    brush per whole percent, made once (a gradient costs more to build than the rest of a row)."""
    key = int(round(max(0.0, min(100.0, value))))
    brush = _BARS.get(key)
    if brush is None:
        brush = _BARS[key] = _make_bar(key)
    return brush


def _make_bar(value: float) -> QBrush:
    g = QLinearGradient(QPointF(0, 0), QPointF(1, 0))
    g.setCoordinateMode(QGradient.CoordinateMode.ObjectBoundingMode)
    f = max(0.0, min(1.0, value / 100.0))
    clear = QColor(BAR_COLOR)
    clear.setAlpha(0)
    g.setColorAt(0.0, BAR_COLOR)
    g.setColorAt(f, BAR_COLOR)
    g.setColorAt(min(1.0, f + 0.001), clear)
    g.setColorAt(1.0, clear)
    return QBrush(g)


class ResultsModel(QStandardItemModel):
    """Hits in rank order. Sort through a ``QSortFilterProxyModel`` with ``sortRole = SORT_ROLE``."""

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels([name for name, _, _ in COLUMNS])
        self._rows: list[Row] = []
        self.reference: Hit | None = None
        self.divider_row: int | None = None  # model row of the "weaker matches" divider
        self.roots: list[str] = []
        self.filled_columns: dict[str, bool] = {name: False for name, _, _ in COLUMNS}
        self._serial = 0

    def set_roots(self, roots: list[str]) -> None:
        """The library's folders, to show each result's folder relative to its own (next result list)."""
        self.roots = list(roots)

    def set_hits(
        self,
        hits: list[Hit],
        *,
        facts: dict[int, FileFacts] | None = None,
        reference: Hit | None = None,
        graded: bool = True,
    ) -> None:
        """Show ``hits`` (engine order). ``reference``: pinned on top, its duplicates marked; ``graded``:
        split good and weaker matches with a divider (when the engine graded them)."""
        facts = facts or {}
        good, weak = rel.split_good(hits) if graded else (list(hits), [])
        ref_hash = facts[reference.file_id].content_hash if reference and reference.file_id in facts else None

        def mark(h: Hit) -> str:
            if reference is None:
                return ""
            f = facts.get(h.file_id)
            return rel.duplicate_kind(h, ref_hash, f.content_hash if f else None)

        rows = [Row(reference, facts.get(reference.file_id), "reference")] if reference else []
        rows += [Row(h, facts.get(h.file_id), mark(h)) for h in good]
        divider_at = len(rows) if weak else None
        rows += [Row(h, facts.get(h.file_id), mark(h) or "weak") for h in weak]
        self._rows, self.reference = rows, reference
        self.divider_row = divider_at
        self._serial += 1
        self.setRowCount(0)
        # Texts first (plain Python, also tells which columns have a value), items in chunks: a long
        # library listing must not hold the event loop for the whole list.
        texts = []
        filled: set[str] = set()
        for r in rows:
            shown = [short_folder(r.folder, self.roots) if c == COL["Folder"] else t(r) for c, (_, _, t) in
                     enumerate(COLUMNS)]
            filled.update(COLUMNS[c][0] for c, x in enumerate(shown) if x)
            texts.append(shown)
        self.filled_columns = {name: name in filled for name, _, _ in COLUMNS}
        self._append(texts, 0, self._serial)

    def _append(self, texts: list[list[str]], start: int, serial: int) -> None:
        """Add rows from ``start`` for at most :data:`APPEND_BUDGET_S` (the first :data:`FIRST_ROWS` at once),
        then yield to the event loop: the budget holds on a slow or loaded machine, where a fixed number of
        rows does not."""
        if serial != self._serial:
            return  # a newer result list replaced this one
        rows = self._rows
        deadline = time.perf_counter() + APPEND_BUDGET_S
        i = start
        while i < len(rows):
            r = rows[i]
            if i == self.divider_row:
                self.appendRow(self._divider())
            tip = hit_tooltip(r.hit)
            row_texts = texts[i]
            mark = r.mark
            style = _STYLES.get(mark)
            items = []
            for col, (_name, raw, _text) in enumerate(COLUMNS):
                item = QStandardItem(row_texts[col])
                item.setData(raw(r), SORT_ROLE)
                item.setFlags(_ITEM_FLAGS)
                item.setToolTip(tip)
                if mark:
                    item.setData(mark, MARK_ROLE)
                    if style is not None:
                        style(item)
                if col in _RIGHT:
                    item.setTextAlignment(_ALIGN_RIGHT)
                items.append(item)
            first = items[0]  # the row's own data lives in its first cell (see ResultsView.hit_at)
            first.setData(i, ROW_ROLE)
            first.setData(mark, MARK_ROLE)  # the proxy filters on column 0
            v = rel.relevance(r.hit)
            if v is not None and mark != "reference":
                items[COL["Relevance"]].setBackground(_bar(v))
            self.appendRow(items)
            i += 1
            if i >= FIRST_ROWS and time.perf_counter() > deadline:
                break
        if i < len(rows):
            QTimer.singleShot(0, lambda nxt=i: self._append(texts, nxt, serial))

    @property
    def complete(self) -> bool:
        """Every row of the current list is in the model (long lists arrive in chunks)."""
        return self.rowCount() == len(self._rows) + (self.divider_row is not None)

    def _divider(self) -> list[QStandardItem]:
        items = []
        for col in range(len(COLUMNS)):
            item = QStandardItem(DIVIDER_TEXT if col == 0 else "")
            item.setFlags(Qt.ItemFlag.NoItemFlags)  # never current, never selected: ↑/↓ skip it
            item.setData(-1, ROW_ROLE)
            item.setData("divider", MARK_ROLE)
            item.setForeground(WEAK_COLOR)
            f = QFont()
            f.setItalic(True)
            item.setFont(f)
            items.append(item)
        return items

    def pin_reference_for_sort(self, column: int, ascending: bool) -> None:
        """Give the pinned reference the sort value that keeps it on top when sorting by ``column``."""
        if self.reference is None or column < 0 or self.rowCount() == 0:
            return
        value = _FIRST[ascending] if column in TEXT_COLUMNS else _FIRST_NUM[ascending]
        self.item(0, column).setData(value, SORT_ROLE)

    def hits(self) -> list[Hit]:
        """The hits in rank order (good, then weaker), without the pinned reference."""
        return [r.hit for r in self._rows if r.mark != "reference"]

    def hit(self, row: int) -> Hit | None:
        """The hit of ``row`` (a :data:`ROW_ROLE` value), ``None`` for the divider."""
        return self._rows[row].hit if row is not None and 0 <= row < len(self._rows) else None

    def row_of(self, path: str) -> int | None:
        """The model row showing ``path`` (rows count the pinned reference and the divider)."""
        for r in range(self.rowCount()):
            i = self.index(r, 0).data(ROW_ROLE)
            if i is not None and i >= 0 and self._rows[i].hit.path == path:
                return r
        return None

    def mark(self, row: int) -> str:
        return self._rows[row].mark if row is not None and 0 <= row < len(self._rows) else ""

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list", "text/plain"]

    def mimeData(self, indexes) -> QMimeData:
        rows = sorted({i.siblingAtColumn(0).data(ROW_ROLE) for i in indexes if i.isValid()} - {None, -1})
        return file_mime([self._rows[r].hit.path for r in rows if 0 <= r < len(self._rows)])

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction
