"""Embedding stage: windows of many files packed into full batches for the encoder.

A batch holds exactly ``batch_windows`` windows (the last of a run fewer), whichever files they come from,
so a library of one-window one-shots runs the network on full batches too. A file is complete — a
:class:`FileResult` — once its last window is embedded; results come out in the order the files started
(a failed file waits for the files before it), so file rows get the same ids whatever the batching.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from engine.audio import AudioInfo
from engine.indexing.decode import DecodeEvent, FileEnded, FileFailed, FileStarted, Windows
from engine.indexing.plan import Job
from engine.metadata import FileMetadata


@dataclass
class FileResult:
    """A decoded and embedded file, or a failed one (``error`` = ``(reason, message)``): what the
    committer stores. ``starts`` float64 [n] seconds, ``vectors`` float32 [n, dim]."""

    job: Job
    info: AudioInfo | None
    meta: FileMetadata | None
    starts: np.ndarray
    vectors: np.ndarray
    error: tuple[str, str] | None = None
    # each audio backbone's output per window {name: float32 [n, F]}, when ``embed`` gives it (stored so that
    # another bundle over the same backbone re-projects without decoding: engine.reproject)
    features: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def windows(self) -> int:
        return 0 if self.error else len(self.starts)

    @property
    def audio_s(self) -> float:
        return self.info.duration_s if self.info is not None and self.error is None else 0.0


@dataclass
class _Open:
    started: FileStarted | None  # None: failed before it started
    starts: list[np.ndarray]
    vectors: list[np.ndarray | None]  # None: in the batch being filled
    ended: bool = False
    failed: FileFailed | None = None
    features: list[dict[str, np.ndarray]] = field(default_factory=list)  # per slot, when embed gives them

    def complete(self) -> bool:
        return self.failed is not None or (self.ended and all(v is not None for v in self.vectors))


class Batcher:
    """Feed it decode events; it calls ``embed(float32 [n, samples]) -> float32 [n, dim]`` (or ``-> (vectors,
    {backbone: float32 [n, F]})``, features kept per file) on full batches and returns the files each call
    completed."""

    def __init__(self, embed: Callable[[np.ndarray], np.ndarray], batch_windows: int, dim: int) -> None:
        self._embed = embed
        self._size = batch_windows
        self._dim = dim
        self._open: dict[int, _Open] = {}  # id(job) -> file in progress
        self._pending: list[tuple[_Open, int, np.ndarray]] = []  # (file, slot in its vectors, windows)
        self._n_pending = 0

    @property
    def pending_windows(self) -> int:
        return self._n_pending

    def feed(self, event: DecodeEvent) -> list[FileResult]:
        key = id(event.job)
        if isinstance(event, FileStarted):
            self._open[key] = _Open(event, [], [])
            return []
        if isinstance(event, Windows):
            f = self._open[key]
            done: list[FileResult] = []
            at = 0
            while at < len(event.starts):  # fill the current batch, embed it when full, go on
                take = min(self._size - self._n_pending, len(event.starts) - at)
                f.starts.append(event.starts[at : at + take])
                f.vectors.append(None)
                self._pending.append((f, len(f.vectors) - 1, event.windows[at : at + take]))
                self._n_pending += take
                at += take
                if self._n_pending >= self._size:
                    done.extend(self._run_batch())
            return done
        if isinstance(event, FileEnded):
            f = self._open[key]
            f.ended = True
            return self._collect()
        assert isinstance(event, FileFailed)
        f = self._open.get(key)
        if f is None:  # failed before it started: it takes its place in the order now
            f = self._open[key] = _Open(None, [], [])
        else:  # its windows leave the batch being filled
            self._pending = [p for p in self._pending if p[0] is not f]
            self._n_pending = sum(len(w) for _, _, w in self._pending)
        f.failed = event
        return self._collect()

    def flush(self) -> list[FileResult]:
        """Embed what is pending (a partial batch) and return every file that completes."""
        return self._run_batch() if self._pending else self._collect()

    def _run_batch(self) -> list[FileResult]:
        windows = np.concatenate([w for _, _, w in self._pending]) if len(self._pending) > 1 else self._pending[0][2]
        vecs = self._embed(windows)
        vecs, feats = vecs if isinstance(vecs, tuple) else (vecs, {})
        i = 0
        for f, slot, w in self._pending:
            f.vectors[slot] = vecs[i : i + len(w)]
            if feats:
                f.features.extend({} for _ in range(slot + 1 - len(f.features)))
                f.features[slot] = {k: v[i : i + len(w)] for k, v in feats.items()}
            i += len(w)
        self._pending.clear()
        self._n_pending = 0
        return self._collect()

    def _collect(self) -> list[FileResult]:
        """Pop the complete files at the front of the start order."""
        done = []
        while self._open:
            key, f = next(iter(self._open.items()))
            if not f.complete():
                break
            del self._open[key]
            s = f.started
            info, meta = (s.info, s.meta) if s is not None else (None, None)
            if f.failed is not None:
                done.append(FileResult(f.failed.job, info, meta, np.zeros(0), np.zeros((0, self._dim), np.float32),
                                       (f.failed.reason, f.failed.message)))
            else:
                assert s is not None
                done.append(FileResult(
                    s.job, info, meta,
                    np.concatenate(f.starts) if f.starts else np.zeros(0),
                    np.concatenate(f.vectors) if f.vectors else np.zeros((0, self._dim), np.float32),  # type: ignore[arg-type]
                    features=_stack(f.features, len(f.vectors)),
                ))
        return done


def _stack(per_slot: list[dict[str, np.ndarray]], slots: int) -> dict[str, np.ndarray]:
    """A file's features over all its slots, or ``{}`` unless every slot has them."""
    if len(per_slot) != slots or not slots or not all(per_slot):
        return {}
    return {k: np.concatenate([s[k] for s in per_slot]) for k in per_slot[0]}


def embed_files(jobs: Iterable[Job], events: Callable[[Job], Iterable[DecodeEvent]], batcher: Batcher,
                ) -> Iterable[FileResult]:
    """Decode ``jobs`` one after another through ``batcher``; yield each file as it completes."""
    for job in jobs:
        for event in events(job):
            yield from batcher.feed(event)
    yield from batcher.flush()
