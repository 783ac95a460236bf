"""What a library holds, and removing folders from it. No torch here."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from engine.errors import LibraryError
from engine.library import Library
from engine.storage import db


def library_status(lib: Library, *, failed_limit: int | None = 20) -> dict:
    """A JSON-ready summary: ``files`` (indexed OK), ``windows`` (with vectors of the current bundle),
    ``errors`` (failed files), ``bundle``, ``roots``, ``audio_hours``, ``failed`` (path, reason, message),
    ``newer_default`` (:meth:`Library.newer_default`: a newer default model to re-index with, or null)."""
    b = lib.bundle
    counts = lib.store.counts(b.bundle_id)
    ok, errors, windows, hours = counts.files, counts.failed, counts.windows, counts.audio_hours
    with lib.engine.connect() as conn:
        roots = [
            {"path": path, "files": int(n or 0), "last_indexed_at": last}
            for path, last, n in conn.execute(
                select(db.Root.path, db.Root.last_indexed_at, func.count(db.File.id))
                .join(db.File, db.File.root_id == db.Root.id, isouter=True)
                .group_by(db.Root.id).order_by(db.Root.path)
            )
        ]
        q = (select(db.Root.path, db.File.rel_path, db.File.error_reason, db.File.error_message)
             .join(db.Root, db.Root.id == db.File.root_id).where(db.File.status == "error").order_by(db.File.rel_path))
        if failed_limit is not None:
            q = q.limit(failed_limit)
        failed = [{"path": str(Path(r) / rel), "reason": reason, "message": msg} for r, rel, reason, msg in conn.execute(q)]
        # What the last scan of each folder could not read (unreadable folders, broken links, bad names).
        scan_failed = []
        for _key, value in conn.execute(select(db.Meta.key, db.Meta.value).where(db.Meta.key.like("scan_errors:%"))):
            try:
                scan_failed.extend({"path": p, "reason": "scan", "message": m} for p, m in json.loads(value))
            except (ValueError, TypeError):
                continue
        if failed_limit is None or len(failed) < failed_limit:
            failed.extend(scan_failed[: None if failed_limit is None else failed_limit - len(failed)])
        generation = db.generation(conn)
    return {
        "library": str(lib.path),
        "files": int(ok),
        "windows": int(windows),
        "windows_with_features": counts.windows_with_features,  # can be re-projected by another bundle
        "errors": int(errors),
        "audio_hours": float(hours),
        "bundle": {"name": b.name, "version": b.version, "bundle_id": b.bundle_id, "trained": b.trained,
                   "path": str(b.path)},
        "roots": roots,
        "failed": failed,
        "scan_errors": len(scan_failed),
        "generation": generation,
        "newer_default": lib.newer_default(),
    }


def remove_root(lib: Library, folder: Path) -> int:
    """Forget a library folder and everything indexed under it (the audio files are untouched)."""
    posix = folder.expanduser().resolve().as_posix()
    with lib.engine.begin() as conn:
        rid = conn.execute(select(db.Root.id).where(db.Root.path == posix)).scalar()
        if rid is None:
            raise LibraryError(f"{posix} is not a folder of this library")
        fids = conn.execute(select(db.File.id).where(db.File.root_id == rid)).scalars().all()
        db.delete_files(conn, fids, db.generation(conn) + 1)
        db.bump_generation(conn)
        conn.execute(db.Root.__table__.delete().where(db.Root.id == rid))
        conn.execute(db.Meta.__table__.delete().where(db.Meta.key == f"scan_errors:{rid}"))
    lib.sync_index()
    lib.save_index()
    return len(fids)
