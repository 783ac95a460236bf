"""Build the blind evaluation set: fetch its Debian packages and lay its clips out for ``queries.csv``.

The blind set (see ``training/data/blind/README.md``) is a fixed list of clips (``inventory.csv``: package,
version, member path, duration, licence) from packages that are never used for training
(:data:`BLIND_PACKAGES`), and hand-written queries (``queries.csv``, ``query,path``) whose paths are
``<package>/<member path>``. This module

* ``--scan``: unpacks the packages and writes ``inventory.csv`` by rule (:func:`scan_package`): audio files
  of 0.1-30 s, music loops, voice lines and clips derived from training packages left out;
* (default) fetches the packages named by the inventory into ``CACHE`` (``apt-get download`` + ``dpkg -x``,
  once) and copies every inventoried clip to ``OUT/<package>/<member path>``, decoding each copy to check
  its duration against the inventory. It writes ``OUT/manifest.csv`` (path, status, detail) and returns 1
  when a clip is missing or its duration disagrees, so the queries never point at a different sound.

    python -m training.data.blind.build --cache data/blind/cache --out data/blind/clips
    python -m training.data.blind.build --scan --cache data/blind/cache   # regenerate inventory.csv

Fetching and unpacking reuse :func:`training.data.debian.fetch.fetch_deb` / :func:`training.data.debian.fetch.extract_deb`;
durations and licences reuse the same module's readers, so both corpora are built the same way.
"""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import EarshotError
from training.data.debian.corpus import (
    RESERVED_PACKAGES,
    check_not_reserved,
    durations_match,
    measure_duration,
)
from training.data.debian.fetch import extract_deb, extracted_version, fetch_deb
from training.data.debian.licences import licence_for_path, read_copyright_entries, summarise_licence
from training.data.debian.scan import AUDIO_EXTENSIONS

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
INVENTORY = HERE / "inventory.csv"
QUERIES = HERE / "queries.csv"

#: Packages of the blind set. None of them may ever be used for training, tuning or model selection.
BLIND_PACKAGES: tuple[str, ...] = (
    "scratch",
    "supertuxkart-data",
    "kapman",
    "kbounce",
    "kolf",
    "granatier",
    "knavalbattle",
    "kblocks",
    "kgoldrunner",
    "kpat",
    "aisleriot",
    "pychess",
    "xboard",
)

#: Where a package's sound effects lie (members outside are ignored): SuperTuxKart ships music and
#: track ambiences elsewhere; only its ``sfx`` folder is a sound-effects library.
SFX_ROOTS: dict[str, str] = {"supertuxkart-data": "usr/share/games/supertuxkart/data/sfx/"}

#: Folders (any path part) left out: music loops and sung or spoken lines.
EXCLUDED_FOLDERS: dict[str, frozenset[str]] = {"scratch": frozenset({"Music Loops", "Vocals"})}

#: Single files left out, with the reason: ``"speech"``; ``"training_source"`` when the package's copyright
#: file says the sound was taken from a package we train on; ``"training_duplicate"`` when ``--check-leaks``
#: found it (or a near copy) in the training corpus (2026-12-04, against the 48 packages of sfx-small 1.0.0).
EXCLUDED_FILES: dict[str, dict[str, str]] = {
    "supertuxkart-data": {
        "sara_airport_pa.ogg": "speech",  # an airport announcement with a voice
        "anvil.ogg": "training_source",  # Battle for Wesnoth's mace.wav (wesnoth-1.16-data is trained on)
        "ball_bounce.ogg": "training_source",  # SuperTux team (supertux-data is trained on)
        "rain.ogg": "training_source",  # taken from MegaGlest (megaglest-data is trained on)
        "shoot.ogg": "training_source",  # Wormux + Wesnoth's axe.ogg (warmux-data, wesnoth are trained on)
        "engine_small.ogg": "training_duplicate",  # trigger-rally-data engine.wav (0.949)
        "explosion.ogg": "training_duplicate",  # openarena-data plasmx1a.wav (0.891)
        "bowling_roll.ogg": "training_duplicate",  # endless-sky-data "plasma huge~.wav" (0.881)
    },
    "aisleriot": {"splat.ogg": "training_duplicate"},  # tuxtype-data splat.wav (0.998)
    "pychess": {"invalid.ogg": "training_duplicate"},  # sound-theme-freedesktop bell.oga (1.000)
    "scratch": {"FingerSnap.wav": "training_duplicate"},  # lmms-common snaph01.ogg (0.978)
    # Neither the name nor the measurements say what these sound like, so no query could be judged.
    "granatier": {"joint.wav": "unknown_content", "clear.wav": "unknown_content"},
}

MIN_S = 0.1
MAX_S = 30.0

INVENTORY_COLUMNS = ("package", "version", "member_path", "duration_s", "licence")
MANIFEST_COLUMNS = ("path", "status", "measured_duration_s", "detail")


class BlindSetError(EarshotError):
    """The blind set cannot be built: a reserved or unknown package, or an unreadable inventory."""


@dataclass(frozen=True)
class BlindClip:
    """One clip of the blind set. ``path`` (``<package>/<member path>``) is what ``queries.csv`` names."""

    package: str
    version: str
    member_path: str
    duration_s: float
    licence: str

    @property
    def path(self) -> str:
        return f"{self.package}/{self.member_path}"


# ---------------------------------------------------------------------------------------------- inventory


def read_inventory(path: Path = INVENTORY) -> list[BlindClip]:
    """The clips of an inventory CSV (:data:`INVENTORY_COLUMNS`), in file order."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = set(INVENTORY_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise BlindSetError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
            rows = list(reader)
    except OSError as exc:
        raise BlindSetError(f"cannot read the inventory {path}: {exc.strerror or exc}") from exc
    clips = []
    for n, r in enumerate(rows, 2):
        try:
            duration = float(r["duration_s"])
        except ValueError:
            raise BlindSetError(f"{path}:{n}: duration_s {r['duration_s']!r} is not a number") from None
        clips.append(BlindClip(r["package"], r["version"], r["member_path"], duration, r["licence"]))
    check_blind(c.package for c in clips)
    return clips


def write_inventory(path: Path, clips: Sequence[BlindClip]) -> None:
    """Write ``clips`` as an inventory CSV, sorted by package and member path."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(INVENTORY_COLUMNS)
        for c in sorted(clips, key=lambda c: (c.package, c.member_path)):
            writer.writerow((c.package, c.version, c.member_path, f"{c.duration_s:.3f}", c.licence))
    tmp.replace(path)


def check_blind(packages: Iterable[str]) -> None:
    """Raise :class:`BlindSetError` for a reserved package or one outside :data:`BLIND_PACKAGES`."""
    packages = set(packages)
    reserved = sorted(packages & RESERVED_PACKAGES)
    if reserved:
        raise BlindSetError(f"the reserved package(s) {', '.join(reserved)} must never be used")
    unknown = sorted(packages - set(BLIND_PACKAGES))
    if unknown:
        raise BlindSetError(f"not a blind-set package: {', '.join(unknown)} (see BLIND_PACKAGES)")


def path_exclusion(package: str, member_path: str) -> str | None:
    """Why a member of ``package`` is not part of the blind set by its path alone, or ``None``.

    ``"not_audio"`` (not :data:`AUDIO_EXTENSIONS`, or documentation), ``"outside_sfx"`` (outside
    :data:`SFX_ROOTS`), ``"excluded_folder"`` (:data:`EXCLUDED_FOLDERS`), or a reason of
    :data:`EXCLUDED_FILES`.
    """
    path = PurePosixPath(member_path)
    if path.suffix.lower() not in AUDIO_EXTENSIONS or member_path.startswith("usr/share/doc/"):
        return "not_audio"
    root = SFX_ROOTS.get(package)
    if root is not None and not member_path.startswith(root):
        return "outside_sfx"
    if set(path.parts[:-1]) & EXCLUDED_FOLDERS.get(package, frozenset()):
        return "excluded_folder"
    return EXCLUDED_FILES.get(package, {}).get(path.name)


def duration_exclusion(duration_s: float | None) -> str | None:
    """``"undecodable"`` (``None``), ``"too_short"`` / ``"too_long"`` outside :data:`MIN_S`-:data:`MAX_S`
    seconds, else ``None``."""
    if duration_s is None:
        return "undecodable"
    if duration_s < MIN_S:
        return "too_short"
    if duration_s > MAX_S:
        return "too_long"
    return None


def _duration_or_none(path: Path) -> float | None:
    try:
        return measure_duration(path)
    except EarshotError:
        return None


def clip_licence(extracted: Path, package: str, member_path: str) -> str:
    """Licence of one clip from the package's copyright file: the DEP-5 paragraph naming it most
    specifically, else the package's summary licence, else ``"unknown"``."""
    entries = read_copyright_entries(extracted, package)
    return licence_for_path(entries, [member_path]) or summarise_licence(entries) or "unknown"


def scan_package(extracted: Path, package: str, version: str = "") -> tuple[list[BlindClip], Counter[str]]:
    """The blind-set clips of an unpacked package (``dpkg -x`` tree at ``extracted``) and a counter of
    why other audio files were left out (see :func:`path_exclusion`, :func:`duration_exclusion`)."""
    check_blind([package])
    clips: list[BlindClip] = []
    left_out: Counter[str] = Counter()
    for path in sorted(extracted.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(extracted).as_posix()
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        duration = None
        reason = path_exclusion(package, rel)
        if reason is None:
            duration = _duration_or_none(path)
            reason = duration_exclusion(duration)
        if reason:
            left_out[reason] += 1
            continue
        clips.append(
            BlindClip(package, version, rel, round(duration, 3), clip_licence(extracted, package, rel))
        )
    return clips, left_out


# ----------------------------------------------------------------------------------------------- layout


def unpack(package: str, cache: Path) -> Path:
    """``CACHE/extracted/PKG``: the package downloaded into ``CACHE/debs`` and unpacked (each once)."""
    check_blind([package])
    check_not_reserved([package])
    extracted = cache / "extracted" / package
    extract_deb(fetch_deb(package, cache / "debs"), extracted)
    return extracted


def lay_out(clip: BlindClip, extracted: Path, out: Path) -> tuple[str, float | None, str]:
    """Copy one clip from its unpacked package to ``OUT/<package>/<member path>`` and decode the copy.

    Returns ``(status, measured duration s or None, detail)``; status is ``"ok"``, ``"missing"`` (not in
    the package), ``"undecodable"`` or ``"duration_mismatch"`` (the package changed the sound: a failed
    clip is removed from ``out`` so no query can be scored against a different sound).
    """
    src = extracted / clip.member_path
    dest = out / clip.package / clip.member_path
    if not src.is_file():
        dest.unlink(missing_ok=True)
        return "missing", None, f"{clip.member_path} is not in the unpacked package"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    shutil.copyfile(src, tmp)
    measured = _duration_or_none(tmp)
    if measured is None:
        tmp.unlink()
        dest.unlink(missing_ok=True)
        return "undecodable", None, "libsndfile cannot decode it"
    if not durations_match(measured, clip.duration_s):
        tmp.unlink()
        dest.unlink(missing_ok=True)
        return "duration_mismatch", measured, f"inventory says {clip.duration_s:.3f} s"
    tmp.replace(dest)
    return "ok", measured, ""


def build(
    clips: Sequence[BlindClip],
    cache: Path,
    out: Path,
    unpacker: Callable[[str, Path], Path] = unpack,
) -> list[tuple[str, str, float | None, str]]:
    """Lay out every clip (see :func:`lay_out`) and write ``OUT/manifest.csv``; returns its rows
    ``(path, status, measured duration, detail)``. A package that cannot be fetched marks its clips
    ``"package_failed"`` and the others are still built."""
    check_blind(c.package for c in clips)
    rows: list[tuple[str, str, float | None, str]] = []
    by_package: dict[str, list[BlindClip]] = {}
    for c in clips:
        by_package.setdefault(c.package, []).append(c)
    for package, items in by_package.items():
        try:
            extracted = unpacker(package, cache)
        except EarshotError as exc:
            log.error("%s: %s", package, exc)
            rows.extend((c.path, "package_failed", None, str(exc)) for c in items)
            continue
        version = extracted_version(extracted)
        if version and any(c.version and c.version != version for c in items):
            log.warning(
                "%s: unpacked version %s differs from the inventory's; durations are checked",
                package,
                version,
            )
        for c in items:
            status, measured, detail = lay_out(c, extracted, out)
            if status != "ok":
                log.warning("%s: %s (%s)", c.path, status, detail)
            rows.append((c.path, status, measured, detail))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for path, status, measured, detail in rows:
            writer.writerow((path, status, "" if measured is None else f"{measured:.3f}", detail))
    return rows


# -------------------------------------------------------------------------------------------- queries


def read_queries(path: Path = QUERIES) -> dict[str, set[str]]:
    """Query → relevant clip paths (``<package>/<member path>``) from a ``query,path`` CSV."""
    out: dict[str, set[str]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if set(reader.fieldnames or ()) < {"query", "path"}:
            raise BlindSetError(f"{path} must have the columns query,path")
        for r in reader:
            q = " ".join(r["query"].split())
            if q:
                out.setdefault(q, set()).add(r["path"])
    return out


def check_queries(queries: dict[str, set[str]], clips: Sequence[BlindClip]) -> list[str]:
    """Problems of a query table against the inventory: paths not in the inventory, clips no query
    names. Empty when consistent."""
    known = {c.path for c in clips}
    problems = [
        f"{q!r} names {p}, which is not in the inventory"
        for q, ps in queries.items()
        for p in sorted(ps - known)
    ]
    named = set().union(*queries.values()) if queries else set()
    problems += [f"no query names {p}" for p in sorted(known - named)]
    return problems


# ------------------------------------------------------------------------------------------------ leaks


def find_leaks(
    blind_root: Path, clips: Sequence[BlindClip], train_roots: Sequence[Path]
) -> list[tuple[str, str, float]]:
    """Blind clips that a training corpus also holds: ``(blind path, training file, correlation)``.

    Uses the fingerprints of :func:`training.data.debian.duplicates.fingerprint` with the loose near-duplicate
    test that keeps held-out splits clean (correlation above ``NEAR_DUPLICATE_THRESHOLD``, trimmed
    durations within ``NEAR_DUPLICATE_DURATION_REL``). Undecodable training files are skipped.
    """
    from training.data.debian.duplicates import (
        NEAR_DUPLICATE_DURATION_REL,
        NEAR_DUPLICATE_THRESHOLD,
        find_duplicates,
        fingerprint,
    )

    prints = {}
    for c in clips:
        prints[f"blind:{c.path}"] = fingerprint(blind_root / c.package / c.member_path)
    for root in train_roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
                try:
                    prints[f"train:{path}"] = fingerprint(path)
                except EarshotError:
                    continue
    pairs = find_duplicates(
        prints,
        NEAR_DUPLICATE_THRESHOLD,
        NEAR_DUPLICATE_DURATION_REL,
        pair_filter=lambda a, b: a.split(":", 1)[0] != b.split(":", 1)[0],
    )
    leaks = []
    for a, b, corr in pairs:
        blind, train = (a, b) if a.startswith("blind:") else (b, a)
        leaks.append((blind.split(":", 1)[1], train.split(":", 1)[1], corr))
    return sorted(leaks)


# ------------------------------------------------------------------------------------- query authoring

#: Short package names used as clip keys (``PREFIX:stem``) in ``queries.txt``.
KEY_PREFIXES: dict[str, str] = {
    "sc": "scratch",
    "stk": "supertuxkart-data",
    "kap": "kapman",
    "kbo": "kbounce",
    "kolf": "kolf",
    "gra": "granatier",
    "nav": "knavalbattle",
    "kbl": "kblocks",
    "kgr": "kgoldrunner",
    "kpat": "kpat",
    "ais": "aisleriot",
    "pyc": "pychess",
    "xb": "xboard",
}


def expand_queries(text: str, clips: Sequence[BlindClip]) -> list[tuple[str, str, list[str]]]:
    """Parse the authoring file (``queries.txt``) into ``(category, query, relevant paths)``, each key
    ``PREFIX:stem`` (:data:`KEY_PREFIXES`) naming exactly one clip (see :func:`expand_authoring`)."""
    by_key: dict[str, str] = {}
    for c in clips:
        prefix = next(k for k, v in KEY_PREFIXES.items() if v == c.package)
        key = f"{prefix}:{PurePosixPath(c.member_path).stem}"
        if key in by_key:
            raise BlindSetError(f"two clips share the key {key}")
        by_key[key] = c.path
    return expand_authoring(text, by_key)


def expand_authoring(text: str, by_key: Mapping[str, str]) -> list[tuple[str, str, list[str]]]:
    """Parse a query authoring file into ``(category, query, relevant paths)``.

    Lines ``category | query | KEY KEY ...`` give a query and its relevant clips (``by_key`` maps each key
    to a clip's path); lines ``= KEY KEY ...`` declare one sound shipped under several names (a query
    relevant to one is relevant to all); ``#`` starts a comment. Raises :class:`BlindSetError` for an
    unknown key, a repeated query or a malformed line.
    """

    def resolve(keys: Iterable[str], n: int) -> list[str]:
        try:
            return [by_key[k] for k in keys]
        except KeyError as exc:
            raise BlindSetError(f"queries line {n}: unknown clip key {exc.args[0]}") from None

    same: dict[str, set[str]] = {}
    entries: list[tuple[int, str, str, list[str]]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("="):
            group = set(resolve(line[1:].split(), n))
            for path in group:
                same.setdefault(path, set()).update(group)
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3 or not all(parts):
            raise BlindSetError(f"queries line {n}: expected 'category | query | keys', got {raw!r}")
        entries.append((n, parts[0], " ".join(parts[1].split()), parts[2].split()))
    out: list[tuple[str, str, list[str]]] = []
    seen: set[str] = set()
    for n, category, query, keys in entries:
        if query.lower() in seen:
            raise BlindSetError(f"queries line {n}: the query {query!r} is repeated")
        seen.add(query.lower())
        paths: set[str] = set()
        for path in resolve(keys, n):
            paths |= same.get(path, {path})
        out.append((category, query, sorted(paths)))
    return out


def write_queries(entries: Sequence[tuple[str, str, list[str]]], queries: Path, categories: Path) -> None:
    """Write ``queries.csv`` (``query,path``, one row per relevant clip) and ``query_categories.csv``
    (``query,category``)."""
    with open(queries, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("query", "path"))
        writer.writerows((q, p) for _, q, paths in entries for p in paths)
    with open(categories, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("query", "category"))
        writer.writerows((q, c) for c, q, _ in entries)


# ---------------------------------------------------------------------------------------------------- cli


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.data.blind.build", description=__doc__.splitlines()[0]
    )
    p.add_argument("--inventory", type=Path, default=INVENTORY)
    p.add_argument(
        "--cache", type=Path, default=Path("data/blind/cache"), help=".deb files and unpacked packages"
    )
    p.add_argument(
        "--out", type=Path, default=Path("data/blind/clips"), help="clips go to OUT/<package>/<member>"
    )
    p.add_argument(
        "--scan",
        action="store_true",
        help="unpack BLIND_PACKAGES and (re)write --inventory instead of building",
    )
    p.add_argument(
        "--check-leaks",
        type=Path,
        nargs="+",
        default=(),
        metavar="CORPUS",
        help="after building, fingerprint the clips against these training corpora; exit 1 on a shared sound",
    )
    p.add_argument(
        "--write-queries",
        type=Path,
        default=None,
        metavar="TXT",
        help="expand the authoring file TXT (queries.txt) into queries.csv and query_categories.csv beside "
        "--inventory, check them against it, and stop",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when every clip is laid out and checked, 1 when some failed, 2 on bad input."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        if args.scan:
            clips: list[BlindClip] = []
            for package in BLIND_PACKAGES:
                extracted = unpack(package, args.cache)
                found, left_out = scan_package(extracted, package, extracted_version(extracted))
                log.info(
                    "%s: %d clips; left out %s", package, len(found), dict(sorted(left_out.items())) or "none"
                )
                clips.extend(found)
            write_inventory(args.inventory, clips)
            log.info("%d clips written to %s", len(clips), args.inventory)
            return 0
        if args.write_queries is not None:
            clips = read_inventory(args.inventory)
            entries = expand_queries(args.write_queries.read_text(encoding="utf-8"), clips)
            folder = args.inventory.parent
            write_queries(entries, folder / "queries.csv", folder / "query_categories.csv")
            problems = check_queries(read_queries(folder / "queries.csv"), clips)
            for problem in problems:
                log.error("%s", problem)
            log.info(
                "%d queries, %d relevant pairs written to %s",
                len(entries),
                sum(len(e[2]) for e in entries),
                folder,
            )
            return 1 if problems else 0
        rows = build(read_inventory(args.inventory), args.cache, args.out)
    except EarshotError as exc:
        log.error("%s", exc)
        return 2
    counts = Counter(status for _, status, _, _ in rows)
    log.info("%d clips under %s: %s", len(rows), args.out, dict(sorted(counts.items())))
    if counts["ok"] != len(rows):
        return 1
    if args.check_leaks:
        leaks = find_leaks(args.out, read_inventory(args.inventory), args.check_leaks)
        for blind, train, corr in leaks:
            log.error("%s sounds like the training file %s (correlation %.3f)", blind, train, corr)
        log.info("leak check against %s: %d shared sounds", ", ".join(map(str, args.check_leaks)), len(leaks))
        return 1 if leaks else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
