"""The keyword tables of a library (storage layer): an FTS5 word index over names, folders and metadata and a
trigram index over names and folders; their rowid is the file id.

:func:`document_for` builds one file's row, :func:`put_document` / :func:`delete_document` write it; the
schema migrations create the tables from :data:`FTS_DDL`. Searching them (query syntax, BM25, trigram
fallbacks) is :mod:`engine.keyword`'s job. No torch, nothing above the storage layer but the leaf modules
:mod:`engine.metadata` and :mod:`engine.ucs`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from engine.metadata import FileMetadata
from engine.ucs import lookup as ucs_lookup

FTS_TABLE = "files_fts"
#: FTS5 columns, in table order, with their BM25 weights (file name and description count most).
FTS_COLUMNS: tuple[tuple[str, float], ...] = (
    ("name", 10.0),
    ("folder", 3.0),
    ("description", 10.0),
    ("keywords", 6.0),
    ("category", 4.0),
    ("catid", 4.0),
    ("library", 2.0),
    ("designer", 2.0),
    ("ucs", 1.0),
    ("other", 1.0),
)
_COLUMN_NAMES = tuple(name for name, _ in FTS_COLUMNS)

_TOKENIZE = "'porter unicode61 remove_diacritics 2'"

#: A second, trigram index over names and folders (schema 3) lets a word match inside a run-together
#: name: ``explosion`` finds ``bombexplosion.ogg``.
TRIGRAM_TABLE = "files_tri"
TRIGRAM_COLUMNS = ("name", "folder")

#: Statements creating the keyword index (idempotent). ``prefix='2 3'`` speeds up short prefix queries.
FTS_DDL: list[str] = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
    + ", ".join(_COLUMN_NAMES)
    + f", tokenize = {_TOKENIZE}, prefix = '2 3')",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {TRIGRAM_TABLE} USING fts5("
    + ", ".join(TRIGRAM_COLUMNS)
    + ", tokenize = 'trigram')",
]

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_SEPARATORS = re.compile(r"[\s_\-.+,;()\[\]{}#&!~'\"]+")


def split_words(text: str) -> str:
    """``"DoorSlam_heavy-01(take2)"`` -> ``"Door Slam heavy 01 take 2"``: words of a file or folder name
    split on separators, camelCase and letter/digit boundaries."""
    parts = []
    for chunk in _SEPARATORS.split(text):
        if chunk:
            parts.extend(p for p in _CAMEL.split(chunk) if p)
    return " ".join(parts)


def _name_text(name: str) -> str:
    """A name as written plus its split words (so ``doorslam`` and ``door slam`` both match)."""
    split = split_words(name)
    return name if split == name else f"{name} {split}"


def _join(values: Iterable[str | None]) -> str:
    seen: set[str] = set()
    out = []
    for v in values:
        v = (v or "").strip()
        if v and v.casefold() not in seen:
            seen.add(v.casefold())
            out.append(v)
    return " | ".join(out)


_LIBRARY_EXTRA = ("MANUFACTURER", "PUBLISHER", "CDTITLE", "LABEL")
_CATEGORY_EXTRA = ("USERCATEGORY", "USER_CATEGORY", "VENDORCATEGORY", "CATEGORYFULL", "CATEGORY_FULL")


def _extra_kind(key: str) -> str:
    name = key.rsplit(":", 1)[-1].upper()
    if name in _LIBRARY_EXTRA:
        return "library"
    if name in _CATEGORY_EXTRA:
        return "category"
    return "other"


def document_for(
    rel_path: str, root_path: str, meta: FileMetadata | Mapping[str, Any] | None
) -> dict[str, str]:
    """The FTS columns (see :data:`FTS_COLUMNS`) for one file.

    ``rel_path``: the file's path relative to its library root, POSIX form (``"Doors/DOORWood_Slam.wav"``);
    ``root_path``: the root folder (its last component is often the library's name and is indexed with
    the folders); ``meta``: from :func:`engine.metadata.read_metadata` or its ``as_dict()``.
    A known UCS CatID adds its category and subcategory names to ``category`` and its official spelling
    to ``ucs``, the column that query-time synonym expansion matches (see :func:`engine.keyword.to_fts5`): the UCS
    explanations and synonyms are not copied into every file's row, which would double the index.
    """
    if not isinstance(meta, FileMetadata):
        meta = FileMetadata.from_dict(meta)
    rel = PurePosixPath(rel_path.replace("\\", "/"))
    root_name = PurePosixPath(str(root_path).replace("\\", "/").rstrip("/")).name
    folders = [root_name, *rel.parts[:-1]]
    original = (
        PurePosixPath(meta.original_filename.replace("\\", "/")).stem if meta.original_filename else None
    )
    row = ucs_lookup(meta.cat_id)
    extra = {"library": [], "category": [], "other": []}
    for key, value in meta.extra.items():
        extra[_extra_kind(key)].append(value)
    doc = {
        "name": _join(
            [_name_text(rel.stem), meta.title, meta.fx_name, _name_text(original) if original else None]
        ),
        "folder": _join(_name_text(f) for f in folders if f),
        "description": meta.description or "",
        "keywords": _join(meta.keywords),
        "category": _join(
            [
                meta.category,
                meta.subcategory,
                *(extra["category"]),
                *([row.category, row.subcategory] if row else []),
            ]
        ),
        "catid": _join([meta.cat_id]),
        "library": _join([meta.library, *extra["library"]]),
        "designer": _join([meta.designer, meta.creator_id]),
        "ucs": row.cat_id if row else "",
        "other": _join([meta.source_id, *extra["other"]]),
    }
    return doc


#: An index run that wrote the keyword rows of at least this many files merges the keyword tables (:func:`optimize`).
OPTIMIZE_AFTER = 1000


def optimize(conn: Any) -> None:
    """Merge each keyword table's b-trees (FTS5 segments, one per batch of writes, merged only in part as
    they pile up) into one: a query then reads one list per term, not one per segment (keyword queries about
    a quarter quicker at 300k files). About 5 s at 300k files, so only after big writes."""
    for table in (FTS_TABLE, TRIGRAM_TABLE):
        _execute(conn, f"INSERT INTO {table}({table}) VALUES('optimize')", ())


def segments(conn: Any, table: str = FTS_TABLE) -> int:
    """How many segments (b-trees) ``table`` holds."""
    return int(_execute(conn, f"SELECT count(DISTINCT segid) FROM {table}_idx", (), rows=True)[0][0])


def _execute(conn: Any, sql: str, params: Sequence[Any], *, rows: bool = False) -> list[tuple]:
    """Run ``sql`` on a sqlite3 connection or a SQLAlchemy Connection (qmark parameters); the result rows
    when ``rows``, else ``[]``."""
    if hasattr(conn, "exec_driver_sql"):
        result = conn.exec_driver_sql(sql, tuple(params))
        return [tuple(r) for r in result.fetchall()] if rows else []
    cursor = conn.execute(sql, tuple(params))
    return cursor.fetchall() if rows else []


def _sqlite_error(exc: BaseException) -> sqlite3.Error | None:
    orig = getattr(exc, "orig", exc)
    return orig if isinstance(orig, sqlite3.Error) else None


def put_document(conn: Any, file_id: int, doc: Mapping[str, str]) -> None:
    """Index (or re-index) file ``file_id`` with the columns from :func:`document_for` (word and trigram
    indexes)."""
    put_documents(conn, [(file_id, doc)])


def put_documents(conn: Any, docs: Sequence[tuple[int, Mapping[str, str]]]) -> None:
    """:func:`put_document` for many files: ``[(file id, columns)]``, one ``executemany`` per table."""
    ids = [int(fid) for fid, _ in docs]
    for start in range(0, len(ids), 900):
        delete_documents(conn, ids[start : start + 900])
    for table, columns in ((FTS_TABLE, _COLUMN_NAMES), (TRIGRAM_TABLE, TRIGRAM_COLUMNS)):
        sql = f"INSERT INTO {table} (rowid, {', '.join(columns)}) VALUES (?, {', '.join('?' for _ in columns)})"
        rows = [(fid, *(doc.get(c, "") or "" for c in columns)) for fid, (_, doc) in zip(ids, docs, strict=True)]
        if not rows:
            continue
        if hasattr(conn, "exec_driver_sql"):
            conn.exec_driver_sql(sql, rows)
        else:
            conn.executemany(sql, rows)


def delete_document(conn: Any, file_id: int) -> None:
    """Remove file ``file_id`` from the keyword indexes (no error if it is not there)."""
    delete_documents(conn, [file_id])


def delete_documents(conn: Any, file_ids: Sequence[int]) -> None:
    """Remove files from the keyword indexes (at most 900 ids per call)."""
    if not file_ids:
        return
    marks = ",".join("?" * len(file_ids))
    for table in (FTS_TABLE, TRIGRAM_TABLE):
        _execute(conn, f"DELETE FROM {table} WHERE rowid IN ({marks})", tuple(int(f) for f in file_ids))
