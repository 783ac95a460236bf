"""Kept for callers of Earshot ≤ 2.0: indexing lives in :mod:`engine.indexing`."""

from __future__ import annotations

from engine.indexing import MASS_DELETE_MIN, MASS_DELETE_SHARE, CancelToken, Indexer, IndexSummary, Progress

__all__ = ["MASS_DELETE_MIN", "MASS_DELETE_SHARE", "CancelToken", "IndexSummary", "Indexer", "Progress"]
