"""The app end to end (offscreen Qt, tiny random model, ALSA null output): add a folder → indexing
progress → search → results → keyboard previews → find similar → filters → failed files → settings."""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

import pytest
import soundfile as sf
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication
from PySide6.QtTest import QTest

from desktop_app.app import EarshotApp
from desktop_app.results_model import COL
from desktop_app.settings import AppSettings
from engine.indexing import Indexer
from engine.library import Library
from tests import audio_fixtures as af
from tests.desktop_app.conftest import search, write_alsa_config


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sounds") / "Sounds"
    af.make_library(root)
    af.make_bad_files(root / "bad")
    return root


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, bundle_dir, sounds) -> Path:
    """A library with ``sounds`` already indexed (tests copy it)."""
    lib_dir = tmp_path_factory.mktemp("indexed") / "lib"
    with Library(lib_dir, bundle_dir) as lib:
        Indexer(lib).run([sounds])
    return lib_dir


@pytest.fixture
def app(make_app, indexed, tmp_path) -> EarshotApp:
    lib = tmp_path / "lib"
    shutil.copytree(indexed, lib)
    return make_app(lib)


def ok_files(sounds: Path) -> int:
    readable_bad = 1 + (os.geteuid() == 0)  # the truncated WAV, and the mode-000 file when we are root
    return sum(1 for s in af.LIBRARY if s.writable()) + readable_bad


def wait_playing(qtbot, app: EarshotApp, path: str) -> None:
    p = app.preview.player
    qtbot.waitUntil(lambda: p.latency_s is not None and app.preview.path == path, timeout=3000)


def test_first_start_drop_folder_indexes_with_progress(make_app, sounds, qtbot) -> None:
    app = make_app()
    w = app.window
    assert w.showing_empty_state and w.empty.button.isVisible()
    progress, busy = [], []
    app.writer.progress.connect(progress.append)
    app.writer.busy_changed.connect(busy.append)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(sounds))])
    drop = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    w.dropEvent(drop)
    assert busy == [True, False]
    phases = [p.phase for p in progress]
    assert "embed" in phases and phases[-1] == "done"
    embeds = [p for p in progress if p.phase == "embed"]
    assert embeds[0].files_total == len(
        list(
            f
            for f in sounds.rglob("*")
            if f.suffix in (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".opus") and f.is_file()
        )
    )
    assert all(0.0 <= (p.fraction or 0.0) <= 1.0 for p in embeds)
    st = app.session.status
    assert st["files"] == ok_files(sounds) and st["errors"] > 0
    assert not w.showing_empty_state and not w.indexing.isVisible()
    assert w.filters.folder.findData(str(sounds)) > 0
    assert "failed" in w.statusBar().currentMessage()


def test_search_results_and_keyboard_previews(app, sounds, qtbot) -> None:
    w = app.window
    search(qtbot, app, "rain on a tin roof")
    hits = app.model.hits()
    assert len(hits) == ok_files(sounds)  # k=100 > library: everything, ranked
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(Path(h.path).is_file() for h in hits)
    i = next(i for i, h in enumerate(hits) if h.path.endswith("b1k_pcm24_48k_stereo.wav"))
    row = app.model.row_of(hits[i].path)  # the model also has a "weaker matches" divider row
    texts = [app.model.index(row, c).data() for c in range(app.model.columnCount())]
    assert (
        texts[COL["Rate"]] == "48 kHz"
        and texts[COL["Channels"]] == "stereo"
        and texts[COL["Format"]] == "WAV"
    )
    assert (
        texts[COL["Duration"]] == "1.5 s" and texts[COL["Folder"]] == "Sounds/tones/wav"
    )  # relative to its root
    assert app.model.index(row, COL["Folder"]).data(Qt.ItemDataRole.ToolTipRole).startswith(hits[i].path)
    assert re.search(r"\d+ (results|good matches?) for “rain on a tin roof”|No good matches for “rain on a tin roof”",
                     w.results_label.text())
    # Sorting by a column, then back to rank order.
    w.results.sortByColumn(COL["Duration"], Qt.SortOrder.AscendingOrder)
    shown = [
        w.results.hit_at(w.results.proxy.index(r, 0)).duration_s for r in range(w.results.proxy.rowCount())
    ]
    assert shown == sorted(shown)
    w.results.sortByColumn(-1, Qt.SortOrder.AscendingOrder)

    # ↓ from the search box: the first result is selected and plays from its best-matching window.
    QTest.keyClick(w.search_bar.edit, Qt.Key.Key_Down)
    first = w.results.current_hit()
    assert first is not None and first.path == hits[0].path
    wait_playing(qtbot, app, first.path)
    player = app.preview.player
    assert player.playing and player.position_s >= first.start_s - 0.01
    assert w.waveform.match == (first.start_s, first.end_s) and len(w.waveform.peaks) > 0
    QTest.keyClick(w.results, Qt.Key.Key_Down)
    second = w.results.current_hit()
    assert second.path == hits[1].path
    wait_playing(qtbot, app, second.path)
    assert player.latency_s < 0.5
    # Space stops / plays, L loops, → seeks, Esc stops.
    QTest.keyClick(w.results, Qt.Key.Key_Space)
    assert not player.playing
    QTest.keyClick(w.results, Qt.Key.Key_Space)
    assert player.playing
    QTest.keyClick(w.results, Qt.Key.Key_L)
    assert player.loop and w.transport.loop.isChecked() and w.act_loop.isChecked()
    player.stop()
    before = player.position_s
    QTest.keyClick(w.results, Qt.Key.Key_Right)
    assert player.position_s > before
    player.resume()
    QTest.keyClick(w.results, Qt.Key.Key_Escape)
    assert not player.playing
    # Typing in the list continues the query; Enter reveals; copy path.
    QTest.keyClick(w.results, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: app.revealed == [second.path], timeout=2000)
    w.act_copy.trigger()
    assert QGuiApplication.clipboard().text() == second.path
    QTest.keyClicks(w.results, "s")
    assert w.search_bar.edit.text() == "rain on a tin roofs"
    # Rows drag out as files.
    rows = [app.model.row_of(h.path) for h in hits[:2]]
    mime = app.model.mimeData([app.model.index(rows[0], 0), app.model.index(rows[1], 3)])
    assert [u.toLocalFile() for u in mime.urls()] == [hits[0].path, hits[1].path]


def test_long_file_preview_and_waveform_selection(app, qtbot, monkeypatch) -> None:
    search(qtbot, app, "pink noise ambience")
    long = next(h for h in app.model.hits() if h.path.endswith("pink_40s_22k_mono.flac"))
    app._preview_hit(long)
    wait_playing(qtbot, app, long.path)
    clip = app.preview.cache.get(long.path, app.preview.player.samplerate)
    assert clip is not None and clip.complete and clip.duration_s == pytest.approx(40.0, abs=0.05)
    assert app.window.waveform.span_s == pytest.approx(40.0, abs=0.05)
    # Select 2 s on the waveform: playback loops inside it, and dragging it out exports a WAV.
    app.window.waveform.set_region((10.0, 12.0))
    app.window.waveform.region_selected.emit(10.0, 12.0)
    assert app.preview.region == (10.0, 12.0)
    dragged = []
    monkeypatch.setattr(app.window.waveform, "start_file_drag", dragged.append)
    app.window.waveform.drag_out_requested.emit()
    assert len(dragged) == 1
    out = Path(dragged[0].urls()[0].toLocalFile())
    info = sf.info(out)
    assert info.samplerate == 22050 and info.frames == 2 * 22050
    # Find similar on a selection: the region is the query.
    app.find_similar()
    assert app.search.current.kind == "similar" and (
        app.search.current.start_s,
        app.search.current.end_s,
    ) == (10, 12)
    assert all(h.path != long.path for h in app.model.hits())


def test_find_similar_replaces_results_and_history(app, qtbot) -> None:
    w = app.window
    search(qtbot, app, "door creak")
    text_hits = app.model.hits()
    w.results.select_row(2)
    target = w.results.current_hit()
    w.act_similar.trigger()
    assert w.search_bar.edit.text() == f"similar to {Path(target.path).name}"
    assert w.search_bar.edit.font().italic()
    sim = app.model.hits()
    assert sim and target.path not in {h.path for h in sim} and len(sim) == len(text_hits) - 1
    assert w.search_bar.back_button.isEnabled()
    w.search_bar.back_button.click()
    assert w.search_bar.edit.text() == "door creak" and app.model.hits() == text_hits
    assert w.search_bar.forward_button.isEnabled()
    w.act_forward.trigger()
    assert app.search.current.kind == "similar" and app.model.hits() == sim


def test_filters(app, sounds, qtbot) -> None:
    f = app.window.filters
    search(qtbot, app, "tone")
    everything = len(app.model.hits())
    f.format.setCurrentIndex(f.format.findText("FLAC"))
    hits = app.model.hits()
    assert hits and all(h.format == "FLAC" for h in hits)
    f.clear()
    f.min_dur.setValue(5.0)
    hits = app.model.hits()
    assert hits and all(h.duration_s >= 5.0 for h in hits)
    f.clear()
    f.channels.setCurrentIndex(f.channels.findText("stereo"))
    f.rate.setCurrentIndex(f.rate.findText("48 kHz"))
    assert all(h.channels == 2 and h.sample_rate == 48000 for h in app.model.hits())
    f.clear()
    app.window.filters.set_folders([str(sounds / "tones")])  # what a status refresh would offer
    f.folder.setCurrentIndex(1)
    hits = app.model.hits()
    assert hits and all(h.path.startswith(str(sounds / "tones") + os.sep) for h in hits)
    f.clear()
    assert len(app.model.hits()) == everything
    f.min_dur.setValue(1000.0)  # nothing that long
    assert app.model.hits() == [] and "with these filters" in app.window.results_label.text()


def test_engine_errors_are_shown_and_the_app_carries_on(app, qtbot) -> None:
    app.search.submit("!!! ???")
    assert "no words" in app.window.results_label.text()
    search(qtbot, app, "glass")
    assert app.model.rowCount() > 0


def test_library_view_failed_files_reindex_and_remove(app, sounds) -> None:
    app.show_library()
    d = app.library_dialog
    st = app.session.status
    assert d.roots.rowCount() == 1 and d.roots.item(0, 0).text() == str(sounds)
    assert d.roots.item(0, 1).text() == f"{st['files'] + st['errors']:,}"
    failed = {
        Path(d.failed.item(r, 0).text()).name: d.failed.item(r, 1).text() for r in range(d.failed.rowCount())
    }
    assert len(failed) == st["errors"] > 0
    assert failed["notes.wav"] == "not audio" and failed["zero_length.wav"] == "empty"
    assert failed["damaged.flac"] == "damaged"
    d.roots.selectRow(0)
    summaries = []
    app.writer.finished.connect(lambda kind, s: summaries.append((kind, s)))
    d.reindex_button.click()
    assert summaries[-1][0] == "index" and summaries[-1][1].unchanged == st["files"] + st["errors"]
    d.roots.selectRow(0)
    d.remove_button.click()
    assert summaries[-1] == ("remove", st["files"] + st["errors"])
    assert d.roots.rowCount() == 0 and app.session.status["files"] == 0


def test_settings_persist(make_app, indexed, tmp_path, bundle_dir) -> None:
    lib = tmp_path / "lib"
    shutil.copytree(indexed, lib)
    ini = tmp_path / "persist.ini"
    app = make_app(lib, settings=ini)
    app.show_settings()
    d = app.settings_dialog
    assert d.model.count() >= 1 and d.audio.count() >= 2  # "default" + the ALSA null device
    assert d.values() == app.settings
    d.device.setCurrentIndex(d.device.findData("cpu"))
    d.library.setText(str(lib))
    d.accept()
    app.window.transport.volume.setValue(35)
    app.search.submit("footsteps on gravel")
    app.window.results.setColumnWidth(COL["Name"], 333)
    app.shutdown()

    again = make_app(lib, settings=ini)
    assert again.settings == AppSettings(library_dir=str(lib), device="cpu", volume=0.35)
    assert again.preview.player.volume == pytest.approx(0.35)
    assert [q.text for q in again.search.history.entries] == ["footsteps on gravel"]
    assert again.window.results.columnWidth(COL["Name"]) == 333


def test_no_audio_device_notice(make_app, indexed, tmp_path, alsa_null_device, qtbot) -> None:
    lib = tmp_path / "lib"
    shutil.copytree(indexed, lib)
    os.environ["ALSA_CONFIG_PATH"] = str(write_alsa_config(tmp_path / "none.conf", null_output=False))
    try:
        app = make_app(lib)
        app.preview.player.rescan()
        app.preview.open_audio()
        assert (
            app.window.audio_notice.isVisible() and "No audio device" in app.window.audio_notice.label.text()
        )
        search(qtbot, app, "thunder")
        QTest.keyClick(app.window.search_bar.edit, Qt.Key.Key_Down)
        assert app.window.results.current_hit() is not None and not app.preview.player.playing
        assert len(app.window.waveform.peaks) > 0  # the waveform still shows
    finally:
        os.environ["ALSA_CONFIG_PATH"] = str(alsa_null_device)
        app.preview.player.rescan()
    app.preview.open_audio()
    assert not app.window.audio_notice.isVisible()


def test_background_indexing_keeps_searching(make_app, sounds, qtbot) -> None:
    """Real threads: indexing runs on the writer thread, progress and results reach the GUI thread."""
    app = make_app(threads=True)
    qtbot.waitUntil(lambda: app.session.lib is not None, timeout=10000)
    main = threading.get_ident()
    where = set()
    app.writer.progress.connect(lambda p: where.add(threading.get_ident()))
    app.add_folders([str(sounds)])
    qtbot.waitUntil(lambda: app.writer.busy, timeout=3000)
    assert app.window.indexing.isVisible()
    app.search.submit("birds")  # while indexing
    qtbot.waitUntil(
        lambda: app.search.current is not None and app.window.results_label.text() != "", timeout=10000
    )
    qtbot.waitUntil(lambda: not app.writer.busy, timeout=30000)
    assert where == {main}
    qtbot.waitUntil(lambda: (app.session.status or {}).get("files") == ok_files(sounds), timeout=5000)
    app.search.submit("birds")
    qtbot.waitUntil(lambda: len(app.model.hits()) == ok_files(sounds), timeout=10000)


def test_cancel_indexing(make_app, sounds, qtbot) -> None:
    app = make_app(threads=True)
    qtbot.waitUntil(lambda: app.session.lib is not None, timeout=10000)
    done = []
    app.writer.finished.connect(lambda kind, s: done.append(s))
    # Cancel from the worker thread at the first embedding progress (deterministic: before any commit).
    once = threading.Event()

    def cancel_once(p) -> None:
        if p.phase == "embed" and not once.is_set():
            once.set()
            app.writer.cancel()

    app.writer.progress.connect(cancel_once, Qt.ConnectionType.DirectConnection)
    app.add_folders([str(sounds)])
    qtbot.waitUntil(lambda: bool(done), timeout=30000)
    assert done[0].cancelled and done[0].new < ok_files(sounds)
    qtbot.waitUntil(lambda: not app.writer.busy and not app.window.indexing.isVisible(), timeout=3000)
    # A new job after a cancel runs (and resumes where the cancelled one stopped).
    app.add_folders([str(sounds)])
    qtbot.waitUntil(lambda: len(done) == 2, timeout=30000)
    assert not done[1].cancelled and done[1].new + done[0].new == ok_files(sounds)


def test_cancel_button(app, qtbot) -> None:
    bar = app.window.indexing
    bar.start()
    token = app.writer._cancel
    bar.button.click()
    assert token.cancelled and not bar.button.isEnabled() and "stopping" in bar.label.text()
