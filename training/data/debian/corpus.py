"""The Debian sound-effects corpus: inventory and manifest rows, reserved packages, splits, skip rules.

The inventory (``sfx_inventory.csv``, one row per clip) names, for each clip, the Debian package, the
version it was read from, an optional container inside the package (``.pk3``/``.wz``/``.zip``, a Qt
``.rcc`` bundle, a ``.sf2`` sound font) and the member path. The manifest (:data:`MANIFEST_COLUMNS`)
records what the builder (:mod:`training.data.debian.build`) made of each inventory clip.

Splits are by package (:func:`split_of`); the reserved packages (:data:`RESERVED_PACKAGES`) belong to
no split and are never fetched.
"""

from __future__ import annotations

import csv
import logging
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from engine.errors import EarshotError

log = logging.getLogger(__name__)

RESERVED_PACKAGES: frozenset[str] = frozenset(
    {"openttd-opensfx", "searchandrescue-data", "lugaru-data", "tuxpaint-stamps-default", "qabcs-data"}
)

#: Whole packages skipped by rule, with the reason recorded in the manifest.
SKIPPED_PACKAGES: dict[str, str] = {
    "hydrogen-drumkits": "drum_one_shot",
    "bucklespring-data": "keyboard_click",
}

# Drum one-shots inside otherwise useful packages: a ``drums`` folder, or sample-pack stem prefixes
# (Sonic Pi: ``bd_`` bass drum, ``sn_`` snare, ``drum_``, ``tabla_``; ``elec_`` drum hits).
_DRUM_DIRS = frozenset({"drums", "drumkits", "drumkit"})
_DRUM_STEM = re.compile(r"^(bd|sn|drum|tabla)_|^elec_.*(kick|snare|tom|cymbal|hat)", re.IGNORECASE)


TEST_PACKAGES: frozenset[str] = frozenset(
    {
        "ufoai-sound",
        "widelands-data",
        "sound-theme-freedesktop",
        "7kaa-data",
        "extremetuxracer-data",
        "chromium-bsu-data",
    }
)
VAL_PACKAGES: frozenset[str] = frozenset(
    {
        "minetest-data",
        "btanks-data",
        "cube2-data",
        "pokerth-data",
        "deepin-sound-theme",
        "yaru-theme-sound",
        "heroes-sound-effects",
        "marsshooter-data",
    }
)
SPLIT_PRIORITY = {"train": 0, "val": 1, "test": 2}
#: Packages added later by :func:`scan_package` (``training/data/extra_inventory.csv``), all in the
#: training split: the held-out splits stay those of the first corpus so that scores stay comparable.
EXTRA_TRAIN_PACKAGES: frozenset[str] = frozenset({"0ad-data", "redeclipse-data"})

#: Duration tolerance when checking a decoded clip against the inventory: the larger of the two.
DURATION_TOLERANCE_S = 0.05
DURATION_TOLERANCE_REL = 0.02

INVENTORY_COLUMNS = (
    "package",
    "version",
    "container",
    "member_path",
    "duration_s",
    "concept_key",
    "auto_query_draft",
)
MANIFEST_COLUMNS = (
    "path",
    "package",
    "inventory_version",
    "version",
    "container",
    "member_path",
    "duration_s",
    "measured_duration_s",
    "status",
    "detail",
    "licence",
)


class CorpusError(EarshotError):
    """The corpus cannot be built as asked (a reserved package requested, an unreadable inventory)."""


@dataclass(frozen=True)
class InventoryRow:
    """One clip of the inventory. ``duration_s`` is in seconds as decoded by libsndfile."""

    package: str
    version: str
    container: str
    member_path: str
    duration_s: float
    concept_key: str
    auto_query_draft: str

    @property
    def corpus_path(self) -> str:
        """Path of the clip relative to the corpus root, POSIX form: ``PKG/<member path>``."""
        return f"{self.package}/{self.member_path}"


@dataclass
class ManifestRow:
    """What happened to one inventory clip; ``status`` is ``ok``, ``duration_mismatch``, ``skipped:*``,
    ``missing``, ``decode_error`` or ``package_error``."""

    row: InventoryRow
    status: str
    version: str = ""
    measured_duration_s: float | None = None
    detail: str = ""
    licence: str = ""

    def as_dict(self) -> dict[str, str]:
        """The row as :data:`MANIFEST_COLUMNS` strings."""
        measured = "" if self.measured_duration_s is None else f"{self.measured_duration_s:.3f}"
        return {
            "path": self.row.corpus_path,
            "package": self.row.package,
            "inventory_version": self.row.version,
            "version": self.version,
            "container": self.row.container,
            "member_path": self.row.member_path,
            "duration_s": f"{self.row.duration_s:.3f}",
            "measured_duration_s": measured,
            "status": self.status,
            "detail": self.detail,
            "licence": self.licence,
        }


@dataclass
class BuildReport:
    """Summary of one build: manifest rows plus per-package failures (``package -> message``)."""

    rows: list[ManifestRow] = field(default_factory=list)
    package_failures: dict[str, str] = field(default_factory=dict)
    extracted: list[str] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        """Number of clips per status."""
        return Counter(r.status for r in self.rows)

    def hours(self, statuses: Iterable[str] = ("ok", "duration_mismatch")) -> float:
        """Total measured duration in hours of the clips with one of ``statuses``."""
        wanted = set(statuses)
        total = sum(
            r.measured_duration_s or 0.0 for r in self.rows if r.status in wanted and r.measured_duration_s
        )
        return total / 3600.0


# --------------------------------------------------------------------------------------------- inventory


def read_inventory(path: Path) -> list[InventoryRow]:
    """Read ``sfx_inventory.csv``; raises :class:`CorpusError` if it is missing or lacks a column."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = set(INVENTORY_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise CorpusError(f"The inventory {path} lacks the columns: {', '.join(sorted(missing))}.")
            rows = [
                InventoryRow(
                    package=r["package"],
                    version=r["version"],
                    container=r["container"] or "",
                    member_path=r["member_path"],
                    duration_s=float(r["duration_s"]),
                    concept_key=r["concept_key"] or "",
                    auto_query_draft=r["auto_query_draft"] or "",
                )
                for r in reader
            ]
    except OSError as exc:
        raise CorpusError(f"Cannot read the inventory {path}: {exc.strerror or exc}.") from exc
    except ValueError as exc:
        raise CorpusError(f"The inventory {path} has a malformed duration: {exc}.") from exc
    return rows


def check_not_reserved(packages: Iterable[str]) -> None:
    """Raise :class:`CorpusError` if any of ``packages`` is reserved."""
    bad = sorted(set(packages) & RESERVED_PACKAGES)
    if bad:
        raise CorpusError(
            f"Refusing the reserved package(s) {', '.join(bad)}: they are held out of training and "
            "must never be fetched or used."
        )


def split_of(package: str) -> str:
    """``"test"``, ``"val"`` or ``"train"`` for a package (fixed lists, so splits are deterministic).

    Raises :class:`CorpusError` for a reserved package, which belongs to no split.
    """
    check_not_reserved([package])
    if package in TEST_PACKAGES:
        return "test"
    if package in VAL_PACKAGES:
        return "val"
    return "train"


def skip_reason(row: InventoryRow) -> str | None:
    """Why a clip is left out by rule (``"drum_one_shot"``, ``"keyboard_click"``), or ``None``."""
    if row.package in SKIPPED_PACKAGES:
        return SKIPPED_PACKAGES[row.package]
    parts = PurePosixPath(row.member_path.lower()).parts
    if any(p in _DRUM_DIRS for p in parts[:-1]):
        return "drum_one_shot"
    if _DRUM_STEM.search(PurePosixPath(row.member_path).name):
        return "drum_one_shot"
    return None


def select_rows(
    rows: Sequence[InventoryRow],
    packages: Sequence[str] | None = None,
    skip_packages: Sequence[str] = (),
) -> list[InventoryRow]:
    """Inventory rows of ``packages`` (all when ``None``) minus ``skip_packages``.

    Raises :class:`CorpusError` when a reserved package is asked for or is in the inventory, or when an
    asked-for package is not in the inventory.
    """
    if packages:
        check_not_reserved(packages)
        unknown = sorted(set(packages) - {r.package for r in rows})
        if unknown:
            raise CorpusError(f"Not in the inventory: {', '.join(unknown)}.")
    check_not_reserved(r.package for r in rows if not packages or r.package in packages)
    wanted = set(packages) if packages else None
    skipped = set(skip_packages)
    return [r for r in rows if (wanted is None or r.package in wanted) and r.package not in skipped]


def write_manifest(path: Path, rows: Sequence[ManifestRow]) -> None:
    """Write (merge into) the manifest CSV: rows for the packages in ``rows`` replace older ones."""
    packages = {r.row.package for r in rows}
    kept: list[dict[str, str]] = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as fh:
            kept = [r for r in csv.DictReader(fh) if r.get("package") not in packages]
    merged = kept + [r.as_dict() for r in rows]
    merged.sort(key=lambda r: r["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(merged)
    tmp.replace(path)


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Read ``manifest.csv`` rows as dictionaries (:data:`MANIFEST_COLUMNS`)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_inventory(path: Path, rows: Sequence[InventoryRow]) -> None:
    """Write (merge into) an inventory CSV (:data:`INVENTORY_COLUMNS`): rows of the packages in ``rows``
    replace older ones; the file is sorted by package, container and member path."""
    packages = {r.package for r in rows}
    kept = [r for r in read_inventory(path) if r.package not in packages] if path.is_file() else []
    merged = sorted([*kept, *rows], key=lambda r: (r.package, r.container, r.member_path))
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(INVENTORY_COLUMNS)
        for r in merged:
            writer.writerow(
                (r.package, r.version, r.container, r.member_path, f"{r.duration_s:.3f}", r.concept_key,
                 r.auto_query_draft)
            )  # fmt: skip
    tmp.replace(path)


def durations_match(measured_s: float, expected_s: float) -> bool:
    """Whether two durations (seconds) agree within :data:`DURATION_TOLERANCE_S` /
    :data:`DURATION_TOLERANCE_REL`, whichever is larger."""
    tol = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_REL * expected_s)
    return abs(measured_s - expected_s) <= tol


def measure_duration(path: Path) -> float:
    """Duration in seconds of an audio file, read by libsndfile (``frames / samplerate``).

    Raises :class:`engine.errors.AudioError` when libsndfile cannot open it.
    """
    import soundfile as sf

    from engine.errors import AudioError

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"Cannot decode {path.name}: {exc}", reason="decode_error") from exc
    if info.samplerate <= 0:
        raise AudioError(f"{path.name} reports no sample rate.", reason="decode_error")
    return info.frames / info.samplerate


def progress_iter(iterable: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="clip", leave=False)


def sample_clips(
    corpus: Path,
    n: int,
    *,
    seed: int = 0,
    extensions: frozenset[str] = frozenset({".wav", ".ogg", ".flac", ".oga", ".mp3"}),
) -> list[Path]:
    """``n`` audio files of an extracted corpus, round robin over its packages (so every kind of game is
    represented), shuffled per package with ``seed``. For demos, screenshots and benchmarks."""
    by_pkg: dict[str, list[Path]] = {}
    for p in sorted(Path(corpus).rglob("*")):
        if p.is_file() and p.suffix.lower() in extensions:
            by_pkg.setdefault(p.relative_to(corpus).parts[0], []).append(p)
    rng = random.Random(seed)
    for files in by_pkg.values():
        rng.shuffle(files)
    out: list[Path] = []
    while len(out) < n and any(by_pkg.values()):
        for pkg in sorted(by_pkg):
            if by_pkg[pkg] and len(out) < n:
                out.append(by_pkg[pkg].pop())
    return out
