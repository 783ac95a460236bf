"""The writer waits a moment for the library's write lock (a search may be saving the index under it)."""

from __future__ import annotations

import time

import pytest

from desktop_app.writer import acquire_writer
from engine.errors import LibraryLockedError
from engine.indexer import CancelToken


class BusyLib:
    """A library whose lock is busy for the first ``busy`` tries."""

    def __init__(self, busy: int) -> None:
        self.busy, self.tries = busy, 0

    def acquire_writer(self) -> None:
        self.tries += 1
        if self.tries <= self.busy:
            raise LibraryLockedError("another Earshot process is already indexing the library")


def test_waits_for_a_briefly_held_lock() -> None:
    lib = BusyLib(busy=3)
    acquire_writer(lib, wait_s=2.0)
    assert lib.tries == 4


def test_gives_up_after_the_wait_or_when_cancelled() -> None:
    lib = BusyLib(busy=10**6)
    t0 = time.monotonic()
    with pytest.raises(LibraryLockedError):
        acquire_writer(lib, wait_s=0.2)
    assert 0.2 <= time.monotonic() - t0 < 1.5 and lib.tries > 1
    token = CancelToken()
    token.cancel()
    lib = BusyLib(busy=10**6)
    with pytest.raises(LibraryLockedError):
        acquire_writer(lib, token, wait_s=5.0)
    assert lib.tries == 1
