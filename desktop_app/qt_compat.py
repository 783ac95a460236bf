"""Work-arounds for bugs of particular Qt bindings.

PySide6 6.12.0 on CPython < 3.12 drops a reference to ``None`` on every call of a method returning
``void`` (``QWidget.update()``, ``QPainter.drawLine()``, …): after some ten thousand calls Python aborts
with "deallocating None". (From 3.12 on ``None`` is immortal and nothing happens; 6.11 is fine.)
:func:`install_none_refcount_guard` probes for the bug at run time and, only where it shows, tops
``None``'s reference count back up from a timer. Prefer a binding without the bug
(``PySide6-Essentials!=6.12.0``); the guard keeps the app alive where one is installed anyway.
"""

from __future__ import annotations

import ctypes
import logging
import sys

from PySide6.QtCore import QObject, QTimer

log = logging.getLogger(__name__)

_PROBE_CALLS = 200
_RESERVE = 1_000_000  # references added at a time: far more than the app drops between two checks
_CHECK_MS = 100


def void_call_drops_none() -> bool:
    """True when calling a void Qt method loses references to ``None`` (the PySide6 6.12.0 bug)."""
    if sys.version_info >= (3, 12):
        return False
    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(_PROBE_CALLS):
        obj.setObjectName("probe")  # void
    return sys.getrefcount(None) - before <= -_PROBE_CALLS // 2


def _add_none_references(n: int) -> None:
    # ob_refcnt is the first field of every object (CPython < 3.12); the GIL is held here.
    ctypes.c_ssize_t.from_address(id(None)).value += n


class NoneRefcountGuard(QObject):
    """Keeps ``None``'s reference count far from zero (see the module docstring)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.topped_up = 0
        self._timer = QTimer(self)
        self._timer.setInterval(_CHECK_MS)
        self._timer.timeout.connect(self.check)
        self.check()
        self._timer.start()

    def check(self) -> None:
        if sys.getrefcount(None) < _RESERVE // 2:
            _add_none_references(_RESERVE)
            self.topped_up += 1


def install_none_refcount_guard(parent: QObject | None = None) -> NoneRefcountGuard | None:
    """Start a :class:`NoneRefcountGuard` when this binding has the bug; None otherwise."""
    if not void_call_drops_none():
        return None
    from PySide6 import __version__ as pyside_version

    log.warning(
        "PySide6 %s drops references to None on void calls (a binding bug fixed by using "
        "PySide6 != 6.12.0); working around it",
        pyside_version,
    )
    return NoneRefcountGuard(parent)
