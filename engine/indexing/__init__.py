"""Incremental indexing as a pipeline of stages (DESIGN §2):

``plan`` (pure: new / changed / resumed / moved / vanished) → ``decode`` (typed events) → ``batcher``
(windows of many files packed into full encoder batches) → ``committer`` (the one writer: transactions,
keyword rows, the HNSW index). An executor runs decode + embed — :class:`LocalExecutor` on this machine,
:class:`~engine.indexing.cluster.RayExecutor` on a Ray cluster — and :class:`Indexer` drives the rest the
same way for both.

* new / changed (size or mtime) / moved (same content fingerprint: windows and vectors kept) / deleted
  files are told apart; unchanged files cost one ``stat``.
* Finished files are committed in batches, one transaction each; a kill at any moment loses at most the
  batch in flight, and the next run redoes only that.
* Corrupt, truncated, empty, non-audio, unreadable and vanished files are recorded with a reason and skipped;
  so is a file whose audio or vectors are not finite (NaN/Inf samples): vectors are checked before they are
  committed, never after.
* A root that looks unmounted or emptied is kept as it was unless the caller allows the mass delete
  (:mod:`~engine.indexing.plan`).
* Progress goes through a callback and cancellation through a token: this package never prints.
"""

from __future__ import annotations

from engine.indexing.indexer import Executor, Indexer
from engine.indexing.local import LocalExecutor
from engine.indexing.plan import MASS_DELETE_MIN, MASS_DELETE_SHARE
from engine.indexing.progress import CancelToken, IndexSummary, Progress

__all__ = ["MASS_DELETE_MIN", "MASS_DELETE_SHARE", "CancelToken", "Executor", "IndexSummary", "Indexer",
           "LocalExecutor", "Progress"]
