"""Audio output: one PortAudio stream kept open, fed from memory. The only module importing sounddevice.

The stream runs all the time (silence when idle), so starting a preview is a pointer swap that the next
audio callback picks up: no device open, no buffer allocation on the key press. A missing PortAudio
library, a machine without output device or a device that refuses to open leave the player
*unavailable* with a message for the user; every method then does nothing.

Audio given to :meth:`Player.play` is mono float32 at :attr:`Player.samplerate` (the device's rate),
copied to every output channel. Times are in seconds of the file being previewed: a buffer may hold only
part of the file (``offset_s`` says where it starts), and :meth:`Player.replace` swaps in a longer
decode of the same file without a jump.

Thread safety: the public methods may be called from any thread; they and the audio callback share one
short lock.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

_UNPACED_LEAD_S = 1.0  # a device that swallows this much more audio than real time has no clock


@dataclass(frozen=True)
class OutputDevice:
    index: int
    name: str
    samplerate: float
    is_default: bool


class Player:
    """See the module docstring. ``device``: a PortAudio device name or index (None: the default)."""

    def __init__(self, device: str | int | None = None, *, blocksize: int = 512) -> None:
        self.blocksize = blocksize
        self.device = device
        self.error: str | None = "audio output not opened yet"
        self.samplerate = 48000
        self.channels = 2
        self.device_name = ""
        self._sd = None
        self._stream = None
        self._lock = threading.Lock()
        self._buf = np.zeros(0, np.float32)
        self._offset = 0  # file frame of _buf[0]
        self._pos = 0  # index into _buf of the next frame to play
        self._playing = False
        self._volume = 0.8
        self._loop = False
        self._region: tuple[int, int] | None = None  # file frames [a, b) looped / played
        self._serial = 0  # of the buffer given to play()
        self._heard_serial = 0  # of the buffer the audio callback last output
        self.request_time = 0.0  # perf_counter() of the last play()
        self.first_callback_time = 0.0  # perf_counter() of the first callback playing it
        self._pace_t0 = 0.0
        self._pace_frames = 0
        self._unpaced = False
        self.callbacks = 0

    # -- device ---------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._stream is not None

    def _import(self):
        if self._sd is None:
            import sounddevice  # raises OSError when the PortAudio library is missing

            self._sd = sounddevice
        return self._sd

    def output_devices(self) -> list[OutputDevice]:
        """Devices with output channels ([] when PortAudio is missing)."""
        try:
            sd = self._import()
            default_out = sd.default.device[1]
            return [
                OutputDevice(
                    int(d["index"]),
                    str(d["name"]),
                    float(d["default_samplerate"]),
                    int(d["index"]) == default_out,
                )
                for d in sd.query_devices()
                if d["max_output_channels"] > 0
            ]
        except Exception as exc:
            log.info("cannot list audio devices: %s", exc)
            return []

    def rescan(self) -> None:
        """Re-read the system's device list (after plugging a device in); closes the stream."""
        self.close()
        try:
            sd = self._import()
            sd._terminate()  # the documented way to refresh PortAudio's device list
            sd._initialize()
        except Exception as exc:
            log.info("cannot rescan audio devices: %s", exc)

    def open(self, device: str | int | None = ...) -> bool:  # type: ignore[assignment]
        """(Re)open the output stream on ``device`` (default: the one given before). False if no audio."""
        if device is not ...:
            self.device = device
        self.close()
        try:
            sd = self._import()
        except OSError as exc:
            self.error = f"No audio output: the PortAudio library is missing ({exc})."
            log.warning(self.error)
            return False
        try:
            info = sd.query_devices(self.device if self.device not in (None, "") else None, kind="output")
            rate = int(info["default_samplerate"]) or 48000
            channels = max(1, min(2, int(info["max_output_channels"])))
            stream = sd.OutputStream(
                device=info["index"] if isinstance(info, dict) and "index" in info else self.device,
                samplerate=rate,
                channels=channels,
                dtype="float32",
                blocksize=self.blocksize,
                latency="low",
                callback=self._callback,
            )
            stream.start()
        except Exception as exc:
            which = "the default output" if self.device in (None, "") else f"'{self.device}'"
            self.error = f"No audio device: cannot open {which} ({exc}). Previews are silent."
            log.warning(self.error)
            return False
        with self._lock:
            self._stream, self.samplerate, self.channels = stream, rate, channels
            self.device_name = str(info.get("name", ""))
            self._pace_t0, self._pace_frames, self._unpaced = time.perf_counter(), 0, False
        self.error = None
        log.info(
            "audio output: %s, %d Hz, %d ch, latency %.1f ms",
            self.device_name,
            rate,
            channels,
            1000 * stream.latency,
        )
        return True

    def close(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
            self._playing = False
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception as exc:
                log.debug("closing the audio stream: %s", exc)
        self.error = self.error or "audio output closed"

    # -- transport ------------------------------------------------------------------------------

    def play(self, samples: np.ndarray, *, offset_s: float = 0.0, start_s: float | None = None) -> bool:
        """Play ``samples`` (mono float32 at :attr:`samplerate`, starting at file time ``offset_s``)
        from file time ``start_s`` (default: ``offset_s``). False when no audio device is open."""
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        sr = self.samplerate
        offset = int(round(offset_s * sr))
        start = offset if start_s is None else int(round(start_s * sr))
        with self._lock:
            self._buf, self._offset = samples, offset
            self._pos = min(max(0, start - offset), len(samples))
            self._region = None
            self._serial += 1
            self.request_time = time.perf_counter()
            self._playing = self._stream is not None and len(samples) > 0
            return self._playing

    def replace(self, samples: np.ndarray, *, offset_s: float = 0.0) -> None:
        """Swap in a longer decode of the file being played, keeping the play position."""
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        offset = int(round(offset_s * self.samplerate))
        with self._lock:
            here = self._offset + self._pos
            self._buf, self._offset = samples, offset
            self._pos = min(max(0, here - offset), len(samples))

    def stop(self) -> None:
        with self._lock:
            self._playing = False

    def resume(self) -> bool:
        """Play again from the current position (from the start of the region, or of the buffer, when at
        its end)."""
        with self._lock:
            if self._stream is None or not len(self._buf):
                return False
            lo, hi = self._bounds()
            if not lo <= self._pos < hi:
                self._pos = lo
            self._serial += 1
            self.request_time = time.perf_counter()
            self._playing = True
            return True

    def seek(self, t_s: float) -> None:
        with self._lock:
            frame = int(round(t_s * self.samplerate)) - self._offset
            self._pos = min(max(0, frame), len(self._buf))

    def seek_by(self, delta_s: float) -> None:
        self.seek(self.position_s + delta_s)

    def set_volume(self, volume: float) -> None:
        self._volume = float(min(max(volume, 0.0), 1.0))

    @property
    def volume(self) -> float:
        return self._volume

    def set_loop(self, on: bool) -> None:
        self._loop = bool(on)

    @property
    def loop(self) -> bool:
        return self._loop

    def set_region(self, start_s: float | None, end_s: float | None) -> None:
        """Limit playback (and looping) to ``[start_s, end_s)``; ``None`` clears it."""
        with self._lock:
            if start_s is None or end_s is None or end_s <= start_s:
                self._region = None
                return
            sr = self.samplerate
            self._region = (int(round(start_s * sr)), int(round(end_s * sr)))
            lo, hi = self._bounds()
            if not lo <= self._pos < hi:
                self._pos = lo

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def position_s(self) -> float:
        return (self._offset + self._pos) / self.samplerate

    @property
    def emulated_clock(self) -> bool:
        """True when the device turned out to have no clock and the player paces it (see :meth:`_pace`)."""
        return self._unpaced

    @property
    def latency_s(self) -> float | None:
        """Seconds from the last play()/resume() to the first audio callback that played it."""
        if self._heard_serial != self._serial or not self.first_callback_time:
            return None
        return self.first_callback_time - self.request_time

    # -- audio thread ---------------------------------------------------------------------------

    def _bounds(self) -> tuple[int, int]:
        """Playable ``[lo, hi)`` indices into the buffer (the region, if any, clipped to it)."""
        n = len(self._buf)
        if self._region is None:
            return 0, n
        a, b = self._region
        return min(max(0, a - self._offset), n), min(max(0, b - self._offset), n)

    def _callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:
        self._pace(frames)
        now = time.perf_counter()
        self.callbacks += 1
        with self._lock:
            if not self._playing:
                outdata.fill(0.0)
                return
            if self._heard_serial != self._serial:
                self._heard_serial = self._serial
                self.first_callback_time = now
            lo, hi = self._bounds()
            written = 0
            while written < frames:
                n = min(frames - written, hi - self._pos)
                if n <= 0:
                    if self._loop and hi > lo:
                        self._pos = lo
                        continue
                    self._playing = False
                    break
                outdata[written : written + n] = self._buf[self._pos : self._pos + n, None] * self._volume
                self._pos += n
                written += n
            outdata[written:] = 0.0

    def _pace(self, frames: int) -> None:
        """Keep a device with no clock of its own (ALSA's ``null`` sink, used in tests) at real time, so
        positions and latencies mean the same as on hardware and the callback does not spin a core.
        Hardware never triggers this: it cannot swallow a second of audio ahead of real time."""
        now = time.perf_counter()
        self._pace_frames += frames
        ahead = self._pace_frames / self.samplerate - (now - self._pace_t0)
        if not self._unpaced:
            if ahead < _UNPACED_LEAD_S:
                return
            self._unpaced = True
            self._pace_t0, self._pace_frames = now, frames
            log.info("the audio device consumes audio faster than real time; pacing it")
            ahead = frames / self.samplerate
        if ahead > 0:
            time.sleep(ahead)
