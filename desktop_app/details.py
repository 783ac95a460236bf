"""What a result's metadata says, as text for the results table, its tooltips and the details panel (no Qt).

``Hit.metadata`` is :meth:`engine.metadata.FileMetadata.as_dict` output: only non-empty fields are present
(``description``, ``title``, ``category``, ``subcategory``, ``cat_id``, ``fx_name``, ``keywords`` (list),
``library``, ``designer``, ``original_filename``, ``creator_id``, ``source_id``, ``extra`` (dict), ``warnings``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from desktop_app.formatting import fmt_channels, fmt_clock, fmt_duration, fmt_rate
from engine import ucs
from engine.search import Hit

TOOLTIP_WIDTH = 80  # characters per tooltip line
TOOLTIP_DESCRIPTION_CHARS = 400
MAX_EXTRA_ROWS = 12
_SEP = " › "


def _text(meta: Mapping[str, Any], key: str) -> str:
    value = meta.get(key)
    return value.strip() if isinstance(value, str) else ""


_ZWSP = "\u200b"
_BREAK_AFTER = "/_-.,;"
LONG_RUN = 24


def breakable(text: str) -> str:
    """``text`` with zero-width spaces where a wrapped label may break it: after ``/ _ - . , ;`` and
    inside any run of more than :data:`LONG_RUN` characters without a break (a 200-character file name
    must not widen the panel)."""
    out, run = [], 0
    for ch in text:
        out.append(ch)
        if ch.isspace():
            run = 0
        elif ch in _BREAK_AFTER:
            out.append(_ZWSP)
            run = 0
        else:
            run += 1
            if run >= LONG_RUN:
                out.append(_ZWSP)
                run = 0
    return "".join(out)


def description_text(meta: Mapping[str, Any]) -> str:
    """The Description column: the file's description, else its title, else its UCS FXName; ``''`` when
    the file says nothing about itself."""
    for key in ("description", "title", "fx_name"):
        if text := _text(meta, key):
            return " ".join(text.split())
    return ""


def category_text(meta: Mapping[str, Any]) -> str:
    """The Category column: ``'DOORS › WOOD'``, a lone category, or a CatID the UCS list does not know."""
    cat, sub = _text(meta, "category"), _text(meta, "subcategory")
    if cat:
        return cat + (_SEP + sub if sub else "")
    return _text(meta, "cat_id")


def category_filter_value(meta: Mapping[str, Any]) -> str:
    """What the category filter should hold to show this file's category: its CatID when it has one
    (exact: ``DOORWood``), else its category name; ``''`` when it has neither."""
    return _text(meta, "cat_id") or _text(meta, "category")


def hit_tooltip(hit: Hit) -> str:
    """A row's tooltip: path, best match, and the description and category when the file has them."""
    lines = [hit.path, f"best match {fmt_clock(hit.start_s)}–{fmt_clock(hit.end_s)} · score {hit.score:.3f}"]
    desc = description_text(hit.metadata)
    if desc:
        if len(desc) > TOOLTIP_DESCRIPTION_CHARS:
            desc = desc[: TOOLTIP_DESCRIPTION_CHARS - 1].rstrip() + "…"
        lines.extend(textwrap.wrap(desc, TOOLTIP_WIDTH))
    cat = category_text(hit.metadata)
    if cat:
        cat_id = _text(hit.metadata, "cat_id")
        lines.append(f"category: {cat}" + (f" ({cat_id})" if cat_id and cat_id != cat else ""))
    return "\n".join(lines)


@dataclass
class Details:
    """The details panel's content: a title and (label, text) rows, in display order."""

    title: str = ""
    rows: list[tuple[str, str]] = field(default_factory=list)
    category_value: str = ""  # non-empty: the panel offers "only this category"
    category_label: str = ""

    @property
    def empty(self) -> bool:
        return not self.title


def hit_details(hit: Hit | None) -> Details:
    """Everything the panel shows for ``hit`` (``None``: nothing selected)."""
    if hit is None:
        return Details()
    meta = hit.metadata or {}
    rows: list[tuple[str, str]] = []

    def add(label: str, text: str) -> None:
        if text:
            rows.append((label, text))

    title = _text(meta, "title") or _text(meta, "fx_name")
    add("Description", " ".join(_text(meta, "description").split()))
    add("Title", title if title != _text(meta, "description") else "")
    cat_id = _text(meta, "cat_id")
    row = ucs.lookup(cat_id) if cat_id else None
    add("Category", category_text(meta))
    add("CatID", cat_id)
    if row is not None:
        add("UCS", row.explanation)
    keywords = meta.get("keywords") or []
    if isinstance(keywords, str):
        keywords = [keywords]
    add("Keywords", ", ".join(str(k) for k in keywords))
    add("Library", _text(meta, "library"))
    add("Designer", _text(meta, "designer"))
    add("Creator ID", _text(meta, "creator_id"))
    add("Source ID", _text(meta, "source_id"))
    add("Original name", _text(meta, "original_filename"))
    extra = meta.get("extra") or {}
    if isinstance(extra, Mapping):
        for key, value in list(extra.items())[:MAX_EXTRA_ROWS]:
            add(str(key), " ".join(str(value).split()))
    if not meta:
        rows.append(("Metadata", "none embedded in this file"))
    add(
        "File",
        " · ".join(
            t
            for t in (
                fmt_duration(hit.duration_s),
                fmt_rate(hit.sample_rate),
                fmt_channels(hit.channels),
                (hit.format or "").upper(),
            )
            if t
        ),
    )
    add("Path", hit.path)
    name = hit.path.replace("\\", "/").rsplit("/", 1)[-1]
    return Details(
        title=name,
        rows=rows,
        category_value=category_filter_value(meta),
        category_label=category_text(meta),
    )
