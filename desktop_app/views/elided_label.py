"""A one-line label that never asks for more room than it gets: long text ends in "…" (the whole text
is in its tooltip), so a long query or file name cannot widen the window."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget


class ElidedLabel(QWidget):
    clicked = Signal()

    def __init__(
        self,
        text: str = "",
        parent: QWidget | None = None,
        *,
        mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
        min_chars: int = 4,
    ) -> None:
        super().__init__(parent)
        self._text = ""
        self._mode = mode
        self._min_chars = min_chars
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        self._text = text or ""
        self.updateGeometry()
        self._update_tooltip()
        self.update()

    def elided_text(self) -> str:
        """What is painted at the current width."""
        return self.fontMetrics().elidedText(self._text, self._mode, max(0, self.width()))

    @property
    def is_elided(self) -> bool:
        return self.elided_text() != self._text

    def _update_tooltip(self) -> None:
        self.setToolTip(self._text if self.is_elided else "")

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        return QSize(min(fm.horizontalAdvance(self._text), 400) + 2, fm.height() + 2)

    def minimumSizeHint(self) -> QSize:
        fm = self.fontMetrics()
        return QSize(fm.averageCharWidth() * self._min_chars, fm.height() + 2)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._update_tooltip()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setPen(self.palette().color(self.foregroundRole()))
        p.drawText(
            self.rect(), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), self.elided_text()
        )
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mousePressEvent(event)
