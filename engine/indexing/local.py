"""The local executor: decoding in a producer thread, overlapped with embedding in the caller's thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from engine.bundle import Bundle
from engine.indexing.batcher import Batcher, FileResult
from engine.indexing.decode import decode
from engine.indexing.plan import Job
from engine.indexing.progress import CancelToken

_END = object()


class LocalExecutor:
    """Decode + embed on this machine. ``embed``: float32 [n, samples] → float32 [n, dim] (the encoder)."""

    def __init__(self, bundle: Bundle, embed: Callable[[np.ndarray], np.ndarray], *, batch_windows: int = 64,
                 queue_events: int = 16) -> None:
        self.bundle = bundle
        self.embed = embed
        self.batch_windows = batch_windows
        self.queue_events = queue_events

    def results(self, jobs: Sequence[Job], cancel: CancelToken) -> Iterator[FileResult]:
        """Each file once it is decoded and embedded (or failed), in about job order. Stops early when
        ``cancel`` is set (files not yielded are simply not done)."""
        if not jobs:
            return
        q: queue.Queue = queue.Queue(maxsize=self.queue_events)
        stop = threading.Event()

        def produce() -> None:
            try:
                for job in jobs:
                    for event in decode(job, self.bundle, self.batch_windows):
                        if stop.is_set():
                            return
                        q.put(event)
            finally:
                q.put(_END)

        producer = threading.Thread(target=produce, name="earshot-decode", daemon=True)
        producer.start()
        batcher = Batcher(self.embed, self.batch_windows, self.bundle.dim)
        try:
            while not cancel.cancelled:
                event = q.get()
                if event is _END:
                    yield from batcher.flush()
                    break
                yield from batcher.feed(event)
        finally:
            stop.set()
            while producer.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    producer.join(timeout=0.05)
