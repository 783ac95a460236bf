"""Guitar chords strummed (``hydrogen-drumkits-effects``, the ``belofilms_GuitarStrums`` kit).

Real strums, not rendered notes: 2.1.0's measurement found that single sound-font notes do not teach what
a strum sounds like. The kit's files are named ``<Root><major|minor>[_UP|_DOWN]_<take>.flac``
(``Amajor_UP_01.flac``, ``Csharp minor7b5_Down_00.flac``); one take of each chord and stroke is kept (the first),
so that one kind of sound does not dominate the corpus, and captioned in words people search with (a
chord's extension, such as ``7b5``, is left out of the words).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from training.data.debian.corpus import InventoryRow
from training.data.debian.scan import scan_package

PACKAGE = "hydrogen-drumkits-effects"
KIT_DIR = "usr/share/hydrogen/data/drumkits/belofilms_GuitarStrums/"
CONCEPT = "guitar chord strum"

_NAME = re.compile(
    r"^(?P<root>[A-G])(?P<acc>sharp|flat)? ?(?P<quality>major|minor|minro)(?P<ext>[0-9b]*)"
    r"(?:_(?P<dir>up|down))?_(?P<take>\d+)$",
    re.IGNORECASE,
)


def chord_captions(stem: str) -> list[str] | None:
    """Captions of one strum file (its name without extension), primary first; ``None`` when the name
    is not a chord of this kit."""
    m = _NAME.match(stem)
    if not m:
        return None
    root = m["root"].upper() + {"sharp": " sharp", "flat": " flat", "": ""}[(m["acc"] or "").lower()]
    quality = "major" if m["quality"].lower() == "major" else "minor"  # "minro": the kit's typo
    chord = f"{root} {quality}"
    stroke = {"up": "upstroke", "down": "downstroke", "": ""}[(m["dir"] or "").lower()]
    captions = [
        CONCEPT,
        f"guitar strum {chord} chord",
        f"acoustic guitar strumming the {chord} chord",
        f"{quality} chord strummed on a guitar",
    ]
    if stroke:
        captions.append(f"guitar {stroke} strum")
    return captions


def inventory_rows(
    extracted: Path, version: str
) -> tuple[list[InventoryRow], dict[str, list[str]], Counter[str]]:
    """Rows (the first take of every chord and stroke), captions by member path and reasons for leaving
    files out."""
    rows, left_out = scan_package(extracted, PACKAGE, version)
    kept: list[InventoryRow] = []
    captions: dict[str, list[str]] = {}
    for r in rows:
        stem = Path(r.member_path).stem
        words = chord_captions(stem) if r.member_path.startswith(KIT_DIR) and not r.container else None
        if words is None:
            left_out["not a chord of the strum kit"] += 1
            continue
        if not stem.endswith("_00"):
            left_out["another take of the same chord"] += 1
            continue
        kept.append(r)
        captions[r.member_path] = words
    return kept, captions, left_out
