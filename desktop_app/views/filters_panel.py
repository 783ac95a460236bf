"""Filters: duration range, sample rate, channels, format, folder. Emits ``changed(Filters)``."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QToolButton, QWidget

from engine.search import Filters

RATES = [
    ("any rate", ()),
    ("≥ 44.1 kHz", "min44100"),
    ("22.05 kHz", (22050,)),
    ("44.1 kHz", (44100,)),
    ("48 kHz", (48000,)),
    ("88.2 / 96 kHz", (88200, 96000)),
    ("≥ 176.4 kHz", (176400, 192000)),
]
CHANNELS = [("any channels", ()), ("mono", (1,)), ("stereo", (2,)), ("multichannel", (3, 4, 5, 6, 7, 8))]
FORMATS = [
    ("any format", ()),
    ("WAV", ("wav",)),
    ("FLAC", ("flac",)),
    ("Ogg", ("ogg",)),
    ("MP3", ("mp3",)),
    ("AIFF", ("aiff",)),
    ("CAF", ("caf",)),
]


class FiltersPanel(QWidget):
    changed = Signal(object)  # Filters

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.min_dur = self._spin("shortest length in seconds (0: any)")
        self.max_dur = self._spin("longest length in seconds (0: any)")
        self.rate = self._combo(RATES)
        self.channels = self._combo(CHANNELS)
        self.format = self._combo(FORMATS)
        self.folder = QComboBox(self)
        self.folder.addItem("all folders", None)
        self.folder.setMinimumContentsLength(18)
        self.folder.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.reset = QToolButton(self)
        self.reset.setText("Clear filters")
        lay.addWidget(QLabel("Length", self))
        lay.addWidget(self.min_dur)
        lay.addWidget(QLabel("–", self))
        lay.addWidget(self.max_dur)
        for w in (self.rate, self.channels, self.format, self.folder):
            lay.addWidget(w)
        lay.addWidget(self.reset)
        lay.addStretch(1)
        for spin in (self.min_dur, self.max_dur):
            spin.valueChanged.connect(self._emit)
        for combo in (self.rate, self.channels, self.format, self.folder):
            combo.currentIndexChanged.connect(self._emit)
        self.reset.clicked.connect(self.clear)

    def _spin(self, tip: str) -> QDoubleSpinBox:
        s = QDoubleSpinBox(self)
        s.setRange(0.0, 36000.0)
        s.setDecimals(1)
        s.setSingleStep(0.5)
        s.setSuffix(" s")
        s.setSpecialValueText("any")
        s.setToolTip(tip)
        s.setKeyboardTracking(False)
        return s

    def _combo(self, items) -> QComboBox:
        c = QComboBox(self)
        for label, value in items:
            c.addItem(label, value)
        return c

    def set_folders(self, folders: list[str]) -> None:
        """The library's folders, offered in the folder filter (the selection is kept when possible)."""
        current = self.folder.currentData()
        self.folder.blockSignals(True)
        self.folder.clear()
        self.folder.addItem("all folders", None)
        for f in folders:
            self.folder.addItem(f, f)
        idx = self.folder.findData(current) if current else 0
        self.folder.setCurrentIndex(max(0, idx))
        self.folder.blockSignals(False)
        if current and idx < 0:
            self._emit()

    def clear(self) -> None:
        for w in (self.min_dur, self.max_dur, self.rate, self.channels, self.format, self.folder):
            w.blockSignals(True)
        self.min_dur.setValue(0)
        self.max_dur.setValue(0)
        for c in (self.rate, self.channels, self.format, self.folder):
            c.setCurrentIndex(0)
        for w in (self.min_dur, self.max_dur, self.rate, self.channels, self.format, self.folder):
            w.blockSignals(False)
        self._emit()

    def filters(self) -> Filters:
        rate = self.rate.currentData()
        return Filters(
            min_duration=self.min_dur.value() or None,
            max_duration=self.max_dur.value() or None,
            sample_rates=() if rate == "min44100" else tuple(rate or ()),
            min_sample_rate=44100 if rate == "min44100" else None,
            channels=tuple(self.channels.currentData() or ()),
            formats=tuple(self.format.currentData() or ()),
            folder=self.folder.currentData(),
        )

    def _emit(self, *_) -> None:
        self.changed.emit(self.filters())
