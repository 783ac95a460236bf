"""Settings: library location, model bundle (with its model card), inference device, audio output."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop_app.settings import AppSettings

DEVICES = [("Automatic (GPU when available)", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda")]


class SettingsDialog(QDialog):
    rescan_audio = Signal()

    def __init__(self, settings: AppSettings, default_library: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.resize(720, 600)
        self._settings = settings
        lay = QVBoxLayout(self)
        form = QFormLayout()
        lay.addLayout(form)

        self.library = QLineEdit(settings.library_dir, self)
        self.library.setPlaceholderText(default_library)
        browse = QPushButton("Choose…", self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.library, 1)
        row.addWidget(browse)
        form.addRow("Library location", row)

        self.model = QComboBox(self)
        self.model.addItem("The library's model (or the shipped default)", "")
        form.addRow("Model", self.model)
        self.card = QTextBrowser(self)
        self.card.setOpenExternalLinks(True)
        self.card.setMinimumHeight(220)
        form.addRow("Model card", self.card)

        self.device = QComboBox(self)
        self.device.setEditable(True)
        for label, value in DEVICES:
            self.device.addItem(label, value)
        idx = self.device.findData(settings.device)
        if idx >= 0:
            self.device.setCurrentIndex(idx)
        else:
            self.device.setEditText(settings.device)
        form.addRow("Compute device", self.device)

        self.audio = QComboBox(self)
        self.audio.addItem("System default", "")
        rescan = QPushButton("Rescan", self)
        rescan.clicked.connect(self.rescan_audio)
        row = QHBoxLayout()
        row.addWidget(self.audio, 1)
        row.addWidget(rescan)
        form.addRow("Audio output", row)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.model.currentIndexChanged.connect(self._show_card)
        self._cards: dict[str, str] = {}
        self._current_card = ""

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(
            self, "Library location", self.library.text() or self.library.placeholderText()
        )
        if d:
            self.library.setText(d)

    def set_models(self, models, current_card: str = "") -> None:
        """``models``: list of :class:`desktop_app.session.ModelInfo`; ``current_card``: the card of the model
        in use (shown for the first entry)."""
        self._current_card = current_card
        self.model.blockSignals(True)
        while self.model.count() > 1:
            self.model.removeItem(1)
        for m in models:
            self.model.addItem(m.title + ("  [default]" if m.is_default else ""), m.path)
            self._cards[m.path] = m.model_card or (m.error or m.description)
        idx = self.model.findData(self._settings.model) if self._settings.model else 0
        if idx < 0:
            self.model.addItem(self._settings.model, self._settings.model)
            idx = self.model.count() - 1
        self.model.setCurrentIndex(idx)
        self.model.blockSignals(False)
        self._show_card()

    def _show_card(self, *_) -> None:
        path = self.model.currentData()
        self.card.setMarkdown(self._cards.get(path, "") if path else (self._current_card or ""))

    def set_audio_devices(self, devices) -> None:
        """``devices``: list of :class:`desktop_app.player.OutputDevice`."""
        self.audio.clear()
        self.audio.addItem("System default", "")
        for d in devices:
            self.audio.addItem(f"{d.name}{' (default)' if d.is_default else ''}", d.name)
        idx = self.audio.findData(self._settings.audio_device)
        if idx < 0 and self._settings.audio_device:
            self.audio.addItem(f"{self._settings.audio_device} (not found)", self._settings.audio_device)
            idx = self.audio.count() - 1
        self.audio.setCurrentIndex(max(0, idx))

    def values(self) -> AppSettings:
        device = self.device.currentData()
        if device is None or self.device.currentText() != self.device.itemText(self.device.currentIndex()):
            device = self.device.currentText().strip() or "auto"
        return replace(
            self._settings,
            library_dir=self.library.text().strip(),
            model=self.model.currentData() or "",
            device=device,
            audio_device=self.audio.currentData() or "",
        )
