"""``earshot repair``: rebuild what can be rebuilt in a damaged library, and say what cannot.

What can be rebuilt without decoding audio: the HNSW caches (from the ``vectors`` table), the keyword
table (from ``files``), and a database whose pages are partly unreadable (its readable rows are copied
into a fresh database; the damaged file is kept beside it). What cannot: rows on unreadable pages and
transactions after a damaged spot of the write-ahead log — their files are simply indexed again by the
next ``earshot index`` (their audio is decoded again). An empty (0-byte) database cannot be rebuilt from
the index cache at all: the cache holds vectors, not file names.

The repair holds the library's write lock for its whole run.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import LibraryError, LibraryLockedError

log = logging.getLogger(__name__)

_TABLES = ("meta", "roots", "bundles", "files", "windows", "vectors", "tombstones", "file_texts")
_BATCH = 500


@dataclass
class RepairReport:
    done: list[str] = field(default_factory=list)  # what was rebuilt or fixed
    cannot: list[str] = field(default_factory=list)  # what could not be rebuilt (and what to do)
    ok: bool = True  # the library is usable again

    def as_dict(self) -> dict:
        return {"ok": self.ok, "done": self.done, "cannot": self.cannot}


def _copy_table(src: sqlite3.Connection, dst: sqlite3.Connection, table: str) -> tuple[int, int]:
    """Copy the readable rows of ``table`` (by rowid), skipping unreadable stretches. Returns
    ``(rows copied, unreadable stretches)``."""
    cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
    marks = ",".join("?" * len(cols))
    sql_in = f"INSERT OR REPLACE INTO {table} ({','.join(cols)}) VALUES ({marks})"
    sql_out = f"SELECT rowid, {','.join(cols)} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT {_BATCH}"
    last, copied, holes, step = -(1 << 62), 0, 0, 1
    while True:
        try:
            rows = src.execute(sql_out, (last,)).fetchall()
        except sqlite3.DatabaseError:
            holes += step == 1
            if step > 1 << 50:
                break
            last += step
            step *= 2
            continue
        step = 1
        if not rows:
            break
        try:
            dst.executemany(sql_in, [r[1:] for r in rows])
        except sqlite3.IntegrityError:
            for r in rows:
                try:
                    dst.execute(sql_in, r[1:])
                except sqlite3.IntegrityError:
                    continue
        copied += len(rows)
        last = rows[-1][0]
    return copied, holes


def _salvage(db_path: Path, report: RepairReport) -> bool:
    """Copy every readable row into a fresh database and put it in place of the damaged one."""
    from engine.storage import db

    fresh = db_path.with_name(db_path.name + ".repair")
    for suffix in ("", "-wal", "-shm"):
        Path(str(fresh) + suffix).unlink(missing_ok=True)
    db.open_engine(fresh).dispose()  # current schema, a new library_id
    src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    dst = sqlite3.connect(fresh)
    try:
        new_id = dst.execute("SELECT value FROM meta WHERE key='library_id'").fetchone()[0]
        dst.execute("PRAGMA foreign_keys=OFF")
        lost_any = False
        for table in _TABLES:
            try:
                copied, holes = _copy_table(src, dst, table)
            except sqlite3.DatabaseError as exc:
                copied, holes = 0, 1
                log.warning("table %s unreadable: %s", table, exc)
            if holes:
                lost_any = True
                report.cannot.append(f"{holes} unreadable stretch(es) of the {table} table were lost")
            log.info("salvaged %d rows of %s", copied, table)
        dst.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('library_id', ?)", (new_id,))
        dst.commit()
    finally:
        src.close()
        dst.close()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = db_path.with_name(f"{db_path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db_path) + suffix)
        if p.exists():
            p.replace(Path(str(kept) + suffix))
    fresh.replace(db_path)
    for suffix in ("-wal", "-shm"):
        Path(str(fresh) + suffix).unlink(missing_ok=True)
    report.done.append(f"copied the readable rows into a fresh database (the damaged one is kept as {kept.name})")
    if not lost_any:
        report.done.append("no row was lost")
    return True


def _make_consistent(engine, bundle, report: RepairReport) -> None:
    """After a salvage or a damaged log: drop dangling rows, send files with incomplete vectors back to
    indexing, mark files whose vectors are not finite as failed, rebuild the keyword table."""
    from sqlalchemy import text

    from engine import keyword
    from engine.storage import db

    with engine.begin() as conn:
        x = conn.exec_driver_sql
        n = x("DELETE FROM files WHERE root_id NOT IN (SELECT id FROM roots)").rowcount
        n += x("DELETE FROM windows WHERE file_id NOT IN (SELECT id FROM files)").rowcount
        n += x("DELETE FROM vectors WHERE window_id NOT IN (SELECT id FROM windows)").rowcount
        n += x("DELETE FROM file_texts WHERE file_id NOT IN (SELECT id FROM files)").rowcount
        if n:
            report.done.append(f"removed {n} rows that pointed at lost rows")
        # Non-finite vectors (an older Earshot stored them): their files are failed, not indexed.
        bad_files: set[int] = set()
        for wid, blob in x("SELECT window_id, data FROM vectors WHERE bundle_id = ?", (bundle.bundle_id,)):
            vec = db.decode_vectors([blob], bundle.dim)
            if not np.isfinite(vec).all():
                fid = x("SELECT file_id FROM windows WHERE id = ?", (wid,)).scalar()
                if fid is not None:
                    bad_files.add(int(fid))
        gen = db.generation(conn) + 1
        if bad_files:
            db.delete_file_windows(conn, sorted(bad_files), gen)
            for fid in bad_files:
                db.set_file_error(conn, fid, "non_finite",
                                  "the audio gives vectors that are not finite (NaN or infinite samples?)")
            report.done.append(f"{len(bad_files)} file(s) with vectors that are not finite marked as failed")
        # Files whose windows or vectors are incomplete: indexed again by the next `earshot index`.
        rows = x(
            "SELECT f.id, max(w.id) - min(w.id) + 1, count(w.id), count(v.window_id) FROM files f "
            "LEFT JOIN windows w ON w.file_id = f.id "
            "LEFT JOIN vectors v ON v.window_id = w.id AND v.bundle_id = ? "
            "WHERE f.status = 'ok' GROUP BY f.id",
            (bundle.bundle_id,),
        ).all()
        # A file's windows are inserted together, so their ids are consecutive: a gap means lost rows.
        redo = [fid for fid, span, nw, nv in rows if nv and (nw != nv or span != nw)]
        if redo:
            db.delete_file_windows(conn, redo, gen)
            for chunk in db.chunks(redo, 900):
                x(f"UPDATE files SET size = -1 WHERE id IN ({','.join('?' * len(chunk))})", tuple(chunk))
            report.cannot.append(
                f"{len(redo)} file(s) lost part of their vectors; run `earshot index` to decode them again")
        db.bump_generation(conn)
        # The keyword table, from what the database knows.
        x(f"DELETE FROM {keyword.FTS_TABLE}")
        x(f"DELETE FROM {keyword.TRIGRAM_TABLE}")
        docs = x(
            "SELECT f.id, f.rel_path, f.metadata_json, r.path FROM files f JOIN roots r ON r.id = f.root_id "
            "WHERE f.status = 'ok'"
        ).all()
        for fid, rel, meta, root in docs:
            keyword.put_document(conn, fid, keyword.document_for(rel, root, json.loads(meta) if meta else None))
        report.done.append(f"rebuilt the keyword table ({len(docs)} files)")
        conn.execute(text("DELETE FROM tombstones"))
        db.put_meta(conn, "tombstones_pruned_upto", str(db.generation(conn)))


def repair_library(path: str | Path | None, bundle: str | Path | None = None) -> RepairReport:
    """Repair the library folder ``path`` (see the module docstring). Raises
    :class:`~engine.errors.LibraryLockedError` while another process writes to it."""
    from filelock import FileLock, Timeout

    from engine.library import DB_NAME, Library, default_library_dir
    from engine.storage import db

    report = RepairReport()
    folder = Path(path).expanduser().resolve() if path else default_library_dir()
    db_path = folder / DB_NAME
    if not db_path.exists():
        raise LibraryError(f"{folder} holds no library database ({DB_NAME}); nothing to repair")
    lock = FileLock(str(folder / "write.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise LibraryLockedError(f"another Earshot process is writing to {folder}; repair it when it is done") from None
    try:
        wal = db.wal_path(db_path)
        if db_path.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0):
            report.ok = False
            report.cannot.append(
                f"{DB_NAME} is empty (0 bytes): file records cannot be rebuilt from the search index, which holds "
                f"only vectors. Restore the library folder from a backup, or move {DB_NAME} away and index your "
                "folders again (their audio is decoded again)")
            return report
        damaged_log = db.check_wal(wal)
        if damaged_log:
            kept = wal.with_name(f"{wal.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.copyfile(wal, kept)
            report.done.append(f"kept the readable part of the write-ahead log (a copy of the damaged log: {kept.name})")
            report.cannot.append(f"write-ahead log: {damaged_log}; `earshot index` indexes those files again")
        try:
            con = sqlite3.connect(db_path)
            try:
                rows = [r[0] for r in con.execute("PRAGMA quick_check(20)")]
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                con.close()
            problem = None if rows == ["ok"] else "; ".join(map(str, rows[:5]))
        except sqlite3.DatabaseError as exc:
            problem = str(exc)
        if problem:
            log.warning("database check: %s", problem)
            if "not a database" in problem:
                report.ok = False
                report.cannot.append(
                    f"{DB_NAME} is not a database any more ({problem}); restore the library folder from a backup, "
                    f"or move {DB_NAME} away and index your folders again")
                return report
            _salvage(db_path, report)
        else:
            report.done.append("the database passed its integrity check")
        lock.release()  # Library takes it again below, as the writer
        with Library(folder, bundle) as lib:
            lib.acquire_writer()
            _make_consistent(lib.engine, lib.bundle, report)
            for f in (folder / "index").glob("*.hnsw*"):
                f.unlink(missing_ok=True)
            lib._index, lib._index_gen = None, -1
            idx = lib.sync_index()
            report.done.append(f"rebuilt the search index from the database ({idx.count} vectors)")
        return report
    finally:
        if lock.is_locked:
            lock.release()
