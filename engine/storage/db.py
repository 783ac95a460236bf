"""The library database: SQLite through SQLAlchemy 2 (WAL mode), with a schema version and migrations.

Layout (one row per thing, paths relative to their root in POSIX form):

* ``meta``       key/value: ``schema_version``, ``generation`` (bumped by every change to the vectors),
                 ``tombstones_pruned_upto`` (see :mod:`engine.library`).
* ``roots``      library folders (absolute POSIX path), when they were last indexed.
* ``files``      one audio file: size, mtime_ns, content fingerprint, audio properties, metadata JSON,
                 ``status`` (``ok`` | ``error``), error reason/message.
* ``windows``    the time windows of a file (``start_s``/``end_s`` in seconds); their ids are the labels of
                 the HNSW index.
* ``vectors``    one float16 blob per (window, bundle): the fused, L2-normalised embedding.
* ``tombstones`` window ids removed since the index file was last saved, so a stale index catches up
                 without a full rebuild.
* ``bundles``    the model bundles whose vectors are stored.
* ``files_fts``  (schema 2) the FTS5 keyword index over names, folders and metadata
                 (:mod:`engine.keyword`); its rowid is the file id.
* ``file_texts`` (schema 3) per file: the text its name, folders and metadata make
                 (:mod:`engine.names`), how informative it is, and its float16 sentence embedding by
                 the name encoder ``encoder`` (stored at a ``names_generation``, so the in-memory name
                 index catches up like the vector index does).

This module never imports torch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from engine.errors import LibraryError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
VECTOR_DTYPE = np.float16


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Root(Base):
    __tablename__ = "roots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    added_at: Mapped[float] = mapped_column(Float)
    last_indexed_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class File(Base):
    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("root_id", "rel_path"),
        Index("ix_files_hash", "content_hash"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("roots.id", ondelete="CASCADE"), index=True)
    rel_path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    sample_rate: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channels: Mapped[int | None] = mapped_column(Integer, nullable=True)
    format: Mapped[str | None] = mapped_column(String, nullable=True)
    subtype: Mapped[str | None] = mapped_column(String, nullable=True)
    metadata_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String, default="ok")
    error_reason: Mapped[str | None] = mapped_column(String, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    indexed_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Window(Base):
    __tablename__ = "windows"
    # AUTOINCREMENT: ids are never reused, so a stale HNSW index can catch up by id.
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)


class Vector(Base):
    __tablename__ = "vectors"
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id", ondelete="CASCADE"), primary_key=True)
    bundle_id: Mapped[str] = mapped_column(String, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # The generation that stored it: an index saved at generation g catches up with rows > g.
    generation: Mapped[int] = mapped_column(Integer, index=True, default=0)


class Tombstone(Base):
    __tablename__ = "tombstones"
    window_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, index=True)


class FileText(Base):
    __tablename__ = "file_texts"
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    informativeness: Mapped[float] = mapped_column(Float)
    encoder: Mapped[str] = mapped_column(String)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    generation: Mapped[int] = mapped_column(Integer, index=True, default=0)


class BundleRow(Base):
    __tablename__ = "bundles"
    bundle_id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    version: Mapped[str] = mapped_column(String)
    dim: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[float] = mapped_column(Float)


# Migrations: MIGRATIONS[v] upgrades a database at schema version v-1 to v. A new database gets
# ``Base.metadata.create_all`` plus every migration's idempotent DDL.
Migration = Callable[[Connection], None]


def _create_fts(conn: Connection) -> None:
    from engine import keyword

    for stmt in keyword.FTS_DDL:
        conn.exec_driver_sql(stmt)


def _migrate_2_keyword_index(conn: Connection) -> None:
    """Schema 2: the FTS5 keyword index, filled from what the database already knows."""
    from engine import keyword

    _create_fts(conn)
    rows = conn.execute(
        select(File.id, File.rel_path, File.metadata_json, Root.path)
        .join(Root, Root.id == File.root_id)
        .where(File.status == "ok")
    ).all()
    for fid, rel, meta, root in rows:
        keyword.put_document(conn, fid, keyword.document_for(rel, root, json.loads(meta) if meta else None))


def _migrate_3_file_texts(conn: Connection) -> None:
    """Schema 3: the per-file texts and their sentence embeddings (filled by the next index run, which
    has the name encoder; search works without them meanwhile), and the trigram keyword index."""
    from engine import keyword

    FileText.__table__.create(conn, checkfirst=True)
    _put_meta(conn, "names_generation", "0")
    _create_fts(conn)  # adds the trigram table, filled from the word index's name and folder columns
    conn.exec_driver_sql(f"DELETE FROM {keyword.TRIGRAM_TABLE}")
    conn.exec_driver_sql(
        f"INSERT INTO {keyword.TRIGRAM_TABLE} (rowid, name, folder) SELECT rowid, name, folder FROM {keyword.FTS_TABLE}"
    )


MIGRATIONS: dict[int, Migration] = {2: _migrate_2_keyword_index, 3: _migrate_3_file_texts}


def _set_sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def open_engine(path: Path) -> Engine:
    """Open (creating if needed) the SQLite database at ``path`` in WAL mode and bring it to
    :data:`SCHEMA_VERSION`. Raises :class:`LibraryError` for a file that is not a database or is newer
    than this program."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", _set_sqlite_pragmas)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        _migrate(engine)
    except LibraryError:
        engine.dispose()
        raise
    except Exception as exc:  # sqlite3.DatabaseError: file is not a database, disk I/O error, ...
        engine.dispose()
        raise LibraryError(f"cannot open the library database {path}: {exc}") from exc
    return engine


def _migrate(engine: Engine) -> None:
    with engine.begin() as conn:
        has_meta = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'")
        ).first()
        if not has_meta:
            Base.metadata.create_all(conn)
            _create_fts(conn)
            _put_meta(conn, "schema_version", str(SCHEMA_VERSION))
            _put_meta(conn, "generation", "0")
            _put_meta(conn, "tombstones_pruned_upto", "0")
            _put_meta(conn, "names_generation", "0")
            return
        version = int(_get_meta(conn, "schema_version") or 0)
        if version > SCHEMA_VERSION:
            raise LibraryError(
                f"this library was written by a newer Earshot (schema {version} > {SCHEMA_VERSION}); "
                "upgrade Earshot to open it"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            log.info("migrating library schema %d -> %d", target - 1, target)
            MIGRATIONS[target](conn)
            _put_meta(conn, "schema_version", str(target))


def _get_meta(conn: Connection, key: str) -> str | None:
    return conn.execute(select(Meta.value).where(Meta.key == key)).scalar()


def _put_meta(conn: Connection, key: str, value: str) -> None:
    conn.execute(text("INSERT OR REPLACE INTO meta(key, value) VALUES (:k, :v)"), {"k": key, "v": value})


def get_meta(conn: Connection, key: str, default: str | None = None) -> str | None:
    value = _get_meta(conn, key)
    return default if value is None else value


def put_meta(conn: Connection, key: str, value: str) -> None:
    _put_meta(conn, key, value)


def generation(conn: Connection) -> int:
    return int(_get_meta(conn, "generation") or 0)


def bump_generation(conn: Connection) -> int:
    """Increment the vector generation inside the caller's transaction; return the new value."""
    new = generation(conn) + 1
    _put_meta(conn, "generation", str(new))
    return new


# -- vectors ---------------------------------------------------------------------------------------


def encode_vector(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype=VECTOR_DTYPE).tobytes()


def decode_vectors(blobs: Iterable[bytes], dim: int) -> np.ndarray:
    """float16 blobs → float32 array (n, dim)."""
    buf = b"".join(blobs)
    if not buf:
        return np.zeros((0, dim), np.float32)
    return np.frombuffer(buf, dtype=VECTOR_DTYPE).reshape(-1, dim).astype(np.float32)


def iter_vectors(
    conn: Connection, bundle_id: str, dim: int, *, after_generation: int | None = None, batch: int = 50_000
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(window_ids int64[n], vectors float32[n, dim])`` of a bundle in window-id order — all of them,
    or those stored after ``after_generation``. Used to (re)build and catch up the HNSW index without
    decoding audio."""
    last = 0
    while True:
        q = select(Vector.window_id, Vector.data).where(Vector.bundle_id == bundle_id, Vector.window_id > last)
        if after_generation is not None:
            q = q.where(Vector.generation > after_generation)
        rows = conn.execute(q.order_by(Vector.window_id).limit(batch)).all()
        if not rows:
            return
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        yield ids, decode_vectors((r[1] for r in rows), dim)
        last = int(ids[-1])


def vectors_for_windows(conn: Connection, bundle_id: str, dim: int, window_ids: Iterable[int]) -> np.ndarray:
    ids = [int(i) for i in window_ids]
    out: dict[int, bytes] = {}
    for chunk in chunks(ids, 900):
        for wid, data in conn.execute(
            select(Vector.window_id, Vector.data).where(
                Vector.bundle_id == bundle_id, Vector.window_id.in_(chunk)
            )
        ):
            out[wid] = data
    return decode_vectors((out[i] for i in ids if i in out), dim)


def chunks(seq: list, n: int) -> Iterator[list]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


# -- writes ---------------------------------------------------------------------------------------


def delete_file_windows(conn: Connection, file_ids: Iterable[int], gen: int) -> int:
    """Delete the windows (and, by cascade, vectors) of files; record tombstones at generation ``gen``."""
    total = 0
    for chunk in chunks([int(f) for f in file_ids], 900):
        wids = conn.execute(select(Window.id).where(Window.file_id.in_(chunk))).scalars().all()
        if wids:
            conn.execute(insert(Tombstone).prefix_with("OR REPLACE"), [{"window_id": w, "generation": gen} for w in wids])
            for wchunk in chunks(list(wids), 900):
                conn.execute(delete(Window).where(Window.id.in_(wchunk)))
        total += len(wids)
    return total


def delete_files(conn: Connection, file_ids: Iterable[int], gen: int) -> int:
    """Delete files with their windows, vectors (tombstoned at ``gen``) and keyword-index rows."""
    from engine import keyword

    ids = [int(f) for f in file_ids]
    n = delete_file_windows(conn, ids, gen)
    for chunk in chunks(ids, 900):
        conn.execute(delete(File).where(File.id.in_(chunk)))
        keyword.delete_documents(conn, chunk)
    return n


def insert_windows(
    conn: Connection,
    file_id: int,
    starts: np.ndarray,
    ends: np.ndarray,
    vectors: np.ndarray,
    bundle_id: str,
    gen: int,
) -> np.ndarray:
    """Insert windows and their vectors (stored at generation ``gen``) for one file; return the new
    window ids (int64, in order)."""
    rows = [
        {"file_id": file_id, "start_s": float(s), "end_s": float(e)}
        for s, e in zip(starts, ends, strict=True)
    ]
    if not rows:
        return np.zeros(0, np.int64)
    result = conn.execute(insert(Window).returning(Window.id, sort_by_parameter_order=True), rows)
    ids = np.fromiter((r[0] for r in result), dtype=np.int64, count=len(rows))
    conn.execute(
        insert(Vector),
        [
            {"window_id": int(i), "bundle_id": bundle_id, "data": encode_vector(v), "generation": gen}
            for i, v in zip(ids, vectors, strict=True)
        ],
    )
    return ids


def record_bundle(conn: Connection, bundle_id: str, name: str, version: str, dim: int) -> None:
    if conn.execute(select(BundleRow.bundle_id).where(BundleRow.bundle_id == bundle_id)).first():
        return
    conn.execute(
        insert(BundleRow).values(bundle_id=bundle_id, name=name, version=version, dim=dim, added_at=time.time())
    )


# -- file texts (semantic metadata search) -----------------------------------------------------------


def names_generation(conn: Connection) -> int:
    return int(_get_meta(conn, "names_generation") or 0)


def file_texts(conn: Connection, file_ids: Iterable[int] | None = None) -> dict[int, tuple[str, str]]:
    """``{file_id: (text, encoder)}`` of the stored file texts (of ``file_ids``, or all)."""
    q = select(FileText.file_id, FileText.text, FileText.encoder)
    if file_ids is None:
        return {r[0]: (r[1], r[2]) for r in conn.execute(q)}
    out: dict[int, tuple[str, str]] = {}
    for chunk in chunks([int(f) for f in file_ids], 900):
        out.update({r[0]: (r[1], r[2]) for r in conn.execute(q.where(FileText.file_id.in_(chunk)))})
    return out


def put_file_texts(conn: Connection, rows: list[tuple[int, str, float, np.ndarray]], encoder: str) -> int:
    """Store ``(file_id, text, informativeness, vector float32 (dim,))`` rows under a new names generation
    (inside the caller's transaction); return that generation. Non-finite vectors are refused."""
    if not rows:
        return names_generation(conn)
    vecs = np.stack([r[3] for r in rows]).astype(np.float32)
    if not np.isfinite(vecs).all():
        raise ValueError("file-text vectors contain NaN or infinity")
    gen = names_generation(conn) + 1
    ids = [int(r[0]) for r in rows]
    for chunk in chunks(ids, 900):
        conn.execute(delete(FileText).where(FileText.file_id.in_(chunk)))
    conn.execute(insert(FileText), [
        {"file_id": int(fid), "text": text, "informativeness": float(inf), "encoder": encoder,
         "data": encode_vector(vec), "generation": gen}
        for (fid, text, inf, _), vec in zip(rows, vecs, strict=True)
    ])
    _put_meta(conn, "names_generation", str(gen))
    return gen


def delete_file_texts(conn: Connection, file_ids: Iterable[int]) -> None:
    """Drop the text rows of files (failed since); bumps the names generation so readers catch up."""
    ids = [int(f) for f in file_ids]
    for chunk in chunks(ids, 900):
        conn.execute(delete(FileText).where(FileText.file_id.in_(chunk)))
    if ids:
        _put_meta(conn, "names_generation", str(names_generation(conn) + 1))


def iter_file_text_vectors(
    conn: Connection, encoder: str, dim: int, *, after_generation: int | None = None, batch: int = 50_000
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(file_ids int64[n], vectors float32[n, dim])`` of the file texts embedded by ``encoder``
    (all, or those stored after ``after_generation``), in file-id order; empty texts are skipped."""
    last = 0
    while True:
        q = select(FileText.file_id, FileText.data).where(
            FileText.encoder == encoder, FileText.file_id > last, FileText.text != ""
        )
        if after_generation is not None:
            q = q.where(FileText.generation > after_generation)
        rows = conn.execute(q.order_by(FileText.file_id).limit(batch)).all()
        if not rows:
            return
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        yield ids, decode_vectors((r[1] for r in rows), dim)
        last = int(ids[-1])


def file_text_vectors(
    conn: Connection, file_ids: Iterable[int], encoder: str, dim: int
) -> dict[int, tuple[np.ndarray, float]]:
    """``{file_id: (vector float32 (dim,), informativeness)}`` for the given files that have one."""
    out: dict[int, tuple[np.ndarray, float]] = {}
    for chunk in chunks([int(f) for f in file_ids], 900):
        for fid, data, inf in conn.execute(
            select(FileText.file_id, FileText.data, FileText.informativeness).where(
                FileText.file_id.in_(chunk), FileText.encoder == encoder
            )
        ):
            out[int(fid)] = (decode_vectors([data], dim)[0], float(inf))
    return out


def set_file_error(conn: Connection, file_id: int, reason: str, message: str) -> None:
    conn.execute(
        update(File)
        .where(File.id == file_id)
        .values(status="error", error_reason=reason, error_message=message, indexed_at=time.time())
    )


def metadata_dumps(meta: dict | None) -> str | None:
    return json.dumps(meta, ensure_ascii=False, sort_keys=True) if meta else None
