"""Four libraries made from the same held-out clips of the Debian sound-effects corpus, named the ways real
libraries are, for the hybrid benchmark and for fitting the fusion (never from our captions):

* ``ucs``: ``CatID_FXName_Creator_Source.wav`` when a UCS CatID matches the clip's original name, else the
  cleaned name, with a ``bext`` description and an iXML ``USER`` block (category, library, keywords);
* ``plain``: the clip's original package folders and file name (``minetest-data/.../default_dig_crumbly.wav``);
* ``half``: every other clip renamed opaquely (``clip_0042.wav`` in the root), the rest as ``plain``;
* ``opaque``: every clip as ``clip_NNNN.wav``.

All are PCM WAV with no tags except what ``ucs`` writes, so only the names differ.
"""

from __future__ import annotations

import csv
import re
import struct
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for tests.metadata_fixtures when run as a script
CAPTIONS = REPO / "training" / "data" / "debian_sfx_captions.csv"
QUERIES = {
    "val": REPO / "training" / "data" / "debian_sfx_queries_val.csv",
    "test": REPO / "training" / "data" / "debian_sfx_queries_test.csv",
}
VARIANTS = ("ucs", "plain", "half", "opaque")


def _words(text: str) -> list[str]:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^A-Za-z]+", text) if len(w) > 1]


def _catid_for(words: list[str]) -> str | None:
    """The UCS CatID whose category/subcategory/synonyms share most words with a clip's name."""
    from engine.ucs import ucs_table

    wanted = {w.lower() for w in words}
    best, best_n = None, 0
    for cat_id, row in ucs_table().items():
        vocab = {w.lower() for s in (row.category, row.subcategory, *row.synonyms) for w in _words(s)}
        n = len(wanted & vocab)
        if n > best_n:
            best, best_n = cat_id, n
    return best


def clips_of(split: str, limit: int | None = None) -> list[str]:
    """Corpus paths (``package/member``) of a split, sorted (captions are read only for their split column)."""
    return sorted({r["path"] for r in csv.DictReader(CAPTIONS.open()) if r["split"] == split})[:limit]


def _write_ucs(dst: Path, rel: str, i: int) -> Path:
    from engine.ucs import lookup
    from tests import metadata_fixtures as mf  # the same bext/iXML writers the tests use

    parts = Path(rel).parts
    package, stem = parts[0], Path(rel).stem
    fx = " ".join(w.capitalize() for w in _words(stem)) or f"Sound {i}"
    folders = [w for p in parts[1:-1] for w in _words(p)
               if w.lower() not in {"usr", "share", "games", "sounds", "sound", "data"}]
    cat_id = _catid_for(_words(stem) + folders)
    row = lookup(cat_id) if cat_id else None
    user = {
        "DESCRIPTION": f"{fx}, {' '.join(folders)}".strip(", "),
        "LIBRARY": package,
        "KEYWORDS": ", ".join(sorted({w.lower() for w in folders})),
        "CATEGORY": row.category if row else "",
        "SUBCATEGORY": row.subcategory if row else "",
        "CATID": cat_id or "",
    }
    raw = (
        dst.read_bytes()
        + mf.chunk(b"bext", mf.bext_payload(user["DESCRIPTION"], package))
        + mf.chunk(b"iXML", mf.ixml_document(user={k: v for k, v in user.items() if v}).encode())
    )
    name = f"{cat_id}_{fx}_DEB_{package}" if cat_id else fx
    final = dst.with_name(f"{name}_{i:04d}.wav")
    final.write_bytes(raw[:4] + struct.pack("<I", len(raw) - 8) + raw[8:])
    if final != dst:
        dst.unlink()
    return final


def build(corpus: Path, out: Path, clips: list[str], variants=VARIANTS) -> dict[str, dict[str, Path]]:
    """Write the libraries under ``out/<variant>/``; return ``{variant: {corpus path: file}}``."""
    import numpy as np
    import soundfile as sf

    from engine.audio import load_mono, probe

    maps: dict[str, dict[str, Path]] = {v: {} for v in variants}
    for i, rel in enumerate(clips):
        src = corpus / rel
        if not src.exists():
            continue
        audio = None
        plain = Path(rel).with_suffix(".wav")
        opaque = Path(f"clip_{i:04d}.wav")
        for variant in variants:
            if variant == "ucs":
                dst = out / "ucs" / Path(rel).parts[0] / f"tmp_{i:04d}.wav"
                done = sorted(dst.parent.glob(f"*_{i:04d}.wav"))
                if done:  # built by an earlier run: keep it (and its mtime: no re-index)
                    maps[variant][rel] = done[0].resolve()
                    continue
            elif variant == "plain" or (variant == "half" and i % 2 == 0):
                dst = out / variant / plain
            else:
                dst = out / variant / opaque
            if dst.exists():
                maps[variant][rel] = dst.resolve()
                continue
            if audio is None:
                sr = probe(src).sample_rate
                audio = np.asarray(load_mono(src, sr), np.float32)
            dst.parent.mkdir(parents=True, exist_ok=True)
            sf.write(dst, audio, sr, subtype="PCM_16")
            if variant == "ucs":
                dst = _write_ucs(dst, rel, i)
            maps[variant][rel] = dst.resolve()
    return maps


def relevant_sets(split: str, mapping: dict[str, Path]) -> dict[str, set[str]]:
    """``{query: {absolute file path}}`` for the hand-written queries of a split, within ``mapping``."""
    relevant: dict[str, set[str]] = defaultdict(set)
    for r in csv.DictReader(QUERIES[split].open()):
        if r["path"] in mapping:
            relevant[r["query"]].add(str(mapping[r["path"]]))
    return dict(relevant)
