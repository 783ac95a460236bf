"""The category browser: UCS categories → subcategories, a search box over names, explanations and
synonyms, and what the selected one means. Enter, a double click or the button chooses it."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QObject, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QKeyEvent, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTreeView,
    QVBoxLayout,
    QWidget,
)


class CategoryBrowser(QDialog):
    chosen = Signal(str)  # a CatID or a category name; '' for "any category"

    def __init__(
        self,
        model: QStandardItemModel,
        value_role: int,
        search_role: int,
        info_role: int,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Categories")
        self.resize(560, 620)
        self.value_role, self.info_role = value_role, info_role
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(model)
        self.proxy.setFilterRole(search_role)
        self.proxy.setFilterKeyColumn(0)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setRecursiveFilteringEnabled(True)  # a matching subcategory keeps its category
        self.proxy.setAutoAcceptChildRows(True)  # a matching category shows all its subcategories

        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Find a category: a name, CatID or word, e.g. barn, whoosh, metal")
        self.search.setClearButtonEnabled(True)
        self.tree = QTreeView(self)
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)  # 835 rows: constant-time layout
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setAlternatingRowColors(True)
        head = self.tree.header()
        head.setStretchLastSection(False)
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        head.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
        self.tree.setColumnWidth(2, 110)
        self.show_all = QCheckBox("Also categories this library has no files in", self)
        self.show_all.setVisible(False)
        self.empty_hint = QLabel(
            "No file of this library names a UCS category yet (in its metadata or a UCS file name such as "
            "DOORWood_Creak Open_JD_Barn.wav). Tick the box to browse every UCS category.",
            self,
        )
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setVisible(False)
        self.info = QLabel("", self)
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        info_box = QScrollArea(self)  # some CatIDs list a hundred synonyms
        info_box.setWidget(self.info)
        info_box.setWidgetResizable(True)
        info_box.setFrameShape(QFrame.Shape.NoFrame)
        info_box.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        info_box.setFixedHeight(self.fontMetrics().lineSpacing() * 7)
        self.choose_button = QPushButton("Show only this category", self)
        self.any_button = QPushButton("Any category", self)
        self.close_button = QPushButton("Close", self)
        for b in (self.choose_button, self.any_button, self.close_button):
            b.setAutoDefault(False)  # Enter belongs to the tree and the search box

        buttons = QHBoxLayout()
        buttons.addWidget(self.any_button)
        buttons.addStretch(1)
        buttons.addWidget(self.choose_button)
        buttons.addWidget(self.close_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.search)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.empty_hint)
        lay.addWidget(self.show_all)
        lay.addWidget(info_box)
        lay.addLayout(buttons)

        self.search.textChanged.connect(self._filter)
        self.search.installEventFilter(self)
        self.tree.selectionModel().currentRowChanged.connect(self._current_changed)
        self.tree.activated.connect(self._choose)
        self.choose_button.clicked.connect(lambda: self._choose(self.tree.currentIndex()))
        self.any_button.clicked.connect(lambda: self.chosen.emit(""))
        self.close_button.clicked.connect(self.close)
        self._current_changed(QModelIndex())

    def set_source(self, model: QStandardItemModel) -> None:
        """Show another category tree (the counts changed), keeping the search text."""
        self.proxy.setSourceModel(model)
        self._filter(self.search.text())

    def set_counted(self, counted: bool) -> None:
        """With file counts: the Files column and the "show all" box appear (and a hint when the library
        has no categorised file at all)."""
        self.tree.setColumnHidden(1, not counted)
        self.show_all.setVisible(counted)
        source = self.proxy.sourceModel()
        self.empty_hint.setVisible(counted and not self.show_all.isChecked() and source.rowCount() == 0)

    # -- display --------------------------------------------------------------------------------

    def show_value(self, value: str) -> None:
        """Select the row whose value is ``value`` (case-insensitively), e.g. the current filter."""
        self.search.clear()
        if not value:
            return
        hits = self.proxy.match(
            self.proxy.index(0, 0),
            self.value_role,
            value,
            1,
            Qt.MatchFlag.MatchFixedString | Qt.MatchFlag.MatchRecursive,
        )
        if hits:
            self.tree.setCurrentIndex(hits[0])
            self.tree.scrollTo(hits[0], QAbstractItemView.ScrollHint.PositionAtCenter)

    def visible_values(self) -> list[str]:
        """The values of every row the search leaves (categories and subcategories), in display order."""
        out: list[str] = []

        def walk(parent: QModelIndex) -> None:
            for r in range(self.proxy.rowCount(parent)):
                idx = self.proxy.index(r, 0, parent)
                out.append(idx.data(self.value_role))
                walk(idx)

        walk(QModelIndex())
        return out

    def _filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())
        if text.strip():
            self.tree.expandAll()
            first = self.proxy.index(0, 0)
            child = self.proxy.index(0, 0, first)
            self.tree.setCurrentIndex(child if child.isValid() else first)
        else:
            self.tree.collapseAll()

    def _current_changed(self, current: QModelIndex, previous: QModelIndex | None = None) -> None:
        self.info.setText(current.data(self.info_role) if current.isValid() else "Pick a category.")
        self.choose_button.setEnabled(current.isValid())

    def _choose(self, index: QModelIndex) -> None:
        if index.isValid():
            self.chosen.emit(index.siblingAtColumn(0).data(self.value_role))

    # -- keys: ↓ from the search box into the tree, Enter there chooses -------------------------

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.search and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Down, Qt.Key.Key_PageDown):
                self.tree.setFocus()
                return True
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._choose(self.tree.currentIndex())
                return True
        return super().eventFilter(obj, event)
