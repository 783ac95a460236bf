"""Listing the library without a query: the files of a library as :class:`~engine.search.Hit` rows, sorted
by name, folder, length, rate or date added, plus the per-file facts a results list shows beside a hit
(bit depth, content fingerprint, date added) and how many files each UCS category holds.

Plain SQLAlchemy over the existing tables; no torch. ``Hit.score`` is 0 for listed files and their
"best window" is the start of the file.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import select

from engine.errors import QueryError
from engine.search import Filters, Hit
from engine.storage import db

SORT_KEYS = ("name", "folder", "duration", "rate", "added")
DEFAULT_LIMIT = 2000

# soundfile subtypes → bits per sample (lossy codecs have none)
_BITS = {
    "PCM_S8": 8,
    "PCM_U8": 8,
    "PCM_16": 16,
    "PCM_24": 24,
    "PCM_32": 32,
    "FLOAT": 32,
    "DOUBLE": 64,
    "ALAC_16": 16,
    "ALAC_20": 20,
    "ALAC_24": 24,
    "ALAC_32": 32,
    "DPCM_8": 8,
    "DPCM_16": 16,
    "DWVW_12": 12,
    "DWVW_16": 16,
    "DWVW_24": 24,
    "NMS_ADPCM_16": 16,
    "NMS_ADPCM_24": 24,
    "NMS_ADPCM_32": 32,
}


def bit_depth(subtype: str | None) -> int | None:
    """Bits per sample of a soundfile subtype (``'PCM_24'`` → 24, ``'FLOAT'`` → 32); ``None`` for lossy
    or unknown encodings (``'VORBIS'``, ``'MPEG_LAYER_III'``, ``'OPUS'``)."""
    return _BITS.get((subtype or "").upper())


def is_float(subtype: str | None) -> bool:
    return (subtype or "").upper() in ("FLOAT", "DOUBLE")


def bit_depth_label(subtype: str | None) -> str:
    """``'PCM_24'`` → ``'24-bit'``, ``'FLOAT'`` → ``'32-bit float'``, lossy → ``''``."""
    bits = bit_depth(subtype)
    if bits is None:
        return ""
    return f"{bits}-bit" + (" float" if is_float(subtype) else "")


@dataclass(frozen=True)
class FileFacts:
    """What a file record holds beyond a :class:`Hit`: its soundfile ``subtype`` (``'PCM_24'``), content
    fingerprint (equal for byte-identical audio) and when it was indexed (Unix seconds)."""

    subtype: str | None
    content_hash: str | None
    indexed_at: float | None

    @property
    def bit_depth(self) -> int | None:
        return bit_depth(self.subtype)


@dataclass
class BrowsePage:
    """One page of the library listing: ``hits`` in the requested order, ``total`` files that match."""

    hits: list[Hit]
    total: int
    facts: dict[int, FileFacts]


def _bit_clause(bit_depths: tuple[int, ...]):
    subtypes = sorted(s for s, b in _BITS.items() if b in set(bit_depths))
    return db.File.subtype.in_(subtypes or ["-"])


def list_files(
    lib,
    filters: Filters | None = None,
    *,
    sort: str = "name",
    descending: bool = False,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
    bit_depths: tuple[int, ...] = (),
) -> BrowsePage:
    """The library's indexed files that pass ``filters`` (and, when given, have one of ``bit_depths``),
    sorted by ``sort`` (one of :data:`SORT_KEYS`; ties by path), ``limit`` of them from ``offset``.

    Raises :class:`QueryError` for an unknown sort key or a negative limit/offset.
    """
    if sort not in SORT_KEYS:
        raise QueryError(f"cannot sort the library by {sort!r}; use one of {', '.join(SORT_KEYS)}")
    if limit < 0 or offset < 0:
        raise QueryError("limit and offset must not be negative")
    filters = filters or Filters()
    F = db.File
    where = [F.status == "ok", *filters.clauses()]
    if bit_depths:
        where.append(_bit_clause(tuple(bit_depths)))
    with lib.engine.connect() as conn:
        keys = conn.execute(
            select(F.id, F.rel_path, db.Root.path, F.duration_s, F.sample_rate, F.indexed_at)
            .join(db.Root, db.Root.id == F.root_id)
            .where(*where)
        ).all()

        def key(r):
            name = PurePosixPath(r[1]).name.lower()
            full = f"{r[2]}/{r[1]}".lower()
            if sort == "name":
                return (name, full)
            if sort == "folder":
                return (str(PurePosixPath(full).parent), name)
            value = {"duration": r[3], "rate": r[4], "added": r[5]}[sort]
            return (value if value is not None else -1.0, full)

        keys.sort(key=key, reverse=descending)
        page = [r[0] for r in keys[offset : offset + limit]]
        hits = _hits(conn, page, lib.bundle.window_s)
        facts = _facts(conn, page)
    return BrowsePage(hits, len(keys), facts)


def _hits(conn, file_ids: list[int], window_s: float) -> list[Hit]:
    """Hits for ``file_ids`` in that order (score 0, the first window as the "match")."""
    rows = {}
    for chunk in db.chunks(file_ids, 900):
        for r in conn.execute(
            select(
                db.File.id,
                db.File.rel_path,
                db.File.duration_s,
                db.File.sample_rate,
                db.File.channels,
                db.File.format,
                db.File.metadata_json,
                db.Root.path.label("root"),
            )
            .join(db.Root, db.Root.id == db.File.root_id)
            .where(db.File.id.in_(chunk))
        ):
            rows[r.id] = r
    out = []
    for fid in file_ids:
        r = rows.get(fid)
        if r is None:
            continue
        duration = float(r.duration_s or 0.0)
        out.append(
            Hit(
                path=str(Path(r.root) / r.rel_path),
                score=0.0,
                start_s=0.0,
                end_s=min(window_s, duration) if duration > 0 else window_s,
                duration_s=duration,
                sample_rate=r.sample_rate,
                channels=r.channels,
                format=r.format,
                file_id=int(fid),
                metadata=json.loads(r.metadata_json) if r.metadata_json else {},
            )
        )
    return out


def _facts(conn, file_ids) -> dict[int, FileFacts]:
    out: dict[int, FileFacts] = {}
    for chunk in db.chunks(list(file_ids), 900):
        for fid, subtype, chash, added in conn.execute(
            select(db.File.id, db.File.subtype, db.File.content_hash, db.File.indexed_at).where(
                db.File.id.in_(chunk)
            )
        ):
            out[int(fid)] = FileFacts(subtype, chash, added)
    return out


def file_facts(lib, file_ids) -> dict[int, FileFacts]:
    """``{file_id: FileFacts}`` for the given ids (unknown ids are left out)."""
    with lib.engine.connect() as conn:
        return _facts(conn, [int(i) for i in file_ids])


def file_hit(lib, path: str | Path) -> Hit | None:
    """The library's record of ``path`` as a :class:`Hit` (score 0), or ``None`` when it is not indexed."""
    target = Path(path).expanduser().resolve()
    with lib.engine.connect() as conn:
        for rid, root in conn.execute(select(db.Root.id, db.Root.path)):
            rp = Path(root)
            if target != rp and rp not in target.parents:
                continue
            fid = conn.execute(
                select(db.File.id).where(
                    db.File.root_id == rid, db.File.rel_path == target.relative_to(rp).as_posix()
                )
            ).scalar()
            if fid is not None:
                hits = _hits(conn, [int(fid)], lib.bundle.window_s)
                return hits[0] if hits else None
    return None


@dataclass
class CategoryCounts:
    """Indexed files per UCS CatID (``'DOORWood'``, as stored) and per upper-case category name
    (``'DOORS'``). They are separate because some CatIDs equal a category name (``RAIN`` is the CatID of
    RAIN › GENERAL)."""

    by_cat_id: Counter
    by_category: Counter


def category_counts(lib) -> CategoryCounts:
    """How many indexed files each UCS category holds, from their metadata (and UCS file names)."""
    by_id: Counter = Counter()
    by_cat: Counter = Counter()
    with lib.engine.connect() as conn:
        for (raw,) in conn.execute(
            select(db.File.metadata_json).where(db.File.status == "ok", db.File.metadata_json.is_not(None))
        ):
            try:
                meta = json.loads(raw)
            except ValueError:
                continue
            cat_id = meta.get("cat_id") if isinstance(meta, dict) else None
            category = meta.get("category") if isinstance(meta, dict) else None
            if isinstance(cat_id, str) and cat_id.strip():
                by_id[cat_id.strip()] += 1
            if isinstance(category, str) and category.strip():
                by_cat[category.strip().upper()] += 1
    return CategoryCounts(by_id, by_cat)
