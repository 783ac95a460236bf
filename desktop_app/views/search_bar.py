"""Back/forward buttons, the query box (type to search; ↓ moves into the results), the search mode switch
(Both / Sound / Keywords) and a busy label."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QStyle, QToolButton, QWidget

PLACEHOLDER = 'Describe a sound, e.g. "rain on a tin roof"'
# (engine.search mode, button text, tooltip, placeholder of the query box)
MODES = [
    (
        "both",
        "Both",
        "Match what files sound like and their names and metadata (Ctrl+1)",
        'Describe or name a sound, e.g. "rain on a tin roof", door -metal',
    ),
    ("content", "Sound", "Match only what files sound like (Ctrl+2)", PLACEHOLDER),
    (
        "keywords",
        "Keywords",
        'Match only file names, folders and metadata: words, "phrases", -exclude, OR, prefix*, '
        "category:, library:, designer: (Ctrl+3)",
        "Words in names and metadata, e.g. door slam -metal category:doors",
    ),
]


class SearchBar(QWidget):
    text_edited = Signal(str)
    submitted = Signal(str)
    back = Signal()
    forward = Signal()
    into_results = Signal()  # ↓ in the box
    mode_changed = Signal(str)  # "both" | "content" | "keywords", when the user picks one

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        style = self.style()
        self.back_button = QToolButton(self)
        self.back_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_ArrowBack))
        self.back_button.setToolTip("Previous query (Alt+Left)")
        self.forward_button = QToolButton(self)
        self.forward_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_ArrowForward))
        self.forward_button.setToolTip("Next query (Alt+Right)")
        self.edit = QLineEdit(self)
        self.edit.setPlaceholderText(PLACEHOLDER)
        self.edit.setClearButtonEnabled(True)
        font = self.edit.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        self.edit.setFont(font)
        self.edit.setMinimumHeight(self.edit.fontMetrics().height() + 14)
        self.mode_group = QActionGroup(self)
        self.mode_group.setExclusive(True)
        self.mode_actions: dict[str, QAction] = {}
        self._placeholders: dict[str, str] = {}
        self.mode_buttons: list[QToolButton] = []
        for i, (mode, text, tip, placeholder) in enumerate(MODES):
            a = QAction(text, self)
            a.setCheckable(True)
            a.setData(mode)
            a.setToolTip(tip)
            a.setStatusTip(tip)
            a.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.mode_group.addAction(a)
            self.mode_actions[mode] = a
            self._placeholders[mode] = placeholder
            button = QToolButton(self)
            button.setDefaultAction(a)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes from the box to the results
            self.mode_buttons.append(button)
        self.busy = QLabel("", self)
        self.busy.setMinimumWidth(self.busy.fontMetrics().horizontalAdvance("loading the model…") + 6)
        self.busy.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        lay.addWidget(self.back_button)
        lay.addWidget(self.forward_button)
        lay.addWidget(self.edit, 1)
        lay.addSpacing(4)
        for button in self.mode_buttons:
            lay.addWidget(button)
        lay.addWidget(self.busy)
        self.back_button.clicked.connect(self.back)
        self.forward_button.clicked.connect(self.forward)
        self.edit.textEdited.connect(self._edited)
        self.edit.returnPressed.connect(lambda: self.submitted.emit(self.edit.text()))
        self.edit.installEventFilter(self)
        self.mode_group.triggered.connect(self._mode_triggered)
        self.set_history_enabled(False, False)
        self.set_mode("both")

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.edit and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Down, Qt.Key.Key_PageDown):
                self.into_results.emit()
                return True
        return super().eventFilter(obj, event)

    def _edited(self, text: str) -> None:
        self._set_italic(False)  # typing ends a "similar to …" query
        self.text_edited.emit(text)

    def _set_italic(self, on: bool) -> None:
        font = self.edit.font()
        if font.italic() != on:
            font.setItalic(on)
            self.edit.setFont(font)

    def _mode_triggered(self, action: QAction) -> None:
        self.edit.setPlaceholderText(self._placeholders[action.data()])
        self.mode_changed.emit(action.data())

    def set_mode(self, mode: str) -> None:
        """Show ``mode`` as the current search mode (without emitting ``mode_changed``)."""
        action = self.mode_actions.get(mode, self.mode_actions["both"])
        action.setChecked(True)
        self.edit.setPlaceholderText(self._placeholders[action.data()])

    def mode(self) -> str:
        return self.mode_group.checkedAction().data()

    def set_history_enabled(self, can_back: bool, can_forward: bool) -> None:
        self.back_button.setEnabled(can_back)
        self.forward_button.setEnabled(can_forward)

    def show_query(self, text: str, *, similar: bool = False) -> None:
        """Show a query (from the history, or "similar to …") without triggering a search."""
        self.edit.setText(text)
        self._set_italic(similar)

    def type_ahead(self, text: str) -> None:
        """A key typed in the results list: continue the query here."""
        self.edit.setFocus()
        self.edit.insert(text)
        self._edited(self.edit.text())

    def set_busy(self, text: str) -> None:
        self.busy.setText(text)
