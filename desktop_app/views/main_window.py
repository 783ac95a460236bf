"""The main window's layout, menus and actions; :mod:`desktop_app.app` connects them to the controllers."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app.results_model import ResultsModel
from desktop_app.views.details_panel import DetailsPanel
from desktop_app.views.elided_label import ElidedLabel
from desktop_app.views.filters_panel import FiltersPanel
from desktop_app.views.panels import EmptyState, IndexingBar, NoticeBanner, TransportBar
from desktop_app.views.results_view import ResultsView
from desktop_app.views.search_bar import SearchBar
from desktop_app.views.waveform import WaveformView


def _dropped_folders(event: QDropEvent | QDragEnterEvent) -> list[str]:
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and Path(u.toLocalFile()).is_dir()]


DETAILS_AUTO_HIDE_W = 1150  # narrower windows fold the details panel away (Ctrl+I opens it anyway)


class MainWindow(QMainWindow):
    folders_dropped = Signal(list)
    closing = Signal()

    def __init__(self, model: ResultsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._details_wanted = True
        self._details_forced = False
        self.setWindowTitle("Earshot")
        self.resize(1180, 760)
        self.setAcceptDrops(True)
        self._make_actions()

        self.empty = EmptyState(self)
        self.search_bar = SearchBar(self)
        self.filters = FiltersPanel(self)
        self.results = ResultsView(model, self)
        self.results.addActions([self.act_play, self.act_similar, self.act_reveal, self.act_copy])
        self.results_label = ElidedLabel("", self)
        self.details = DetailsPanel(self)
        self.transport = TransportBar(self)
        self.waveform = WaveformView(self)
        self.audio_notice = NoticeBanner(self)
        self.notice = NoticeBanner(self)
        self.failed_notice = NoticeBanner(self)  # "N files could not be indexed" → the library view
        self.indexing = IndexingBar(self)

        player = QWidget(self)
        pl = QVBoxLayout(player)
        pl.setContentsMargins(0, 4, 0, 0)
        pl.addWidget(self.transport)
        pl.addWidget(self.waveform, 1)
        self.side_splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.side_splitter.addWidget(self.results)
        self.side_splitter.addWidget(self.details)
        self.side_splitter.setStretchFactor(0, 1)
        self.side_splitter.setStretchFactor(1, 0)
        self.side_splitter.setSizes([940, 240])
        self.side_splitter.setCollapsible(0, False)
        self.side_splitter.setCollapsible(1, True)  # drag it shut, or Ctrl+I
        self.side_splitter.splitterMoved.connect(self._side_moved)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(self.side_splitter)
        self.splitter.addWidget(player)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([460, 170])

        main = QWidget(self)
        ml = QVBoxLayout(main)
        ml.setContentsMargins(10, 8, 10, 4)
        ml.addWidget(self.search_bar)
        ml.addWidget(self.filters)
        ml.addWidget(self.results_label)
        ml.addWidget(self.splitter, 1)
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.empty)
        self.pages.addWidget(main)

        central = QWidget(self)
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(2)
        cl.addWidget(self.audio_notice)
        cl.addWidget(self.notice)
        cl.addWidget(self.failed_notice)
        cl.addWidget(self.pages, 1)
        cl.addWidget(self.indexing)
        self.setCentralWidget(central)
        self.status_label = QLabel("", self)  # rich text: "N failed" links to the library view
        self.status_label.setTextFormat(Qt.TextFormat.RichText)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.statusBar().addPermanentWidget(self.status_label)
        self.search_menu.addSeparator()  # the mode switch's actions belong to the search bar
        self.search_menu.addActions(self.search_bar.mode_group.actions())
        self.show_empty_state(True)

    def _make_actions(self) -> None:
        def act(text: str, shortcut=None, tip: str = "") -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            if tip:
                a.setStatusTip(tip)
            return a

        self.act_add = act("&Add folder…", QKeySequence.StandardKey.Open, "Index a folder of sounds")
        self.act_library = act("&Library…", "Ctrl+Shift+L", "Folders, re-index, failed files")
        self.act_settings = act("&Settings…", QKeySequence.StandardKey.Preferences)
        if self.act_settings.shortcut().isEmpty():
            self.act_settings.setShortcut(QKeySequence("Ctrl+,"))
        self.act_quit = act("&Quit", QKeySequence.StandardKey.Quit)
        self.act_learn = act("&Teach Earshot my library…", tip="Learn your library's own words (descriptions, "
                             "UCS names) so that sounds without good names are found by how they sound")
        self.act_undo_learn = act("&Go back to the original model", tip="Undo what Earshot learned (seconds)")
        self.act_focus_search = act("&Search", QKeySequence.StandardKey.Find, "Type a description")
        self.act_back = act("&Back", "Alt+Left")
        self.act_forward = act("&Forward", "Alt+Right")
        self.act_play = act("&Play / stop", tip="Space")
        self.act_similar = act("Find &similar", "Ctrl+Shift+F", "Sounds like the selected result")
        self.act_reveal = act("&Reveal in folder", "Ctrl+Return", "Show the file in the file manager")
        self.act_copy = act("&Copy path", "Ctrl+Shift+C")
        self.act_loop = act("&Loop", tip="L")
        self.act_loop.setCheckable(True)
        self.act_categories = act(
            "&Categories…", "Ctrl+Shift+K", "Browse the UCS categories and filter by one"
        )
        self.act_details = act(
            "&Details panel", "Ctrl+I", "Show the selected file's metadata beside the results"
        )
        self.act_details.setCheckable(True)
        self.act_details.setChecked(True)
        self.act_zoom_in = act("Zoom &in", tip="+ (or the mouse wheel on the waveform)")
        self.act_zoom_out = act("Zoom &out", tip="-")
        self.act_zoom_fit = act("&Whole file", tip="Show the whole waveform")
        for a in (self.act_similar, self.act_reveal, self.act_copy):
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        bar = self.menuBar()
        m = bar.addMenu("&File")
        m.addActions([self.act_add, self.act_library])
        m.addSeparator()
        m.addActions([self.act_settings])
        m.addSeparator()
        m.addAction(self.act_quit)
        m = self.library_menu = bar.addMenu("&Library")
        m.addActions([self.act_learn, self.act_undo_learn])
        m = self.search_menu = bar.addMenu("&Search")
        m.addActions([self.act_focus_search, self.act_back, self.act_forward, self.act_categories])
        m = bar.addMenu("&Result")
        m.addActions([self.act_play, self.act_loop, self.act_similar, self.act_reveal, self.act_copy])
        m.addSeparator()
        m.addActions([self.act_zoom_in, self.act_zoom_out, self.act_zoom_fit])
        m.addSeparator()
        m.addAction(self.act_details)

    # -- state ----------------------------------------------------------------------------------

    def show_empty_state(self, empty: bool) -> None:
        self.pages.setCurrentIndex(0 if empty else 1)

    @property
    def showing_empty_state(self) -> bool:
        return self.pages.currentIndex() == 0

    def set_status(self, text: str) -> None:
        """``text``: rich text (the status line, with a link for failed files)."""
        self.status_label.setText(text)

    def show_message(self, text: str, ms: int = 8000) -> None:
        self.statusBar().showMessage(text, ms)

    def set_results_label(self, text: str) -> None:
        self.results_label.setText(text)

    def show_details_panel(self, on: bool) -> None:
        """The user's choice (Ctrl+I, the setting). Below :data:`DETAILS_AUTO_HIDE_W` pixels the panel
        folds away by itself, unless the user opened it at that width."""
        self._details_wanted = on
        self._details_forced = on and self.width() < DETAILS_AUTO_HIDE_W
        self._apply_details()

    def _apply_details(self) -> None:
        narrow = self.width() < DETAILS_AUTO_HIDE_W
        on = self._details_wanted and (not narrow or self._details_forced)
        if on:
            sizes = self.side_splitter.sizes()
            if sizes[1] < self.details.minimumWidth():  # collapsed by dragging: open it again
                total = sum(sizes)
                self.side_splitter.setSizes([max(0, total - 240), 240])
        if on != self.details.isVisibleTo(self):
            self.details.setVisible(on)
        self.act_details.blockSignals(True)
        self.act_details.setChecked(on)  # the action shows what is on screen
        self.act_details.blockSignals(False)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.width() >= DETAILS_AUTO_HIDE_W:
            self._details_forced = False
        self._apply_details()

    def _side_moved(self, pos: int, index: int) -> None:
        shut = self.side_splitter.sizes()[1] == 0
        if shut == self.act_details.isChecked():
            self.act_details.setChecked(not shut)  # the app records it (settings.show_details)

    # -- drag a folder onto the window ----------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _dropped_folders(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        folders = _dropped_folders(event)
        if folders:
            event.acceptProposedAction()
            self.folders_dropped.emit(folders)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closing.emit()
        super().closeEvent(event)
