"""The one helper that runs work off the GUI thread and hands the result back to it.

``TaskRunner.submit(fn, on_done, on_error)`` runs ``fn()`` on a thread pool; ``on_done(result)`` or
``on_error(exc)`` then runs on the thread that created the runner (the GUI thread), through a queued Qt
signal. Widgets are only ever touched from those callbacks.

A *group* keeps only the newest request alive: submitting to ``group="search"`` makes the results of
earlier searches still running be dropped on arrival, so a slow old query never overwrites a new one.

Tests pass :class:`SyncPool` instead of a ``QThreadPool``: tasks then run at once, in the caller's
thread, and callbacks are delivered before ``submit`` returns (the pattern of picard's fake pool).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.errors import EarshotError

log = logging.getLogger(__name__)


def freeze_heap() -> None:
    """Move every object alive now (the models just loaded, torch's modules, Qt's wrappers) out of the
    garbage collector's reach. Python's full collections walk every tracked object while holding the GIL:
    with a model loaded, each took 140–190 ms and froze the window while indexing (bench_app --trace).
    Called once a model is loaded; objects made later are collected as usual."""
    gc.freeze()


class SyncPool:
    """A stand-in for ``QThreadPool`` that runs each task immediately in the calling thread."""

    def __init__(self) -> None:
        self.started = 0

    def start(self, runnable: QRunnable, priority: int = 0) -> None:
        self.started += 1
        runnable.run()

    def waitForDone(self, msecs: int = -1) -> bool:
        return True

    def activeThreadCount(self) -> int:
        return 0

    def clear(self) -> None:
        pass


class _Relay(QObject):
    """Lives on the GUI thread; a signal emitted from a worker is queued to it."""

    delivered = Signal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay, ticket: tuple) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._fn = fn
        self._relay = relay
        self._ticket = ticket

    def run(self) -> None:
        try:
            result, error = self._fn(), None
        except EarshotError as exc:  # expected failures: shown to the user, no traceback
            result, error = None, exc
        except Exception as exc:  # a bug: log it with its traceback, still report it
            log.exception("background task failed")
            result, error = None, exc
        self._relay.delivered.emit((self._ticket, result, error))


class TaskRunner(QObject):
    """Runs callables off the GUI thread; see the module docstring.

    ``pool``: a ``QThreadPool`` (default: a private one with ``max_threads`` threads) or :class:`SyncPool`.
    """

    def __init__(
        self,
        pool: QThreadPool | SyncPool | None = None,
        *,
        max_threads: int = 4,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        if pool is None:
            pool = QThreadPool(self)
            pool.setMaxThreadCount(max_threads)
        self.pool = pool
        self._relay = _Relay(self)
        self._relay.delivered.connect(self._deliver)
        self._lock = threading.Lock()
        self._serial = 0
        self._latest: dict[str, int] = {}
        self._callbacks: dict[int, tuple[Callable | None, Callable | None]] = {}
        self._closed = False

    @property
    def synchronous(self) -> bool:
        return isinstance(self.pool, SyncPool)

    @property
    def pending(self) -> int:
        """Tasks submitted whose callbacks have not run yet."""
        return len(self._callbacks)

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        *,
        group: str | None = None,
        priority: int = 0,
    ) -> int:
        """Run ``fn()`` in the pool; returns a serial number. Call from the GUI thread only."""
        with self._lock:
            self._serial += 1
            serial = self._serial
            if group is not None:
                self._latest[group] = serial
        self._callbacks[serial] = (on_done, on_error)
        self.pool.start(_Job(fn, self._relay, (serial, group)), priority)
        return serial

    def invalidate(self, group: str) -> None:
        """Drop the results of every task of ``group`` still running."""
        with self._lock:
            self._serial += 1
            self._latest[group] = self._serial

    def is_current(self, serial: int, group: str) -> bool:
        return self._latest.get(group) == serial

    def _deliver(self, payload: tuple) -> None:
        (serial, group), result, error = payload
        on_done, on_error = self._callbacks.pop(serial, (None, None))
        if self._closed or (group is not None and self._latest.get(group) != serial):
            return
        if error is not None:
            if on_error is not None:
                on_error(error)
            else:
                log.error("background task failed: %s", error)
        elif on_done is not None:
            on_done(result)

    def close(self, msecs: int = 5000) -> bool:
        """Stop delivering results and wait up to ``msecs`` for running tasks; True if all finished."""
        self._closed = True
        self.pool.clear()
        return bool(self.pool.waitForDone(msecs))
