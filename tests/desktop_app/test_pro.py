"""Issue 16 in the app: a layout that holds, relevance and matched-by, find-similar against its reference,
waveform zoom and channels, bit depth, settings for sound designers, and the smaller items."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QPoint, QPointF, QSize, Qt
from PySide6.QtGui import QGradient, QWheelEvent
from PySide6.QtTest import QTest

import engine.search
from desktop_app.app import EarshotApp
from desktop_app.clips import ExportFolder
from desktop_app.results_model import COL, DIVIDER_TEXT, MARK_ROLE
from desktop_app.views.results_view import NAME_MIN
from desktop_app.views.waveform import grid_step, grid_ticks
from desktop_app.writer import IndexProgress
from engine.indexing import Indexer
from engine.library import Library
from tests import audio_fixtures as af
from tests.desktop_app.conftest import search

LONG_NAME = ("very_long_ucs_style_name_" * 9)[:196] + ".wav"  # 200 characters


@pytest.fixture(scope="module")
def pro_sounds(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pro") / "Library"
    af.write(root / "doors" / "door_creak.wav", af.chirp(300, 900, 2.0, 48000), 48000, "PCM_24")
    af.write(root / "doors" / "door_slam.wav", af.noise(1.0, 44100, 2, "white", seed=3), 44100, "PCM_16")
    af.write(root / "amb" / "rain_stereo.wav", af.noise(6.0, 44100, 2, "pink", seed=4), 44100, "PCM_16")
    af.write(root / "amb" / "hum_6ch.wav", af.tone(120, 1.0, 48000, 6), 48000, "FLOAT")
    af.write(root / "ui" / "beep.ogg", af.tone(1000, 0.5, 44100), 44100, "VORBIS")
    af.write(root / "ui" / LONG_NAME, af.tone(660, 1.5, 44100), 44100, "PCM_16")
    shutil.copy2(root / "doors" / "door_creak.wav", root / "ui" / "door_creak copy.wav")  # an exact duplicate
    return root


@pytest.fixture(scope="module")
def pro_indexed(tmp_path_factory, bundle_dir, pro_sounds) -> Path:
    lib_dir = tmp_path_factory.mktemp("pro_indexed") / "lib"
    with Library(lib_dir, bundle_dir) as lib:
        assert Indexer(lib).run([pro_sounds]).new == 7
    return lib_dir


@pytest.fixture
def app(make_app, pro_indexed, tmp_path) -> EarshotApp:
    lib = tmp_path / "lib"
    shutil.copytree(pro_indexed, lib)
    return make_app(lib)


def shown_rows(app: EarshotApp) -> list[tuple[str, str]]:
    """(name or divider text, mark) of each displayed row, top to bottom."""
    res = app.window.results
    out = []
    for r in range(res.proxy.rowCount()):
        if res.isRowHidden(r):
            continue
        idx = res.proxy.index(r, 0)
        hit = res.hit_at(idx)
        out.append((Path(hit.path).name if hit else idx.data(), idx.data(MARK_ROLE)))
    return out


# -- 3: a layout that holds -------------------------------------------------------------------------


def test_window_keeps_its_size_with_a_long_query_and_a_long_file_name(app, qtbot) -> None:
    w = app.window
    w.resize(1024, 700)
    qtbot.wait(50)
    assert w.size() == QSize(1024, 700)
    long_query = " ".join(["distant rolling thunder over wet hills"] * 8)[:300]
    assert len(long_query) == 300
    search(qtbot, app, long_query)
    qtbot.waitUntil(lambda: app.model.rowCount() > 0, timeout=3000)
    assert w.results_label.is_elided and w.results_label.text().count("distant") > 5
    res = w.results
    res.select_path(next(h.path for h in app.model.hits() if Path(h.path).name == LONG_NAME))
    assert Path(res.current_hit().path).name == LONG_NAME and len(LONG_NAME) == 200
    qtbot.wait(50)
    assert w.transport.name.is_elided and w.details.title.is_elided
    w.act_similar.trigger()  # "similar to <200 characters>" in the box and above the results
    qtbot.wait(50)
    assert w.search_bar.edit.text().endswith(LONG_NAME)
    assert w.size() == QSize(1024, 700)
    assert w.minimumSizeHint().width() <= 1024 and w.minimumSizeHint().height() <= 700


def test_columns_fit_at_1024_without_the_details_panel(app, qtbot) -> None:
    w = app.window
    w.resize(1280, 800)
    assert w.details.isVisible() and w.act_details.isChecked()
    w.resize(1024, 700)  # narrow: the details panel folds away by itself, the setting stays
    assert not w.details.isVisible() and not w.act_details.isChecked() and app.settings.show_details
    w.act_details.trigger()  # Ctrl+I opens it anyway
    assert w.details.isVisible() and app.settings.show_details
    w.act_details.trigger()  # and closes it
    assert not w.details.isVisible() and not app.settings.show_details
    search(qtbot, app, "door")
    qtbot.wait(50)
    res = w.results
    visible = [c for c in range(app.model.columnCount()) if not res.isColumnHidden(c)]
    for name in ("Name", "Duration", "Rate", "Format", "Folder"):
        assert COL[name] in visible
    assert COL["Description"] not in visible and COL["Category"] not in visible  # empty columns hide
    total = sum(res.columnWidth(c) for c in visible)
    assert total <= res.viewport().width() + 1  # everything on screen, no horizontal scrolling
    assert res.columnWidth(COL["Name"]) >= NAME_MIN  # names get the room left over
    w.resize(1600, 900)
    qtbot.wait(50)
    assert sum(res.columnWidth(c) for c in visible) <= res.viewport().width() + 1
    assert res.columnWidth(COL["Name"]) >= 600  # wide window: long names show
    w.act_details.trigger()
    assert w.details.isVisible() and app.settings.show_details


# -- 2 (app side): relevance, matched by, the cut-off --------------------------------------------------


@pytest.fixture
def graded(monkeypatch):
    """Hits graded as the engine will grade them: ``relevance`` 0–100, ``matched_by``, ``is_good_match``."""
    real = engine.search.Searcher.search
    table: dict[str, tuple[float, tuple[str, ...]]] = {}

    def search_(self, query, k=20, filters=None, mode="both"):
        hits = real(self, query, k, filters, mode)
        for i, h in enumerate(hits):
            h.relevance, h.matched_by = table.get(Path(h.path).name, (max(0.0, 20.0 - i), ("sound",)))
        return sorted(hits, key=lambda h: -h.relevance)

    monkeypatch.setattr(engine.search.Searcher, "search", search_)
    monkeypatch.setattr(engine.search, "is_good_match", lambda h: h.relevance >= 50.0, raising=False)
    return table


def test_relevance_matched_by_and_the_weaker_matches_divider(app, graded, qtbot) -> None:
    graded.update(
        {"door_creak.wav": (91.0, ("sound", "name")), "door_slam.wav": (64.4, ("name",))}
    )
    search(qtbot, app, "door")
    rows = shown_rows(app)
    assert rows[:3] == [("door_creak.wav", ""), ("door_slam.wav", ""), (DIVIDER_TEXT, "divider")]
    assert all(mark == "weak" for _, mark in rows[3:]) and len(rows) == 8
    m = app.model
    assert m.index(0, COL["Relevance"]).data() == "91" and m.index(1, COL["Relevance"]).data() == "64"
    brush = m.index(0, COL["Relevance"]).data(Qt.ItemDataRole.BackgroundRole)
    assert brush.gradient() is not None and brush.gradient().type() == QGradient.Type.LinearGradient
    assert m.index(0, COL["Matched by"]).data() == "sound · name" and m.index(1, COL["Matched by"]).data() == "name"
    label = app.window.results_label.text()
    assert label.startswith("2 good matches for “door” · 5 weaker")
    assert not app.window.results.isColumnHidden(COL["Relevance"])
    # ↓ walks over the divider: it is never current.
    res = app.window.results
    res.setFocus()
    res.select_row(1)
    QTest.keyClick(res, Qt.Key.Key_Down)
    assert res.current_hit() is not None and res.currentIndex().data(MARK_ROLE) == "weak"
    # Sorted by a column the divider hides; back in rank order it returns.
    res.sortByColumn(COL["Duration"], Qt.SortOrder.AscendingOrder)
    assert DIVIDER_TEXT not in [n for n, _ in shown_rows(app)]
    res.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
    assert [n for n, _ in shown_rows(app)][2] == DIVIDER_TEXT


def test_nonsense_query_says_no_good_matches(app, graded, qtbot) -> None:
    search(qtbot, app, "xqzvbnm")
    assert app.window.results_label.text().startswith("No good matches for “xqzvbnm” · 7 weaker matches below")
    assert shown_rows(app)[0] == (DIVIDER_TEXT, "divider")


def test_without_engine_grades_every_hit_is_a_result(app, qtbot, monkeypatch) -> None:
    real = engine.search.Searcher.search

    def ungraded(self, *a, **kw):  # hits as an engine without calibration gives them
        hits = real(self, *a, **kw)
        for h in hits:
            h.relevance, h.matched_by = None, []
        return hits

    monkeypatch.setattr(engine.search.Searcher, "search", ungraded)
    search(qtbot, app, "door")
    assert app.window.results_label.text().startswith("7 results for “door”")
    assert app.window.results.isColumnHidden(COL["Relevance"])  # nothing to show: the column hides
    assert DIVIDER_TEXT not in [n for n, _ in shown_rows(app)]


# -- 4: find similar against its reference -----------------------------------------------------------


def test_find_similar_pins_the_reference_and_marks_duplicates(app, qtbot) -> None:
    w = app.window
    search(qtbot, app, "creak")
    w.results.select_path(next(h.path for h in app.model.hits() if h.path.endswith("doors/door_creak.wav")))
    w.act_similar.trigger()
    rows = shown_rows(app)
    assert rows[0] == ("door_creak.wav", "reference")
    assert ("door_creak copy.wav", "duplicate") in rows
    assert app.model.index(0, COL["Matched by"]).data() == "reference"
    assert app.model.index(0, COL["Name"]).data(Qt.ItemDataRole.FontRole).bold()
    assert "1 duplicate" in w.results_label.text()
    assert all(not h.path.endswith("doors/door_creak.wav") for h in app.model.hits())  # not a result
    # The reference stays on top in any sort order.
    for col in ("Name", "Duration", "Rate"):
        for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder):
            w.results.sortByColumn(COL[col], order)
            assert shown_rows(app)[0] == ("door_creak.wav", "reference"), (col, order)
    # ↑/↓ between the reference and the candidates: auditioning one against the other.
    w.results.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
    w.results.setFocus()
    w.results.select_row(1)
    QTest.keyClick(w.results, Qt.Key.Key_Up)
    assert w.results.current_hit().path.endswith("doors/door_creak.wav")
    assert app.preview.path == w.results.current_hit().path
    # Typing ends the "similar" query: the box is no longer italic.
    assert w.search_bar.edit.font().italic()
    QTest.keyClicks(w.search_bar.edit, "x")
    assert not w.search_bar.edit.font().italic()


# -- 5: auditioning -----------------------------------------------------------------------------------


def test_waveform_zoom_grid_and_channel_lanes(app, qtbot) -> None:
    w = app.window
    wave = w.waveform
    search(qtbot, app, "rain")
    w.results.select_path(next(h.path for h in app.model.hits() if h.path.endswith("rain_stereo.wav")))
    qtbot.waitUntil(lambda: wave.span_s > 5.9 and wave.channels == 2, timeout=3000)
    assert wave.channel_peaks.shape[0] == 2 and wave.view == pytest.approx((0.0, wave.span_s))
    full = wave.view[1] - wave.view[0]
    # + in the results list zooms in (around the playhead), - zooms out, the wheel zooms around the mouse.
    w.results.setFocus()
    QTest.keyClick(w.results, Qt.Key.Key_Plus)
    QTest.keyClick(w.results, Qt.Key.Key_Plus)
    assert wave.zoomed and (wave.view[1] - wave.view[0]) == pytest.approx(full / 4)
    QTest.keyClick(w.results, Qt.Key.Key_Minus)
    assert (wave.view[1] - wave.view[0]) == pytest.approx(full / 2)
    w.act_zoom_fit.trigger()
    assert not wave.zoomed
    x = wave.width() * 0.75
    anchor = wave._x_to_t(x)
    ev = QWheelEvent(
        QPointF(x, 10), wave.mapToGlobal(QPointF(x, 10)), QPoint(0, 0), QPoint(0, 120),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )
    wave.wheelEvent(ev)
    assert (wave.view[1] - wave.view[0]) == pytest.approx(full / 2)
    assert wave._x_to_t(x) == pytest.approx(anchor, abs=1e-6)  # the point under the mouse stays put
    wave.grab()  # paints with the grid and two lanes
    # A six-channel file gets six lanes.
    w.results.select_path(next(h.path for h in app.model.hits() if h.path.endswith("hum_6ch.wav")))
    qtbot.waitUntil(lambda: wave.channels == 6, timeout=3000)
    wave.grab()


def test_grid_steps_are_round_and_readable() -> None:
    assert grid_step(240.0, 1000) == 30  # a 4-minute file on 1000 px: a line every 30 s
    assert grid_step(2.0, 1000) == 0.2
    ticks = grid_ticks(1.05, 3.0, 600)
    assert ticks[0] >= 1.05 and ticks[-1] <= 3.0
    step = ticks[1] - ticks[0]
    assert all(abs((b - a) - step) < 1e-6 for a, b in zip(ticks, ticks[1:], strict=False))
    assert step / 1.95 * 600 >= 70  # lines at least 70 px apart
    assert grid_step(1.95, 600) == pytest.approx(step)


def test_bit_depth_column_and_filter(app, qtbot) -> None:
    f = app.window.filters
    search(qtbot, app, "sound")
    bits = {Path(h.path).name: app.model.index(app.model.row_of(h.path), COL["Bits"]).data() for h in app.model.hits()}
    assert bits["door_creak.wav"] == "24-bit" and bits["door_slam.wav"] == "16-bit"
    assert bits["hum_6ch.wav"] == "32-bit float" and bits["beep.ogg"] == ""
    f.bits.setCurrentIndex(f.bits.findText("24-bit"))
    names = sorted(Path(h.path).name for h in app.model.hits())
    assert names == ["door_creak copy.wav", "door_creak.wav"]
    assert "with these filters" not in app.window.results_label.text()
    f.bits.setCurrentIndex(f.bits.findText("8-bit"))
    assert app.model.hits() == [] and "with these filters" in app.window.results_label.text()
    f.clear()
    app.window.search_bar.edit.clear()
    app.search.text_edited("")  # browse: the filter applies to the listing too
    f.bits.setCurrentIndex(f.bits.findText("16-bit"))
    assert sorted(Path(h.path).name for h in app.model.hits()) == sorted(
        ["door_slam.wav", "rain_stereo.wav", LONG_NAME]
    )


def test_auto_play_can_be_switched_off_in_settings(app, qtbot) -> None:
    app.show_settings()
    d = app.settings_dialog
    assert d.auto_preview.isChecked()
    d.auto_preview.setChecked(False)
    d.accept()
    assert app.settings.auto_preview is False and app.store.load().auto_preview is False
    search(qtbot, app, "door")
    QTest.keyClick(app.window.search_bar.edit, Qt.Key.Key_Down)
    assert app.window.results.current_hit() is not None and app.preview.path is None  # selected, silent
    QTest.keyClick(app.window.results, Qt.Key.Key_Space)
    assert app.preview.path == app.window.results.current_hit().path  # Space still plays


# -- 6: settings for sound designers ------------------------------------------------------------------


def test_settings_show_the_open_library_and_the_model_in_plain_words(app, tmp_path) -> None:
    app.show_settings()
    d = app.settings_dialog
    assert d.open_library.text() == f"Open now: {app.session.lib.path} (--library)"
    assert d.library.text() == ""  # nothing saved: the command line chose it for this run only
    about = d.about.text()
    assert about  # the tiny test model has no notes: a short generic text
    assert not d.card.isVisible()
    d.details.click()
    assert d.card.isVisible()
    d.reject()


def test_model_notes_describe_the_shipped_model() -> None:
    from desktop_app.model_notes import notes_html
    from engine.bundle import default_bundle_name, list_bundles

    specs = [s for p, s in list_bundles() if p.name == default_bundle_name()]
    html = notes_html(specs[0]["name"], trained=True)
    assert "Good at" in html and "Weak at" in html and "0.66" in html and "τ" not in html
    assert "untrained placeholder" in notes_html("x", trained=False)


# -- 7: the smaller items -----------------------------------------------------------------------------


def test_the_model_loads_at_start_up(make_app, pro_indexed, tmp_path, monkeypatch) -> None:
    from engine.encoder import Encoder

    calls = []
    real = Encoder.embed_text
    monkeypatch.setattr(Encoder, "embed_text", lambda self, texts: calls.append(list(texts)) or real(self, texts))
    lib = tmp_path / "lib"
    shutil.copytree(pro_indexed, lib)
    app = make_app(lib)
    assert calls == [["warm up"]] and app.session.model_ready  # before any query
    assert app.session.lib.encoder._text is not None


def test_progress_bar_agrees_with_the_count(app) -> None:
    bar = app.window.indexing
    bar.start()
    bar.show_progress(IndexProgress("embed", 202, 247, 570, 1000, "/x/a.wav", 5.0, 3.0))
    assert bar.bar.value() / bar.bar.maximum() == pytest.approx(202 / 247)
    assert bar.label.text().startswith("Indexing 202 / 247 files")
    bar.show_progress(IndexProgress("embed", 0, 17, 0, 1000, "/x/a.wav", 1.0, None))
    assert "starting" in bar.label.text() and bar.bar.value() == 0


def test_failed_files_link_to_the_library_view(make_app, tmp_path, pro_sounds, qtbot) -> None:
    folder = tmp_path / "incoming"
    shutil.copytree(pro_sounds / "doors", folder)
    (folder / "notes.wav").write_text("not audio\n" * 50)
    app = make_app(tmp_path / "fresh")
    app.add_folders([str(folder)])
    w = app.window
    assert w.failed_notice.isVisible() and "1 file could not be indexed" in w.failed_notice.label.text()
    assert "library:failed" in w.status_label.text()
    w.status_label.linkActivated.emit("library:failed")
    assert app.library_dialog is not None and app.library_dialog.isVisible()
    app.library_dialog.close()
    w.failed_notice.button.click()
    assert app.library_dialog.isVisible()


def test_results_refresh_as_indexing_adds_files(make_app, tmp_path, pro_sounds) -> None:
    app = make_app(tmp_path / "grow")
    app.add_folders([str(pro_sounds / "doors")])
    assert app.search.current.kind == "browse" and len(app.model.hits()) == 2
    app.search.submit("door")
    assert len(app.model.hits()) == 2
    app.presenter._last_refresh = 0.0
    app.add_folders([str(pro_sounds / "amb")])  # the status refresh after indexing re-runs the query
    assert app.search.current.text == "door" and len(app.model.hits()) == 4


def test_enter_without_a_file_manager_says_so(app, qtbot) -> None:
    app.reveal_file = lambda path: False
    app.open_folder = lambda path: False
    search(qtbot, app, "door")
    QTest.keyClick(app.window.search_bar.edit, Qt.Key.Key_Down)
    QTest.keyClick(app.window.results, Qt.Key.Key_Return)
    msg = app.window.statusBar().currentMessage()
    assert msg.startswith("No file manager could show") and "Ctrl+Shift+C" in msg


def test_selection_exports_are_cleaned_up(tmp_path, pro_sounds) -> None:
    from desktop_app.clips import export_region, remove_stale_exports

    folder = ExportFolder(tmp_path)
    src = pro_sounds / "amb" / "rain_stereo.wav"
    a = export_region(src, 0.5, 1.0, folder.path)
    b = export_region(src, 1.0, 2.0, folder.path)
    folder.replace(a, b)  # a new selection: the old export goes
    assert not a.exists() and b.exists()
    folder.keep(b)  # dragged out: kept while the app runs
    c = export_region(src, 2.0, 3.0, folder.path)
    folder.replace(b, c)
    assert b.exists() and sf.info(c).frames == 44100
    d = folder.path
    folder.cleanup()  # at exit
    assert not d.exists()
    old = Path(ExportFolder(tmp_path).path)
    import os

    os.utime(old, (0, 0))
    assert remove_stale_exports(tmp_path) == 1 and not old.exists()


def test_waveform_selection_export_in_the_app(app, qtbot) -> None:
    search(qtbot, app, "rain")
    hit = next(h for h in app.model.hits() if h.path.endswith("rain_stereo.wav"))
    app._preview_hit(hit)
    qtbot.waitUntil(lambda: app.window.waveform.span_s > 5.9, timeout=3000)
    app.preview.set_region((1.0, 2.0))
    first = app.preview.export_selection()
    app.preview.set_region((3.0, 4.0))
    second = app.preview.export_selection()
    assert first.exists() and second.exists() and first.parent == second.parent  # the first was dragged
    app.preview.set_region((4.0, 5.0))
    assert np.isclose(sf.info(second).duration, 1.0)
    folder = second.parent
    app.shutdown()
    assert not folder.exists()


def test_flexible_columns_share_a_narrow_table() -> None:
    from desktop_app.views.results_view import share_widths

    wide = share_widths(1600, 500, {"Name": 400, "Description": 280, "Folder": 220})
    assert wide == {"Name": 600, "Description": 280, "Folder": 220}  # all fit; the name takes the rest
    narrow = share_widths(1000, 500, {"Name": 400, "Description": 280, "Folder": 220})
    assert sum(narrow.values()) == 500 and narrow["Name"] > narrow["Description"] > narrow["Folder"] >= 100
    cramped = share_widths(1000, 700, {"Name": 400, "Description": 280, "Folder": 220})
    assert cramped == {"Name": NAME_MIN, "Description": 110, "Folder": 100}  # floors: the table scrolls


def test_a_long_list_arrives_in_chunks(qtbot, monkeypatch) -> None:
    from desktop_app import results_model
    from desktop_app.results_model import FIRST_ROWS, ResultsModel
    from engine.search import Hit

    monkeypatch.setattr(results_model, "APPEND_BUDGET_S", 0.0)  # past the first rows, one per event-loop turn
    m = ResultsModel()
    hits = [Hit(f"/lib/f{i:04d}.wav", 0.0, 0.0, 1.0, 2.0, 44100, 1, "WAV", i) for i in range(FIRST_ROWS + 30)]
    m.set_hits(hits[:FIRST_ROWS], graded=False)
    assert m.complete  # a short list (a screenful) is shown at once
    m.set_hits(hits, graded=False)
    assert m.rowCount() == FIRST_ROWS and not m.complete  # the event loop runs between chunks
    assert m.filled_columns["Name"] and not m.filled_columns["Description"]  # known for the whole list
    qtbot.waitUntil(lambda: m.complete, timeout=3000)
    assert m.rowCount() == len(hits) and m.index(len(hits) - 1, COL["Name"]).data() == Path(hits[-1].path).name
    m.set_hits(hits[:3], graded=False)  # a newer list stops the old one's chunks
    qtbot.wait(20)
    assert m.rowCount() == 3
