"""The details panel beside the results: the selected file's metadata (description, UCS category,
keywords, library, designer, …) and a button to show only its category."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from desktop_app.details import Details, breakable
from desktop_app.views.elided_label import ElidedLabel

EMPTY_TEXT = "Select a result to see what its file says about itself."


class DetailsPanel(QFrame):
    category_chosen = Signal(str)  # a CatID or a category name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumWidth(160)
        self.title = ElidedLabel("", self, mode=Qt.TextElideMode.ElideMiddle)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.body = QLabel(EMPTY_TEXT, self)
        self.body.setWordWrap(True)
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.category_button = QPushButton("", self)
        self.category_button.setMinimumWidth(40)
        self.category_button.setToolTip("Filter the results by this category")
        self.category_button.hide()
        inner = QWidget(self)
        il = QVBoxLayout(inner)
        il.setContentsMargins(8, 8, 8, 8)
        il.addWidget(self.title)
        il.addWidget(self.body)
        il.addWidget(self.category_button, 0, Qt.AlignmentFlag.AlignLeft)
        il.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(scroll)
        self._category = ""
        self.rows: list[tuple[str, str]] = []
        self.category_button.clicked.connect(lambda: self.category_chosen.emit(self._category))

    def show_details(self, d: Details) -> None:
        self.title.setText(d.title)
        if d.empty:
            self.body.setText(EMPTY_TEXT)
        else:
            self.body.setText(
                "".join(
                    f"<p style='margin:0 0 6px 0'><b>{escape(label)}</b><br>{escape(breakable(text))}</p>"
                    for label, text in d.rows
                )
            )
        self.rows = list(d.rows)
        self._category = d.category_value
        self.category_button.setText(f"Only {d.category_label or d.category_value}")
        self.category_button.setVisible(bool(d.category_value))
