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
                 (:mod:`engine.storage.fts`); its rowid is the file id.
* ``file_texts`` (schema 3) per file: the text its name, folders and metadata make
                 (:mod:`engine.names`), how informative it is, and its float16 sentence embedding by
                 the name encoder ``encoder`` (stored at a ``names_generation``, so the in-memory name
                 index catches up like the vector index does); schema 5 indexes it by text.
* ``features``   (schema 4) one float16 blob per (window, backbone key): the frozen audio backbone's
                 output for the window, so a bundle over the same backbone (another head, an ensemble, a
                 learned bundle) re-projects the library without decoding audio (:mod:`engine.reproject`).
                 The key names the backbone *and* the framing (:func:`engine.bundle.backbone_key`).

This module never imports torch.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import struct
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from engine.errors import LibraryDamagedError, LibraryError
from engine.storage import fts

log = logging.getLogger(__name__)

SCHEMA_VERSION = 5
VECTOR_DTYPE = np.float16


class _Table:
    """One table for Core statements: its columns as attributes (``File.id``) and the table itself
    (``File.__table__``). SQLAlchemy takes it wherever a table goes (``select_from(File)``, ``join``,
    ``insert``/``update``/``delete``) through ``__clause_element__``. Plain Core, no ORM: importing
    ``sqlalchemy.orm`` and mapping the classes cost ~80 ms of every ``earshot search`` (issue 11)."""

    def __init__(self, name: str, *columns, **kwargs) -> None:
        self.__table__ = Table(name, metadata, *columns, **kwargs)
        for col in self.__table__.columns:
            setattr(self, col.key, col)

    def __clause_element__(self) -> Table:
        return self.__table__


def _col(name: str, type_, *args, nullable: bool = False, **kwargs) -> Column:
    """A column, NOT NULL unless ``nullable`` (as the ORM mapping this replaced declared them)."""
    return Column(name, type_, *args, nullable=nullable, **kwargs)


metadata = MetaData()

Meta = _Table("meta", _col("key", String, primary_key=True), _col("value", Text))

Root = _Table(
    "roots",
    _col("id", Integer, primary_key=True),
    _col("path", Text, unique=True),
    _col("added_at", Float),
    _col("last_indexed_at", Float, nullable=True),
)

File = _Table(
    "files",
    _col("id", Integer, primary_key=True),
    _col("root_id", Integer, ForeignKey("roots.id", ondelete="CASCADE"), index=True),
    _col("rel_path", Text),
    _col("size", BigInteger),
    _col("mtime_ns", BigInteger),
    _col("content_hash", String, nullable=True),
    _col("duration_s", Float, nullable=True),
    _col("sample_rate", Integer, nullable=True),
    _col("channels", Integer, nullable=True),
    _col("format", String, nullable=True),
    _col("subtype", String, nullable=True),
    _col("metadata_json", Text, nullable=True),
    _col("status", String, default="ok"),
    _col("error_reason", String, nullable=True),
    _col("error_message", Text, nullable=True),
    _col("indexed_at", Float, nullable=True),
    UniqueConstraint("root_id", "rel_path"),
    Index("ix_files_hash", "content_hash"),
)

# AUTOINCREMENT: ids are never reused, so a stale HNSW index can catch up by id.
Window = _Table(
    "windows",
    _col("id", Integer, primary_key=True, autoincrement=True),
    _col("file_id", Integer, ForeignKey("files.id", ondelete="CASCADE"), index=True),
    _col("start_s", Float),
    _col("end_s", Float),
    sqlite_autoincrement=True,
)

Vector = _Table(
    "vectors",
    _col("window_id", Integer, ForeignKey("windows.id", ondelete="CASCADE"), primary_key=True),
    _col("bundle_id", String, primary_key=True),
    _col("data", LargeBinary),
    # The generation that stored it: an index saved at generation g catches up with rows > g.
    _col("generation", Integer, index=True, default=0),
)

Tombstone = _Table(
    "tombstones",
    _col("window_id", Integer, primary_key=True),
    _col("generation", Integer, index=True),
)

Feature = _Table(
    "features",
    _col("window_id", Integer, ForeignKey("windows.id", ondelete="CASCADE"), primary_key=True),
    _col("backbone", String, primary_key=True),
    _col("data", LargeBinary),
)

FileText = _Table(
    "file_texts",
    _col("file_id", Integer, ForeignKey("files.id", ondelete="CASCADE"), primary_key=True),
    _col("text", Text),
    _col("informativeness", Float),
    _col("encoder", String),
    _col("data", LargeBinary),
    _col("generation", Integer, index=True, default=0),
    # the files that share a text, found without a sort (engine.name_index keeps them out of its graph)
    Index("ix_file_texts_text", "encoder", "text"),
)

BundleRow = _Table(
    "bundles",
    _col("bundle_id", String, primary_key=True),
    _col("name", String),
    _col("version", String),
    _col("dim", Integer),
    _col("added_at", Float),
)


# Migrations: MIGRATIONS[v] upgrades a database at schema version v-1 to v. A new database gets
# ``metadata.create_all`` plus every migration's idempotent DDL.
Migration = Callable[[Connection], None]


def _create_fts(conn: Connection) -> None:
    for stmt in fts.FTS_DDL:
        conn.exec_driver_sql(stmt)


def _migrate_2_keyword_index(conn: Connection) -> None:
    """Schema 2: the FTS5 keyword index, filled from what the database already knows."""
    _create_fts(conn)
    rows = conn.execute(
        select(File.id, File.rel_path, File.metadata_json, Root.path)
        .join(Root, Root.id == File.root_id)
        .where(File.status == "ok")
    ).all()
    for fid, rel, meta, root in rows:
        fts.put_document(conn, fid, fts.document_for(rel, root, json.loads(meta) if meta else None))


def _migrate_3_file_texts(conn: Connection) -> None:
    """Schema 3: the per-file texts and their sentence embeddings (filled by the next index run, which
    has the name encoder; search works without them meanwhile), and the trigram keyword index."""
    FileText.__table__.create(conn, checkfirst=True)
    _put_meta(conn, "names_generation", "0")
    _create_fts(conn)  # adds the trigram table, filled from the word index's name and folder columns
    conn.exec_driver_sql(f"DELETE FROM {fts.TRIGRAM_TABLE}")
    conn.exec_driver_sql(
        f"INSERT INTO {fts.TRIGRAM_TABLE} (rowid, name, folder) SELECT rowid, name, folder FROM {fts.FTS_TABLE}"
    )


def _migrate_4_features(conn: Connection) -> None:
    """Schema 4: the per-window backbone features (empty: windows indexed before keep none, so a model
    switch decodes their files again; every file indexed from now on keeps them)."""
    Feature.__table__.create(conn, checkfirst=True)


def _migrate_5_file_text_index(conn: Connection) -> None:
    """Schema 5: an index of the file texts by text (the name index groups the files that share one)."""
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_file_texts_text ON file_texts (encoder, text)")


MIGRATIONS: dict[int, Migration] = {2: _migrate_2_keyword_index, 3: _migrate_3_file_texts, 4: _migrate_4_features,
                                    5: _migrate_5_file_text_index}


def _set_sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def open_engine(path: Path, *, check: bool = False) -> Engine:
    """Open (creating if needed) the SQLite database at ``path`` in WAL mode and bring it to
    :data:`SCHEMA_VERSION`.

    ``check``: the library was left in an unclean state (a process died while writing): validate the
    write-ahead log before SQLite replays it and run ``PRAGMA quick_check`` after opening.

    Raises:
        LibraryDamagedError: the database or its write-ahead log is damaged (the message says what to do).
        LibraryError: a file that is not a database, one newer than this program, a full disk, ...
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if check:
        problem = check_wal(wal_path(path))
        if problem:
            raise LibraryDamagedError(
                f"the library's write-ahead log {wal_path(path).name} is damaged ({problem}). "
                f"Run `earshot --library {path.parent} repair` to keep what can be read (files in the lost "
                "batches are indexed again by the next `earshot index`), or restore the library folder "
                "from a backup."
            )
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", _set_sqlite_pragmas)
    try:
        _enter_wal(engine)
        _migrate(engine)
        if check:
            problem = quick_check(engine)
            if problem:
                raise LibraryDamagedError(damaged_message(path, problem))
    except LibraryError:
        engine.dispose()
        raise
    except Exception as exc:  # sqlite3.DatabaseError: file is not a database, disk I/O error, ...
        engine.dispose()
        raise translate_error(exc, path, opening=True) from exc
    return engine


#: How long :func:`_enter_wal` retries a new database's switch to WAL that another process is making too.
WAL_SWITCH_RETRY_S = 10.0


def _enter_wal(engine: Engine) -> None:
    """``PRAGMA journal_mode=WAL``, retried while SQLite answers "database is locked". Two processes creating
    one library at once can both try the switch; SQLite may refuse one at once, without its busy timeout
    (a lock it cannot wait for without risking a deadlock), so that process waits and tries again."""
    deadline = time.monotonic() + WAL_SWITCH_RETRY_S
    while True:
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            return
        except DBAPIError as exc:
            if not _is_busy(str(getattr(exc, "orig", exc))) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _is_busy(message: str) -> bool:
    """Whether a database error message says another connection holds the lock ("database is locked")."""
    low = message.lower()
    return "database is locked" in low or "busy" in low


def damaged_message(path: Path, problem: str) -> str:
    return (
        f"the library database {path} is damaged ({problem}). Run `earshot --library {path.parent} repair` "
        "to rebuild what can be rebuilt, or restore the library folder from a backup."
    )


def translate_error(exc: BaseException, path: Path | None = None, *, opening: bool = False) -> LibraryError:
    """A database exception as a :class:`LibraryError` whose one-line message says what to do."""
    orig = getattr(exc, "orig", None) or exc
    msg = str(orig).strip() or type(orig).__name__
    where = f" {path}" if path else ""
    low = msg.lower()
    if "disk is full" in low or "no space" in low:
        return LibraryError(f"the disk holding the library{where} is full ({msg}); free some space and run "
                            "the command again — what was committed before is kept")
    if "malformed" in low or "corrupt" in low:
        return LibraryDamagedError(damaged_message(path or Path("earshot.db"), msg))
    if _is_busy(msg):
        return LibraryError(f"the library database{where} is busy ({msg}); try again in a moment")
    if "readonly" in low or "read-only" in low or "permission" in low:
        return LibraryError(f"the library database{where} cannot be written ({msg})")
    if opening:
        return LibraryError(f"cannot open the library database{where}: {msg}")
    return LibraryError(f"library database error{where}: {msg}")


def is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError | sqlite3.Error)


def quick_check(engine: Engine, *, max_errors: int = 5) -> str | None:
    """``PRAGMA quick_check``: ``None`` when the database is sound, else the first problems it reports."""
    try:
        with engine.connect() as conn:
            rows = [r[0] for r in conn.exec_driver_sql(f"PRAGMA quick_check({int(max_errors)})")]
    except Exception as exc:
        return str(getattr(exc, "orig", None) or exc)
    if rows == ["ok"]:
        return None
    return "; ".join(str(r) for r in rows[:max_errors])


def wal_path(path: Path) -> Path:
    return Path(str(path) + "-wal")


_WAL_MAGIC = (0x377F0682, 0x377F0683)
_WAL_HEADER = struct.Struct(">8I")
_FRAME_HEADER = struct.Struct(">6I")
_M32 = 0xFFFFFFFF
_wal_coefs: dict[int, tuple[np.ndarray, ...]] = {}


def _coefs(pairs: int) -> tuple[np.ndarray, ...]:
    """Coefficients of SQLite's WAL checksum as a linear recurrence over ``pairs`` word pairs:
    ``(s0, s1) <- A (s0, s1) + (x0, x0 + x1)`` with ``A = [[1, 1], [1, 2]]`` (mod 2**32)."""
    got = _wal_coefs.get(pairs)
    if got is None:
        mats = []
        a, b, c, d = 1, 0, 0, 1  # A**0
        for _ in range(pairs):
            mats.append((a, b, c, d))
            a, b, c, d = (a + c) & _M32, (b + d) & _M32, (a + 2 * c) & _M32, (b + 2 * d) & _M32
        power = (a, b, c, d)  # A**pairs
        arr = np.array(mats[::-1], dtype=np.uint64)  # row i: A**(pairs-1-i)
        got = (arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], np.array(power, dtype=np.uint64))
        _wal_coefs[pairs] = got
    return got


def _wal_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    x = np.frombuffer(data, dtype=">u4" if big_endian else "<u4").astype(np.uint64)
    x0, x1 = x[0::2], (x[0::2] + x[1::2]) & np.uint64(_M32)
    a, b, c, d, power = _coefs(len(x0))
    with np.errstate(over="ignore"):
        t0 = int((a * x0).sum() + (b * x1).sum())
        t1 = int((c * x0).sum() + (d * x1).sum())
    pa, pb, pc, pd = (int(v) for v in power)
    return (pa * s0 + pb * s1 + t0) & _M32, (pc * s0 + pd * s1 + t1) & _M32


def check_wal(path: Path, *, attempts: int = 3) -> str | None:
    """Validate a SQLite write-ahead log the way SQLite replays it, and say whether replaying it would
    silently drop committed transactions.

    SQLite uses the frames up to the first one whose checksum fails and ignores the rest. After a crash the
    only frames lost that way belong to the last, uncommitted transaction. Committed frames (with the
    log's salt) *after* a bad frame mean the log was damaged, and opening the database would silently
    lose them. Returns ``None`` for a sound (or absent/empty) log, else what is wrong.
    """
    for _ in range(attempts):
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"cannot read it: {exc.strerror or exc}"
        problem = _check_wal_bytes(data)
        if problem is None:
            return None
        try:  # a writer may have reset the log while we read it: look again
            with open(path, "rb") as fh:
                if fh.read(_WAL_HEADER.size) != data[: _WAL_HEADER.size]:
                    continue
        except OSError:
            pass
        return problem
    return problem


def _check_wal_bytes(data: bytes) -> str | None:
    if len(data) < _WAL_HEADER.size:
        return None  # nothing was ever committed through it
    magic, version, page_size, _seq, salt1, salt2, ck1, ck2 = _WAL_HEADER.unpack_from(data)
    frame = _FRAME_HEADER.size + page_size
    n_frames = (len(data) - _WAL_HEADER.size) // frame if page_size else 0
    if magic not in _WAL_MAGIC or version != 3007000 or page_size < 512 or page_size & (page_size - 1):
        return "bad header" if n_frames else None
    big = bool(magic & 1)
    s0, s1 = _wal_checksum(data[:24], 0, 0, big)
    if (s0, s1) != (ck1, ck2):
        return f"header checksum fails with {n_frames} frames after it" if n_frames else None
    bad_at = None
    for i in range(n_frames):
        off = _WAL_HEADER.size + i * frame
        pgno, commit, fs1, fs2, fk1, fk2 = _FRAME_HEADER.unpack_from(data, off)
        if (fs1, fs2) != (salt1, salt2):
            break  # the end of the current log (older frames follow)
        s0, s1 = _wal_checksum(data[off : off + 8] + data[off + 24 : off + frame], s0, s1, big)
        if (s0, s1) != (fk1, fk2) or pgno == 0:
            bad_at = i
            break
    if bad_at is None:
        return None
    lost = 0
    for i in range(bad_at + 1, n_frames):
        off = _WAL_HEADER.size + i * frame
        _pgno, commit, fs1, fs2, _k1, _k2 = _FRAME_HEADER.unpack_from(data, off)
        if (fs1, fs2) == (salt1, salt2) and commit:
            lost += 1
    if lost:
        return f"frame {bad_at} fails its checksum; {lost} committed transaction(s) after it would be lost"
    return None


def _migrate(engine: Engine) -> None:
    """Create or upgrade the schema inside one ``BEGIN IMMEDIATE`` transaction, so two processes opening
    a new library at once do not both try to create it."""
    with engine.connect() as conn:
        has_meta = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'")
        ).first()
        if has_meta and int(_get_meta(conn, "schema_version") or 0) == SCHEMA_VERSION and _get_meta(
            conn, "library_id"
        ):
            return
        conn.rollback()
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            _migrate_locked(conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def _migrate_locked(conn: Connection) -> None:
    has_meta = conn.execute(text("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'")).first()
    if not has_meta:
        metadata.create_all(conn)
        _create_fts(conn)
        _put_meta(conn, "schema_version", str(SCHEMA_VERSION))
        _put_meta(conn, "generation", "0")
        _put_meta(conn, "tombstones_pruned_upto", "0")
        _put_meta(conn, "names_generation", "0")
        _put_meta(conn, "library_id", uuid.uuid4().hex)
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
    if not _get_meta(conn, "library_id"):
        # The identity of this database: an index cache built from another database is never trusted.
        _put_meta(conn, "library_id", uuid.uuid4().hex)


def library_id(conn: Connection) -> str:
    """A random id given to the database when it was created (ANN caches record which one they mirror)."""
    return _get_meta(conn, "library_id") or ""


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
    yield from _iter_blobs(conn, Vector.window_id, Vector.data, Vector.generation, [Vector.bundle_id == bundle_id],
                           dim, after_generation, batch)


def _iter_blobs(conn: Connection, id_col, data_col, gen_col, where: list, dim: int,
                after_generation: int | None, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(ids int64[n], vectors float32[n, dim])`` of the rows matching ``where`` in id order, ``batch`` at a
    time (keyset pagination on ``id_col``), only those stored after ``after_generation`` when given."""
    if after_generation is not None and conn.execute(
        select(id_col).where(*where, gen_col > after_generation).limit(1)
    ).first() is None:
        # The usual catch-up of an unchanged library: answered by the generation index. The paginated
        # query below walks the id order instead, every row of the table (≈ 60 ms per 100k vectors).
        return
    last = 0
    while True:
        q = select(id_col, data_col).where(*where, id_col > last)
        if after_generation is not None:
            q = q.where(gen_col > after_generation)
        rows = conn.execute(q.order_by(id_col).limit(batch)).all()
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


def id_list(ids: Iterable[int]):
    """A SQL fragment ``(SELECT value FROM json_each(:ids))`` for ``col.in_(id_list(ids))``: any number of
    ids as one JSON parameter — no chunks of 900 placeholders, nothing for SQLAlchemy to render per id."""
    return text("SELECT value FROM json_each(:ids)").bindparams(ids=ids_json(ids))


def ids_json(ids: Iterable[int]) -> str:
    """Ids as the one JSON parameter of ``… IN (SELECT value FROM json_each(?))``."""
    return json.dumps([int(i) for i in ids])


def window_spans(conn: Connection, window_ids: Iterable[int]) -> dict[int, tuple[int, float, float]]:
    """``{window_id: (file_id, start_s, end_s)}`` of the given windows that exist."""
    rows = conn.exec_driver_sql(
        "SELECT id, file_id, start_s, end_s FROM windows WHERE id IN (SELECT value FROM json_each(?))",
        (ids_json(window_ids),),
    ).fetchall()  # plain tuples: ~1600 rows per query, SQLAlchemy rows cost more than the SQL here
    return {w: (f, s, e) for w, f, s, e in rows}


def file_window_vectors(
    conn: Connection, bundle_id: str, dim: int, file_ids: Iterable[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The windows of the given files that have a vector of ``bundle_id``: ``(file_ids int64 (n,), start_s
    float64 (n,), end_s float64 (n,), vectors float32 (n, dim))``. One query (the ids as one JSON parameter),
    plain rows: a search reads ~1,500 of them per query."""
    rows = conn.exec_driver_sql(
        "SELECT w.file_id, w.start_s, w.end_s, v.data FROM windows w "
        "JOIN vectors v ON v.window_id = w.id AND v.bundle_id = ? "
        "WHERE w.file_id IN (SELECT value FROM json_each(?))",
        (bundle_id, ids_json(file_ids)),
    ).fetchall()
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros((0, dim), np.float32)
    fids, starts, ends, blobs = zip(*rows, strict=True)
    return (np.asarray(fids, np.int64), np.asarray(starts, np.float64), np.asarray(ends, np.float64),
            decode_vectors(blobs, dim))


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
    ids = [int(f) for f in file_ids]
    n = delete_file_windows(conn, ids, gen)
    for chunk in chunks(ids, 900):
        conn.execute(delete(File).where(File.id.in_(chunk)))
        fts.delete_documents(conn, chunk)
    return n


def insert_windows(
    conn: Connection,
    file_id: int,
    starts: np.ndarray,
    ends: np.ndarray,
    vectors: np.ndarray,
    bundle_id: str,
    gen: int,
    features: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Insert windows and their vectors (stored at generation ``gen``) for one file, with each window's
    backbone features when given (``{backbone key: float32 (n, F)}``, stored float16); return the new
    window ids (int64, in order)."""
    return insert_windows_many(conn, [(file_id, starts, ends, vectors)], bundle_id, gen,
                               [features] if features else None)[0]


def insert_windows_many(
    conn: Connection,
    files: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
    bundle_id: str,
    gen: int,
    features: Sequence[dict[str, np.ndarray]] | None = None,
) -> list[np.ndarray]:
    """:func:`insert_windows_bulk` for ``files`` = ``[(file id, starts_s [n], ends_s [n], vectors float32
    [n, dim])]``, with ``features[i]`` = file ``i``'s backbone features ``{backbone key: float32 [n, F]}``
    when given (one statement per key); returns each file's new window ids (int64, in order). The one
    writer only."""
    counts = [len(starts) for _, starts, _, _ in files]
    if not sum(counts):
        return [np.zeros(0, np.int64) for _ in files]
    ids = insert_windows_bulk(
        conn,
        np.repeat(np.array([int(f[0]) for f in files], np.int64), counts),
        np.concatenate([np.asarray(f[1], np.float64) for f in files]),
        np.concatenate([np.asarray(f[2], np.float64) for f in files]),
        np.concatenate([np.asarray(f[3], np.float32).reshape(n, -1) for f, n in zip(files, counts, strict=True) if n]),
        bundle_id, gen,
    )
    per_file = np.split(ids, np.cumsum(counts)[:-1])
    if features:
        for key in sorted({k for f in features for k in f}):
            have = [(wids, f[key]) for wids, f in zip(per_file, features, strict=True) if key in f and len(wids)]
            if have:
                put_features(conn, np.concatenate([w for w, _ in have]), {key: np.concatenate([x for _, x in have])})
    return per_file


def insert_windows_bulk(
    conn: Connection,
    file_ids: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    vectors: np.ndarray,
    bundle_id: str,
    gen: int,
) -> np.ndarray:
    """Insert the windows and vectors of many files at once (``file_ids[i]`` owns window ``i``); return the
    new window ids (int64, in order). The ids continue after the highest window id ever used (what
    AUTOINCREMENT would give), so only the one writer may call this, inside its transaction. One
    ``executemany`` per table: a million windows go in within a minute."""
    n = len(file_ids)
    if n == 0:
        return np.zeros(0, np.int64)
    seq = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'windows'").scalar()
    last = max(int(seq or 0), int(conn.execute(select(func.max(Window.id))).scalar() or 0))
    ids = np.arange(last + 1, last + 1 + n, dtype=np.int64)
    conn.exec_driver_sql(
        "INSERT INTO windows (id, file_id, start_s, end_s) VALUES (?, ?, ?, ?)",
        list(zip(ids.tolist(), np.asarray(file_ids).tolist(), np.asarray(starts, np.float64).tolist(),
                 np.asarray(ends, np.float64).tolist(), strict=True)),
    )
    insert_vectors(conn, ids, vectors, bundle_id, gen)
    return ids


def insert_vectors(conn: Connection, window_ids: np.ndarray, vectors: np.ndarray, bundle_id: str, gen: int) -> None:
    """Store the vectors of existing windows for a bundle (float16) at generation ``gen``: the one writer of
    vector rows (one ``executemany``)."""
    if len(window_ids) == 0:
        return
    data = np.ascontiguousarray(vectors, dtype=VECTOR_DTYPE)
    conn.exec_driver_sql(
        "INSERT INTO vectors (window_id, bundle_id, data, generation) VALUES (?, ?, ?, ?)",
        [(int(wid), bundle_id, row.tobytes(), int(gen)) for wid, row in zip(window_ids, data, strict=True)],
    )


def put_features(conn: Connection, window_ids: np.ndarray, features: dict[str, np.ndarray]) -> None:
    """Store (or replace) backbone features of windows: ``{backbone key: float32 (n, F)}``, float16 blobs."""
    for key, feats in features.items():
        f16 = np.asarray(feats, dtype=VECTOR_DTYPE)
        if len(f16) != len(window_ids):
            raise ValueError(f"{len(f16)} feature rows for {len(window_ids)} windows")
        conn.exec_driver_sql("INSERT OR REPLACE INTO features (window_id, backbone, data) VALUES (?, ?, ?)",
                             [(int(i), key, f.tobytes()) for i, f in zip(window_ids, f16, strict=True)])


def windows_to_project(
    conn: Connection, bundle_id: str, keys: list[str], dims: list[int], *, after: int = 0, batch: int = 8192
) -> tuple[np.ndarray, list[np.ndarray], int] | None:
    """The next ``batch`` windows (ids > ``after``, in id order) that have stored features for every
    backbone key in ``keys`` but no vector of ``bundle_id``: ``(window_ids int64[n], [float32 (n, dims[j])
    per key], last id looked at)``, or ``None`` when there are no more (pass ``after=last`` to go on)."""
    q = (
        select(Feature.window_id, Feature.data)
        .where(Feature.backbone == keys[0], Feature.window_id > after)
        .where(~select(Vector.window_id).where(Vector.window_id == Feature.window_id,
                                               Vector.bundle_id == bundle_id).exists())
        .order_by(Feature.window_id).limit(batch)
    )
    rows = conn.execute(q).all()
    if not rows:
        return None
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    feats = [decode_vectors((r[1] for r in rows), dims[0])]
    keep = np.ones(len(ids), bool)
    for key, dim in zip(keys[1:], dims[1:], strict=True):
        got = dict(conn.execute(select(Feature.window_id, Feature.data).where(
            Feature.backbone == key, Feature.window_id.between(int(ids[0]), int(ids[-1])))).all())
        keep &= np.fromiter((int(i) in got for i in ids), bool, count=len(ids))
        feats.append(decode_vectors((got.get(int(i), bytes(2 * dim)) for i in ids), dim))
    last = int(ids[-1])
    if not keep.all():
        ids, feats = ids[keep], [f[keep] for f in feats]
    return ids, feats, last


def feature_dim(conn: Connection, key: str) -> int | None:
    """Width of the stored features of a backbone key (``None`` when none are stored)."""
    blob = conn.execute(select(Feature.data).where(Feature.backbone == key).limit(1)).scalar()
    return None if blob is None else len(blob) // np.dtype(VECTOR_DTYPE).itemsize


def features_of_files(conn: Connection, key: str, dim: int, file_ids: Iterable[int]) -> dict[int, np.ndarray]:
    """``{file_id: float32 (windows, dim)}`` (in window order) of the given files' stored features."""
    out: dict[int, list[bytes]] = {}
    for chunk in chunks([int(f) for f in file_ids], 900):
        for fid, data in conn.execute(
            select(Window.file_id, Feature.data).join(Feature, Feature.window_id == Window.id)
            .where(Window.file_id.in_(chunk), Feature.backbone == key).order_by(Window.file_id, Window.id)
        ):
            out.setdefault(int(fid), []).append(data)
    return {fid: decode_vectors(blobs, dim) for fid, blobs in out.items()}


def count_windows_without(conn: Connection, bundle_id: str) -> tuple[int, int]:
    """``(windows without a vector of bundle_id, their files)``."""
    row = conn.execute(
        select(func.count(Window.id), func.count(func.distinct(Window.file_id)))
        .where(~select(Vector.window_id).where(Vector.window_id == Window.id, Vector.bundle_id == bundle_id).exists())
    ).one()
    return int(row[0]), int(row[1])


def record_bundle(conn: Connection, bundle_id: str, name: str, version: str, dim: int) -> None:
    if conn.execute(select(BundleRow.bundle_id).where(BundleRow.bundle_id == bundle_id)).first():
        return
    conn.execute(
        insert(BundleRow).values(bundle_id=bundle_id, name=name, version=version, dim=dim, added_at=time.time())
    )


# -- file texts (semantic metadata search) -----------------------------------------------------------


def names_generation(conn: Connection) -> int:
    return int(_get_meta(conn, "names_generation") or 0)


def file_texts(conn: Connection, file_ids: Iterable[int] | None = None) -> dict[int, tuple[str, str, float]]:
    """``{file_id: (text, encoder, informativeness)}`` of the stored file texts (of ``file_ids``, or all)."""
    q = select(FileText.file_id, FileText.text, FileText.encoder, FileText.informativeness)
    if file_ids is None:
        return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(q)}
    out: dict[int, tuple[str, str, float]] = {}
    for chunk in chunks([int(f) for f in file_ids], 900):
        out.update({r[0]: (r[1], r[2], r[3]) for r in conn.execute(q.where(FileText.file_id.in_(chunk)))})
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
    yield from _iter_blobs(conn, FileText.file_id, FileText.data, FileText.generation,
                           [FileText.encoder == encoder, FileText.text != ""], dim, after_generation, batch)


def file_text_vectors(
    conn: Connection, file_ids: Iterable[int], encoder: str, dim: int
) -> dict[int, tuple[np.ndarray, float]]:
    """``{file_id: (vector float32 (dim,), informativeness)}`` for the given files that have one."""
    rows = conn.exec_driver_sql(  # plain rows: ~600 per hybrid query
        "SELECT file_id, data, informativeness FROM file_texts "
        "WHERE file_id IN (SELECT value FROM json_each(?)) AND encoder = ?",
        (ids_json(file_ids), encoder),
    ).fetchall()
    vecs = decode_vectors((r[1] for r in rows), dim)  # one decode for all, not one per file
    return {int(r[0]): (v, float(r[2])) for r, v in zip(rows, vecs, strict=True)}


def set_file_error(conn: Connection, file_id: int, reason: str, message: str) -> None:
    conn.execute(
        update(File)
        .where(File.id == file_id)
        .values(status="error", error_reason=reason, error_message=message, indexed_at=time.time())
    )


def metadata_dumps(meta: dict | None) -> str | None:
    return json.dumps(meta, ensure_ascii=False, sort_keys=True) if meta else None
