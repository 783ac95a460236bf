"""Read the descriptive metadata professional sound libraries carry, without ever failing on it.

Sources, highest priority first (a field is taken from the first source that has it):

1. iXML ``<USER>`` block (Soundminer / BaseHead fields: ``DESCRIPTION``, ``CATEGORY``, ``SUBCATEGORY``,
   ``CATID``, ``FXNAME``, ``KEYWORDS``, ``LIBRARY``, ``DESIGNER``, ``TRACKTITLE``, ...);
2. iXML ``<ASWG>`` block (``category``, ``subCategory``, ``catId``, ``fxName``, ``library``,
   ``creatorId``, ``sourceId``, ``originator``, ...);
3. iXML core (``BEXT/BWF_DESCRIPTION``, ``HISTORY/ORIGINAL_FILENAME``, ``PROJECT``, ``NOTE``, ...);
4. BWF ``bext`` (description; originator and reference are kept in ``extra``);
5. RIFF ``LIST/INFO`` (``INAM`` title, ``ISBJ``/``ICMT`` description, ``IKEY`` keywords, ``IPRD``
   library, ``IART`` designer, ...);
6. tags: ID3 (MP3, AIFF, an ``id3`` chunk in WAV), Vorbis comments (FLAC, Ogg, Opus), MP4 and APEv2,
   through mutagen.

Keywords are merged from every source. A value that loses to a higher-priority source but says something
else is kept in ``extra`` so that nothing is lost to keyword search. The UCS CatID comes from the metadata
or, failing that, from a UCS file name (see :func:`engine.ucs.parse_ucs_filename`), and fills in the
category and subcategory.

WAV-family files (RIFF, RF64, BW64) are walked by a tolerant chunk reader here rather than by
``wavinfo.WavInfoReader``, which aborts the whole file on the first malformed chunk: a truncated chunk is
read as far as it goes, a broken chunk is skipped, and each problem becomes one line in
:attr:`FileMetadata.warnings`. iXML is parsed with lxml in recover mode (entities and network access
off) when available, else with the standard library.
"""

from __future__ import annotations

import io
import logging
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePath
from typing import Any

from engine import ucs

log = logging.getLogger(__name__)

_RIFF_MAGIC = (b"RIFF", b"RF64", b"BW64")
_WANTED_CHUNKS = (b"bext", b"iXML", b"LIST", b"id3 ", b"ID3 ")
_MAX_CHUNK_BYTES = 8 << 20  # a metadata chunk larger than this is skipped
_MAX_CHUNKS = 10_000
_MAX_VALUE_CHARS = 4000
_MAX_EXTRA = 64
_MAX_KEYWORDS = 200
_BEXT_MIN_BYTES = 602
_WAV_SUFFIXES = frozenset({".wav", ".wave", ".bwf", ".rf64"})  # EBU Tech 3285: fixed part of the bext chunk

# Canonical field -> tag keys (canonicalised: upper case, letters and digits only), best first.
_TAG_KEYS: dict[str, tuple[str, ...]] = {
    "description": (
        "DESCRIPTION",
        "BWDESCRIPTION",
        "BWFDESCRIPTION",
        "DESC",
        "SUBJECT",
        "COMMENT",
        "COMMENTS",
    ),
    "title": ("TITLE", "TRACKTITLE", "NAME"),
    "category": ("CATEGORY",),
    "subcategory": ("SUBCATEGORY",),
    "category_full": ("CATEGORYFULL",),
    "cat_id": ("CATID",),
    "fx_name": ("FXNAME",),
    "keywords": ("KEYWORDS", "KEYWORD"),
    "library": ("LIBRARY", "CDTITLE", "ALBUM"),
    "designer": ("DESIGNER", "ARTIST", "ORIGINATOR", "COMPOSER"),
    "original_filename": ("ORIGINALFILENAME", "ORIGFILENAME"),
    "creator_id": ("CREATORID",),
    "source_id": ("SOURCEID",),
}
# Raw values not worth indexing (encoders, embedding tools, technical numbers).
_SKIP_KEYS = frozenset(
    {"EMBEDDER", "ENCODER", "ENCODEDBY", "ENCODING", "SOFTWARE", "CODINGHISTORY", "TSSE", "TENC", "ISFT"}
)
# RIFF INFO ids -> tag keys understood by _TAG_KEYS; other ids keep their own name.
_INFO_KEYS = {
    b"INAM": "TITLE",
    b"ISBJ": "SUBJECT",
    b"ICMT": "COMMENT",
    b"IKEY": "KEYWORDS",
    b"IPRD": "ALBUM",
    b"IART": "ARTIST",
}
# ID3 frame ids -> tag keys; other text frames keep their id.
_ID3_KEYS = {
    "TIT2": "TITLE",
    "TALB": "ALBUM",
    "TPE1": "ARTIST",
    "TCOM": "COMPOSER",
    "TCON": "GENRE",
    "TPUB": "PUBLISHER",
    "TIT1": "GROUPING",
    "TIT3": "SUBTITLE",
}
_MP4_KEYS = {
    "\xa9nam": "TITLE",
    "\xa9cmt": "COMMENT",
    "desc": "DESCRIPTION",
    "ldes": "LONGDESCRIPTION",
    "\xa9alb": "ALBUM",
    "\xa9ART": "ARTIST",
    "\xa9wrt": "COMPOSER",
    "\xa9gen": "GENRE",
    "\xa9grp": "GROUPING",
    "keyw": "KEYWORDS",
}
_IXML_CORE_PATHS = {
    ("BEXT", "BWF_DESCRIPTION"): "BWFDESCRIPTION",
    ("HISTORY", "ORIGINAL_FILENAME"): "ORIGINALFILENAME",
    ("PROJECT",): "PROJECT",
    ("SCENE",): "SCENE",
    ("TAKE",): "TAKE",
    ("TAPE",): "TAPE",
    ("NOTE",): "NOTE",
}
_KEYWORD_SPLIT = re.compile(r"[,;\r\n\t]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class FileMetadata:
    """What a file says about itself. Text fields are stripped strings or ``None``.

    ``keywords`` are individual keywords (split on ``,`` ``;`` and new lines, de-duplicated);
    ``extra`` maps ``"SOURCE:KEY"`` (e.g. ``"ASWG:micType"``, ``"INFO:IGNR"``, ``"bext:originator"``) to
    other raw text worth searching; ``warnings`` lists what could not be read (one short line each).
    JSON-ready through :meth:`as_dict` / :meth:`from_dict`.
    """

    description: str | None = None
    title: str | None = None
    category: str | None = None
    subcategory: str | None = None
    cat_id: str | None = None
    fx_name: str | None = None
    keywords: list[str] = field(default_factory=list)
    library: str | None = None
    designer: str | None = None
    original_filename: str | None = None
    creator_id: str | None = None
    source_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The non-empty fields as a JSON-ready dict (lists and dicts copied)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list | dict):
                value = type(value)(value)
            if value:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> FileMetadata:
        """Rebuild from :meth:`as_dict` output; unknown keys are ignored, wrong types coerced or dropped."""
        meta = cls()
        if not data:
            return meta
        for f in fields(cls):
            value = data.get(f.name)
            if value is None:
                continue
            if f.name in ("keywords", "warnings"):
                if isinstance(value, str):
                    value = [value]
                if isinstance(value, Iterable):
                    setattr(meta, f.name, [str(v) for v in value if v is not None and str(v).strip()])
            elif f.name == "extra":
                if isinstance(value, Mapping):
                    meta.extra = {str(k): str(v) for k, v in value.items() if v is not None}
            else:
                text = str(value).strip()
                setattr(meta, f.name, text or None)
        return meta


# ----------------------------------------------------------------------------------------------- helpers


def _clean(value: Any) -> str | None:
    """A value as a stripped, control-character-free string of bounded length, or ``None`` if empty."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = _decode(value)
    text = _CONTROL.sub("", str(value)).strip()
    if not text:
        return None
    return text[:_MAX_VALUE_CHARS]


def _decode(raw: bytes) -> str:
    """Bytes up to the first NUL, as UTF-8 when valid, else Windows-1252/Latin-1 (what old tools wrote)."""
    raw = raw.split(b"\0", 1)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def _why(exc: BaseException) -> str:
    """A short reason for a warning: the exception's message, else its class name."""
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:160]


def _canon(key: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", key.upper())


def split_keywords(values: Iterable[str]) -> list[str]:
    """Keywords from free-text values separated by ``,`` ``;`` tabs or new lines; de-duplicated
    case-insensitively, order kept, at most 200."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        for kw in _KEYWORD_SPLIT.split(value):
            kw = kw.strip()
            if kw and kw.casefold() not in seen:
                seen.add(kw.casefold())
                out.append(kw[:200])
                if len(out) >= _MAX_KEYWORDS:
                    return out
    return out


@dataclass
class _Source:
    """Fields read from one place in a file: canonical fields plus leftover raw values."""

    name: str
    fields: dict[str, str] = field(default_factory=dict)
    keywords: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)


def _source(name: str, items: Iterable[tuple[str, Any]]) -> _Source:
    """Map ``(raw key, value)`` pairs to canonical fields using :data:`_TAG_KEYS`; the rest go to extra."""
    by_canon: dict[str, tuple[str, str]] = {}
    keywords: list[str] = []
    for raw_key, raw_value in items:
        value = _clean(raw_value)
        key = _canon(raw_key)
        if value is None or not key or key in _SKIP_KEYS:
            continue
        if key in _TAG_KEYS["keywords"]:
            keywords.append(value)
        elif key in by_canon:
            prev_key, prev = by_canon[key]
            if value.casefold() != prev.casefold():
                by_canon[key] = (prev_key, f"{prev}; {value}")
        else:
            by_canon[key] = (raw_key, value)
    src = _Source(name, keywords=keywords)
    used: set[str] = set(_TAG_KEYS["keywords"])
    for target, keys in _TAG_KEYS.items():
        if target == "keywords":
            continue
        for key in keys:
            if key in by_canon:
                src.fields[target] = by_canon[key][1]
                used.add(key)
                break
    for key, (raw_key, value) in by_canon.items():
        if key not in used:
            src.extra[f"{name}:{raw_key}"] = value
    return src


# ------------------------------------------------------------------------------------------ RIFF / WAVE


def _valid_id(ident: bytes) -> bool:
    return len(ident) == 4 and all(0x20 <= b < 0x7F for b in ident)


def _riff_chunks(f: io.BufferedReader, size: int, warnings: list[str]) -> list[tuple[bytes, bytes]]:
    """The wanted top-level chunks of a RIFF/RF64 WAVE file as ``(id, payload)``; tolerant of truncation,
    missing pad bytes and trailing garbage (recorded in ``warnings``)."""
    head = f.read(12)
    if len(head) < 12 or head[:4] not in _RIFF_MAGIC or head[8:12] != b"WAVE":
        warnings.append("not a RIFF/WAVE file: embedded WAV metadata not read")
        return []
    out: list[tuple[bytes, bytes]] = []
    pos = 12
    ds64_data_size: int | None = None
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > size:
            break
        f.seek(pos)
        hdr = f.read(8)
        ident, length = hdr[:4], struct.unpack("<I", hdr[4:8])[0]
        if not _valid_id(ident):
            warnings.append(f"unreadable data at byte {pos}: stopped reading chunks")
            break
        start = pos + 8
        available = size - start
        if ident == b"ds64" and 16 <= length <= available:
            ds64_data_size = struct.unpack("<Q", f.read(16)[8:16])[0]  # RF64: riffSize, dataSize, ...
        if ident == b"data" and length == 0xFFFFFFFF and ds64_data_size is not None:
            length = ds64_data_size
        if ident == b"data" and (length == 0xFFFFFFFF or length > available):
            length = available  # no ds64, or a truncated recording: the audio runs to the end
        elif length > available:
            if ident in _WANTED_CHUNKS:
                warnings.append(
                    f"{_name(ident)} chunk is truncated ({available} of {length} bytes present): read what is there"
                )
            length = available
        if ident in _WANTED_CHUNKS:
            if length > _MAX_CHUNK_BYTES:
                warnings.append(f"{_name(ident)} chunk is too large ({length} bytes): skipped")
            else:
                out.append((ident, f.read(length)))
        pos = start + length
        if length % 2 and pos < size:
            # RIFF pads odd chunks with one byte, but some writers forget: follow whichever reads as a chunk.
            f.seek(pos)
            unpadded = f.read(5)
            if not (_valid_id(unpadded[:4]) and not _valid_id(unpadded[1:5])):
                pos += 1
    else:
        warnings.append(f"more than {_MAX_CHUNKS} chunks: stopped reading")
    return out


def _name(ident: bytes) -> str:
    return ident.decode("latin-1").strip()


def _bext(data: bytes, warnings: list[str]) -> _Source:
    if len(data) < _BEXT_MIN_BYTES:
        warnings.append(
            f"bext chunk is {len(data)} bytes, shorter than the {_BEXT_MIN_BYTES} required: read complete fields only"
        )
    src = _Source("bext")
    spans = (("description", 0, 256), ("originator", 256, 288), ("originator_reference", 288, 320))
    for key, lo, hi in spans:
        value = _clean(data[lo:hi]) if len(data) >= hi else None
        if value is None:
            continue
        if key == "description":
            src.fields["description"] = value
        else:  # usually the recording device or software, sometimes a person: searchable, not a designer
            src.extra[f"bext:{key}"] = value
    return src


def _info(data: bytes, warnings: list[str]) -> _Source | None:
    if data[:4] != b"INFO":
        return None  # another LIST (adtl, ...): not descriptive metadata
    items: list[tuple[str, bytes]] = []
    pos = 4
    while pos + 8 <= len(data):
        ident, length = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if not _valid_id(ident):
            warnings.append("LIST-INFO chunk is malformed: read the fields before the damage")
            break
        start = pos + 8
        if start + length > len(data):
            warnings.append(f"LIST-INFO field {_name(ident)} is truncated: read what is there")
        items.append((_INFO_KEYS.get(ident, _name(ident)), data[start : start + length]))
        pos = start + length
        if length % 2 and pos < len(data) and data[pos] == 0:
            pos += 1
    return _source("INFO", items)


def _parse_xml(data: bytes) -> tuple[Any | None, bool]:
    """``(root element or None, damaged)``: lxml in recover mode, else the standard library."""
    try:
        from lxml import etree
    except ImportError:  # pragma: no cover - lxml comes with wavinfo, the metadata extra
        import xml.etree.ElementTree as std_etree

        try:
            return std_etree.fromstring(data), False
        except std_etree.ParseError:
            return None, True
    parser = etree.XMLParser(
        recover=True, resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None, True
    return root, len(parser.error_log) > 0


def _local(tag: Any) -> str | None:
    if not isinstance(tag, str):
        return None  # comments, processing instructions
    return tag.rsplit("}", 1)[-1]


def _text(el: Any) -> str:
    return "".join(el.itertext()).strip()


def _find_block(root: Any, name: str) -> Any | None:
    for el in root.iter():
        tag = _local(el.tag)
        if tag is not None and tag.upper() == name:
            return el
    return None


def _block_items(block: Any) -> list[tuple[str, str]]:
    """``(tag, text)`` of a USER/ASWG block's children; a childless block of ``KEY: value`` lines is
    read line by line (older tools wrote USER as free text)."""
    items = [(_local(c.tag), _text(c)) for c in block if _local(c.tag)]
    if items:
        return [(k, v) for k, v in items if k]
    lines = (block.text or "").splitlines()
    return [
        (m.group(1), m.group(2))
        for m in (re.match(r"\s*([A-Za-z_]+)\s*[:=]\s*(.*)", ln) for ln in lines)
        if m
    ]


def _ixml(data: bytes, warnings: list[str]) -> list[_Source]:
    data = data.rstrip(b"\0 \t\r\n")
    if not data:
        return []
    root, damaged = _parse_xml(data)
    if root is None:
        warnings.append("iXML chunk is not readable XML: skipped")
        return []
    if damaged:
        warnings.append("iXML chunk is not well-formed XML: read what could be recovered")
    sources = []
    for block_name, source_name in (("USER", "USER"), ("ASWG", "ASWG")):
        block = _find_block(root, block_name)
        if block is not None:
            sources.append(_source(source_name, _block_items(block)))
    core: list[tuple[str, str]] = []
    for path, key in _IXML_CORE_PATHS.items():
        el = root
        for part in path:
            el = next((c for c in el if (_local(c.tag) or "").upper() == part), None)
            if el is None:
                break
        if el is not None:
            core.append((key, _text(el)))
    sources.append(_source("iXML", core))
    return sources


def _read_riff(path: Path, warnings: list[str]) -> list[_Source]:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        chunks = _riff_chunks(f, size, warnings)
    ixml: list[_Source] = []
    bext: list[_Source] = []
    info: list[_Source] = []
    tags: list[_Source] = []
    for ident, data in chunks:
        try:
            if ident == b"iXML" and not ixml:
                ixml = _ixml(data, warnings)
            elif ident == b"bext" and not bext:
                bext = [_bext(data, warnings)]
            elif ident == b"LIST":
                src = _info(data, warnings)
                if src is not None:
                    info.append(src)
            elif ident in (b"id3 ", b"ID3 ") and not tags:
                tags = _id3_bytes(data, warnings)
        except Exception as exc:  # a reader bug or an unforeseen malformation: skip this chunk only
            log.debug("chunk %r of %s failed", ident, path, exc_info=True)
            warnings.append(f"{_name(ident)} chunk could not be read ({type(exc).__name__}): skipped")
    return [*ixml, *bext, *info, *tags]


# ------------------------------------------------------------------------------------------------ tags


def _id3_items(tags: Any) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for frame in tags.values():
        fid = getattr(frame, "FrameID", "")
        text = getattr(frame, "text", None)
        if not isinstance(text, list):
            continue
        value = "; ".join(str(t) for t in text if str(t).strip())
        if fid == "TXXX":
            items.append((str(frame.desc) or "TXXX", value))
        elif fid == "COMM":
            desc = str(getattr(frame, "desc", "") or "")
            if desc.lower().startswith("itun"):
                continue  # iTunes' normalisation and gapless data
            items.append((desc if _canon(desc) in _TAG_KEYS["description"] else "COMMENT", value))
        elif fid in _ID3_KEYS:
            items.append((_ID3_KEYS[fid], value))
        elif fid.startswith("T"):
            items.append((fid, value))
    return items


def _id3_bytes(data: bytes, warnings: list[str]) -> list[_Source]:
    try:
        from mutagen.id3 import ID3
    except ImportError:
        warnings.append("mutagen is not installed: ID3 chunk not read")
        return []
    try:
        tags = ID3(io.BytesIO(data))
    except Exception as exc:
        warnings.append(f"ID3 chunk is malformed ({_why(exc)}): skipped")
        return []
    return [_source("ID3", _id3_items(tags))]


def _tag_items(tags: Any) -> tuple[str, list[tuple[str, str]]]:
    """``(source name, items)`` for any mutagen tag object."""
    from mutagen._vorbis import VComment
    from mutagen.apev2 import APEv2
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4FreeForm, MP4Tags

    if isinstance(tags, ID3):
        return "ID3", _id3_items(tags)
    if isinstance(tags, MP4Tags):
        items = []
        for key, values in tags.items():
            name = _MP4_KEYS.get(key) or (key.rsplit(":", 1)[-1] if key.startswith("----") else None)
            if name is None:
                continue
            texts = [
                _decode(bytes(v)) if isinstance(v, MP4FreeForm) else v
                for v in (values if isinstance(values, list) else [values])
                if isinstance(v, str | MP4FreeForm)
            ]
            if texts:
                items.append((name, "; ".join(texts)))
        return "MP4", items
    if isinstance(tags, APEv2):
        return "APE", [(k, str(v)) for k, v in tags.items() if getattr(v, "kind", None) == 0]
    items = []
    for key, value in tags.items():  # Vorbis comments and any other str -> str/list mapping
        values = value if isinstance(value, list) else [value]
        items.append((str(key), "; ".join(str(v) for v in values if isinstance(v, str))))
    return ("Vorbis" if isinstance(tags, VComment) else "tags"), items


def _read_tags(path: Path, warnings: list[str]) -> list[_Source]:
    try:
        import mutagen
    except ImportError:
        warnings.append("mutagen is not installed: tags not read")
        return []
    try:
        audio = mutagen.File(path)
    except OSError:
        raise
    except Exception as exc:
        warnings.append(f"tags are malformed ({_why(exc)}): skipped")
        return []
    if audio is None or audio.tags is None:
        return []
    try:
        name, items = _tag_items(audio.tags)
    except Exception as exc:
        log.debug("tags of %s failed", path, exc_info=True)
        warnings.append(f"tags could not be read ({type(exc).__name__}): skipped")
        return []
    return [_source(name, items)]


# --------------------------------------------------------------------------------------------- merging


def _merge(sources: list[_Source], meta: FileMetadata) -> None:
    winners: dict[str, str] = {}
    for src in sources:
        for key, value in src.fields.items():
            if key not in winners:
                winners[key] = value
            elif value.casefold() != winners[key].casefold():
                meta.extra.setdefault(f"{src.name}:{key}", value)
    for src in sources:
        for key, value in src.extra.items():
            meta.extra.setdefault(key, value)
    meta.keywords = split_keywords(kw for src in sources for kw in src.keywords)
    full = winners.pop("category_full", None)
    if full:
        cat, sep, sub = full.partition("-")
        winners.setdefault("category", cat.strip())
        if sep and sub.strip():
            winners.setdefault("subcategory", sub.strip())
        if not (sep and sub.strip()):
            meta.extra.setdefault("category_full", full)
    for key, value in winners.items():
        setattr(meta, key, value)
    if len(meta.extra) > _MAX_EXTRA:
        meta.extra = dict(list(meta.extra.items())[:_MAX_EXTRA])


def _apply_ucs(meta: FileMetadata, stem: str | None) -> None:
    """Resolve the CatID against the UCS list and fill gaps from a UCS file name (``stem``, then the
    original file name; neither when ``stem`` is ``None``)."""
    names = []
    if stem is not None:
        names.append(stem)
        if meta.original_filename:
            names.append(PurePath(meta.original_filename.replace("\\", "/")).stem)
    for name in names:
        parsed = ucs.parse_ucs_filename(name, strict=True)
        if parsed is None:
            continue
        if meta.cat_id and not _same_catid(meta.cat_id, parsed["cat_id"]):
            break  # the metadata names another CatID: the file name is not this file's UCS name
        meta.cat_id = meta.cat_id or parsed["cat_id"]
        meta.fx_name = meta.fx_name or parsed["fx_name"]
        meta.creator_id = meta.creator_id or parsed["creator_id"]
        meta.source_id = meta.source_id or parsed["source_id"]
        if parsed["user_category"]:
            meta.extra.setdefault("UCS:user_category", parsed["user_category"])
        if parsed["user_data"]:
            meta.extra.setdefault("UCS:user_data", parsed["user_data"])
        break
    row = ucs.lookup(meta.cat_id)
    if row is not None:
        meta.cat_id = row.cat_id
        if not meta.category:
            meta.category = row.category
            meta.subcategory = meta.subcategory or row.subcategory
    elif not meta.cat_id:
        row = ucs.find(meta.category, meta.subcategory)
        if row is not None:
            meta.cat_id = row.cat_id


def _same_catid(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def read_metadata(path: Path | str, *, use_filename: bool = True) -> FileMetadata:
    """Read a sound file's descriptive metadata. Never raises: anything unreadable (a malformed chunk,
    broken tags, a vanished or unreadable file) is recorded in :attr:`FileMetadata.warnings`.

    ``use_filename``: also take the UCS CatID, FXName, CreatorID and SourceID from a UCS file name
    (``DOORWood_Front door slam_JD_MyLib.wav``) when the metadata lacks them.
    """
    path = Path(path)
    meta = FileMetadata()
    sources: list[_Source] = []
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic in _RIFF_MAGIC:
            sources = _read_riff(path, meta.warnings)
        elif path.suffix.lower() in _WAV_SUFFIXES:
            meta.warnings.append("not a RIFF/WAVE file: embedded WAV metadata not read")
        else:
            sources = _read_tags(path, meta.warnings)
    except OSError as exc:
        meta.warnings.append(f"file could not be read: {exc.strerror or exc}")
    except Exception as exc:  # never let metadata stop indexing
        log.debug("metadata of %s failed", path, exc_info=True)
        meta.warnings.append(f"metadata could not be read ({type(exc).__name__})")
    _merge(sources, meta)
    _apply_ucs(meta, path.stem if use_filename else None)
    if meta.warnings:
        log.debug("%s: %s", path, "; ".join(meta.warnings))
    return meta
