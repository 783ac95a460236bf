"""Issue 12: with an empty search box the results list is the library, sortable by name, folder, length,
rate and date added (the app doubles as a library browser)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

import desktop_app.session
from desktop_app.app import EarshotApp
from desktop_app.results_model import COL
from engine.indexing import Indexer
from engine.library import Library
from tests.desktop_app.conftest import search
from tests.desktop_app.test_pro import LONG_NAME, pro_sounds  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def browse_indexed(tmp_path_factory, bundle_dir, pro_sounds) -> Path:  # noqa: F811
    lib_dir = tmp_path_factory.mktemp("browse_indexed") / "lib"
    with Library(lib_dir, bundle_dir) as lib:
        Indexer(lib).run([pro_sounds])
    return lib_dir


@pytest.fixture
def app(make_app, browse_indexed, tmp_path) -> EarshotApp:
    lib = tmp_path / "lib"
    shutil.copytree(browse_indexed, lib)
    return make_app(lib)


def shown(app: EarshotApp, attr=lambda h: Path(h.path).name) -> list:
    res = app.window.results
    return [attr(res.hit_at(res.proxy.index(r, 0))) for r in range(res.proxy.rowCount())]


def test_empty_box_lists_the_library(app, pro_sounds, qtbot) -> None:  # noqa: F811
    w = app.window
    assert app.search.current.kind == "browse" and w.search_bar.edit.text() == ""
    files = sorted((p.name for p in pro_sounds.rglob("*") if p.is_file()), key=str.lower)
    assert shown(app) == files  # by name
    assert w.results_label.text() == f"All {len(files)} sounds in the library · type to search, click a column to sort"
    res = w.results
    for col in ("Relevance", "Matched by", "Match"):
        assert res.isColumnHidden(COL[col]), col
    for col in ("Name", "Duration", "Rate", "Bits", "Folder", "Added"):
        assert not res.isColumnHidden(COL[col]), col
    assert app.model.index(0, COL["Added"]).data()[:2] == "20"  # a date
    # Sort by each column the issue names.
    for col, attr in (
        ("Duration", lambda h: h.duration_s),
        ("Rate", lambda h: h.sample_rate),
        ("Folder", lambda h: h.folder.lower()),
    ):
        res.sortByColumn(COL[col], Qt.SortOrder.AscendingOrder)
        assert shown(app, attr) == sorted(shown(app, attr)), col
    res.sortByColumn(COL["Name"], Qt.SortOrder.DescendingOrder)
    assert shown(app) == files[::-1]
    # Arrow keys preview listed files like results.
    res.sortByColumn(COL["Name"], Qt.SortOrder.AscendingOrder)
    QTest.keyClick(w.search_bar.edit, Qt.Key.Key_Down)
    assert Path(res.current_hit().path).name == files[0] and app.preview.path == res.current_hit().path
    # Typing searches; clearing the box lists the library again.
    search(qtbot, app, "door")
    assert app.search.current.kind == "text"
    w.search_bar.edit.clear()
    app.search.text_edited("")
    assert app.search.current.kind == "browse" and len(shown(app)) == len(files)


def test_filters_apply_to_the_listing(app, pro_sounds) -> None:  # noqa: F811
    f = app.window.filters
    f.format.setCurrentIndex(f.format.findText("Ogg"))
    assert shown(app) == ["beep.ogg"]
    assert app.window.results_label.text().startswith("1 sound match these filters")
    f.clear()
    f.min_dur.setValue(100.0)
    assert shown(app) == [] and app.window.results_label.text() == "No sounds match these filters"


def test_a_large_library_is_listed_a_page_at_a_time_and_sorted_by_the_engine(app, monkeypatch) -> None:
    monkeypatch.setattr(desktop_app.session, "BROWSE_LIMIT", 3)
    app.search.browse()
    assert len(shown(app)) == 3
    assert "the first 3 by name" in app.window.results_label.text()
    everything = sorted(
        (Path(h.path).name for h in __import__("engine.browse").browse.list_files(app.session.lib).hits),
        key=str.lower,
    )
    assert shown(app) == everything[:3]
    res = app.window.results
    res.sortByColumn(COL["Name"], Qt.SortOrder.DescendingOrder)  # re-listed from the other end
    assert shown(app) == everything[::-1][:3]
    assert "descending" in app.window.results_label.text()
    res.sortByColumn(COL["Duration"], Qt.SortOrder.DescendingOrder)
    assert shown(app, lambda h: Path(h.path).name)[0] == "rain_stereo.wav"  # the longest file of all
    assert app.search.browse_sort == ("duration", True)


def test_listing_follows_indexing(make_app, tmp_path, pro_sounds) -> None:  # noqa: F811
    app = make_app(tmp_path / "new")
    assert app.search.current.kind == "browse" and shown(app) == []
    app.add_folders([str(pro_sounds / "ui")])
    assert sorted(shown(app)) == sorted(["beep.ogg", "door_creak copy.wav", LONG_NAME])
