"""The waveform of the previewed file: best-match window highlighted, moving playhead, click to seek,
drag to select a region (looped while selected), drag a selection out of the window as a WAV file."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLineF, QMimeData, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QDrag, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop_app.formatting import fmt_clock

_DRAG_PX = 4


def fit_peaks(peaks: np.ndarray, width: int) -> np.ndarray:
    """Reduce ``(bins, 2)`` min/max peaks to ``(width, 2)`` (or fewer when there are fewer bins)."""
    n = len(peaks)
    if n == 0 or width <= 0:
        return np.zeros((0, 2), np.float32)
    if n <= width:
        return peaks
    edges = np.linspace(0, n, width + 1).astype(np.int64)
    return np.stack(
        [np.minimum.reduceat(peaks[:, 0], edges[:-1]), np.maximum.reduceat(peaks[:, 1], edges[:-1])], axis=1
    )


class WaveformView(QWidget):
    seek_requested = Signal(float)  # seconds
    region_selected = Signal(float, float)  # seconds; emitted on release
    region_cleared = Signal()
    drag_out_requested = Signal()  # the user drags the selection out: call start_file_drag()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMouseTracking(False)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setToolTip(
            "Click to play from there · drag to select a loop region · "
            "drag the selection out to export it as a WAV"
        )
        self.peaks = np.zeros((0, 2), np.float32)
        self.offset_s = 0.0
        self.span_s = 0.0  # seconds the peaks cover
        self.duration_s = 0.0
        self.match: tuple[float, float] | None = None
        self.region: tuple[float, float] | None = None
        self.position_s: float | None = None
        self.message = "Select a result to see its waveform"
        self._press: QPointF | None = None
        self._press_in_region = False
        self._dragging = False
        self._fitted: tuple[int, np.ndarray] | None = None

    # -- content --------------------------------------------------------------------------------

    def set_clip(self, peaks: np.ndarray, offset_s: float, span_s: float, duration_s: float) -> None:
        self.peaks = np.asarray(peaks, np.float32)
        self.offset_s, self.span_s, self.duration_s = offset_s, span_s, duration_s
        self._fitted = None
        self.message = ""
        self.update()

    def clear(self, message: str = "") -> None:
        self.peaks = np.zeros((0, 2), np.float32)
        self.span_s = self.duration_s = 0.0
        self.match = self.region = self.position_s = None
        self._fitted = None
        self.message = message
        self.update()

    def set_match(self, match: tuple[float, float] | None) -> None:
        self.match = match
        self.update()

    def set_region(self, region: tuple[float, float] | None) -> None:
        self.region = region
        self.update()

    def set_position(self, t_s: float | None) -> None:
        self.position_s = t_s
        self.update()

    # -- geometry -------------------------------------------------------------------------------

    def _t_to_x(self, t: float) -> float:
        if self.span_s <= 0:
            return 0.0
        return (t - self.offset_s) / self.span_s * self.width()

    def _x_to_t(self, x: float) -> float:
        if self.span_s <= 0:
            return 0.0
        t = self.offset_s + max(0.0, min(1.0, x / max(1, self.width()))) * self.span_s
        return min(t, self.offset_s + self.span_s)

    # -- painting -------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        pal = self.palette()
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), pal.base())
        if self.message or len(self.peaks) == 0:
            p.setPen(pal.placeholderText().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.message)
            p.end()
            return
        accent = pal.highlight().color()
        if self.match is not None:
            a, b = (self._t_to_x(t) for t in self.match)
            fill = QColor(accent)
            fill.setAlpha(45)
            p.fillRect(QRectF(a, 0, max(2.0, b - a), h), fill)
        if self.region is not None:
            a, b = (self._t_to_x(t) for t in self.region)
            fill = QColor(255, 170, 0, 70)
            p.fillRect(QRectF(a, 0, max(1.0, b - a), h), fill)
            p.setPen(QPen(QColor(255, 150, 0), 1))
            p.drawLine(QPointF(a, 0), QPointF(a, h))
            p.drawLine(QPointF(b, 0), QPointF(b, h))
        if self._fitted is None or self._fitted[0] != w:
            self._fitted = (w, fit_peaks(self.peaks, w))
        fitted = self._fitted[1]
        scale = (h / 2 - 4) / max(1e-3, float(np.abs(self.peaks).max()))
        mid = h / 2
        p.setPen(QPen(pal.text().color() if self.match is None else accent.darker(130), 1))
        xs = (np.arange(len(fitted)) + 0.5) * w / max(1, len(fitted))
        tops = (mid - fitted[:, 1] * scale).tolist()
        bottoms = (mid - fitted[:, 0] * scale - 0.5).tolist()
        p.drawLines([QLineF(x, a, x, b) for x, a, b in zip(xs.tolist(), tops, bottoms, strict=True)])
        p.setPen(QPen(pal.mid().color(), 1))
        p.drawLine(0, int(mid), w, int(mid))
        if self.position_s is not None:
            x = self._t_to_x(self.position_s)
            p.setPen(QPen(QColor(220, 40, 40), 2))
            p.drawLine(QPointF(x, 0), QPointF(x, h))
        p.setPen(pal.text().color())
        p.drawText(4, h - 4, fmt_clock(self.offset_s))
        end = fmt_clock(self.offset_s + self.span_s)
        p.drawText(w - 4 - p.fontMetrics().horizontalAdvance(end), h - 4, end)
        p.end()

    # -- mouse ----------------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.span_s <= 0:
            return super().mousePressEvent(event)
        self._press = event.position()
        t = self._x_to_t(self._press.x())
        self._press_in_region = self.region is not None and self.region[0] <= t <= self.region[1]
        self._dragging = False

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press is None:
            return
        if not self._dragging and abs(event.position().x() - self._press.x()) < _DRAG_PX:
            return
        if self._press_in_region:
            self._press = None
            self.drag_out_requested.emit()
            return
        self._dragging = True
        a, b = sorted((self._x_to_t(self._press.x()), self._x_to_t(event.position().x())))
        self.set_region((a, b))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._press is None:
            return
        press, self._press = self._press, None
        if self._dragging and self.region is not None:
            self._dragging = False
            self.region_selected.emit(*self.region)
            return
        t = self._x_to_t(press.x())
        if self.region is not None and not self.region[0] <= t <= self.region[1]:
            self.set_region(None)
            self.region_cleared.emit()
        self.seek_requested.emit(t)

    def start_file_drag(self, mime: QMimeData) -> None:
        """Start dragging ``mime`` (the exported selection) out of the window."""
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.exec(Qt.DropAction.CopyAction)
