"""Filters: duration range, sample rate, channels, bit depth, format, folder, category. Emits
``changed(ViewFilters)``."""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QWidget,
)

from desktop_app.view_filters import ViewFilters
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
BIT_DEPTHS = [
    ("any depth", ()),
    ("16-bit", (16,)),
    ("24-bit", (24,)),
    ("32-bit", (32,)),
    ("≥ 24-bit", (24, 32)),
    ("8-bit", (8,)),
]
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
    changed = Signal(object)  # ViewFilters
    browse_categories = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.min_dur = self._spin("shortest length in seconds (0: any)")
        self.max_dur = self._spin("longest length in seconds (0: any)")
        self.rate = self._combo(RATES)
        self.channels = self._combo(CHANNELS)
        self.bits = self._combo(BIT_DEPTHS)
        self.bits.setToolTip("Bits per sample (lossy files such as Ogg and MP3 have none)")
        self.format = self._combo(FORMATS)
        self.folder = QComboBox(self)
        self.folder.addItem("all folders", None)
        self.category = QLineEdit(self)
        self.category.setPlaceholderText("any category")
        self.category.setClearButtonEnabled(True)
        self.category.setToolTip(
            "Only files of this UCS category (e.g. DOORS) or CatID (e.g. DOORWood), from their "
            "metadata or UCS file names"
        )
        self.category.setMinimumWidth(self.category.fontMetrics().horizontalAdvance("M") * 5)
        self.browse = QToolButton(self)
        self.browse.setText("Categories…")
        self.browse.setToolTip("Browse the UCS categories (Ctrl+Shift+K)")
        self.reset = QToolButton(self)
        self.reset.setText("Clear")
        self.reset.setToolTip("Clear all filters")
        lay.addWidget(QLabel("Length", self))
        lay.addWidget(self.min_dur)
        lay.addWidget(QLabel("–", self))
        lay.addWidget(self.max_dur)
        for w in (self.rate, self.channels, self.bits, self.format, self.folder, self.category, self.browse):
            lay.addWidget(w)
        lay.addWidget(self.reset)
        lay.addStretch(1)
        # At 1024 px the row must fit: every box may shrink below its longest item (text elides).
        em = self.fontMetrics().horizontalAdvance("M")
        self.folder.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.folder.setMinimumContentsLength(9)  # a long path must not make the box wide
        for c in (self.rate, self.channels, self.bits, self.format, self.folder):
            c.setMinimumWidth(em * 4)
        for spin in (self.min_dur, self.max_dur):
            spin.setMinimumWidth(em * 4)
            spin.setMaximumWidth(em * 6)
        self.category.setMaximumWidth(em * 9)
        for spin in (self.min_dur, self.max_dur):
            spin.valueChanged.connect(self._emit)
        for combo in (self.rate, self.channels, self.bits, self.format, self.folder):
            combo.currentIndexChanged.connect(self._emit)
        self.category.editingFinished.connect(self._emit)
        self.category.textChanged.connect(lambda t: None if t.strip() else self._emit())  # ✕ clears at once
        self.browse.clicked.connect(self.browse_categories)
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

    def set_category_completions(self, model: QAbstractItemModel, role: int) -> None:
        """Offer completions from ``model`` (one column): matched and inserted from ``role``, shown from
        the display text."""
        completer = QCompleter(model, self.category)
        completer.setCompletionRole(role)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setMaxVisibleItems(14)
        completer.activated.connect(lambda _text: self._emit())
        self.category.setCompleter(completer)

    def category_value(self) -> str:
        return self.category.text().strip()

    def set_category(self, value: str) -> None:
        """Set the category filter (``''``: any) and emit ``changed``."""
        self.category.blockSignals(True)
        self.category.setText(value)
        self.category.blockSignals(False)
        self._emit()

    def clear(self) -> None:
        widgets = (
            self.min_dur,
            self.max_dur,
            self.rate,
            self.channels,
            self.bits,
            self.format,
            self.folder,
            self.category,
        )
        for w in widgets:
            w.blockSignals(True)
        self.min_dur.setValue(0)
        self.max_dur.setValue(0)
        for c in (self.rate, self.channels, self.bits, self.format, self.folder):
            c.setCurrentIndex(0)
        self.category.clear()
        for w in widgets:
            w.blockSignals(False)
        self._emit()

    def filters(self) -> ViewFilters:
        return ViewFilters(self.engine_filters(), tuple(self.bits.currentData() or ()))

    def engine_filters(self) -> Filters:
        rate = self.rate.currentData()
        return Filters(
            min_duration=self.min_dur.value() or None,
            max_duration=self.max_dur.value() or None,
            sample_rates=() if rate == "min44100" else tuple(rate or ()),
            min_sample_rate=44100 if rate == "min44100" else None,
            channels=tuple(self.channels.currentData() or ()),
            formats=tuple(self.format.currentData() or ()),
            folder=self.folder.currentData(),
            category=self.category_value() or None,
        )

    def _emit(self, *_) -> None:
        self.changed.emit(self.filters())
