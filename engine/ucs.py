"""The Universal Category System (UCS v8.2.1): CatID table, file-name parsing and a category tree.

The table ships in ``engine/data/ucs/`` (CC0 JSON from iluvcapra/ucs-community plus the one official CatID
it lacks, ``AIRBlow``; see the NOTICE file there). It is read on first use and cached.

A UCS file name is ``CatID[-UserCategory]_FXName_CreatorID_SourceID[_UserData]``, e.g.
``DOORWood-Int_Front door slam_JD_MyLibrary_take 3``. :func:`parse_ucs_filename` splits such a stem;
:func:`lookup` maps a CatID (any case) to its category, subcategory, explanation and synonyms.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

log = logging.getLogger(__name__)

UCS_VERSION = "8.2.1"
_DATA_FILES = ("ucs-8.2.1-en.json", "ucs-additions.json")

# A CatID is letters and digits, starting with a letter (the official list: "AIRBrst", "RAIN", "IR").
_CATID_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")


@dataclass(frozen=True)
class UcsCategory:
    """One row of the UCS list: ``cat_id`` (e.g. ``"DOORWood"``), ``category`` (``"DOORS"``),
    ``subcategory`` (``"WOOD"``), ``cat_short`` (``"DOOR"``), a one-line ``explanation`` and the
    official ``synonyms`` (lower-case words)."""

    cat_id: str
    category: str
    subcategory: str
    cat_short: str
    explanation: str
    synonyms: tuple[str, ...]


def _row(obj: Mapping[str, Any]) -> UcsCategory:
    return UcsCategory(
        cat_id=str(obj["CatID"]).strip(),
        category=str(obj["Category"]).strip(),
        subcategory=str(obj["SubCategory"]).strip(),
        cat_short=str(obj.get("CatShort") or "").strip(),
        explanation=str(obj.get("Explanations") or "").strip(),
        synonyms=tuple(str(s).strip() for s in obj.get("Synonyms") or () if str(s).strip()),
    )


@functools.cache
def ucs_table() -> Mapping[str, UcsCategory]:
    """All UCS v8.2.1 CatIDs (753), keyed by their official spelling, in the list's order.

    Read-only and cached; use :func:`lookup` for a case-insensitive look-up.
    """
    table: dict[str, UcsCategory] = {}
    folder = resources.files("engine").joinpath("data").joinpath("ucs")
    for name in _DATA_FILES:
        rows = json.loads(folder.joinpath(name).read_text(encoding="utf-8"))
        for obj in rows:
            row = _row(obj)
            table.setdefault(row.cat_id, row)
    log.debug("UCS table: %d CatIDs", len(table))
    return MappingProxyType(table)


@functools.cache
def _by_lower() -> Mapping[str, UcsCategory]:
    return MappingProxyType({k.lower(): v for k, v in ucs_table().items()})


@functools.cache
def _by_names() -> Mapping[tuple[str, str], UcsCategory]:
    return MappingProxyType({(r.category.lower(), r.subcategory.lower()): r for r in ucs_table().values()})


def lookup(cat_id: str | None) -> UcsCategory | None:
    """The UCS row for ``cat_id``, matched case-insensitively (``"doorwood"`` finds ``DOORWood``);
    ``None`` for an unknown or empty CatID."""
    if not cat_id:
        return None
    return _by_lower().get(cat_id.strip().lower())


def find(category: str | None, subcategory: str | None) -> UcsCategory | None:
    """The UCS row whose category and subcategory names match (case-insensitively, e.g. ``"Doors"``,
    ``"wood"``), or ``None``."""
    if not category or not subcategory:
        return None
    return _by_names().get((category.strip().lower(), subcategory.strip().lower()))


def categories() -> dict[str, dict[str, str]]:
    """The category tree for a browser: ``{category: {subcategory: cat_id}}``, both levels in the
    order of the official list. Explanations and synonyms come from :func:`lookup`."""
    tree: dict[str, dict[str, str]] = {}
    for row in ucs_table().values():
        tree.setdefault(row.category, {})[row.subcategory] = row.cat_id
    return tree


def parse_ucs_filename(stem: str, *, strict: bool = False) -> dict[str, Any] | None:
    """Split a UCS-style file stem (no extension) into its blocks.

    Returns ``None`` unless the stem has at least a CatID-like first block (letters and digits) and a
    non-empty FXName block. Otherwise a dict with:

    - ``cat_id``: the official spelling when known, else the text as written;
    - ``user_category``: the part after ``-`` in the first block (``"DOORWood-Int"`` gives ``"Int"``);
    - ``fx_name``, ``creator_id``, ``source_id``: the next blocks, ``None`` when missing or empty;
    - ``user_data``: any further blocks joined with ``_``, or ``None``;
    - ``known``: whether the CatID is in the UCS list (case-insensitive);
    - ``exact_case``: whether it is written exactly as in the list;
    - ``category``, ``subcategory``: from the list when known, else ``None``.

    ``known`` alone is weak evidence for ordinary names: ``rain_heavy`` starts with the CatID ``RAIN``,
    ``test_tone`` with ``TEST``. With ``strict=True`` the function returns ``None`` unless the CatID is
    known and written either exactly as in the list or not all in lower case (``RAIN_heavy``,
    ``Doorwood_Slam`` pass; ``rain_heavy`` does not) -- the rule :func:`engine.metadata.read_metadata`
    uses before trusting a file name.
    """
    if not stem:
        return None
    blocks = [b.strip() for b in stem.strip().split("_")]
    if len(blocks) < 2:
        return None
    head, _, user_category = blocks[0].partition("-")
    head = head.strip()
    if not _CATID_RE.fullmatch(head):
        return None
    fx_name = blocks[1] or None
    if fx_name is None:
        return None
    row = lookup(head)
    if strict and (row is None or (row.cat_id != head and head.islower())):
        return None
    rest = [b for b in blocks[4:] if b]
    return {
        "cat_id": row.cat_id if row else head,
        "user_category": user_category.strip() or None,
        "fx_name": fx_name,
        "creator_id": (blocks[2] if len(blocks) > 2 else "") or None,
        "source_id": (blocks[3] if len(blocks) > 3 else "") or None,
        "user_data": "_".join(rest) or None,
        "known": row is not None,
        "exact_case": row is not None and row.cat_id == head,
        "category": row.category if row else None,
        "subcategory": row.subcategory if row else None,
    }
