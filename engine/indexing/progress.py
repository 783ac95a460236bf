"""What an indexing run reports: progress (through a callback), its summary, and how it is cancelled."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field


class CancelToken:
    """Set from any thread (Ctrl-C handler, GUI button); the indexer stops at the next chunk."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class Progress:
    phase: str  # "scan" | "embed" | "names" | "done"
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    audio_s_done: float = 0.0
    current: str = ""


@dataclass
class IndexSummary:
    new: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    failed: int = 0
    unchanged: int = 0
    windows: int = 0
    audio_s: float = 0.0
    seconds: float = 0.0
    cancelled: bool = False
    missing_roots: list[str] = field(default_factory=list)
    # roots kept as they were because they look unmounted or emptied: {path, known, found, vanished, reason}
    unavailable_roots: list[dict] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason, message)

    def as_dict(self) -> dict:
        return asdict(self)
