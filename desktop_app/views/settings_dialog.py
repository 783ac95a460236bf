"""Settings: library location (and the one open now), auto-play, model bundle (described for a sound
designer, the technical card behind "Details"), inference device, audio output."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.model_notes import notes_html
from desktop_app.settings import AppSettings

DEVICES = [("Automatic (GPU when available)", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda")]


class SettingsDialog(QDialog):
    rescan_audio = Signal()

    def __init__(
        self,
        settings: AppSettings,
        default_library: str,
        parent: QWidget | None = None,
        *,
        open_library: str = "",
        open_note: str = "",
    ) -> None:
        """``open_library``: the library open now (``open_note`` says why, e.g. "--library")."""
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.resize(720, 620)
        self._settings = settings
        lay = QVBoxLayout(self)
        form = QFormLayout()
        lay.addLayout(form)

        self.library = QLineEdit(settings.library_dir, self)
        self.library.setPlaceholderText(f"default: {default_library}")
        browse = QPushButton("Choose…", self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.library, 1)
        row.addWidget(browse)
        form.addRow("Library location", row)
        self.open_library = QLabel(self)
        self.open_library.setWordWrap(True)
        self.open_library.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_library.setText(
            f"Open now: {open_library}" + (f" ({open_note})" if open_note else "") if open_library else ""
        )
        self.open_library.setVisible(bool(open_library))
        form.addRow("", self.open_library)

        self.auto_preview = QCheckBox("Play each result as you move through the list", self)
        self.auto_preview.setChecked(settings.auto_preview)
        self.auto_preview.setToolTip("Off: ↑/↓ only select; Space plays")
        form.addRow("Auto-play", self.auto_preview)

        self.model = QComboBox(self)
        self.model.addItem("The library's model (or the shipped default)", "")
        form.addRow("Model", self.model)
        self.about = QLabel(self)
        self.about.setWordWrap(True)
        self.about.setTextFormat(Qt.TextFormat.RichText)
        self.about.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        form.addRow("", self.about)
        self.details = QToolButton(self)
        self.details.setText("Details (model card)")
        self.details.setCheckable(True)
        self.details.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.details.setArrowType(Qt.ArrowType.RightArrow)
        self.details.setAutoRaise(True)
        form.addRow("", self.details)
        self.card = QTextBrowser(self)
        self.card.setOpenExternalLinks(True)
        self.card.setMinimumHeight(200)
        self.card.hide()
        form.addRow("", self.card)
        self.details.toggled.connect(self._toggle_details)

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
        self._notes: dict[str, str] = {}
        self._current_card = ""
        self._current_notes = ""

    def _toggle_details(self, on: bool) -> None:
        self.details.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.card.setVisible(on)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(
            self, "Library location", self.library.text() or self.library.placeholderText()
        )
        if d:
            self.library.setText(d)

    def set_models(self, models, current_card: str = "", current_name: str = "", current_trained: bool = True) -> None:
        """``models``: list of :class:`desktop_app.session.ModelInfo`; ``current_card`` / ``current_name``:
        the model in use (shown for the first entry)."""
        self._current_card = current_card
        self._current_notes = notes_html(current_name, trained=current_trained)
        self.model.blockSignals(True)
        while self.model.count() > 1:
            self.model.removeItem(1)
        for m in models:
            self.model.addItem(m.title + ("  [default]" if m.is_default else ""), m.path)
            self._cards[m.path] = m.model_card or (m.error or m.description)
            self._notes[m.path] = (
                f"<p>This model cannot be loaded: {m.error}</p>" if m.error else notes_html(m.name, m.description, m.trained)
            )
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
        self.about.setText(self._notes.get(path, "") if path else self._current_notes)

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
            auto_preview=self.auto_preview.isChecked(),
        )
