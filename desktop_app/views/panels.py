"""Small panels: the empty state, the indexing progress bar, the transport row and the notice banner."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.formatting import fmt_clock, progress_text, step_text
from desktop_app.views.elided_label import ElidedLabel
from desktop_app.writer import IndexProgress


class EmptyState(QWidget):
    """First start: asks for a folder (button, or drop one on the window)."""

    add_folder = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.addStretch(2)
        title = QLabel("Find sounds by describing them", self)
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        title.setFont(font)
        text = QLabel(
            "Add a folder of sound effects, ambiences or samples. Earshot listens to every file once "
            "(it stays on this computer), then you can search it by typing what you hear in your head.",
            self,
        )
        text.setWordWrap(True)
        text.setFixedWidth(520)
        text.setMinimumHeight(text.heightForWidth(520))  # a wrapped label in a centred slot gets one line
        self.button = QPushButton("Add a folder…", self)
        self.button.setDefault(True)
        self.button.setMinimumHeight(40)
        self.button.setMinimumWidth(200)
        hint = QLabel("or drag a folder onto this window", self)
        hint.setEnabled(False)
        for w in (title, text, self.button, hint):
            lay.addWidget(w, 0, Qt.AlignmentFlag.AlignHCenter)
            lay.addSpacing(8)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addStretch(3)
        self.button.clicked.connect(self.add_folder)


class IndexingBar(QFrame):
    """Files done / total, ETA and a cancel button; hidden when nothing is being indexed."""

    cancel = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        self.label = ElidedLabel("", self)
        self.label.setMinimumWidth(200)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setMinimumWidth(80)
        self.current = ElidedLabel("", self, mode=Qt.TextElideMode.ElideMiddle)
        self.current.setEnabled(False)
        self.button = QPushButton("Cancel", self)
        lay.addWidget(self.label, 3)
        lay.addWidget(self.bar, 2)
        lay.addWidget(self.current, 2)
        lay.addWidget(self.button)
        self.button.clicked.connect(self._cancel)
        self.hide()

    def _cancel(self) -> None:
        self.button.setEnabled(False)
        self.label.setText("stopping after the current file…")
        self.cancel.emit()

    def start(self, text: str = "Looking for sound files…") -> None:
        self.button.setEnabled(True)
        self.label.setText(text)
        self.bar.setRange(0, 0)
        self.current.setText("")
        self.show()

    def show_progress(self, p: IndexProgress) -> None:
        if not self.button.isEnabled():
            return  # cancelling
        if p.phase == "scan":
            self.bar.setRange(0, 0)
            self.label.setText(f"Looking for sound files… {p.files_done}")
            return
        if p.phase.startswith(("learn", "reproject")):
            self.bar.setRange(0, max(1, p.files_total))
            self.bar.setValue(min(p.files_done, p.files_total))
            self.label.setText(step_text(p.phase, p.files_done, p.files_total, p.eta_s))
            self.current.setText("")
            return
        if p.files_total <= 0:
            self.bar.setRange(0, 0)
        else:  # the bar shows the same count as the label
            self.bar.setRange(0, p.files_total)
            self.bar.setValue(min(p.files_done, p.files_total))
        self.label.setText(progress_text(p.files_done, p.files_total, p.eta_s, p.elapsed_s))
        self.current.setText(p.current.rsplit("/", 1)[-1])

    def finish(self) -> None:
        self.hide()


class TransportBar(QWidget):
    """Play/stop, loop, time and volume."""

    play_toggled = Signal()
    loop_toggled = Signal(bool)
    volume_changed = Signal(float)  # 0..1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        style = self.style()
        self._play_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
        self._stop_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaStop)
        self.play = QToolButton(self)
        self.play.setIcon(self._play_icon)
        self.play.setToolTip("Play / stop (Space)")
        self.loop = QToolButton(self)
        self.loop.setText("Loop")
        self.loop.setCheckable(True)
        self.loop.setToolTip("Loop (L); drag on the waveform to loop a region")
        self.time = QLabel("", self)
        self.time.setMinimumWidth(self.time.fontMetrics().horizontalAdvance("00:00.0 / 00:00.0") + 8)
        self.name = ElidedLabel("", self, mode=Qt.TextElideMode.ElideMiddle)
        self.volume = QSlider(Qt.Orientation.Horizontal, self)
        self.volume.setRange(0, 100)
        self.volume.setMaximumWidth(120)
        self.volume.setToolTip("Volume")
        vol_icon = QLabel(self)
        vol_icon.setPixmap(style.standardIcon(QStyle.StandardPixmap.SP_MediaVolume).pixmap(16, 16))
        lay.addWidget(self.play)
        lay.addWidget(self.loop)
        lay.addWidget(self.time)
        lay.addWidget(self.name, 1)
        lay.addWidget(vol_icon)
        lay.addWidget(self.volume)
        self.play.clicked.connect(self.play_toggled)
        self.loop.toggled.connect(self.loop_toggled)
        self.volume.valueChanged.connect(lambda v: self.volume_changed.emit(v / 100.0))

    def set_playing(self, playing: bool) -> None:
        self.play.setIcon(self._stop_icon if playing else self._play_icon)

    def set_loop(self, on: bool) -> None:
        self.loop.blockSignals(True)
        self.loop.setChecked(on)
        self.loop.blockSignals(False)

    def set_volume(self, volume: float) -> None:
        self.volume.blockSignals(True)
        self.volume.setValue(int(round(volume * 100)))
        self.volume.blockSignals(False)

    def set_time(self, position_s: float | None, duration_s: float) -> None:
        self.time.setText("" if position_s is None else f"{fmt_clock(position_s)} / {fmt_clock(duration_s)}")

    def set_name(self, text: str) -> None:
        self.name.setText(text)


class NoticeBanner(QFrame):
    """A visible, dismissable notice (no audio device, untrained model, library locked)."""

    action = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notice")
        self.setStyleSheet(
            "#notice { background: #fff4ce; border: 1px solid #e0c060; border-radius: 4px; }"
            "#notice QLabel { color: #4a3b00; }"
        )
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel("", self)
        self.label.setWordWrap(True)
        self.button = QPushButton("", self)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.button)
        lay.addWidget(self.close_button)
        self.button.clicked.connect(self.action)
        self.close_button.clicked.connect(self.hide)
        self.hide()

    def show_notice(self, text: str, action: str = "") -> None:
        self.label.setText(text)
        self.button.setText(action)
        self.button.setVisible(bool(action))
        self.show()
