"""The app's settings, declared once as a dataclass and persisted with ``QSettings``.

:class:`SettingsStore` wraps one ``QSettings`` (tests give it an INI file in a temporary folder) and
carries a schema version, so a later release can upgrade old keys in :func:`_upgrade`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

from PySide6.QtCore import QByteArray, QSettings

from desktop_app.history import Query

log = logging.getLogger(__name__)

ORGANISATION = "Earshot"
APPLICATION = "earshot-app"
SCHEMA_VERSION = 3
SEARCH_MODES = ("both", "content", "keywords")  # engine.search.Searcher.search modes


@dataclass
class AppSettings:
    """What the Settings dialog edits. Empty strings mean "the default"."""

    library_dir: str = ""  # "" → engine.library.default_library_dir()
    model: str = ""  # bundle name or folder; "" → the one the library uses, else the shipped default
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" (torch inference device)
    audio_device: str = ""  # PortAudio output device name; "" → the system default
    volume: float = 0.8  # 0..1
    loop: bool = False
    auto_preview: bool = True  # play each result as the selection moves
    search_mode: str = "both"  # one of SEARCH_MODES: sound and keywords, sound only, keywords only
    show_details: bool = True  # the metadata panel beside the results


def _coerce(value, default):
    if isinstance(default, bool):
        return value in (True, "true", "1", 1) if not isinstance(value, bool) else value
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            return default
    return str(value) if value is not None else default


class SettingsStore:
    """Reads and writes :class:`AppSettings` and a little UI state (window layout, query history)."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings(ORGANISATION, APPLICATION)
        _upgrade(self.q)

    def load(self) -> AppSettings:
        s = AppSettings()
        for f in fields(AppSettings):
            default = getattr(s, f.name)
            setattr(s, f.name, _coerce(self.q.value(f"settings/{f.name}", default), default))
        if s.search_mode not in SEARCH_MODES:
            s.search_mode = AppSettings.search_mode
        return s

    def save(self, s: AppSettings) -> None:
        for f in fields(AppSettings):
            self.q.setValue(f"settings/{f.name}", getattr(s, f.name))
        self.q.sync()

    # -- UI state -------------------------------------------------------------------------------

    def state(self, key: str) -> QByteArray | None:
        v = self.q.value(f"ui/{key}")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def set_state(self, key: str, value: QByteArray) -> None:
        self.q.setValue(f"ui/{key}", value)

    def column_widths(self) -> dict[str, int]:
        """Widths (pixels) of the results columns the user resized, by header name."""
        raw = self.q.value("ui/column_widths", "")
        out: dict[str, int] = {}
        for part in str(raw or "").split(";"):
            name, _, width = part.rpartition("=")
            if name and width.isdigit():
                out[name] = int(width)
        return out

    def set_column_widths(self, widths: dict[str, int]) -> None:
        self.q.setValue("ui/column_widths", ";".join(f"{k}={int(v)}" for k, v in widths.items()))

    def history(self) -> list[Query]:
        raw = self.q.value("ui/history", [])
        if isinstance(raw, str):
            raw = [raw]
        out = [Query.from_text(str(x)) for x in (raw or [])]
        return [q for q in out if q is not None]

    def set_history(self, queries: list[Query]) -> None:
        self.q.setValue("ui/history", [q.to_text() for q in queries[-50:]])

    def sync(self) -> None:
        self.q.sync()


def _upgrade(q: QSettings) -> None:
    """Bring settings written by an older version to :data:`SCHEMA_VERSION`.

    1 → 2: the results table gained the Description and Category columns, so a saved header layout
    (widths and order by column position) no longer fits and is dropped.
    2 → 3: Relevance, Matched by, Bits and Added columns; the saved header layout is dropped again.
    """
    version = int(q.value("schema_version", 0) or 0)
    if version > SCHEMA_VERSION:
        log.warning("settings were written by a newer Earshot (schema %d); unknown keys are ignored", version)
        return
    if version < 3:
        q.remove("ui/header")
    if version < SCHEMA_VERSION:
        q.setValue("schema_version", SCHEMA_VERSION)
