"""The library database behind named operations: callers say what they want (features of these files, the
windows a bundle lacks vectors for, the counts), storage says how in SQL.

Used by re-projection (:mod:`engine.reproject`), learning (``training.learn``) and status
(:mod:`engine.status`); search and indexing still speak to :mod:`engine.storage.db` directly (moving them
here is the next step). No torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from engine.storage import db


@dataclass(frozen=True)
class Counts:
    files: int  # indexed OK
    failed: int
    windows: int  # with a vector of the bundle asked about
    audio_hours: float
    windows_with_features: int


@dataclass(frozen=True)
class FileWords:
    """What a file says about itself: its path (relative to ``root``) and metadata."""

    file_id: int
    rel_path: str
    root: str
    metadata: dict | None


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reads ------------------------------------------------------------------------------------

    def counts(self, bundle_id: str) -> Counts:
        with self.engine.connect() as conn:
            ok, failed, seconds = conn.execute(select(
                func.count().filter(db.File.status == "ok"), func.count().filter(db.File.status == "error"),
                func.coalesce(func.sum(db.File.duration_s).filter(db.File.status == "ok"), 0.0),
            )).one()
            windows = conn.execute(select(func.count()).select_from(db.Vector)
                                   .where(db.Vector.bundle_id == bundle_id)).scalar_one()
            feats = conn.execute(select(func.count(func.distinct(db.Feature.window_id)))).scalar_one()
        return Counts(int(ok), int(failed), int(windows), float(seconds) / 3600.0, int(feats))

    def files_with_words(self) -> list[FileWords]:
        """Every file indexed OK with its path and metadata, in id order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(db.File.id, db.File.rel_path, db.Root.path, db.File.metadata_json)
                .join(db.Root, db.Root.id == db.File.root_id).where(db.File.status == "ok").order_by(db.File.id)
            ).all()
        return [FileWords(int(f), rel, root, json.loads(m) if m else None) for f, rel, root, m in rows]

    def feature_dim(self, backbone_key: str) -> int | None:
        with self.engine.connect() as conn:
            return db.feature_dim(conn, backbone_key)

    def features_for(self, backbone_key: str, file_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """``{file_id: float32 (windows, F)}`` of a backbone's stored features (files without any are left out)."""
        dim = self.feature_dim(backbone_key)
        if dim is None:
            return {}
        with self.engine.connect() as conn:
            return db.features_of_files(conn, backbone_key, dim, file_ids)

    def windows_without_vectors(self, bundle_id: str) -> tuple[int, int]:
        """``(windows, files)`` that have no vector of ``bundle_id``."""
        with self.engine.connect() as conn:
            return db.count_windows_without(conn, bundle_id)

    def windows_to_project(self, bundle_id: str, keys: list[str], dims: list[int], *, after: int = 0,
                           batch: int = 8192):
        """See :func:`engine.storage.db.windows_to_project`."""
        with self.engine.connect() as conn:
            return db.windows_to_project(conn, bundle_id, keys, dims, after=after, batch=batch)

    def meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return db.get_meta(conn, key)

    # -- writes -----------------------------------------------------------------------------------

    def add_vectors(self, window_ids: np.ndarray, vectors: np.ndarray, bundle_id: str) -> int:
        """Store vectors of existing windows for a bundle in one transaction at a new generation; returns it."""
        with self.engine.begin() as conn:
            gen = db.generation(conn) + 1
            db.insert_vectors(conn, window_ids, vectors, bundle_id, gen)
            db.bump_generation(conn)
        return gen
