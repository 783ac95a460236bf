"""The filters of the results list: the engine's :class:`~engine.search.Filters` plus the bit depth, which
the app applies from the file records (no Qt)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.browse import FileFacts
from engine.search import Filters, Hit

BIT_DEPTHS = (8, 16, 24, 32)


@dataclass(frozen=True)
class ViewFilters:
    engine: Filters = field(default_factory=Filters)
    bit_depths: tuple[int, ...] = ()  # any of these bits per sample (lossy files have none)

    def is_empty(self) -> bool:
        return self.engine.is_empty() and not self.bit_depths

    def keep(self, hit: Hit, facts: dict[int, FileFacts]) -> bool:
        if not self.bit_depths:
            return True
        f = facts.get(hit.file_id)
        return f is not None and f.bit_depth in self.bit_depths

    def __hash__(self) -> int:  # Filters is a plain (unhashable) dataclass
        return hash((repr(self.engine), self.bit_depths))
