"""Exceptions the engine raises; each carries a message fit to show a user."""

from __future__ import annotations


class EarshotError(Exception):
    """Base class for every error the engine reports to a user."""


class AudioError(EarshotError):
    """A file could not be decoded; ``reason`` is a short machine-friendly code."""

    def __init__(self, message: str, reason: str = "decode_error") -> None:
        super().__init__(message)
        self.reason = reason


class ModelError(EarshotError):
    """A model bundle or backbone could not be loaded."""


class BundleError(ModelError):
    """A bundle directory is malformed, of an unknown format version, or fails its hash check."""


class LibraryError(EarshotError):
    """The library (database + index) cannot be opened or is in use."""


class LibraryLockedError(LibraryError):
    """Another process is already writing to this library."""


class QueryError(EarshotError):
    """A query is empty or cannot be answered."""


class LibraryDamagedError(LibraryError):
    """The library database (or its write-ahead log) is damaged; the message says what to do."""


class LearnError(EarshotError):
    """Learning from a library cannot start or did not finish; the library keeps its previous model."""
