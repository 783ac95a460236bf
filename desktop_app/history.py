"""Queries and the back/forward history of the search box (no Qt)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Query:
    """What the results list shows: a text query, "similar to" a file (or a region of it, seconds), or
    the whole library ("browse", sorted by ``sort``: a key of :data:`engine.browse.SORT_KEYS`)."""

    kind: str  # "text" | "similar" | "browse"
    text: str = ""
    path: str = ""
    start_s: float | None = None
    end_s: float | None = None
    sort: str = ""
    descending: bool = False

    @classmethod
    def of_text(cls, text: str) -> Query:
        return cls("text", text=text.strip())

    @classmethod
    def similar_to(cls, path: str, start_s: float | None = None, end_s: float | None = None) -> Query:
        return cls("similar", path=str(path), start_s=start_s, end_s=end_s)

    @classmethod
    def browse(cls, sort: str = "name", descending: bool = False) -> Query:
        return cls("browse", sort=sort, descending=descending)

    @property
    def label(self) -> str:
        """How the search box shows it: the text, or ``similar to door.wav [0:01.0–0:02.5]``."""
        if self.kind == "text":
            return self.text
        if self.kind == "browse":
            return ""
        label = f"similar to {Path(self.path).name}"
        if self.start_s is not None and self.end_s is not None:
            from desktop_app.formatting import fmt_clock

            label += f" [{fmt_clock(self.start_s)}–{fmt_clock(self.end_s)}]"
        return label

    def to_text(self) -> str:
        """A one-line form for settings storage (see :meth:`from_text`)."""
        if self.kind == "text":
            return "t:" + self.text
        region = "" if self.start_s is None or self.end_s is None else f"{self.start_s:.3f}:{self.end_s:.3f}"
        return f"s:{region}|{self.path}"

    @classmethod
    def from_text(cls, s: str) -> Query | None:
        if s.startswith("t:") and s[2:].strip():
            return cls.of_text(s[2:])
        if s.startswith("s:") and "|" in s:
            region, path = s[2:].split("|", 1)
            if region:
                try:
                    a, b = (float(x) for x in region.split(":"))
                except ValueError:
                    return None
                return cls.similar_to(path, a, b)
            return cls.similar_to(path)
        return None


class History:
    """A browser-like history: :meth:`push` drops the forward entries; :meth:`back`/:meth:`forward` move.

    While the user keeps typing, each debounced query extends (or trims) the previous one; such a
    *refinement* replaces the current entry instead of piling up ``r``, ``ra``, ``rain``, …
    """

    def __init__(self, entries: list[Query] | None = None, limit: int = 100) -> None:
        self.limit = limit
        self._items: list[Query] = list(entries or [])[-limit:]
        self._pos = len(self._items) - 1

    @property
    def entries(self) -> list[Query]:
        return list(self._items)

    @property
    def current(self) -> Query | None:
        return self._items[self._pos] if 0 <= self._pos < len(self._items) else None

    @property
    def can_back(self) -> bool:
        return self._pos > 0

    @property
    def can_forward(self) -> bool:
        return self._pos < len(self._items) - 1

    def push(self, q: Query) -> None:
        cur = self.current
        if cur == q:
            return
        del self._items[self._pos + 1 :]
        if cur is not None and _refines(cur, q):
            self._items[self._pos] = q
            return
        self._items.append(q)
        if len(self._items) > self.limit:
            del self._items[0]
        self._pos = len(self._items) - 1

    def back(self) -> Query | None:
        if not self.can_back:
            return None
        self._pos -= 1
        return self.current

    def forward(self) -> Query | None:
        if not self.can_forward:
            return None
        self._pos += 1
        return self.current


def _refines(old: Query, new: Query) -> bool:
    if old.kind != "text" or new.kind != "text":
        return False
    a, b = old.text.lower(), new.text.lower()
    return b.startswith(a) or a.startswith(b)
