"""The waveform of the previewed file: one lane per channel, a time grid, zoom (mouse wheel, +/-), the
best-match window highlighted, moving playhead, click to seek, drag to select a region (looped while
selected), drag a selection out of the window as a WAV file."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QLineF, QMimeData, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QDrag, QMouseEvent, QPainter, QPaintEvent, QPen, QWheelEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop_app.formatting import fmt_clock

_DRAG_PX = 4
ZOOM_STEP = 2.0  # each wheel notch or +/- halves (or doubles) the visible span
MIN_SPAN_S = 0.05
GRID_MIN_PX = 70  # at least this many pixels between grid lines
_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
CHANNEL_NAMES = {1: ("",), 2: ("L", "R")}


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


def grid_step(span_s: float, width_px: int, min_px: int = GRID_MIN_PX) -> float:
    """The smallest "round" interval (10 ms … 1 h) whose grid lines are at least ``min_px`` apart."""
    if span_s <= 0 or width_px <= 0:
        return _STEPS[-1]
    for step in _STEPS:
        if step / span_s * width_px >= min_px:
            return float(step)
    return float(_STEPS[-1])


def grid_ticks(start_s: float, end_s: float, width_px: int, min_px: int = GRID_MIN_PX) -> list[float]:
    """Grid line times (seconds, multiples of :func:`grid_step`) inside ``[start_s, end_s]``."""
    step = grid_step(end_s - start_s, width_px, min_px)
    first = math.ceil(start_s / step - 1e-9)
    out = []
    k = first
    while k * step <= end_s + 1e-9:
        out.append(round(k * step, 6))
        k += 1
    return out


def tick_label(t: float, step: float) -> str:
    """``'1:05'`` for whole seconds, ``'0:01.25'`` when the grid is finer than a second."""
    decimals = 0 if step >= 1 else (1 if step >= 0.1 else 2)
    return fmt_clock(t, decimals=decimals)


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
            "Click to play from there · drag to select a loop region · drag the selection out to export "
            "it as a WAV · mouse wheel or +/- to zoom, Shift+wheel to scroll"
        )
        self.peaks = np.zeros((0, 2), np.float32)  # mono (bins, 2)
        self.channel_peaks: np.ndarray | None = None  # (channels, bins, 2) when known
        self.offset_s = 0.0
        self.span_s = 0.0  # seconds the peaks cover
        self.duration_s = 0.0
        self.view: tuple[float, float] = (0.0, 0.0)  # the visible time range (zoom)
        self.match: tuple[float, float] | None = None
        self.region: tuple[float, float] | None = None
        self.position_s: float | None = None
        self.message = "Select a result to see its waveform"
        self._press: QPointF | None = None
        self._press_in_region = False
        self._dragging = False
        self._fitted: tuple | None = None  # (width, view, lanes id) → fitted peaks

    # -- content --------------------------------------------------------------------------------

    def set_clip(self, peaks: np.ndarray, offset_s: float, span_s: float, duration_s: float) -> None:
        """Mono min/max ``peaks`` (bins, 2) covering ``[offset_s, offset_s + span_s)``; zooms out."""
        same = self.span_s == span_s and self.offset_s == offset_s and self.channel_peaks is not None
        self.peaks = np.asarray(peaks, np.float32)
        if not same:
            self.channel_peaks = None
        self.offset_s, self.span_s, self.duration_s = offset_s, span_s, duration_s
        self.view = (offset_s, offset_s + span_s)
        self.message = ""
        self.update()

    def set_channel_peaks(self, peaks: np.ndarray, offset_s: float, span_s: float) -> None:
        """Per-channel peaks ``(channels, bins, 2)`` of the clip shown (ignored for another span)."""
        if abs(offset_s - self.offset_s) > 1e-6 or abs(span_s - self.span_s) > 0.05:
            return
        peaks = np.asarray(peaks, np.float32)
        self.channel_peaks = peaks if peaks.ndim == 3 and len(peaks) > 0 else None
        self.update()

    @property
    def channels(self) -> int:
        return 1 if self.channel_peaks is None else len(self.channel_peaks)

    def clear(self, message: str = "") -> None:
        self.peaks = np.zeros((0, 2), np.float32)
        self.channel_peaks = None
        self.span_s = self.duration_s = 0.0
        self.view = (0.0, 0.0)
        self.match = self.region = self.position_s = None
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
        if t_s is not None and self.zoomed:  # follow the playhead a page at a time
            a, b = self.view
            if not a <= t_s <= b:
                self._set_view(t_s - 0.05 * (b - a), b - a)
        self.update()

    # -- zoom -----------------------------------------------------------------------------------

    @property
    def zoomed(self) -> bool:
        return self.span_s > 0 and (self.view[1] - self.view[0]) < self.span_s - 1e-6

    @property
    def zoom_factor(self) -> float:
        width = self.view[1] - self.view[0]
        return self.span_s / width if width > 0 else 1.0

    def _set_view(self, start: float, width: float) -> None:
        lo, hi = self.offset_s, self.offset_s + self.span_s
        width = min(max(width, min(MIN_SPAN_S, self.span_s)), self.span_s)
        start = min(max(start, lo), hi - width)
        self.view = (start, start + width)
        self.update()

    def zoom_by(self, steps: int, anchor_s: float | None = None) -> None:
        """Zoom in (``steps`` > 0) or out around ``anchor_s`` (default: the playhead, else the match,
        else the middle of the view); the anchor stays where it is on screen."""
        if self.span_s <= 0 or steps == 0:
            return
        a, b = self.view
        if anchor_s is None:
            anchor_s = next(
                (t for t in (self.position_s, self.match[0] if self.match else None) if t is not None and a <= t <= b),
                (a + b) / 2,
            )
        frac = (anchor_s - a) / (b - a) if b > a else 0.5
        width = (b - a) / (ZOOM_STEP ** steps)
        self._set_view(anchor_s - frac * width, width)

    def zoom_fit(self) -> None:
        self._set_view(self.offset_s, self.span_s)

    def wheelEvent(self, event: QWheelEvent) -> None:
        if self.span_s <= 0:
            return super().wheelEvent(event)
        delta = event.angleDelta()
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier or abs(delta.x()) > abs(delta.y()):
            a, b = self.view
            d = delta.x() if abs(delta.x()) > abs(delta.y()) else delta.y()
            self._set_view(a - d / 120 * 0.2 * (b - a), b - a)
        elif delta.y():
            self.zoom_by(1 if delta.y() > 0 else -1, self._x_to_t(event.position().x()))
        event.accept()

    # -- geometry -------------------------------------------------------------------------------

    def _t_to_x(self, t: float) -> float:
        a, b = self.view
        if b <= a:
            return 0.0
        return (t - a) / (b - a) * self.width()

    def _x_to_t(self, x: float) -> float:
        a, b = self.view
        if b <= a:
            return 0.0
        return a + max(0.0, min(1.0, x / max(1, self.width()))) * (b - a)

    def _visible(self, peaks: np.ndarray) -> np.ndarray:
        """The bins of ``peaks`` (bins, 2) inside the view."""
        n = len(peaks)
        if n == 0 or self.span_s <= 0:
            return peaks
        a, b = self.view
        i = int(max(0, math.floor((a - self.offset_s) / self.span_s * n)))
        j = int(min(n, math.ceil((b - self.offset_s) / self.span_s * n)))
        return peaks[i : max(i + 1, j)]

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
        top = p.fontMetrics().height() + 2  # the time grid's labels
        self._paint_grid(p, w, h, top)
        if self.match is not None:
            a, b = (self._t_to_x(t) for t in self.match)
            fill = QColor(accent)
            fill.setAlpha(45)
            p.fillRect(QRectF(a, top, max(3.0, b - a), h - top), fill)
            p.fillRect(QRectF(a, top, max(3.0, b - a), 3), accent)  # visible even on a long file
        if self.region is not None:
            a, b = (self._t_to_x(t) for t in self.region)
            p.fillRect(QRectF(a, top, max(1.0, b - a), h - top), QColor(255, 170, 0, 70))
            p.setPen(QPen(QColor(255, 150, 0), 1))
            p.drawLine(QPointF(a, top), QPointF(a, h))
            p.drawLine(QPointF(b, top), QPointF(b, h))
        lanes = [self.peaks] if self.channel_peaks is None else list(self.channel_peaks)
        lane_h = (h - top) / len(lanes)
        key = (w, h, top, self.view, id(self.peaks), id(self.channel_peaks))
        if self._fitted is None or self._fitted[0] != key:  # the playhead repaints 30 times a second
            peak = max(1e-3, max(float(np.abs(x).max()) if len(x) else 0.0 for x in lanes))
            lines = []
            for k, lane in enumerate(lanes):
                fitted = fit_peaks(self._visible(lane), w)
                mid = top + k * lane_h + lane_h / 2
                scale = (lane_h / 2 - 2) / peak
                xs = ((np.arange(len(fitted)) + 0.5) * w / max(1, len(fitted))).tolist()
                tops = (mid - fitted[:, 1] * scale).tolist()
                bottoms = (mid - fitted[:, 0] * scale - 0.5).tolist()
                lines.append([QLineF(x, a, x, b) for x, a, b in zip(xs, tops, bottoms, strict=True)])
            self._fitted = (key, lines)
        lane_lines = self._fitted[1]
        names = CHANNEL_NAMES.get(len(lanes), tuple(str(i + 1) for i in range(len(lanes))))
        wave_pen = QPen(pal.text().color() if self.match is None else accent.darker(130), 1)
        for k in range(len(lanes)):
            y0 = top + k * lane_h
            mid = y0 + lane_h / 2
            if lane_lines[k]:
                p.setPen(wave_pen)
                p.drawLines(lane_lines[k])
            p.setPen(QPen(pal.mid().color(), 1))
            p.drawLine(QPointF(0, mid), QPointF(w, mid))
            if k:
                p.drawLine(QPointF(0, y0), QPointF(w, y0))
            if names[k]:
                p.setPen(pal.placeholderText().color())
                p.drawText(QPointF(4, y0 + p.fontMetrics().ascent() + 1), names[k])
        if self.position_s is not None:
            x = self._t_to_x(self.position_s)
            p.setPen(QPen(QColor(220, 40, 40), 2))
            p.drawLine(QPointF(x, 0), QPointF(x, h))
        if self.zoomed:
            text = f"×{self.zoom_factor:.0f}" if self.zoom_factor >= 2 else f"×{self.zoom_factor:.1f}"
            p.setPen(pal.placeholderText().color())
            p.drawText(w - 4 - p.fontMetrics().horizontalAdvance(text), h - 4, text)
        p.end()

    def _paint_grid(self, p: QPainter, w: int, h: int, top: int) -> None:
        a, b = self.view
        if b <= a:
            return
        pal = self.palette()
        step = grid_step(b - a, w)
        line = QColor(pal.mid().color())
        line.setAlpha(110)
        for t in grid_ticks(a, b, w):
            x = self._t_to_x(t)
            p.setPen(QPen(line, 1))
            p.drawLine(QPointF(x, top), QPointF(x, h))
            label = tick_label(t, step)
            lx = min(max(0.0, x + 2), w - p.fontMetrics().horizontalAdvance(label) - 2)
            p.setPen(pal.placeholderText().color())
            p.drawText(QPointF(lx, p.fontMetrics().ascent()), label)

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
