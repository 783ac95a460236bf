"""The coverage corpus: instruments, drums, animals and objects from packages beyond the first inventory.

Each source is one module that inventories its package and captions its clips (:data:`SOURCES`):

* General MIDI sound fonts rendered note by note (:mod:`.soundfont`): every melodic program, the
  percussion kits and the sound-effect programs;
* GCompris's Qt resource bundles (:mod:`.gcompris`): farm animals, instruments, household objects;
* Hydrogen drum kits (:mod:`.hydrogen`), capped per kit, and a kit of guitar strums (:mod:`.strums`);
* all LMMS samples (:mod:`.lmms`) not already in the first corpus;
* game packages with plainly named sounds, FlightGear's aircraft among them (:mod:`.named`).

:func:`build_coverage` fetches and unpacks the packages, writes their rows into the inventory
(``training/data/coverage_inventory.csv``), builds them with the same corpus builder as the first
corpus (:func:`training.data.debian.build.build_corpus`, no drum skip rules: the inventory chose its
clips), leaves out every clip whose audio duplicates a held-out clip of the first corpus (validation and
test splits, :mod:`.duplicates`) and writes the captions table (``training/data/coverage_captions.csv``,
the columns of :data:`training.data.captions.CAPTION_COLUMNS`, all clips in the training split).

``python -m training.data.debian.coverage --cache DIR --out DIR --held-out DIR`` does all of it; the
rebuild script only builds the committed inventory (``python -m training.data.debian --inventory
training/data/coverage_inventory.csv --no-skip-rules ...``), since the captions are committed.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from training.data import captions as cap
from training.data.debian import gcompris, hydrogen, lmms, named, soundfont, strums
from training.data.debian.build import build_corpus
from training.data.debian.corpus import (
    CorpusError,
    InventoryRow,
    progress_iter,
    read_manifest,
    split_of,
    write_inventory,
)
from training.data.debian.duplicates import DUPLICATE_THRESHOLD, find_duplicates, fingerprint
from training.data.debian.fetch import extract_deb, extracted_version, fetch_deb, is_extracted
from training.data.debian.scan import scan_package

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent
DEFAULT_INVENTORY = DATA_DIR / "coverage_inventory.csv"
DEFAULT_CAPTIONS = DATA_DIR / "coverage_captions.csv"
FIRST_CAPTIONS = DATA_DIR / "debian_sfx_captions.csv"

#: What a scanner returns: inventory rows and the captions of each member path (primary first).
Scanned = tuple[list[InventoryRow], dict[str, list[str]]]


@dataclass(frozen=True)
class Source:
    """One package of the coverage corpus: ``scan(extracted, version)`` inventories and captions it;
    ``category(member_path)`` says what kind of sound a clip is (for reports)."""

    package: str
    scan: Callable[[Path, str], Scanned]
    category: Callable[[str], str]


def _soundfont_source(package: str) -> Source:
    def scan(extracted: Path, version: str) -> Scanned:
        rows = soundfont.inventory_rows(package, version)
        return rows, {r.member_path: soundfont.captions_for(r.member_path) for r in rows}

    def category(member: str) -> str:
        if "/drums-" in member:
            return "drums"
        return "sound effects" if int(member[4:7]) >= 120 else "instrument notes"

    return Source(package, scan, category)


def _scan_gcompris(extracted: Path, version: str) -> Scanned:
    rows, left_out = gcompris.inventory_rows(extracted, version)
    log.info("%s: left out %s", gcompris.PACKAGE, dict(left_out))
    return rows, {r.member_path: gcompris.captions_for(r.member_path) for r in rows}


def _gcompris_category(member: str) -> str:
    if "/animals/" in member or "bark" in member.lower():
        return "animals"
    if "/instruments/" in member or "xylofon" in member or "guitar_son" in member:
        return "instruments"
    return "objects and effects"


def _inventory_scan(module: ModuleType) -> Callable[[Path, str], Scanned]:
    """The scanner of a source module whose ``inventory_rows(extracted, version)`` returns rows, captions
    and reasons for leaving files out (:mod:`.hydrogen`, :mod:`.strums`); the reasons are logged."""

    def scan(extracted: Path, version: str) -> Scanned:
        rows, caps, left_out = module.inventory_rows(extracted, version)
        log.info("%s: left out %s", module.PACKAGE, dict(left_out))
        return rows, caps

    return scan


def _first_corpus_paths() -> set[str]:
    try:
        return {r["path"] for r in cap.read_captions(FIRST_CAPTIONS)}
    except cap.CaptionError:
        return set()


def _scan_lmms(extracted: Path, version: str) -> Scanned:
    rows, left_out = scan_package(extracted, lmms.PACKAGE, version)
    taken = _first_corpus_paths()
    kept, caps = [], {}
    for r in rows:
        if not r.member_path.startswith(lmms.SAMPLES_DIR + "/") or r.corpus_path in taken:
            left_out["outside the samples or already in the first corpus"] += 1
            continue
        words = lmms.captions_for(r.member_path)
        if not words:
            left_out["uninformative name"] += 1
            continue
        kept.append(r)
        caps[r.member_path] = words
    log.info("%s: left out %s", lmms.PACKAGE, dict(left_out))
    return kept, caps


def _lmms_category(member: str) -> str:
    folder = member.split("/")[-2]
    return {"drums": "drums", "beats": "drums", "effects": "sound effects"}.get(folder, "instrument notes")


def _named_source(package: str) -> Source:
    def scan(extracted: Path, version: str) -> Scanned:
        rows, caps, left_out = named.scan(package, extracted, version)
        log.info("%s: left out %s", package, dict(left_out))
        return rows, caps

    def category(member: str) -> str:
        return "aircraft and vehicles" if package == "flightgear-data-base" else "game sound effects"

    return Source(package, scan, category)


#: The coverage sources by package.
SOURCES: dict[str, Source] = {
    s.package: s
    for s in (
        Source(gcompris.PACKAGE, _scan_gcompris, _gcompris_category),
        Source(hydrogen.PACKAGE, _inventory_scan(hydrogen), lambda member: "drums"),
        Source(lmms.PACKAGE, _scan_lmms, _lmms_category),
        Source(strums.PACKAGE, _inventory_scan(strums), lambda member: "instruments"),
        _soundfont_source("timgm6mb-soundfont"),
        _soundfont_source("musescore-general-soundfont-small"),
        _soundfont_source("fluid-soundfont-gm"),
        *(_named_source(p) for p in named.PACKAGES),
    )
}


def unpack(package: str, cache: Path) -> Path:
    """Fetch and unpack ``package`` into ``cache`` (as the corpus builder does); returns its folder."""
    extracted = cache / "extracted" / package
    if not is_extracted(extracted):
        extract_deb(fetch_deb(package, cache / "debs"), extracted)
    return extracted


def held_out_leaks(
    new_root: Path,
    new_paths: Sequence[str],
    held_root: Path,
    held_paths: Sequence[str],
    threshold: float = DUPLICATE_THRESHOLD,
    progress: bool = False,
) -> set[str]:
    """New clips (paths under ``new_root``) whose audio duplicates a held-out clip (under ``held_root``):
    the fingerprint test of :func:`training.data.debian.duplicates.find_duplicates`, new against held-out
    pairs only."""
    from engine.errors import AudioError

    fps: dict[str, tuple[float, np.ndarray]] = {}
    for root, tag, paths in ((new_root, "new", new_paths), (held_root, "held", held_paths)):
        for p in progress_iter(paths, len(paths), f"fingerprints ({tag})", progress):
            try:
                fps[f"{tag}:{p}"] = fingerprint(root / p)
            except AudioError as exc:
                log.warning("%s", exc)
    pairs = find_duplicates(fps, threshold, pair_filter=lambda a, b: a[:4] != b[:4])
    return {x[4:] for a, b, _ in pairs for x in (a, b) if x.startswith("new:")}


def caption_rows(
    manifest: Sequence[Mapping[str, str]],
    captions_by_path: Mapping[str, Sequence[str]],
    synonyms: Mapping[str, Sequence[str]] | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
    max_captions: int = 5,
) -> tuple[list[dict[str, str]], Counter[str]]:
    """Rows of the captions table for the usable clips of ``manifest`` (corpus path → captions in
    ``captions_by_path``), with up to ``max_captions`` captions each (synonym variants of the jargon map
    fill up); ``exclude`` leaves clips out. All rows are in the training split."""
    rows: list[dict[str, str]] = []
    left_out: Counter[str] = Counter()
    for m in sorted(manifest, key=lambda r: r["path"]):
        if m["status"] not in cap.USABLE_STATUSES:
            left_out[m["status"]] += 1
            continue
        if m["path"] in exclude:
            left_out["duplicate of held-out audio"] += 1
            continue
        words = captions_by_path.get(m["path"])
        if not words:
            left_out["no captions"] += 1
            continue
        split = split_of(m["package"])
        if split != "train":
            raise CorpusError(
                f"{m['package']} is in the {split} split; coverage clips must all be training clips."
            )
        caps = cap.dedupe_captions(words)
        if synonyms and len(caps) < max_captions:
            caps = cap.dedupe_captions(
                [*caps, *cap.synonym_variants(caps[0], synonyms, max_captions - len(caps))]
            )
        duration = m.get("measured_duration_s") or m["duration_s"]
        for c in caps[:max_captions]:
            rows.append(
                {
                    "path": m["path"],
                    "caption": c,
                    "concept": caps[0],
                    "package": m["package"],
                    "licence": m.get("licence", ""),
                    "split": split,
                    "duration_s": f"{float(duration):.3f}",
                }
            )
    return rows, left_out


def build_coverage(
    packages: Sequence[str],
    cache: Path,
    out: Path,
    inventory: Path,
    captions: Path,
    held_out: Path | None,
    progress: bool = False,
    protect: Sequence[Path] = (),
) -> Counter[str]:
    """Scan, build, de-duplicate and caption ``packages`` (see the module docstring). Captions of the
    packages built now replace their rows in ``captions``; other packages' rows are kept. ``protect``
    names more evaluation corpora (a folder with a ``manifest.csv`` of ``path`` and ``status``, such as
    the blind set's clips): every usable clip there counts as held out. Returns the counter of clips
    left out by reason."""
    unknown = sorted(set(packages) - set(SOURCES))
    if unknown:
        raise CorpusError(f"No coverage source for {', '.join(unknown)} (known: {', '.join(SOURCES)}).")
    rows: list[InventoryRow] = []
    caps_by_path: dict[str, list[str]] = {}
    for package in packages:
        extracted = unpack(package, cache)
        scanned, caps = SOURCES[package].scan(extracted, extracted_version(extracted))
        log.info("%s: %d clips inventoried", package, len(scanned))
        write_inventory(inventory, scanned)
        rows.extend(scanned)
        caps_by_path.update({f"{package}/{member}": words for member, words in caps.items()})
    report = build_corpus(rows, cache, out, progress=progress, skip_rules=False)
    built = [r.as_dict() for r in report.rows]
    exclude: set[str] = set()
    if held_out is not None:
        held = [
            r["path"]
            for r in read_manifest(held_out / "manifest.csv")
            if r["status"] in cap.USABLE_STATUSES and split_of(r["package"]) != "train"
        ]
        new = [r["path"] for r in built if r["status"] in cap.USABLE_STATUSES]
        exclude = held_out_leaks(out, new, held_out, held, progress=progress)
        log.info("%d new clips duplicate held-out audio and are left out", len(exclude))
    else:
        log.warning("no held-out corpus given: duplicates of held-out audio are not removed")
    for root in protect:
        held = [r["path"] for r in read_manifest(root / "manifest.csv") if r["status"] in cap.USABLE_STATUSES]
        new = [r["path"] for r in built if r["status"] in cap.USABLE_STATUSES and r["path"] not in exclude]
        leaks = held_out_leaks(out, new, root, held, progress=progress)
        log.info(
            "%d new clips duplicate audio of the evaluation corpus %s and are left out", len(leaks), root
        )
        exclude |= leaks
    jargon = cap.load_jargon()
    table, left_out = caption_rows(built, caps_by_path, jargon.synonyms, exclude)
    done = set(packages)
    kept = [r for r in cap.read_captions(captions) if r["package"] not in done] if captions.is_file() else []
    cap.write_captions(captions, sorted([*kept, *table], key=lambda r: r["path"]))
    log.info(
        "%d captions for %d clips written to %s; left out %s",
        len(table),
        len({r["path"] for r in table}),
        captions,
        dict(left_out),
    )
    return left_out


def summary(rows: Sequence[Mapping[str, str]]) -> dict[str, dict[str, float]]:
    """Clips, concepts and hours of a captions table by package and by category (:class:`Source`)."""
    clips: dict[str, Mapping[str, str]] = {}
    for r in rows:
        clips.setdefault(r["path"], r)
    out: dict[str, dict[str, float]] = {}
    for path, r in clips.items():
        source = SOURCES.get(r["package"])
        category = source.category(path.split("/", 1)[1]) if source else "first corpus"
        for key in (f"package {r['package']}", f"category {category}", "total"):
            entry = out.setdefault(key, {"clips": 0, "hours": 0.0, "concepts": set()})  # type: ignore[dict-item]
            entry["clips"] += 1
            entry["hours"] += float(r["duration_s"]) / 3600
            entry["concepts"].add(r["concept"])  # type: ignore[union-attr]
    return {k: {"clips": v["clips"], "hours": round(v["hours"], 2), "concepts": len(v["concepts"])}  # type: ignore[arg-type]
            for k, v in sorted(out.items())}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0 on success, 2 on bad input or a failed package."""
    p = argparse.ArgumentParser(
        prog="python -m training.data.debian.coverage", description=__doc__.split("\n")[0]
    )
    p.add_argument("--cache", type=Path, required=True, help="folder for .deb files and unpacked packages")
    p.add_argument("--out", type=Path, required=True, help="corpus root of the coverage clips")
    p.add_argument("--held-out", type=Path, default=None, help="root of the first corpus (its manifest.csv)")
    p.add_argument(
        "--protect",
        type=Path,
        nargs="*",
        default=(),
        help="more evaluation corpora (folders with a manifest.csv: path,status) whose audio must not be trained on",
    )
    p.add_argument("--packages", nargs="*", default=list(SOURCES), help="coverage sources to build")
    p.add_argument("--inventory", type=Path, default=DEFAULT_INVENTORY)
    p.add_argument("--captions", type=Path, default=DEFAULT_CAPTIONS)
    p.add_argument("--summary", action="store_true", help="only print clips/concepts/hours of --captions")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if not args.summary:
            build_coverage(
                args.packages, args.cache, args.out, args.inventory, args.captions, args.held_out,
                progress=not args.no_progress, protect=args.protect,
            )  # fmt: skip
        rows = cap.read_captions(args.captions)
    except (CorpusError, cap.CaptionError) as exc:
        log.error("%s", exc)
        return 2
    for key, value in summary(rows).items():
        log.info(
            "%-45s %6d clips %6d concepts %7.2f h", key, value["clips"], value["concepts"], value["hours"]
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
