"""The library view: folders (file counts, last indexed), re-index, remove, and the files that failed."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_app.formatting import fmt_when
from desktop_app.results_model import short_folder

REASONS = {
    "missing": "missing",
    "unreadable": "cannot be read",
    "empty": "empty",
    "not_audio": "not audio",
    "corrupt": "damaged",
    "decode_error": "cannot be decoded",
}


def short_path(path: str, roots: list[str]) -> str:
    """A failed file's path relative to its library folder (``Library/sub/file.wav``)."""
    p = Path(path)
    return str(Path(short_folder(str(p.parent), roots)) / p.name)


def _table(headers: list[str], parent: QWidget) -> QTableWidget:
    t = QTableWidget(0, len(headers), parent)
    t.setHorizontalHeaderLabels(headers)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.verticalHeader().hide()
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    t.horizontalHeader().setStretchLastSection(True)
    t.setWordWrap(False)
    t.setAlternatingRowColors(True)
    return t


class LibraryDialog(QDialog):
    add_folder = Signal()
    reindex = Signal(object, bool)  # list of folders (None: all), retry failed files
    remove_folder = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Library")
        self.resize(820, 560)
        lay = QVBoxLayout(self)
        self.summary = QLabel("", self)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.summary)
        lay.addWidget(QLabel("<b>Folders</b>", self))
        self.roots = _table(["Folder", "Files", "Last indexed"], self)
        self.roots.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.roots.setColumnWidth(0, 480)
        lay.addWidget(self.roots, 2)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add folder…", self)
        self.reindex_button = QPushButton("Re-index selected", self)
        self.reindex_all_button = QPushButton("Re-index all", self)
        self.remove_button = QPushButton("Remove from library", self)
        self.retry = QCheckBox("retry failed files", self)
        for w in (self.add_button, self.reindex_button, self.reindex_all_button, self.remove_button):
            row.addWidget(w)
        row.addWidget(self.retry)
        row.addStretch(1)
        lay.addLayout(row)
        self.failed_label = QLabel("<b>Files that could not be indexed</b>", self)
        lay.addWidget(self.failed_label)
        self.failed = _table(["File", "Problem", "Details"], self)
        self.failed.setColumnWidth(0, 380)
        self.failed.setColumnWidth(1, 110)
        lay.addWidget(self.failed, 3)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.add_button.clicked.connect(self.add_folder)
        self.reindex_button.clicked.connect(
            lambda: self.reindex.emit(self.selected_roots(), self.retry.isChecked())
        )
        self.reindex_all_button.clicked.connect(lambda: self.reindex.emit(None, self.retry.isChecked()))
        self.remove_button.clicked.connect(self._remove)
        self.roots.itemSelectionChanged.connect(self._selection_changed)
        self._selection_changed()

    def selected_roots(self) -> list[str]:
        rows = sorted({i.row() for i in self.roots.selectedIndexes()})
        return [self.roots.item(r, 0).text() for r in rows]

    def _selection_changed(self) -> None:
        has = bool(self.selected_roots())
        self.reindex_button.setEnabled(has)
        self.remove_button.setEnabled(has)

    def _remove(self) -> None:
        for root in self.selected_roots():
            self.remove_folder.emit(root)

    def set_busy(self, busy: bool) -> None:
        for b in (self.reindex_button, self.reindex_all_button, self.remove_button):
            b.setEnabled(not busy and (b is self.reindex_all_button or bool(self.selected_roots())))

    def set_status(self, status: dict) -> None:
        """Show ``engine.status.library_status(...)`` (with every failed file)."""
        b = status.get("bundle", {})
        self.summary.setText(
            f"{status.get('files', 0):,} files indexed ({status.get('audio_hours', 0.0):.1f} h of audio), "
            f"{status.get('errors', 0):,} failed · model {b.get('name', '?')} {b.get('version', '')} · "
            f"library {status.get('library', '')}"
        )
        selected = set(self.selected_roots())
        self.roots.setRowCount(0)
        for r in status.get("roots", []):
            i = self.roots.rowCount()
            self.roots.insertRow(i)
            self.roots.setItem(i, 0, QTableWidgetItem(r["path"]))
            n = QTableWidgetItem(f"{r['files']:,}")
            n.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.roots.setItem(i, 1, n)
            self.roots.setItem(i, 2, QTableWidgetItem(fmt_when(r.get("last_indexed_at"))))
            if r["path"] in selected:
                self.roots.selectRow(i)
        failed = status.get("failed", [])
        roots = [r["path"] for r in status.get("roots", [])]
        self.failed_label.setText(
            f"<b>Files that could not be indexed ({status.get('errors', len(failed)):,})</b>"
        )
        self.failed.setRowCount(0)
        for f in failed:
            i = self.failed.rowCount()
            self.failed.insertRow(i)
            item = QTableWidgetItem(short_path(f["path"], roots))
            item.setToolTip(f["path"])
            item.setData(Qt.ItemDataRole.UserRole, f["path"])
            self.failed.setItem(i, 0, item)
            self.failed.setItem(i, 1, QTableWidgetItem(REASONS.get(f["reason"] or "", f["reason"] or "")))
            msg = QTableWidgetItem((f["message"] or "").replace(f["path"], Path(f["path"]).name))
            msg.setToolTip(f["message"] or "")
            self.failed.setItem(i, 2, msg)
        self._selection_changed()
