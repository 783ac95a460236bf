"""Previewing results: decode off the GUI thread, play through :class:`desktop_app.player.Player`, report
the playhead and the waveform to the views.

A preview starts from the best-matching window of the hit. Short files are decoded whole; for a long
one the few seconds after the match are decoded first (so it starts at once) and the whole file follows
and is swapped in without a jump. Decoded files stay in a small cache, so moving back and forth through
the results replays instantly.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from desktop_app.clips import (
    Clip,
    ClipCache,
    ExportFolder,
    channel_peaks,
    compute_peaks,
    export_region,
    remove_stale_exports,
)
from desktop_app.player import Player
from desktop_app.tasks import TaskRunner
from engine.audio import load_mono

log = logging.getLogger(__name__)

HEAD_S = 4.0  # decoded first for a long file
SHORT_FILE_S = 12.0  # files up to this long are decoded whole straight away
MAX_DECODE_S = 900.0  # longer files: only this much around the match
POLL_MS = 33


def decode_clip(
    path: str, sample_rate: int, start_s: float = 0.0, end_s: float | None = None, *, peaks: bool = True
) -> Clip:
    """Decode ``[start_s, end_s)`` of ``path`` to a :class:`Clip` (mono float32 at ``sample_rate``)."""
    samples = load_mono(path, sample_rate, start_s, end_s)
    complete = start_s <= 0.0 and end_s is None
    duration = len(samples) / sample_rate + start_s
    return Clip(
        path=path,
        samples=samples,
        sample_rate=sample_rate,
        offset_s=start_s,
        duration_s=duration,
        complete=complete,
        peaks=compute_peaks(samples) if peaks else None,
    )


class PreviewController(QObject):
    """Owns the player; all methods are called on the GUI thread."""

    audio_status = Signal(bool, str)  # available, message ("" when fine)
    clip_ready = Signal(object)  # Clip with peaks (the waveform of the current file)
    channels_ready = Signal(object, float, float)  # (channels, bins, 2) peaks, offset_s, span_s
    position_changed = Signal(float)  # seconds
    playing_changed = Signal(bool)
    loop_changed = Signal(bool)
    error = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        player: Player | None = None,
        cache: ClipCache | None = None,
        parent: QObject | None = None,
        exports: ExportFolder | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.player = player or Player()
        self.cache = cache or ClipCache()
        self.path: str | None = None
        self.match: tuple[float, float] | None = None
        self.region: tuple[float, float] | None = None
        self.duration_s = 0.0
        self._export: tuple[tuple[str, float, float], Path] | None = None
        self.exports = exports or ExportFolder()
        self._lanes: dict[tuple[str, float, float], object] = {}  # per-channel peaks, recent files
        self._channels = 1
        runner.submit(remove_stale_exports, None, lambda exc: log.info("stale exports: %s", exc), group="tidy")
        self._was_playing = False
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    # -- device ---------------------------------------------------------------------------------

    def open_audio(self, device: str | None = None) -> None:
        """Open the output stream in the background; ``audio_status`` reports the outcome."""
        self.runner.submit(
            lambda: self.player.open(device or None), self._opened, self._open_failed, group="audio-open"
        )

    def _opened(self, ok: bool) -> None:
        self.audio_status.emit(bool(ok), "" if ok else (self.player.error or "no audio device"))

    def _open_failed(self, exc: BaseException) -> None:
        self.audio_status.emit(False, f"No audio device: {exc}")

    @property
    def available(self) -> bool:
        return self.player.available

    # -- previews -------------------------------------------------------------------------------

    def preview(
        self,
        path: str,
        start_s: float = 0.0,
        end_s: float | None = None,
        duration_s: float | None = None,
        channels: int | None = None,
    ) -> None:
        """Play ``path`` from ``start_s`` (its best match ``[start_s, end_s)``, highlighted); a file of
        several ``channels`` also gets per-channel waveform lanes (read after it plays)."""
        self.path = str(path)
        self._channels = channels or 1
        self.match = (start_s, end_s) if end_s is not None else None
        self.region = None
        self.player.set_region(None, None)
        self.duration_s = duration_s or 0.0
        sr = self.player.samplerate if self.player.available else 16000  # no audio: the waveform only
        cached = self.cache.get(self.path, sr)
        if cached is not None:
            self.runner.invalidate("preview-head")
            self.runner.invalidate("preview-full")
            self._show(cached)
            self._play(cached, start_s)
            return
        long_file = duration_s is not None and duration_s > SHORT_FILE_S
        if long_file:
            self.runner.submit(
                lambda p=self.path: decode_clip(p, sr, start_s, start_s + HEAD_S, peaks=False),
                lambda clip: self._head_ready(clip, start_s),
                self._decode_failed,
                group="preview-head",
                priority=2,
            )
        else:
            self.runner.invalidate("preview-head")
        lo, hi = 0.0, None
        if duration_s is not None and duration_s > MAX_DECODE_S:
            lo = max(0.0, start_s - 60.0)
            hi = lo + MAX_DECODE_S
        self.runner.submit(
            lambda p=self.path: decode_clip(p, sr, lo, hi),
            lambda clip: self._full_ready(clip, start_s, long_file),
            self._decode_failed,
            group="preview-full",
            priority=1,
        )

    def _head_ready(self, clip: Clip, start_s: float) -> None:
        if clip.path == self.path:
            self._play(clip, start_s)

    def _full_ready(self, clip: Clip, start_s: float, head_requested: bool) -> None:
        self.cache.put(clip)
        if clip.path != self.path:
            return
        self.duration_s = clip.duration_s
        self._show(clip)
        if head_requested and self.player.playing:
            self.player.replace(clip.samples, offset_s=clip.offset_s)
        elif not head_requested:
            self._play(clip, start_s)
        else:  # the head finished (or failed) before the whole file arrived: keep the buffer for seeking
            self.player.replace(clip.samples, offset_s=clip.offset_s)

    def _decode_failed(self, exc: BaseException) -> None:
        self.error.emit(f"cannot preview: {exc}")

    def _show(self, clip: Clip) -> None:
        self.duration_s = clip.duration_s
        self.clip_ready.emit(clip)
        if self._channels < 2:
            return  # mono: the clip's own peaks are the one lane
        span = len(clip.samples) / clip.sample_rate
        key = (clip.path, clip.offset_s, span)
        if key in self._lanes:
            self.channels_ready.emit(self._lanes[key], clip.offset_s, span)
            return
        self.runner.submit(
            lambda: channel_peaks(clip.path, clip.offset_s, span),
            lambda peaks: self._lanes_ready(key, peaks),
            lambda exc: log.info("no channel lanes: %s", exc),
            group="lanes",
            priority=-1,  # after any decode a preview waits for
        )

    def _lanes_ready(self, key: tuple[str, float, float], peaks) -> None:
        self._lanes[key] = peaks
        while len(self._lanes) > 32:
            self._lanes.pop(next(iter(self._lanes)))
        if key[0] == self.path:
            self.channels_ready.emit(peaks, key[1], key[2])

    def _play(self, clip: Clip, start_s: float) -> None:
        start = min(max(start_s, clip.offset_s), clip.duration_s)
        if self.player.play(clip.samples, offset_s=clip.offset_s, start_s=start):
            self._timer.start()
        self._sync_state()

    # -- transport ------------------------------------------------------------------------------

    def toggle(self) -> None:
        """Space: stop when playing, else play from the current position."""
        if self.player.playing:
            self.stop()
        elif self.path is not None and self.player.resume():
            self._timer.start()
        self._sync_state()

    def stop(self) -> None:
        self.player.stop()
        self._sync_state()

    def seek(self, t_s: float, *, play: bool = True) -> None:
        """Click on the waveform: jump there (and play); a click outside the selection clears it."""
        if self.region is not None and not self.region[0] <= t_s < self.region[1]:
            self.set_region(None)
        self.player.seek(t_s)
        if play and not self.player.playing and self.player.resume():
            self._timer.start()
        self.position_changed.emit(self.player.position_s)
        self._sync_state()

    def seek_step(self, direction: int) -> None:
        """←/→: move by a tenth of the file (between 0.1 and 5 seconds)."""
        step = min(5.0, max(0.1, self.duration_s / 10.0))
        self.player.seek_by(direction * step)
        self.position_changed.emit(self.player.position_s)

    def toggle_loop(self) -> None:
        self.player.set_loop(not self.player.loop)
        self.loop_changed.emit(self.player.loop)

    def set_loop(self, on: bool) -> None:
        self.player.set_loop(on)
        self.loop_changed.emit(self.player.loop)

    def set_volume(self, volume: float) -> None:
        self.player.set_volume(volume)

    def set_region(self, region: tuple[float, float] | None) -> None:
        """A waveform selection: playback (and the loop) stays inside it; ``None`` clears it."""
        if region is not None and region[1] - region[0] < 0.01:
            region = None
        self.region = region
        self.player.set_region(*(region or (None, None)))
        if region is not None and self.path is not None:
            key = (self.path, region[0], region[1])
            dest = self.exports.path
            self.runner.submit(
                lambda: (key, export_region(key[0], key[1], key[2], dest)),
                self._exported,
                lambda exc: log.info("pre-export failed: %s", exc),
                group="export",
            )
            if not self.player.playing and self.player.resume():
                self._timer.start()
            self._sync_state()

    def _exported(self, result: tuple[tuple[str, float, float], Path]) -> None:
        self.exports.replace(self._export[1] if self._export else None, result[1])
        self._export = result

    def export_selection(self) -> Path | None:
        """The selection as a WAV file (already written in the background, or written now)."""
        if self.region is None or self.path is None:
            return None
        key = (self.path, self.region[0], self.region[1])
        if self._export is not None and self._export[0] == key and self._export[1].exists():
            self.exports.keep(self._export[1])
            return self._export[1]
        path = export_region(*key, self.exports.path)
        self.exports.replace(self._export[1] if self._export else None, path)
        self._export = (key, path)
        self.exports.keep(path)
        return path

    # -- playhead -------------------------------------------------------------------------------

    def _poll(self) -> None:
        self.position_changed.emit(self.player.position_s)
        self._sync_state()
        if not self.player.playing:
            self._timer.stop()

    def _sync_state(self) -> None:
        playing = self.player.playing
        if playing != self._was_playing:
            self._was_playing = playing
            self.playing_changed.emit(playing)

    def close(self) -> None:
        """Stop playing, close the stream, delete this session's exported selections."""
        self._timer.stop()
        self.player.close()
        self.exports.cleanup()
