"""The composition root: builds the controllers and the window and connects them.

:class:`EarshotApp` holds no engine logic itself: searches go through :class:`SearchController` and
:class:`Session`, writes through :class:`LibraryWriter`, audio through :class:`PreviewController`.
Tests build it with :class:`desktop_app.tasks.SyncPool` pools, an isolated :class:`SettingsStore` and
``show=False``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from desktop_app.categories import CategoryController
from desktop_app.clips import Clip
from desktop_app.details import hit_details
from desktop_app.formatting import FAILED_LINK, fmt_clock, fmt_duration, fmt_status
from desktop_app.history import History, Query
from desktop_app.player import Player
from desktop_app.preview import PreviewController
from desktop_app.qt_compat import install_none_refcount_guard
from desktop_app.results_model import ResultsModel, file_mime
from desktop_app.results_presenter import ResultsPresenter
from desktop_app.reveal import launch_reveal, open_folder
from desktop_app.search_controller import DEBOUNCE_MS, SearchController
from desktop_app.session import SearchResult, Session
from desktop_app.settings import SettingsStore
from desktop_app.tasks import SyncPool, TaskRunner
from desktop_app.views.library_dialog import LibraryDialog
from desktop_app.views.main_window import MainWindow
from desktop_app.views.settings_dialog import SettingsDialog
from desktop_app.writer import LibraryWriter, ask_about_unavailable_roots
from engine.search import Hit

log = logging.getLogger(__name__)


@dataclass
class Overrides:
    """Command-line choices for this run only (not saved)."""

    library: str | None = None
    model: str | None = None
    device: str | None = None


class EarshotApp(QObject):
    def __init__(
        self,
        store: SettingsStore,
        overrides: Overrides | None = None,
        *,
        pool: SyncPool | None = None,
        writer_pool: SyncPool | None = None,
        player: Player | None = None,
        debounce_ms: int = DEBOUNCE_MS,
        reveal=launch_reveal,
        open_folder=open_folder,
    ) -> None:
        super().__init__()
        self.none_guard = install_none_refcount_guard(self)
        self.store = store
        self.settings = store.load()
        self.overrides = overrides or Overrides()
        self.reveal_file = reveal
        self.open_folder = open_folder
        self.runner = TaskRunner(pool, max_threads=4, parent=self)
        self.writer_runner = TaskRunner(writer_pool, max_threads=1, parent=self)
        self.writer = LibraryWriter(self.writer_runner, self)
        self.session = Session(self.runner, self.writer, self)
        self.search = SearchController(self.session, History(store.history()), self, debounce_ms=debounce_ms)
        self.preview = PreviewController(
            self.runner, player or Player(self.settings.audio_device or None), parent=self
        )
        self.model = ResultsModel(self)
        self.window = MainWindow(self.model)
        self.presenter = ResultsPresenter(self.window, self.model, self.search, self)
        self.categories = CategoryController(self.runner, self.window, self)
        self.library_dialog: LibraryDialog | None = None
        self.settings_dialog: SettingsDialog | None = None
        self._warned_untrained = False
        self._closed = False
        self._wire()
        self._restore_ui()

    # -- lifetime -------------------------------------------------------------------------------

    def library_args(self) -> tuple[str | None, str | None, str | None]:
        o, s = self.overrides, self.settings
        return (o.library or s.library_dir or None, o.model or s.model or None, o.device or s.device or None)

    def start(self, *, show: bool = True) -> None:
        self.preview.set_volume(self.settings.volume)
        self.preview.set_loop(self.settings.loop)
        self.window.transport.set_volume(self.settings.volume)
        self.preview.open_audio(self.settings.audio_device or None)
        self.session.open(*self.library_args())
        self.categories.load()
        if show:
            self.window.show()
        self.window.search_bar.edit.setFocus()

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        w = self.window
        self.settings.volume = self.preview.player.volume
        self.settings.loop = self.preview.player.loop
        self.store.save(self.settings)
        self.store.set_history(self.search.history.entries)
        self.store.set_state("header", w.results.horizontalHeader().saveState())
        self.store.set_column_widths(w.results.user_widths())
        self.store.set_state("geometry", w.saveGeometry())
        self.store.set_state("splitter", w.splitter.saveState())
        self.store.set_state("side_splitter", w.side_splitter.saveState())
        self.store.sync()
        self.preview.close()
        self.session.close()

    def _restore_ui(self) -> None:
        w = self.window
        for key, restore in (
            ("header", w.results.horizontalHeader().restoreState),
            ("geometry", w.restoreGeometry),
            ("splitter", w.splitter.restoreState),
            ("side_splitter", w.side_splitter.restoreState),
        ):
            state = self.store.state(key)
            if state is not None:
                restore(state)
        w.results.user_sized.clear()  # a restored layout is not a choice; the widths saved as one are
        w.results.set_user_widths(self.store.column_widths())
        h = self.search.history
        w.search_bar.set_history_enabled(h.can_back, h.can_forward)
        w.search_bar.set_mode(self.settings.search_mode)
        self.search.mode = w.search_bar.mode()
        w.show_details_panel(self.settings.show_details)

    # -- wiring ---------------------------------------------------------------------------------

    def _wire(self) -> None:
        w, s, p, se = self.window, self.search, self.preview, self.session
        bar, res = w.search_bar, w.results
        w.folders_dropped.connect(self.add_folders)
        w.empty.add_folder.connect(self.choose_folder)
        w.act_add.triggered.connect(self.choose_folder)
        w.act_library.triggered.connect(self.show_library)
        w.act_settings.triggered.connect(self.show_settings)
        w.act_learn.triggered.connect(self.teach)
        w.act_undo_learn.triggered.connect(self.session.undo_learn)
        w.act_quit.triggered.connect(w.close)
        w.closing.connect(self.shutdown)
        w.indexing.cancel.connect(self.writer.cancel)
        self.writer.busy_changed.connect(self._writer_busy)
        self.writer.progress.connect(w.indexing.show_progress)
        self.writer.roots_unavailable.connect(
            lambda roots: ask_about_unavailable_roots(self.window, self.writer, roots)
        )
        se.opened.connect(self._opened)
        se.open_failed.connect(
            lambda msg: w.notice.show_notice(f"Cannot open the library: {msg}", "Settings…")
        )
        w.notice.action.connect(self.show_settings)
        w.failed_notice.action.connect(self.show_library)
        w.status_label.linkActivated.connect(lambda link: self.show_library() if link == FAILED_LINK else None)
        self.writer.finished.connect(self._write_finished)
        se.status_changed.connect(self._status_changed)
        se.message.connect(w.show_message)
        se.models_listed.connect(self._models_listed)

        bar.text_edited.connect(s.text_edited)
        bar.submitted.connect(s.submit)
        bar.back.connect(s.back)
        bar.forward.connect(s.forward)
        bar.into_results.connect(self._into_results)
        w.act_back.triggered.connect(s.back)
        w.act_forward.triggered.connect(s.forward)
        w.act_focus_search.triggered.connect(lambda: (bar.edit.setFocus(), bar.edit.selectAll()))
        s.query_shown.connect(lambda q: bar.show_query(q.label, similar=q.kind == "similar"))
        s.history_changed.connect(bar.set_history_enabled)
        s.results.connect(self.presenter.show)
        self.presenter.shown.connect(self._results_shown)
        s.failed.connect(self._search_failed)
        s.searching.connect(self._searching)
        w.filters.changed.connect(s.set_filters)
        bar.mode_changed.connect(self._mode_changed)
        w.act_details.toggled.connect(self._details_toggled)
        w.act_zoom_in.triggered.connect(lambda: w.waveform.zoom_by(1))
        w.act_zoom_out.triggered.connect(lambda: w.waveform.zoom_by(-1))
        w.act_zoom_fit.triggered.connect(w.waveform.zoom_fit)
        res.zoom.connect(w.waveform.zoom_by)

        res.current_hit_changed.connect(self._current_hit)
        res.toggle_play.connect(self.toggle_play)
        res.stop.connect(p.stop)
        res.seek_step.connect(p.seek_step)
        res.toggle_loop.connect(p.toggle_loop)
        res.activated_hit.connect(self.reveal)
        res.type_ahead.connect(bar.type_ahead)
        res.focus_search.connect(bar.edit.setFocus)
        w.act_play.triggered.connect(self.toggle_play)
        w.act_loop.triggered.connect(p.set_loop)
        w.act_similar.triggered.connect(self.find_similar)
        w.act_reveal.triggered.connect(lambda: self._with_current(self.reveal))
        w.act_copy.triggered.connect(self.copy_paths)

        p.audio_status.connect(self._audio_status)
        w.audio_notice.action.connect(self.show_settings)
        p.clip_ready.connect(self._clip_ready)
        p.channels_ready.connect(w.waveform.set_channel_peaks)
        p.position_changed.connect(self._position)
        p.playing_changed.connect(w.transport.set_playing)
        p.loop_changed.connect(self._loop_changed)
        p.error.connect(w.show_message)
        w.transport.play_toggled.connect(self.toggle_play)
        w.transport.loop_toggled.connect(p.set_loop)
        w.transport.volume_changed.connect(p.set_volume)
        w.waveform.seek_requested.connect(p.seek)
        w.waveform.region_selected.connect(lambda a, b: p.set_region((a, b)))
        w.waveform.region_cleared.connect(lambda: p.set_region(None))
        w.waveform.drag_out_requested.connect(self._drag_selection)

    # -- library --------------------------------------------------------------------------------

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Add a folder of sounds", str(Path.home()))
        if folder:
            self.add_folders([folder])

    def add_folders(self, folders: list[str]) -> None:
        self.window.show_empty_state(False)
        self.session.add_folders(folders)

    def _writer_busy(self, busy: bool) -> None:
        ind = self.window.indexing
        ind.start() if busy else ind.finish()
        if self.library_dialog is not None:
            self.library_dialog.set_busy(busy)

    def _opened(self, status: dict) -> None:
        self.window.notice.hide()
        if self.search.current is None or self.search.current.kind == "browse":
            self.search.browse()  # the empty search box lists the library
        self.categories.load_counts(self.session.lib)
        self.window.show_empty_state(not status.get("roots") and not self.writer.busy)
        if not status["bundle"].get("trained", True) and not self._warned_untrained:
            self._warned_untrained = True
            self.window.notice.show_notice(
                f"The model “{status['bundle']['name']}” is an untrained placeholder: results are not "
                "meaningful yet. Install a trained model and pick it in Settings.",
                "Settings…",
            )

    def _status_changed(self, status: dict) -> None:
        self.window.set_status(fmt_status(status))
        roots = [r["path"] for r in status.get("roots", [])]
        self.window.filters.set_folders(roots)
        self.model.set_roots(roots)
        self.presenter.library_changed(status)
        if roots:
            self.window.show_empty_state(False)
        if self.library_dialog is not None:
            self.library_dialog.set_status(status)

    def teach(self) -> None:
        """Library ▸ Teach Earshot my library…: runs on the writer with progress and Cancel; the before/after
        summary follows (:meth:`_learn_finished`)."""
        self.session.learn()

    def _learn_finished(self, report: dict):
        """The before/after summary of a learn (a non-modal box; returned for tests)."""
        from PySide6.QtWidgets import QMessageBox

        from desktop_app.formatting import learn_summary

        box = QMessageBox(self.window)
        box.setWindowTitle("Teach Earshot my library")
        box.setText(learn_summary(report))
        box.setIcon(QMessageBox.Icon.Information)
        if report.get("switched"):
            undo = box.addButton("Go back to the original model", QMessageBox.ButtonRole.DestructiveRole)
            box.buttonClicked.connect(lambda b: self.session.undo_learn() if b is undo else None)
        box.addButton(QMessageBox.StandardButton.Ok)
        box.open()
        self.learn_box = box
        return box

    def _write_finished(self, kind: str, summary) -> None:
        if kind == "learn":
            self._learn_finished(summary)
            return
        self.categories.load_counts(self.session.lib)
        failed = getattr(summary, "failed", 0) if kind == "index" else 0
        if failed:
            self.window.failed_notice.show_notice(
                f"{failed:,} file{'s' if failed != 1 else ''} could not be indexed (damaged, empty or not "
                "audio). The library view lists each with the reason.",
                "Show failed files…",
            )

    def show_library(self) -> None:
        if self.library_dialog is None:
            d = self.library_dialog = LibraryDialog(self.window)
            d.add_folder.connect(self.choose_folder)
            d.reindex.connect(lambda roots, retry: self.session.reindex(roots, retry_failed=retry))
            d.remove_folder.connect(self.session.remove_folder)
        if self.session.status is not None:
            self.library_dialog.set_status(self.session.status)
        self.library_dialog.set_busy(self.writer.busy)
        self.session.refresh_status()
        self.library_dialog.show()
        self.library_dialog.raise_()

    # -- settings -------------------------------------------------------------------------------

    def show_settings(self) -> None:
        from engine.library import default_library_dir

        lib = self.session.lib
        note = "--library" if self.overrides.library else ("" if self.settings.library_dir else "the default")
        d = self.settings_dialog = SettingsDialog(
            self.settings,
            str(default_library_dir()),
            self.window,
            open_library=str(lib.path) if lib is not None else "",
            open_note=note,
        )
        d.set_audio_devices(self.preview.player.output_devices())
        d.rescan_audio.connect(self._rescan_audio)
        d.accepted.connect(lambda: self.apply_settings(d.values()))
        self.session.list_models()
        d.open()

    def _models_listed(self, models) -> None:
        if self.settings_dialog is not None:
            lib = self.session.lib
            self.settings_dialog.set_models(
                models,
                lib.bundle.model_card if lib is not None else "",
                lib.bundle.name if lib is not None else "",
                bool(lib.bundle.trained) if lib is not None else True,
            )

    def _rescan_audio(self) -> None:
        self.preview.player.rescan()
        if self.settings_dialog is not None:
            self.settings_dialog.set_audio_devices(self.preview.player.output_devices())
        self.preview.open_audio(self.settings.audio_device or None)

    def apply_settings(self, new) -> None:
        old, self.settings = self.settings, new
        self.store.save(new)
        if (old.library_dir, old.model, old.device) != (new.library_dir, new.model, new.device):
            self.overrides = Overrides()
            self.model.set_hits([])
            self.session.open(*self.library_args())
        if old.audio_device != new.audio_device:
            self.preview.open_audio(new.audio_device or None)

    def _audio_status(self, ok: bool, message: str) -> None:
        if ok:
            self.window.audio_notice.hide()
        else:
            self.window.audio_notice.show_notice(
                message or "No audio device: previews are silent.", "Audio settings…"
            )

    # -- results --------------------------------------------------------------------------------

    def _results_shown(self, result: SearchResult) -> None:
        self.window.details.show_details(hit_details(self.window.results.current_hit()))

    def _searching(self, busy: bool) -> None:
        ready = self.session.model_ready or (self.search.current is not None and self.search.current.kind != "text")
        self.window.search_bar.set_busy(("searching…" if ready else "loading the model…") if busy else "")

    def _mode_changed(self, mode: str) -> None:
        self.settings.search_mode = mode
        self.search.set_mode(mode)

    def _details_toggled(self, on: bool) -> None:
        self.settings.show_details = on
        self.window.show_details_panel(on)

    def _search_failed(self, message: str) -> None:
        self.window.set_results_label(message)
        self.window.show_message(message)

    def _into_results(self) -> None:
        res = self.window.results
        res.setFocus()
        if not res.currentIndex().isValid():
            res.select_row(0)

    def _current_hit(self, hit: Hit | None) -> None:
        self.window.details.show_details(hit_details(hit))
        if hit is None or not self.settings.auto_preview:
            return
        if self.presenter.restoring and hit.path == self.preview.path:
            return  # the same file, selected again after a refresh: keep playing
        self._preview_hit(hit)

    def _preview_hit(self, hit: Hit) -> None:
        w = self.window
        w.waveform.set_match((hit.start_s, hit.end_s))
        w.waveform.set_region(None)
        listed = self.presenter.result is not None and self.presenter.result.query.kind == "browse"
        match = "" if listed else f" · best match {fmt_clock(hit.start_s)}"
        w.transport.set_name(f"{Path(hit.path).name}{match} · {fmt_duration(hit.duration_s)}")
        self.preview.preview(hit.path, hit.start_s, hit.end_s, hit.duration_s, hit.channels)

    def toggle_play(self) -> None:
        hit = self.window.results.current_hit()
        if self.preview.path is None or (hit is not None and hit.path != self.preview.path):
            if hit is not None:
                self._preview_hit(hit)
            return
        self.preview.toggle()

    def _clip_ready(self, clip: Clip) -> None:
        if clip.peaks is not None:
            span = len(clip.samples) / clip.sample_rate
            self.window.waveform.set_clip(clip.peaks, clip.offset_s, span, clip.duration_s)

    def _position(self, t: float) -> None:
        self.window.waveform.set_position(t)
        self.window.transport.set_time(t, self.preview.duration_s)

    def _loop_changed(self, on: bool) -> None:
        self.window.transport.set_loop(on)
        self.window.act_loop.setChecked(on)

    def _with_current(self, fn) -> None:
        hit = self.window.results.current_hit()
        if hit is not None:
            fn(hit)

    def find_similar(self) -> None:
        """Sounds like the current result — or like the waveform selection, when there is one."""
        hit = self.window.results.current_hit()
        p = self.preview
        if p.region is not None and p.path is not None and (hit is None or hit.path == p.path):
            self.search.find_similar(p.path, *p.region)
        elif hit is not None:
            self.search.find_similar(hit.path)

    def reveal(self, hit: Hit) -> None:
        path = hit.path
        self.runner.submit(lambda: self.reveal_file(path), lambda ok: self._revealed(path, ok), group=None)

    def _revealed(self, path: str, ok: bool) -> None:
        if ok or self.open_folder(path):
            return
        self.window.show_message(
            f"No file manager could show {Path(path).name}: it is in {Path(path).parent} "
            "(Ctrl+Shift+C copies its path)",
            12000,
        )

    def copy_paths(self) -> None:
        hits = self.window.results.selected_hits() or (
            [h] if (h := self.window.results.current_hit()) else []
        )
        if hits:
            QGuiApplication.clipboard().setText("\n".join(h.path for h in hits))
            self.window.show_message(f"copied {len(hits)} path{'s' if len(hits) > 1 else ''}", 3000)

    def _drag_selection(self) -> None:
        try:
            path = self.preview.export_selection()
        except Exception as exc:
            self.window.show_message(f"cannot export the selection: {exc}")
            return
        if path is not None:
            self.window.waveform.start_file_drag(file_mime([str(path)]))

    def current_query(self) -> Query | None:
        return self.search.current
