"""Decoded preview audio: waveform peaks (mono and per channel), a small cache, and exporting a region to
a WAV in a folder of this session's exports that is cleaned up (no Qt)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import AudioError

log = logging.getLogger(__name__)

PEAK_BINS = 8192  # enough for 16x zoom on a wide waveform
MAX_CHANNEL_LANES = 8
EXPORT_PREFIX = "earshot-exports-"
STALE_EXPORTS_S = 24 * 3600


@dataclass
class Clip:
    """A decoded file (or the first part of one) ready to play.

    ``samples``: mono float32 at ``sample_rate`` Hz, starting at file time ``offset_s``; ``complete``:
    the whole file is here; ``peaks``: float32 ``(bins, 2)`` min/max of the whole file (None if partial).
    """

    path: str
    samples: np.ndarray
    sample_rate: int
    offset_s: float
    duration_s: float
    complete: bool
    peaks: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return int(self.samples.nbytes)


def compute_peaks(signal: np.ndarray, bins: int = PEAK_BINS) -> np.ndarray:
    """Min and max of ``signal`` (1-D float32) in ``bins`` equal slices → float32 ``(bins, 2)``.

    Fewer samples than bins: each sample is its own bin (the result has ``len(signal)`` rows).
    """
    x = np.asarray(signal, np.float32).reshape(-1)
    if len(x) == 0:
        return np.zeros((0, 2), np.float32)
    bins = max(1, min(bins, len(x)))
    edges = np.linspace(0, len(x), bins + 1).astype(np.int64)
    lo = np.minimum.reduceat(x, edges[:-1])
    hi = np.maximum.reduceat(x, edges[:-1])
    return np.stack([lo, hi], axis=1).astype(np.float32)


class ClipCache:
    """The most recently previewed complete clips, up to ``max_bytes`` of samples. Thread-safe."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], Clip] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, sample_rate: int) -> Clip | None:
        with self._lock:
            clip = self._items.get((path, sample_rate))
            if clip is not None:
                self._items.move_to_end((path, sample_rate))
            return clip

    def put(self, clip: Clip) -> None:
        if not clip.complete or clip.nbytes > self.max_bytes:
            return
        with self._lock:
            self._items[(clip.path, clip.sample_rate)] = clip
            self._items.move_to_end((clip.path, clip.sample_rate))
            while sum(c.nbytes for c in self._items.values()) > self.max_bytes:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def channel_peaks(
    path: str | Path, start_s: float = 0.0, span_s: float | None = None, bins: int = PEAK_BINS
) -> np.ndarray:
    """Min/max of each channel of ``path`` over ``[start_s, start_s + span_s)`` at the file's own rate, in
    ``bins`` equal slices → float32 ``(channels, bins, 2)`` (at most :data:`MAX_CHANNEL_LANES` channels).
    Reads in blocks (bounded memory). Raises :class:`AudioError` when soundfile cannot read the file."""
    try:
        with sf.SoundFile(str(path)) as f:
            sr, ch = f.samplerate, min(f.channels, MAX_CHANNEL_LANES)
            a = max(0, int(round(start_s * sr)))
            total = f.frames if f.frames > 0 else None
            b = total if span_s is None else int(round((start_s + span_s) * sr))
            if total is not None and b is not None:
                b = min(b, total)
            if a and f.seekable():
                f.seek(a)
            elif a:
                f.read(a, dtype="float32")
            n = (b - a) if b is not None else None
            if n is not None and n <= 0:
                return np.zeros((ch, 0, 2), np.float32)
            parts = []
            left = n
            while left is None or left > 0:
                block = f.read(min(1 << 16, left) if left is not None else 1 << 16, dtype="float32",
                               always_2d=True)
                if len(block) == 0:
                    break
                parts.append(block[:, :ch])
                if left is not None:
                    left -= len(block)
    except (OSError, RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"cannot read the channels of {Path(path).name}: {exc}", "unreadable") from exc
    data = np.concatenate(parts) if parts else np.zeros((0, ch), np.float32)
    return np.stack([compute_peaks(data[:, c], bins) for c in range(ch)]) if len(data) else np.zeros(
        (ch, 0, 2), np.float32
    )


class ExportFolder:
    """This session's exported selections, in their own temporary folder. A new selection replaces the
    previous file unless that one was dragged out (a DAW may still read it); :meth:`cleanup` (at exit)
    removes the folder, and :func:`remove_stale_exports` folders a crashed session left behind."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = Path(base or tempfile.gettempdir())
        self._dir: Path | None = None
        self._kept: set[Path] = set()
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        with self._lock:
            if self._dir is None or not self._dir.is_dir():
                self._dir = Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX, dir=self.base))
            return self._dir

    def keep(self, path: Path) -> None:
        """``path`` was dragged out: keep it until the session ends."""
        self._kept.add(Path(path))

    def replace(self, old: Path | None, new: Path) -> None:
        """``new`` supersedes ``old``: delete ``old`` unless it was dragged out (or is ``new``)."""
        if old is not None and Path(old) != Path(new) and Path(old) not in self._kept:
            Path(old).unlink(missing_ok=True)

    def cleanup(self) -> None:
        with self._lock:
            d, self._dir = self._dir, None
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)


def remove_stale_exports(base: Path | None = None, older_than_s: float = STALE_EXPORTS_S) -> int:
    """Delete export folders of earlier sessions older than ``older_than_s``; returns how many."""
    base = Path(base or tempfile.gettempdir())
    now, n = time.time(), 0
    for d in base.glob(EXPORT_PREFIX + "*"):
        try:
            if d.is_dir() and now - os.stat(d).st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)
                n += 1
        except OSError:
            continue
    return n


def export_dir() -> Path:
    """A fallback folder for :func:`export_region` callers without an :class:`ExportFolder`."""
    d = Path(tempfile.gettempdir()) / "earshot-exports"
    d.mkdir(parents=True, exist_ok=True)
    return d


def export_region(path: str | Path, start_s: float, end_s: float, dest_dir: Path | None = None) -> Path:
    """Write ``[start_s, end_s)`` of ``path`` to a WAV at the file's own rate and channels (for dragging
    into a DAW). The name says where it came from: ``door_0m01.50-0m02.75.wav``. Returns its path.

    Raises :class:`AudioError` when the file cannot be read or the region is empty.
    """
    path = Path(path)
    dest_dir = dest_dir or export_dir()
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            a = max(0, int(round(start_s * sr)))
            b = int(round(end_s * sr))
            if f.frames > 0:
                b = min(b, f.frames)
            if b <= a:
                raise AudioError(f"the selected region of {path.name} is empty", "empty")
            if f.seekable():
                f.seek(a)
                data = f.read(b - a, dtype="float32", always_2d=True)
            else:
                data = f.read(b, dtype="float32", always_2d=True)[a:]
            subtype = (
                f.subtype if f.subtype in ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE") else "PCM_24"
            )
    except (OSError, RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"cannot read {path.name} to export a region: {exc}", "unreadable") from exc
    if len(data) == 0:
        raise AudioError(f"the selected region of {path.name} is empty", "empty")
    tag = hashlib.sha1(str(path).encode()).hexdigest()[:6]

    def stamp(t: float) -> str:
        m, s = divmod(max(0.0, t), 60)
        return f"{int(m)}m{s:05.2f}"

    dest = dest_dir / f"{path.stem}_{stamp(a / sr)}-{stamp((a + len(data)) / sr)}_{tag}.wav"
    sf.write(str(dest), data, sr, subtype=subtype)
    log.info("exported %s [%.2f, %.2f) to %s", path, a / sr, (a + len(data)) / sr, dest)
    return dest
