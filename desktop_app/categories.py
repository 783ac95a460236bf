"""The UCS category filter: the category list (read off the GUI thread), its Qt models and the browser.

:class:`CategoryController` loads the 753 UCS CatIDs once in the background (:func:`load_rows`), then builds
two ``QStandardItemModel`` s on the GUI thread: a flat one for the filter box's completer (CatIDs and
category names) and a two-level tree (category → subcategory) for :class:`CategoryBrowser`. Choosing a
category sets the filters panel's category, which re-runs the search through ``FiltersPanel.changed``.

A category row filters by the category name (``DOORS``: every door subcategory), a subcategory row by its
CatID (``DOORWood``), matching :attr:`engine.search.Filters.category`.

Once the library's category counts are known (:func:`engine.browse.category_counts`, read in the
background after opening and after indexing), the tree shows how many files each category holds and
leaves out the categories the library lacks (a check box in the browser shows them all).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel

from desktop_app.tasks import TaskRunner
from desktop_app.views.category_browser import CategoryBrowser
from desktop_app.views.main_window import MainWindow
from engine.browse import CategoryCounts

log = logging.getLogger(__name__)

VALUE_ROLE = Qt.ItemDataRole.UserRole  # what the category filter gets: a CatID or a category name
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 1  # lower-case text the browser's search box matches
INFO_ROLE = Qt.ItemDataRole.UserRole + 2  # the explanation and synonyms shown under the tree
COUNT_ROLE = Qt.ItemDataRole.UserRole + 3  # files of the library in this category
_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
_SEP = " › "


@dataclass(frozen=True)
class CategoryRow:
    """One UCS CatID, flattened for the models."""

    cat_id: str
    category: str
    subcategory: str
    explanation: str
    synonyms: tuple[str, ...]


def load_rows() -> list[CategoryRow]:
    """Every UCS CatID in the official order (reads the bundled UCS list: call off the GUI thread)."""
    from engine import ucs

    tree = ucs.categories()
    rows = []
    for category, subs in tree.items():
        for subcategory, cat_id in subs.items():
            info = ucs.lookup(cat_id)
            rows.append(
                CategoryRow(
                    cat_id,
                    category,
                    subcategory,
                    info.explanation if info else "",
                    info.synonyms if info else (),
                )
            )
    return rows


def row_info(row: CategoryRow) -> str:
    text = f"{row.category}{_SEP}{row.subcategory} · CatID {row.cat_id}"
    if row.explanation:
        text += f"\n{row.explanation}"
    if row.synonyms:
        text += "\nAlso: " + ", ".join(row.synonyms)
    return text


def _item(text: str, value: str, search: str, info: str) -> QStandardItem:
    item = QStandardItem(text)
    item.setFlags(_FLAGS)
    item.setData(value, VALUE_ROLE)
    item.setData(search, SEARCH_ROLE)
    item.setData(info, INFO_ROLE)
    return item


def _files(n: int) -> str:
    return f"{n:,} file{'s' if n != 1 else ''}"


def build_tree_model(
    rows: list[CategoryRow],
    parent: QObject | None = None,
    counts: CategoryCounts | None = None,
    *,
    show_empty: bool = False,
) -> QStandardItemModel:
    """Three columns (name, files, CatID); categories at the top level with their subcategories as
    children. Every item carries :data:`VALUE_ROLE`, :data:`SEARCH_ROLE` and :data:`INFO_ROLE`.

    ``counts`` (:func:`engine.browse.category_counts`): shown beside each row, and rows without files
    are left out unless ``show_empty``. ``None``: every category, no counts."""
    model = QStandardItemModel(0, 3, parent)
    model.setHorizontalHeaderLabels(["Category", "Files", "CatID"])
    groups: dict[str, list[CategoryRow]] = {}
    for r in rows:
        groups.setdefault(r.category, []).append(r)
    by_id = {k.lower(): v for k, v in (counts.by_cat_id if counts else {}).items()}
    by_cat = {k.lower(): v for k, v in (counts.by_category if counts else {}).items()}
    root = model.invisibleRootItem()
    for category, subs in groups.items():
        n_cat = by_cat.get(category.lower(), 0)
        if counts is not None and not show_empty and n_cat == 0:
            continue
        names = ", ".join(r.subcategory for r in subs)
        info = f"{category}: {len(subs)} subcategor{'y' if len(subs) == 1 else 'ies'}\n{names}"
        if counts is not None:
            info = f"{category}: {_files(n_cat)} in this library\n{names}"
        top = _item(category, category, category.lower(), info)
        top_n = _item(f"{n_cat:,}" if counts is not None else "", category, category.lower(), info)
        top_n.setData(n_cat, COUNT_ROLE)
        top_id = _item("", category, category.lower(), info)
        for r in subs:
            n = by_id.get(r.cat_id.lower(), 0)
            if counts is not None and not show_empty and n == 0:
                continue
            search = " ".join((r.cat_id, r.category, r.subcategory, r.explanation, *r.synonyms)).lower()
            info = row_info(r) + (f"\n{_files(n)} in this library" if counts is not None else "")
            n_item = _item(f"{n:,}" if counts is not None else "", r.cat_id, search, info)
            n_item.setData(n, COUNT_ROLE)
            top.appendRow(
                [_item(r.subcategory, r.cat_id, search, info), n_item, _item(r.cat_id, r.cat_id, search, info)]
            )
        root.appendRow([top, top_n, top_id])
    return model


def build_completion_model(rows: list[CategoryRow], parent: QObject | None = None) -> QStandardItemModel:
    """A flat list for the filter box's completer: each category name, then each CatID. Completion
    matches and inserts :data:`VALUE_ROLE` (``DOORWood``); the popup shows ``DOORWood — DOORS › WOOD``."""
    model = QStandardItemModel(parent)
    seen: set[str] = set()
    for r in rows:
        if r.category not in seen:
            seen.add(r.category)
            model.appendRow(_item(f"{r.category} (all)", r.category, r.category.lower(), ""))
    for r in rows:
        model.appendRow(_item(f"{r.cat_id} — {r.category}{_SEP}{r.subcategory}", r.cat_id, "", ""))
    return model


class CategoryController(QObject):
    """Feeds the filters panel's category box and owns the category browser (built on first use).

    Connects the window's "Categories…" action and button, and the details panel's category button.
    """

    def __init__(self, runner: TaskRunner, window: MainWindow, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.window = window
        self.filters = window.filters
        self.rows: list[CategoryRow] | None = None
        self.counts: CategoryCounts | None = None
        self.tree: QStandardItemModel | None = None
        self.browser: CategoryBrowser | None = None
        self.filters.browse_categories.connect(self.show_browser)
        window.act_categories.triggered.connect(self.show_browser)
        window.details.category_chosen.connect(self.choose)

    def load(self) -> None:
        """Read the UCS list in the background; the completer appears when it is there."""
        if self.rows is None:
            self.runner.submit(
                load_rows, self._loaded, lambda exc: log.warning("UCS list: %s", exc), group="ucs"
            )

    def _loaded(self, rows: list[CategoryRow]) -> None:
        if self.rows is not None:
            return
        self.rows = rows
        self.filters.set_category_completions(build_completion_model(rows, self), VALUE_ROLE)

    def load_counts(self, lib) -> None:
        """Count the library's files per category in the background (after opening, after indexing)."""
        if lib is None:
            return
        from engine.browse import category_counts

        self.runner.submit(
            lambda: category_counts(lib),
            self.set_counts,
            lambda exc: log.warning("category counts: %s", exc),
            group="ucs-counts",
        )

    def set_counts(self, counts: CategoryCounts | None) -> None:
        self.counts = counts
        if self.browser is not None:
            self._rebuild()

    def _rebuild(self) -> None:
        show_all = self.browser.show_all.isChecked() if self.browser is not None else False
        old = self.tree
        self.tree = build_tree_model(self.rows or [], self, self.counts, show_empty=show_all)
        if self.browser is not None:
            self.browser.set_source(self.tree)
            self.browser.set_counted(self.counts is not None)
        if old is not None:
            old.deleteLater()

    def show_browser(self) -> None:
        if self.rows is None:
            self._loaded(load_rows())  # asked before the background read finished: a ~0.1 s wait
        if self.browser is None:
            self.tree = build_tree_model(self.rows, self, self.counts)
            self.browser = CategoryBrowser(self.tree, VALUE_ROLE, SEARCH_ROLE, INFO_ROLE, self.window)
            self.browser.set_counted(self.counts is not None)
            self.browser.chosen.connect(self.choose)
            self.browser.show_all.toggled.connect(lambda _on: self._rebuild())
        self.browser.show_value(self.filters.category_value())
        self.browser.show()
        self.browser.raise_()
        self.browser.activateWindow()

    def choose(self, value: str) -> None:
        """Filter the results by ``value`` (a CatID or a category name; ``''`` clears the filter)."""
        self.filters.set_category(value)
