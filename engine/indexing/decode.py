"""Decoding stage: a job → typed events (file started, windows, file ended, or file failed).

A file's audio streams through in chunks, so a long recording never sits in memory whole. Every error a
file can cause becomes a :class:`FileFailed` with a reason (``status --failed`` lists it); nothing a file
contains stops a run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from engine import audio
from engine.audio import AudioInfo
from engine.bundle import Bundle
from engine.errors import AudioError
from engine.indexing.plan import Change, Job
from engine.metadata import FileMetadata, read_metadata
from engine.storage.scanner import content_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileStarted:
    job: Job
    info: AudioInfo
    meta: FileMetadata | None


@dataclass(frozen=True)
class Windows:
    """Consecutive windows of a started file: float64 ``starts`` [n] in seconds, float32 ``windows``
    [n, samples] mono at the bundle's rate."""

    job: Job
    starts: np.ndarray
    windows: np.ndarray


@dataclass(frozen=True)
class FileEnded:
    job: Job


@dataclass(frozen=True)
class FileFailed:
    """The file cannot be indexed; ``reason`` is a short code (``corrupt``, ``missing``, ``non_finite``…)."""

    job: Job
    reason: str
    message: str


DecodeEvent = FileStarted | Windows | FileEnded | FileFailed


def fingerprint_or_none(path) -> str | None:
    """:func:`content_hash`, or ``None`` when the file cannot be read (planning must not fail on it)."""
    try:
        return content_hash(path)
    except (OSError, AudioError):
        return None


def decode(job: Job, bundle: Bundle, chunk_windows: int = 64) -> Iterator[DecodeEvent]:
    """Events of one file: ``FileStarted, Windows…, FileEnded`` or, at any point, a final ``FileFailed``
    (windows already yielded for it are then void). Fills ``job.fingerprint`` when missing."""
    path = job.path
    try:
        if job.fingerprint is None and job.change is not Change.RESUMED:
            job.fingerprint = content_hash(path)
        info = audio.probe(path)
        yield FileStarted(job, info, read_metadata(path))
        for starts, windows in audio.iter_windows(path, bundle.sample_rate, bundle.window_s, bundle.hop_s,
                                                  batch=chunk_windows):
            if not np.isfinite(windows).all():
                raise AudioError(f"{path} contains NaN or infinite samples; it cannot be indexed (re-export it "
                                 "from your editor)", reason="non_finite")
            yield Windows(job, starts, windows)
        yield FileEnded(job)
    except AudioError as exc:
        yield FileFailed(job, exc.reason, str(exc))
    except FileNotFoundError as exc:
        yield FileFailed(job, "missing", f"{path} vanished during indexing: {exc}")
    except PermissionError as exc:
        yield FileFailed(job, "unreadable", f"cannot read {path}: {exc}")
    except Exception as exc:  # a decoder bug must not kill the run: record and go on
        log.exception("unexpected error decoding %s", path)
        yield FileFailed(job, "decode_error", f"{type(exc).__name__}: {exc}")
