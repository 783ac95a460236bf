"""Keyword-only vs content-only vs hybrid search on real sounds (issue "Metadata, UCS and hybrid search").

Builds two libraries from the TEST split of the Debian sound-effects corpus (never trained on):
(a) *named*: each clip as a WAV named the way a professional library would name it — UCS
    ``CatID_FXName_Creator_Source.wav`` when a CatID matches its original name, else the cleaned name —
    with a ``bext`` description and an iXML ``USER`` block (category, library, keywords) written into it;
(b) *opaque*: the same audio as ``sfx_00042.wav`` with no metadata.
Names and metadata come from the clips' ORIGINAL file and folder names, never from our captions, so the
keyword side gets what a real library would give it. Then it runs the hand-written test queries in the
three modes and prints mAP@16 / mAP@10 / R@10 for each.

    python -m benchmarks.bench_hybrid --corpus data/debian_sfx/corpus [--model NAME] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import re
import struct
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for tests.metadata_fixtures when run as a script
CAPTIONS = REPO / "training" / "data" / "debian_sfx_captions.csv"
QUERIES = REPO / "training" / "data" / "debian_sfx_queries_test.csv"


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


def build_libraries(corpus: Path, out: Path, limit: int | None) -> tuple[dict[str, Path], dict[str, Path]]:
    import numpy as np
    import soundfile as sf

    from engine.audio import load_mono, probe
    from tests import metadata_fixtures as mf  # the same bext/iXML writers the tests use

    clips = sorted({r["path"] for r in csv.DictReader(CAPTIONS.open()) if r["split"] == "test"})[:limit]
    named, opaque = {}, {}
    for i, rel in enumerate(clips):
        src = corpus / rel
        if not src.exists():
            continue
        sr = probe(src).sample_rate
        audio = load_mono(src, sr)
        parts = Path(rel).parts
        package, stem = parts[0], Path(rel).stem
        fx = " ".join(w.capitalize() for w in _words(stem)) or f"Sound {i}"
        folders = [
            w
            for p in parts[1:-1]
            for w in _words(p)
            if w.lower() not in {"usr", "share", "games", "sounds", "sound", "data"}
        ]
        cat_id = _catid_for(_words(stem) + folders)
        name = f"{cat_id}_{fx}_DEB_{package}" if cat_id else fx
        dst = out / "named" / package / f"{name}_{i:04d}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(dst, np.asarray(audio, np.float32), sr, subtype="PCM_16")
        from engine.ucs import lookup

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
        dst.write_bytes(raw[:4] + struct.pack("<I", len(raw) - 8) + raw[8:])
        named[rel] = dst
        odst = out / "opaque" / f"sfx_{i:05d}.wav"
        odst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(odst, np.asarray(audio, np.float32), sr, subtype="PCM_16")
        opaque[rel] = odst
    return named, opaque


def evaluate(libdir: Path, root: Path, mapping: dict[str, Path], model: str | None, modes: list[str]) -> dict:
    import numpy as np

    from engine.indexer import Indexer
    from engine.library import Library
    from engine.search import Searcher
    from training.metrics import average_precision_at_k

    relevant: dict[str, set[str]] = defaultdict(set)
    for r in csv.DictReader(QUERIES.open()):
        if r["path"] in mapping:
            relevant[r["query"]].add(str(mapping[r["path"]].resolve()))
    out = {}
    with Library(libdir, model) as lib:
        t0 = time.perf_counter()
        Indexer(lib).run([root])
        index_s = time.perf_counter() - t0
        s = Searcher(lib)
        for mode in modes:
            aps16, aps10, r10 = [], [], []
            for q, rel in relevant.items():
                hits = [h.path for h in s.search(q, k=16, mode=mode)]
                ranked = np.array([h in rel for h in hits] + [False] * (16 - len(hits)))
                aps16.append(average_precision_at_k(ranked, len(rel), 16))
                aps10.append(average_precision_at_k(ranked, len(rel), 10))
                r10.append(ranked[:10].sum() / len(rel))
            out[mode] = {
                "map@16": float(np.mean(aps16)),
                "map@10": float(np.mean(aps10)),
                "R@10": float(np.mean(r10)),
                "queries": len(relevant),
            }
        out["_bundle"] = f"{lib.bundle.name} {lib.bundle.version}"
        out["_index_s"] = index_s
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=REPO / "data" / "debian_sfx" / "corpus")
    p.add_argument("--model", default=None)
    p.add_argument("--limit", type=int, default=None, help="first N test clips only (quick runs)")
    p.add_argument(
        "--work", type=Path, default=None, help="where to build the libraries (default: a temp dir)"
    )
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="earshot-hybrid-"))
    named, opaque = build_libraries(args.corpus, work, args.limit)
    modes = ["keywords", "content", "both"]
    rows = []
    for label, mapping in (("(a) named + metadata", named), ("(b) opaque names", opaque)):
        root = work / ("named" if mapping is named else "opaque")
        res = evaluate(work / f"lib-{root.name}", root, mapping, args.model, modes)
        for mode in modes:
            m = res[mode]
            rows.append((label, mode, m["map@16"], m["map@10"], m["R@10"], m["queries"]))
        bundle = res["_bundle"]
    print(
        f"bundle: {bundle}; {len(named)} test clips; chance mAP@16 ≈ {1 / max(1, len(named)):.4f} per relevant"
    )
    print(f"{'library':<22} {'mode':<9} {'mAP@16':>7} {'mAP@10':>7} {'R@10':>6} {'queries':>7}")
    for label, mode, m16, m10, r10, nq in rows:
        print(f"{label:<22} {mode:<9} {m16:7.3f} {m10:7.3f} {r10:6.3f} {nq:7d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
