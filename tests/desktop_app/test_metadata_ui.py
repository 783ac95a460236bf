"""Metadata in the app (offscreen Qt, tiny random model): the search mode switch, the Description and
Category columns, the details panel, the category filter and the UCS category browser.

The library holds three WAVs: one with a ``bext`` description and an iXML ``USER`` block (CatID, keywords,
library, designer), one named in UCS style (``RAINMetl_…``) and one that says nothing about itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from desktop_app.app import EarshotApp
from desktop_app.results_model import COL
from engine import ucs
from engine.indexing import Indexer
from engine.library import Library
from tests import metadata_fixtures as mf
from tests.desktop_app.conftest import search

DOOR_DESCRIPTION = "Heavy wooden front door slams shut"


@pytest.fixture(scope="module")
def meta_sounds(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("meta") / "Foley"
    user = {
        "CATID": "DOORWood",
        "KEYWORDS": "door, slam, wood",
        "LIBRARY": "Foley Essentials",
        "DESIGNER": "Jane Doe",
    }
    mf.write_wav(
        root / "door_take1.wav",
        [
            mf.chunk(b"bext", mf.bext_payload(DOOR_DESCRIPTION, originator="Recorder")),
            mf.chunk(b"iXML", mf.ixml_document(user=user).encode("utf-8")),
        ],
        dur_s=1.5,
    )
    mf.write_wav(root / "RAINMetl_Tin roof downpour_JD_Storms.wav", dur_s=1.5)
    mf.write_wav(root / "take_07.wav", dur_s=1.5)
    return root


@pytest.fixture(scope="module")
def meta_indexed(tmp_path_factory, bundle_dir, meta_sounds) -> Path:
    lib_dir = tmp_path_factory.mktemp("meta_indexed") / "lib"
    with Library(lib_dir, bundle_dir) as lib:
        summary = Indexer(lib).run([meta_sounds])
    assert summary.new == 3 and summary.failed == 0
    return lib_dir


@pytest.fixture
def app(make_app, meta_indexed, tmp_path) -> EarshotApp:
    lib = tmp_path / "lib"
    shutil.copytree(meta_indexed, lib)
    return make_app(lib, settings=tmp_path / "meta.ini")


def names(app: EarshotApp) -> list[str]:
    return [Path(h.path).name for h in app.model.hits()]


def row_of(app: EarshotApp, name: str) -> int:
    return next(i for i, h in enumerate(app.model.hits()) if Path(h.path).name == name)


def cell(app: EarshotApp, row: int, col: str, role=Qt.ItemDataRole.DisplayRole):
    """The cell of the ``row``-th hit (model rows also hold the "weaker matches" divider)."""
    return app.model.index(app.model.row_of(app.model.hits()[row].path), COL[col]).data(role)


def select(app: EarshotApp, name: str) -> None:
    res = app.window.results
    row = next(
        r
        for r in range(res.proxy.rowCount())
        if (h := res.hit_at(res.proxy.index(r, 0))) is not None and Path(h.path).name == name
    )
    res.select_row(row)


def test_search_mode_switch_persists(app, make_app, tmp_path, qtbot) -> None:
    bar = app.window.search_bar
    assert bar.mode() == "both" and app.search.mode == "both"
    assert (
        bar.mode_actions["both"].isChecked() and bar.mode_actions["content"].shortcut().toString() == "Ctrl+2"
    )
    assert bar.mode_actions["keywords"] in app.window.search_menu.actions()
    search(qtbot, app, "slams")
    # Both: every file by sound (the tiny model ranks them all), the keyword match fused to the top.
    assert len(names(app)) == 3 and names(app)[0] == "door_take1.wav"
    assert "sound + keywords" in app.window.results_label.text()

    bar.mode_actions["keywords"].trigger()  # what the "Keywords" button and Ctrl+3 do
    assert app.search.mode == "keywords" and app.settings.search_mode == "keywords"
    assert names(app) == ["door_take1.wav"]  # re-run at once: only the file whose metadata says so
    assert "1 good match for “slams” · keywords" in app.window.results_label.text()
    assert "category:" in bar.edit.placeholderText()
    search(qtbot, app, "downpour")  # words of a UCS file name
    assert names(app) == ["RAINMetl_Tin roof downpour_JD_Storms.wav"]

    bar.mode_actions["content"].trigger()
    assert app.search.mode == "content" and len(names(app)) == 3
    assert app.window.results_label.text().endswith("ms") and "· sound ·" in app.window.results_label.text()
    # Back in history re-runs the older query in the current mode.
    app.window.act_back.trigger()
    assert app.search.current.text == "slams" and len(names(app)) == 3

    app.shutdown()
    again = make_app(tmp_path / "lib", settings=tmp_path / "meta.ini")
    assert again.settings.search_mode == "content" and again.window.search_bar.mode() == "content"
    assert again.search.mode == "content" and again.window.search_bar.mode_actions["content"].isChecked()


def test_metadata_columns_tooltips_and_details(app, qtbot) -> None:
    w = app.window
    search(qtbot, app, "door")
    door, rain, plain = (
        row_of(app, n) for n in ("door_take1.wav", "RAINMetl_Tin roof downpour_JD_Storms.wav", "take_07.wav")
    )
    assert (
        cell(app, door, "Description") == DOOR_DESCRIPTION and cell(app, door, "Category") == "DOORS › WOOD"
    )
    assert cell(app, rain, "Description") == "Tin roof downpour"  # the UCS FXName stands in
    assert cell(app, rain, "Category") == "RAIN › METAL"
    assert cell(app, plain, "Description") == "" and cell(app, plain, "Category") == ""
    assert not w.results.isColumnHidden(COL["Description"]) and not w.results.isColumnHidden(COL["Category"])
    tip = cell(app, door, "Name", Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith(app.model.hits()[door].path) and DOOR_DESCRIPTION in tip and "(DOORWood)" in tip
    # Sorting by Category puts the empty one first.
    w.results.sortByColumn(COL["Category"], Qt.SortOrder.AscendingOrder)
    assert Path(w.results.hit_at(w.results.proxy.index(0, 0)).path).name == "take_07.wav"
    w.results.sortByColumn(-1, Qt.SortOrder.AscendingOrder)

    # The details panel follows the selection.
    panel = w.details
    assert panel.isVisible() and panel.rows == [] and not panel.category_button.isVisible()
    select(app, "door_take1.wav")
    rows = dict(panel.rows)
    assert panel.title.text() == "door_take1.wav" and rows["Description"] == DOOR_DESCRIPTION
    assert rows["Keywords"] == "door, slam, wood" and rows["Library"] == "Foley Essentials"
    assert rows["Designer"] == "Jane Doe" and rows["CatID"] == "DOORWood"
    assert rows["UCS"] == ucs.lookup("DOORWood").explanation
    assert DOOR_DESCRIPTION in panel.body.text()
    assert panel.category_button.isVisible() and panel.category_button.text() == "Only DOORS › WOOD"
    select(app, "take_07.wav")
    assert (
        dict(panel.rows)["Metadata"] == "none embedded in this file" and not panel.category_button.isVisible()
    )
    # "Only DOORS › WOOD" filters by the CatID.
    select(app, "door_take1.wav")
    panel.category_button.click()
    assert w.filters.category.text() == "DOORWood" and names(app) == ["door_take1.wav"]

    # Results without metadata: the two columns hide; the panel can be switched off (and is remembered).
    w.filters.clear()
    w.search_bar.mode_actions["keywords"].trigger()
    search(qtbot, app, "take_07")
    assert names(app) == ["take_07.wav"]
    assert w.results.isColumnHidden(COL["Description"]) and w.results.isColumnHidden(COL["Category"])
    w.act_details.trigger()
    assert not panel.isVisible() and app.settings.show_details is False


def test_category_filter_box(app, qtbot) -> None:
    f = app.window.filters
    completer = f.category.completer()
    assert completer is not None  # the UCS list arrived from the background task
    assert completer.model().rowCount() == len(ucs.categories()) + len(ucs.ucs_table())
    completer.setCompletionPrefix("doorw")
    assert completer.currentCompletion() == "DOORWood"  # inserted: the CatID, not the popup text
    assert "DOORS › WOOD" in completer.completionModel().index(0, 0).data()

    search(qtbot, app, "rain on a tin roof")
    assert len(names(app)) == 3
    QTest.keyClicks(f.category, "RAIN")
    QTest.keyClick(f.category, Qt.Key.Key_Return)
    assert app.search.filters.engine.category == "RAIN"
    assert names(app) == ["RAINMetl_Tin roof downpour_JD_Storms.wav"]
    f.category.clear()  # the clear button: at once, no Enter needed
    assert app.search.filters.engine.category is None and len(names(app)) == 3
    f.set_category("doorwood")  # CatIDs match in any case
    assert names(app) == ["door_take1.wav"]
    f.set_category("WEAPONS")  # a category no file has
    assert names(app) == [] and "with these filters" in app.window.results_label.text()
    f.clear()
    assert f.category.text() == "" and len(names(app)) == 3
    # "Find similar" honours the category filter too.
    plain = app.model.hits()[row_of(app, "take_07.wav")].path
    f.set_category("DOORS")
    app.search.find_similar(plain)
    assert app.search.current.kind == "similar" and names(app) == ["door_take1.wav"]


def test_category_browser(app, qtbot) -> None:
    w = app.window
    search(qtbot, app, "rain")
    w.filters.set_category("RAINMetl")
    w.act_categories.trigger()
    b = app.categories.browser
    assert b is not None and b.isVisible()
    qtbot.waitUntil(b.isActiveWindow, timeout=3000)
    tree = b.tree.model()
    # Only the categories this library has files in, with their counts.
    assert b.show_all.isVisible() and not b.tree.isColumnHidden(1)
    shown = {
        tree.index(r, 0).data(): (tree.index(r, 1).data(), [tree.index(c, 0, tree.index(r, 0)).data()
                                                            for c in range(tree.rowCount(tree.index(r, 0)))])
        for r in range(tree.rowCount())
    }
    assert shown == {"DOORS": ("1", ["WOOD"]), "RAIN": ("1", ["METAL"])}
    b.show_all.setChecked(True)  # every UCS category
    tree = b.tree.model()
    assert tree.rowCount() == len(ucs.categories())
    assert sum(tree.rowCount(tree.index(r, 0)) for r in range(tree.rowCount())) == len(ucs.ucs_table()) == 753
    b.show_value("RAINMetl")
    current = b.tree.currentIndex()  # opened on the current filter
    assert current.data() == "METAL" and current.parent().data() == "RAIN"
    assert "Rain on a metal surface" in b.info.text()

    # The search box matches explanations and synonyms: "barn" is a synonym of DOORWood.
    QTest.keyClicks(b.search, "barn")
    shown = b.visible_values()
    assert "DOORWood" in shown and "DOORS" in shown and len(shown) < 40
    assert all(v in ucs.categories() or "barn" in ucs_text(v) for v in shown)
    b.show_value("DOORWood")
    assert b.search.text() == "" and b.tree.currentIndex().data() == "WOOD"
    assert "barn" in b.info.text() and ucs.lookup("DOORWood").explanation in b.info.text()
    b.choose_button.click()
    assert w.filters.category.text() == "DOORWood" and names(app) == ["door_take1.wav"]

    # With the keyboard: type, Enter takes the first match; ↓ into the tree, Enter on a whole category.
    QTest.keyClicks(b.search, "downpour")
    first = b.tree.currentIndex()
    assert first.parent().isValid() and "downpour" in ucs_text(first.siblingAtColumn(2).data())
    QTest.keyClick(b.search, Qt.Key.Key_Return)
    assert w.filters.category.text() == first.siblingAtColumn(2).data()
    b.search.clear()
    QTest.keyClicks(b.search, "rain")
    QTest.keyClick(b.search, Qt.Key.Key_Down)
    assert b.tree.hasFocus()
    rain = b.tree.model().match(b.tree.model().index(0, 0), Qt.ItemDataRole.DisplayRole, "RAIN", 1)[0]
    b.tree.setCurrentIndex(rain)
    QTest.keyClick(b.tree, Qt.Key.Key_Return)
    assert w.filters.category.text() == "RAIN" and names(app) == ["RAINMetl_Tin roof downpour_JD_Storms.wav"]
    b.any_button.click()
    assert w.filters.category.text() == "" and len(names(app)) == 3
    # Opening it again reuses the same dialog and model.
    w.filters.browse.click()
    assert app.categories.browser is b and b.isVisible()


def ucs_text(cat_id: str) -> str:
    row = ucs.lookup(cat_id)
    return " ".join((row.cat_id, row.category, row.subcategory, row.explanation, *row.synonyms)).lower()
