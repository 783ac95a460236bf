"""Build the Debian sound-effects corpus: fetch packages, unpack them, copy the inventoried clips.

The inventory (``sfx_inventory.csv``, one row per clip) names, for each clip, the Debian package, the
version it was read from, an optional zip container inside the package (``.pk3``/``.wz``/``.zip``) and
the member path. The builder:

1. refuses the reserved packages (kept out of every training run, see :data:`RESERVED_PACKAGES`) and skips
   drum one-shots and keyboard clicks by rule (:func:`skip_reason`);
2. ``apt-get download``\\ s each package into ``CACHE/debs/`` (once; ``apt-get update`` and one retry on
   failure) and ``dpkg -x``\\ s it into ``CACHE/extracted/PKG/`` (once: a marker file makes it resumable);
3. copies every clip to ``OUT/PKG/<member path>`` (members of zip containers are extracted), decodes its
   header to check the duration against the inventory (a newer package may differ: clips are matched by
   path, mismatches are recorded), and reads ``usr/share/doc/PKG/copyright`` for a licence string;
4. writes ``OUT/manifest.csv`` (:data:`MANIFEST_COLUMNS`), one row per inventory clip, skipped and failed
   clips included with their status. Failures are recorded, never fatal.

Run it as ``python -m training.data.debian_sfx --inventory CSV --cache DIR --out DIR``. With
``--scan-package PKG ...`` the packages are first unpacked and inventoried by :func:`scan_package` (the
inventory CSV is written, merged by package) and then built: that is how ``extra_inventory.csv`` was made. Audio and
``.deb`` files stay in the cache and output folders (``/data/`` in the repository is git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import logging
import random
import re
import shutil
import subprocess
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from engine.errors import EarshotError

log = logging.getLogger(__name__)

#: Packages kept out of training entirely (held out for final evaluation): never fetched, never used.
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

#: Hand-checked licence per package (short SPDX-style identifiers) for packages whose copyright file is
#: not machine-readable (DEP-5) or does not name the sounds' licence. ``+`` means "or later".
LICENCE_OVERRIDES: dict[str, str] = {
    "freedink-data": "GPL-2+",  # per-file licences below; GPL-2+ is the most common
    "tuxtype-data": "GPL-2",  # "licensed under the GNU Public License version 2"
    "wesnoth-1.16-data": "GPL-2+",  # the whole data set, sounds included
    "nexuiz-data": "GPL-2+",
    "warmux-data": "GPL-2+",
    "btanks-data": "Battle-Tanks-License",  # GPL-2+ with an OpenSSL exception; data under the same terms
}

#: Per-file licences where a package's copyright documentation lists them outside its copyright file
#: (freedink-data: ``README-REPLACEMENTS.txt``). Keys are file names, compared case-insensitively.
LICENCE_FILE_OVERRIDES: dict[str, dict[str, str]] = {
    "freedink-data": {
        "arrow.wav": "GPL-2+",
        "axe.wav": "public-domain",
        "bhit.wav": "public-domain",
        "bird1.wav": "GPL-2+",
        "bow1.wav": "GPL-2+",
        "burn.wav": "public-domain",
        "fire.wav": "CC-BY-3.0",
        "gold.wav": "GPL-2+",
        "grunt1.wav": "GPL-2+",
        "grunt2.wav": "GPL-2+",
        "high2.wav": "GPL-3+ OR CC-BY-SA-3.0",
        "nono.wav": "public-domain",
        "open.wav": "GPL-2+ OR CC-BY-SA-3.0",
        "punch.wav": "GPL-2+",
        "save.wav": "public-domain",
        "secret.wav": "Zlib",
        "sel1.wav": "CC-BY-3.0 OR CC-BY-SA-3.0 OR GPL-3 OR GPL-2",
        "stairs.wav": "public-domain",
        "swing.wav": "GPL-2+",
        "sword2.wav": "GPL-2+",
        "wscream.wav": "WTFPL",
    },
}

#: Splits by package (no package in two splits). Test packages were chosen for varied, well-named concepts
#: (ambiences, footsteps on many surfaces, doors, breaking glass/wood/metal, weapons, creatures, animals,
#: crafts, weather, user-interface sounds); validation packages cover similar ground at a smaller scale.
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
_MARKER = ".earshot-extracted"

Runner = Callable[[Sequence[str], Path], None]


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


# ---------------------------------------------------------------------------------------------- packages


def _run(cmd: Sequence[str], cwd: Path) -> None:
    subprocess.run(list(cmd), cwd=cwd, check=True, capture_output=True, text=True)


def find_deb(package: str, debs_dir: Path) -> Path | None:
    """The newest-looking ``PKG_*.deb`` already in ``debs_dir`` (there is normally one), or ``None``."""
    found = sorted(debs_dir.glob(f"{glob_escape(package)}_*.deb"))
    return found[-1] if found else None


def glob_escape(text: str) -> str:
    """Escape the glob characters ``*?[`` in ``text`` for :meth:`Path.glob`."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def fetch_deb(package: str, debs_dir: Path, runner: Runner = _run) -> Path:
    """Return the ``.deb`` of ``package`` in ``debs_dir``, downloading it with ``apt-get download`` if it
    is not there yet (``apt-get update`` and one retry when the first download fails)."""
    check_not_reserved([package])
    debs_dir.mkdir(parents=True, exist_ok=True)
    deb = find_deb(package, debs_dir)
    if deb is not None:
        return deb
    log.info("downloading %s", package)
    try:
        runner(["apt-get", "download", package], debs_dir)
    except (subprocess.CalledProcessError, OSError) as first:
        log.warning("apt-get download %s failed (%s); running apt-get update and retrying", package, first)
        try:
            runner(["apt-get", "update"], debs_dir)
            runner(["apt-get", "download", package], debs_dir)
        except (subprocess.CalledProcessError, OSError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise CorpusError(f"Could not download the package {package}: {detail.strip()}") from exc
    deb = find_deb(package, debs_dir)
    if deb is None:
        raise CorpusError(f"apt-get download {package} reported success but left no .deb in {debs_dir}.")
    return deb


def deb_version(deb: Path) -> str:
    """The ``Version`` field of a ``.deb`` (empty when ``dpkg-deb`` cannot read it)."""
    try:
        out = subprocess.run(
            ["dpkg-deb", "--field", str(deb), "Version"], check=True, capture_output=True, text=True
        )
    except (subprocess.CalledProcessError, OSError):
        return ""
    return out.stdout.strip()


def is_extracted(dest: Path) -> bool:
    """Whether ``dest`` holds a complete ``dpkg -x`` of a package (its marker file is there)."""
    return (dest / _MARKER).is_file()


def extract_deb(deb: Path, dest: Path) -> None:
    """``dpkg -x`` ``deb`` into ``dest`` through a temporary sibling folder, then mark it complete.

    Idempotent: returns at once when ``dest`` is already marked complete.
    """
    if is_extracted(dest):
        return
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.mkdir(parents=True)
    try:
        subprocess.run(["dpkg", "-x", str(deb), str(tmp)], check=True, capture_output=True, text=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        detail = getattr(exc, "stderr", "") or str(exc)
        raise CorpusError(f"Could not unpack {deb.name}: {detail.strip()}") from exc
    (tmp / _MARKER).write_text(f"{deb.name}\n{deb_version(deb)}\n", encoding="utf-8")
    tmp.rename(dest)


def extracted_version(dest: Path) -> str:
    """The package version recorded in the marker of an extracted package ('' if unknown)."""
    try:
        lines = (dest / _MARKER).read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    return lines[1].strip() if len(lines) > 1 else ""


# ---------------------------------------------------------------------------------------------- licences


def parse_copyright(text: str) -> list[tuple[tuple[str, ...], str]]:
    """Parse a Debian ``copyright`` file into ``[(file patterns, licence short name), ...]``.

    Machine-readable (DEP-5) files give one entry per ``Files:`` paragraph; other files give one entry
    with the patterns ``("*",)`` and the licence names recognised in the free text (may be empty).
    """
    entries: list[tuple[tuple[str, ...], str]] = []
    if re.search(r"^Format:\s*\S+", text, re.MULTILINE) and re.search(r"^Files:", text, re.MULTILINE):
        for para in re.split(r"\n\s*\n", text):
            files = re.search(r"^Files:\s*(.*(?:\n[ \t]+.*)*)", para, re.MULTILINE)
            lic = re.search(r"^License:[ \t]*(.*)(?:\n[ \t]+(\S.*))?", para, re.MULTILINE)
            if files and lic:
                name = lic.group(1).strip() or (lic.group(2) or "").strip()
                entries.append((tuple(files.group(1).split()), _normalise_licence(name)))
        return entries
    names = _licences_in_free_text(text)
    return [(("*",), " AND ".join(names))] if names else []


_FREE_TEXT_LICENCES = (
    (r"GNU (?:General Public License|GPL)[^.]{0,80}?version 3", "GPL-3+"),
    (r"GNU (?:General Public License|GPL)[^.]{0,80}?version 2", "GPL-2+"),
    (r"GNU Lesser General Public License|LGPL", "LGPL-2.1+"),
    (r"Creative Commons Attribution[- ]Share ?Alike|CC[- ]BY[- ]SA", "CC-BY-SA"),
    (r"Creative Commons Attribution(?![- ]Share)|CC[- ]BY(?![- ]SA)", "CC-BY"),
    (r"\bCC0\b", "CC0-1.0"),
    (r"public domain", "public-domain"),
)


def _licences_in_free_text(text: str) -> list[str]:
    found = []
    for pattern, name in _FREE_TEXT_LICENCES:
        if re.search(pattern, text, re.IGNORECASE) and name not in found:
            found.append(name)
    return found


def _normalise_licence(name: str) -> str:
    name = re.sub(r"\s+", " ", name.strip())
    if re.fullmatch(r"(?i)public[- ]domain|pd", name):
        return "public-domain"
    name = re.sub(r"\bor\b", "OR", re.sub(r"\band\b", "AND", name))
    return name.replace("GPL-2.0+", "GPL-2+").replace("GPL-3.0+", "GPL-3+")


_SOUND_HINT = re.compile(r"sound|snd|sfx|audio|\.wav|\.ogg|\.flac|\.oga|\.pk3|\.wz", re.IGNORECASE)


def summarise_licence(entries: Sequence[tuple[tuple[str, ...], str]]) -> str:
    """One licence string for a package's sounds from :func:`parse_copyright` entries.

    Paragraphs whose file patterns look like sound files win; otherwise the ``Files: *`` paragraph;
    otherwise every licence named. Several distinct licences are joined with ``" AND "`` (each applies to
    some of the clips). Empty when nothing is known.
    """
    if not entries:
        return ""
    sound = [lic for pats, lic in entries if any(_SOUND_HINT.search(p) for p in pats)]
    star = [lic for pats, lic in entries if "*" in pats]
    chosen = sound or star or [lic for _, lic in entries]
    unique = list(dict.fromkeys(c for c in chosen if c))
    return " AND ".join(unique)


def _pattern_forms(pattern: str) -> list[str]:
    """A DEP-5 pattern and its forms without 1–2 leading source folders (installed paths differ)."""
    pattern = pattern[2:] if pattern.startswith("./") else pattern
    parts = pattern.split("/")
    forms = [pattern]
    for k in (1, 2):
        rest = parts[k:]
        if len(rest) >= 2 or (rest and not rest[0].startswith("*")):
            forms.append("/".join(rest))
    return forms


def licence_for_path(entries: Sequence[tuple[tuple[str, ...], str]], paths: Sequence[str]) -> str | None:
    """The licence of the DEP-5 paragraph that names one of ``paths`` (installed paths of one clip, POSIX)
    most specifically, or ``None``.

    Source paths in a copyright file differ from installed ones (``share/hedgewars/Data/Sounds/*`` is
    installed under ``usr/share/games/hedgewars/...``), so each pattern is matched against every trailing
    part of each path, also with its first one or two folders removed. The match naming the most literal
    folders wins (``hedgewars/Data/Sounds/*`` beats ``hedgewars/*``); ties go to the later paragraph, as
    in DEP-5. A bare ``*`` paragraph matches everything with the lowest specificity.
    """
    best: tuple[int, str] | None = None
    suffixes = []
    for path in paths:
        parts = path.split("/")
        suffixes.extend("/".join(parts[i:]) for i in range(len(parts)))
    for patterns, lic in entries:
        if not lic:
            continue
        score = -1
        for pattern in patterns:
            for form in _pattern_forms(pattern):
                if form == "*" or any(fnmatch.fnmatchcase(sfx, form) for sfx in suffixes):
                    literal = sum(1 for part in form.split("/") if not re.search(r"[*?\[]", part))
                    score = max(score, literal)
        if score >= 0 and (best is None or score >= best[0]):
            best = (score, lic)
    return best[1] if best else None


def clip_paths(row: InventoryRow) -> list[str]:
    """Installed paths a copyright pattern may name for ``row``: the member path, or for a clip in a
    container both ``container/member`` and ``container-folder/member``."""
    if not row.container:
        return [row.member_path]
    folder = str(PurePosixPath(row.container).parent)
    return [f"{row.container}/{row.member_path}", f"{folder}/{row.member_path}"]


def read_copyright_entries(extracted: Path, package: str) -> list[tuple[tuple[str, ...], str]]:
    """:func:`parse_copyright` of the package's ``usr/share/doc/PKG/copyright`` ([] when absent)."""
    path = extracted / "usr" / "share" / "doc" / package / "copyright"
    try:
        return parse_copyright(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        log.warning("%s: no copyright file at %s", package, path)
        return []


def clip_licence(
    row: InventoryRow, entries: Sequence[tuple[tuple[str, ...], str]], package_licence: str
) -> str:
    """Licence of one clip: a per-file override, else the matching DEP-5 paragraph (unless the package
    has a hand-written override), else ``package_licence``."""
    by_file = LICENCE_FILE_OVERRIDES.get(row.package, {})
    name = PurePosixPath(row.member_path).name.lower()
    if name in by_file:
        return by_file[name]
    if row.package in LICENCE_OVERRIDES:
        return LICENCE_OVERRIDES[row.package]
    return licence_for_path(entries, clip_paths(row)) or package_licence


def read_licence(extracted: Path, package: str) -> str:
    """The licence string of ``package``: :data:`LICENCE_OVERRIDES` first, else parsed from its
    ``usr/share/doc/PKG/copyright`` inside ``extracted`` ('unknown' when neither says)."""
    if package in LICENCE_OVERRIDES:
        return LICENCE_OVERRIDES[package]
    path = extracted / "usr" / "share" / "doc" / package / "copyright"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        log.warning("%s: no copyright file at %s", package, path)
        return "unknown"
    return summarise_licence(parse_copyright(text)) or "unknown"


# -------------------------------------------------------------------------------------------------- clips


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


def _case_insensitive_lookup(root: Path, relative: str) -> Path | None:
    """Find ``root/relative`` ignoring case in every component (newer packages rename files)."""
    current = root
    for part in PurePosixPath(relative).parts:
        candidate = current / part
        if candidate.exists():
            current = candidate
            continue
        if not current.is_dir():
            return None
        matches = [c for c in current.iterdir() if c.name.lower() == part.lower()]
        if not matches:
            return None
        current = matches[0]
    return current if current.is_file() else None


class _Containers:
    """Open zip containers of one package once, with a case-insensitive member index."""

    def __init__(self, extracted: Path) -> None:
        self._extracted = extracted
        self._open: dict[str, tuple[zipfile.ZipFile, dict[str, str]]] = {}

    def get(self, container: str) -> tuple[zipfile.ZipFile, dict[str, str]]:
        if container not in self._open:
            path = _case_insensitive_lookup(self._extracted, container)
            if path is None:
                raise FileNotFoundError(f"container {container} is not in the package")
            zf = zipfile.ZipFile(path)
            self._open[container] = (zf, {n.lower(): n for n in zf.namelist()})
        return self._open[container]

    def close(self) -> None:
        for zf, _ in self._open.values():
            zf.close()
        self._open.clear()


def _write_atomic(dest: Path, write: Callable[[Path], None]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    write(tmp)
    tmp.replace(dest)


def materialise_clip(row: InventoryRow, extracted: Path, out_root: Path, containers: _Containers) -> Path:
    """Copy (or unzip) one clip to ``out_root/PKG/<member path>``; returns the path written.

    Already-present files are kept (resumable). Raises ``FileNotFoundError`` when the clip is not in the
    package (matched by path, ignoring case).
    """
    dest = out_root / row.corpus_path
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    if row.container:
        zf, index = containers.get(row.container)
        name = index.get(row.member_path.lower())
        if name is None:
            raise FileNotFoundError(f"{row.member_path} is not in {row.container}")

        def write(tmp: Path) -> None:
            with zf.open(name) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)

    else:
        src_path = _case_insensitive_lookup(extracted, row.member_path)
        if src_path is None:
            raise FileNotFoundError(f"{row.member_path} is not in the package")

        def write(tmp: Path) -> None:
            shutil.copyfile(src_path, tmp)

    _write_atomic(dest, write)
    return dest


# -------------------------------------------------------------------------------------------------- build


def _progress(iterable: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="clip", leave=False)


def build_package(
    package: str,
    rows: Sequence[InventoryRow],
    cache: Path,
    out: Path,
    runner: Runner = _run,
    progress: bool = False,
) -> tuple[list[ManifestRow], bool]:
    """Fetch, unpack and copy the clips of one package.

    Returns the manifest rows (one per clip in ``rows``) and whether the package was unpacked by this
    call (``False`` when it was already extracted). Per-clip failures are recorded in the rows; a
    package-level failure (download, unpack) marks every clip ``package_error``.
    """
    check_not_reserved([package])
    extracted = cache / "extracted" / package
    fresh = False
    try:
        if not is_extracted(extracted):
            deb = fetch_deb(package, cache / "debs", runner)
            log.info("unpacking %s", deb.name)
            extract_deb(deb, extracted)
            fresh = True
    except CorpusError as exc:
        log.error("%s", exc)
        return [ManifestRow(r, "package_error", detail=str(exc)) for r in rows], False
    version = extracted_version(extracted)
    package_licence = read_licence(extracted, package)
    entries = read_copyright_entries(extracted, package)
    containers = _Containers(extracted)
    result: list[ManifestRow] = []
    try:
        for row in _progress(rows, len(rows), package, progress):
            licence = clip_licence(row, entries, package_licence)
            result.append(_build_clip(row, extracted, out, containers, version, licence))
    finally:
        containers.close()
    return result, fresh


def _build_clip(
    row: InventoryRow, extracted: Path, out: Path, containers: _Containers, version: str, licence: str
) -> ManifestRow:
    from engine.errors import AudioError

    try:
        dest = materialise_clip(row, extracted, out, containers)
    except (FileNotFoundError, KeyError, zipfile.BadZipFile, OSError) as exc:
        return ManifestRow(row, "missing", version=version, detail=str(exc), licence=licence)
    try:
        measured = measure_duration(dest)
    except AudioError as exc:
        return ManifestRow(row, "decode_error", version=version, detail=str(exc), licence=licence)
    if durations_match(measured, row.duration_s):
        return ManifestRow(row, "ok", version, measured, licence=licence)
    detail = f"inventory {row.duration_s:.3f} s, decoded {measured:.3f} s"
    return ManifestRow(row, "duration_mismatch", version, measured, detail=detail, licence=licence)


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


def build_corpus(
    rows: Sequence[InventoryRow],
    cache: Path,
    out: Path,
    runner: Runner = _run,
    progress: bool = False,
) -> BuildReport:
    """Build the corpus for ``rows`` (see the module docstring) and write ``out/manifest.csv``.

    Clips skipped by rule are recorded (``skipped:<reason>``) without fetching their package when every
    clip of it is skipped. The manifest merges with an existing one: rows of packages not built now are
    kept, so building package by package accumulates.
    """
    check_not_reserved(r.package for r in rows)
    report = BuildReport()
    by_package: dict[str, list[InventoryRow]] = {}
    for row in rows:
        by_package.setdefault(row.package, []).append(row)
    for package in sorted(by_package):
        todo: list[InventoryRow] = []
        for row in by_package[package]:
            reason = skip_reason(row)
            if reason:
                report.rows.append(ManifestRow(row, f"skipped:{reason}"))
            else:
                todo.append(row)
        if not todo:
            log.info("%s: all %d clips skipped by rule", package, len(by_package[package]))
            continue
        built, fresh = build_package(package, todo, cache, out, runner, progress)
        if fresh:
            report.extracted.append(package)
        failures = Counter(r.status for r in built if r.status not in ("ok", "duration_mismatch"))
        if any(r.status == "package_error" for r in built):
            report.package_failures[package] = built[0].detail
        log.info(
            "%s: %d clips, %d ok, %d duration mismatches, failures %s",
            package,
            len(built),
            sum(r.status == "ok" for r in built),
            sum(r.status == "duration_mismatch" for r in built),
            dict(failures) or "none",
        )
        report.rows.extend(built)
    write_manifest(out / "manifest.csv", report.rows)
    return report


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


# ------------------------------------------------------------------------------------------------ scanning

#: Audio file extensions the scanner reads, and zip containers it looks inside.
AUDIO_EXTENSIONS = frozenset({".wav", ".ogg", ".oga", ".flac", ".mp3", ".aiff", ".aif"})
CONTAINER_EXTENSIONS = frozenset({".zip", ".pk3", ".wz"})
#: Clip durations the scanner keeps, in seconds (inclusive).
SCAN_MIN_S = 0.1
SCAN_MAX_S = 30.0

# Folders or name parts that mean music or speech (not sound effects); matched against whole path parts
# (folders) or whole words of the file name.
_MUSIC_PARTS = frozenset({"music", "musics", "soundtrack", "jingles"})
_SPEECH_PARTS = frozenset(
    {"voice", "voices", "speech", "announcer", "announcers", "taunts", "dialog", "dialogue", "dialogues",
     "narration", "narrator", "callouts", "callout", "atc", "vo"}
)  # fmt: skip


def scan_exclusion(member_path: str, duration_s: float) -> str | None:
    """Why the scanner leaves a clip out of a new inventory, or ``None`` to keep it.

    ``"too_short"``/``"too_long"`` outside :data:`SCAN_MIN_S`–:data:`SCAN_MAX_S` seconds; ``"music"`` or
    ``"speech"`` when a folder of ``member_path`` (or a word of its file name, for music) names it.
    """
    if duration_s < SCAN_MIN_S:
        return "too_short"
    if duration_s > SCAN_MAX_S:
        return "too_long"
    parts = [p.lower() for p in PurePosixPath(member_path).parts]
    folders = set(parts[:-1])
    stem_words = set(re.split(r"[^a-z]+", parts[-1].rsplit(".", 1)[0]))
    if folders & _MUSIC_PARTS or stem_words & {"music", "theme"}:
        return "music"
    if folders & _SPEECH_PARTS:
        return "speech"
    return None


def _audio_duration(source: Path | io.BytesIO) -> float | None:
    import soundfile as sf

    try:
        info = sf.info(source if isinstance(source, io.BytesIO) else str(source))
    except (RuntimeError, sf.LibsndfileError):
        return None
    return info.frames / info.samplerate if info.samplerate > 0 else None


def _draft_fields(member_path: str) -> tuple[str, str]:
    """``(concept_key, auto_query_draft)`` for a member path: the cleaned stem, and the cleaned parent
    folder plus stem (the same kind of drafts as ``sfx_inventory.csv``)."""
    from training.data.captions import clean_name

    path = PurePosixPath(member_path)
    stem = clean_name(path.stem)
    folder = clean_name(path.parent.name) if path.parent.name else ""
    return stem, " ".join(w for w in (folder, stem) if w)


def scan_package(extracted: Path, package: str, version: str = "") -> tuple[list[InventoryRow], Counter[str]]:
    """Inventory the sound clips of an unpacked package (``dpkg -x`` tree at ``extracted``).

    Audio files (:data:`AUDIO_EXTENSIONS`) are read where they lie and inside zip containers
    (:data:`CONTAINER_EXTENSIONS`); each is decoded by libsndfile for its duration (seconds) and kept
    unless :func:`scan_exclusion` gives a reason. Documentation folders are ignored. Returns the rows,
    sorted by container then member path, and a counter of why files were left out (``undecodable``
    included). Raises :class:`CorpusError` for a reserved package.
    """
    check_not_reserved([package])
    rows: list[InventoryRow] = []
    left_out: Counter[str] = Counter()

    def consider(container: str, member: str, duration: float | None) -> None:
        if duration is None:
            left_out["undecodable"] += 1
            return
        reason = scan_exclusion(member, duration)
        if reason:
            left_out[reason] += 1
            return
        concept, draft = _draft_fields(member)
        rows.append(InventoryRow(package, version, container, member, round(duration, 3), concept, draft))

    for path in sorted(extracted.rglob("*")):
        rel = path.relative_to(extracted).as_posix()
        if not path.is_file() or rel.startswith("usr/share/doc/"):
            continue
        suffix = path.suffix.lower()
        if suffix in AUDIO_EXTENSIONS:
            consider("", rel, _audio_duration(path))
        elif suffix in CONTAINER_EXTENSIONS:
            try:
                with zipfile.ZipFile(path) as zf:
                    for info in zf.infolist():
                        if (
                            info.is_dir()
                            or PurePosixPath(info.filename).suffix.lower() not in AUDIO_EXTENSIONS
                        ):
                            continue
                        data = io.BytesIO(zf.read(info))
                        consider(rel, info.filename, _audio_duration(data))
            except zipfile.BadZipFile:
                log.warning("%s: %s is not a readable zip file", package, rel)
    rows.sort(key=lambda r: (r.container, r.member_path))
    return rows, left_out


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


def scan_into_inventory(
    package: str, cache: Path, inventory: Path, runner: Runner = _run
) -> tuple[list[InventoryRow], Counter[str]]:
    """Fetch and unpack ``package`` into ``cache`` (as the builder does), :func:`scan_package` it and
    merge its rows into ``inventory``. Returns what :func:`scan_package` returned."""
    extracted = cache / "extracted" / package
    if not is_extracted(extracted):
        extract_deb(fetch_deb(package, cache / "debs", runner), extracted)
    rows, left_out = scan_package(extracted, package, extracted_version(extracted))
    write_inventory(inventory, rows)
    return rows, left_out


# ----------------------------------------------------------------------------------------------- duplicates

DUPLICATE_THRESHOLD = 0.95
#: Looser test for a training clip against a held-out one (a leak costs more than a lost training clip):
#: the same sound remastered or re-trimmed by another package (Red Eclipse vs Cube 2 correlate 0.90-0.93).
NEAR_DUPLICATE_THRESHOLD = 0.88
NEAR_DUPLICATE_DURATION_REL = 0.05
_FP_RATE = 8000  # Hz: fingerprints compare coarse spectral shape only


def fingerprint(path: Path) -> tuple[float, np.ndarray]:
    """Coarse spectral fingerprint of an audio file for duplicate detection.

    The clip is decoded to mono, resampled to 8 kHz, trimmed of leading/trailing near-silence (below 1 %
    of its peak) and turned into log energies of 16 log-spaced bands over 32 ms frames (hop 16 ms).
    Returns ``(trimmed duration in s, array [frames, bands] float64)``. Raises
    :class:`engine.errors.AudioError` when the file cannot be decoded.
    """
    import soundfile as sf
    import soxr

    from engine.errors import AudioError

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"Cannot decode {path.name}: {exc}", reason="decode_error") from exc
    y = data.mean(axis=1)
    if rate != _FP_RATE and len(y):
        y = soxr.resample(y, rate, _FP_RATE)
    a = np.abs(y)
    if len(a) and a.max() > 0:
        loud = np.nonzero(a > 0.01 * a.max())[0]
        y = y[loud[0] : loud[-1] + 1]
    n_fft, hop = 256, 128
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    edges = np.unique(np.geomspace(2, n_fft // 2 + 1, 17).astype(int))
    bands = np.stack(
        [power[:, lo:hi].sum(axis=1) for lo, hi in zip(edges[:-1], edges[1:], strict=True)], axis=1
    )
    return len(y) / _FP_RATE, np.log(bands + 1e-8)


def find_duplicates(
    fingerprints: dict[str, tuple[float, np.ndarray]],
    threshold: float = DUPLICATE_THRESHOLD,
    duration_rel: float = 0.02,
    pair_filter: Callable[[str, str], bool] | None = None,
) -> list[tuple[str, str, float]]:
    """Pairs of clips whose fingerprints (see :func:`fingerprint`) agree: trimmed durations within
    ``duration_rel`` (+10 ms) and correlation of the band energies over their common length above
    ``threshold``. ``pair_filter(a, b)``, when given, limits the pairs compared.

    Catches copies of one sound shipped by several packages, also when re-encoded or resampled.
    Returns ``(path_a, path_b, correlation)`` with ``path_a < path_b``, sorted.
    """
    items = sorted(fingerprints.items(), key=lambda kv: kv[1][0])
    pairs: list[tuple[str, str, float]] = []
    for i, (a, (dur_a, fa)) in enumerate(items):
        for b, (dur_b, fb) in items[i + 1 :]:
            if dur_b > dur_a * (1 + duration_rel) + 0.01:
                break
            if pair_filter is not None and not pair_filter(a, b):
                continue
            m = min(len(fa), len(fb))
            if m < 3:
                continue
            u, v = fa[:m].ravel(), fb[:m].ravel()
            if u.std() == 0 or v.std() == 0:
                continue
            corr = float(np.corrcoef(u, v)[0, 1])
            if corr > threshold:
                pairs.append((min(a, b), max(a, b), corr))
    return sorted(pairs)


def write_duplicates(path: Path, pairs: Sequence[tuple[str, str, float]]) -> None:
    """Write duplicate pairs as CSV (``a,b,correlation``)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["a", "b", "correlation"])
        writer.writerows((a, b, f"{c:.4f}") for a, b, c in pairs)


def read_duplicates(path: Path) -> list[tuple[str, str, float]]:
    """Read pairs written by :func:`write_duplicates`."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["a"], r["b"], float(r["correlation"])) for r in csv.DictReader(fh)]


def leaking_duplicates(
    pairs: Iterable[tuple[str, str, float]], split_of_path: Callable[[str], str]
) -> set[str]:
    """Clips to leave out so that no sound is in two splits: of each duplicate pair spanning two splits,
    the clip in the lower-priority split (train < val < test) goes. Pairs inside one split are kept."""
    drop: set[str] = set()
    for a, b, _ in pairs:
        sa, sb = split_of_path(a), split_of_path(b)
        if sa == sb:
            continue
        drop.add(a if SPLIT_PRIORITY[sa] < SPLIT_PRIORITY[sb] else b)
    return drop


def _name_key(path: str) -> str:
    """A clip's file name without extension, digits and separators (``explode2.ogg`` → ``explode``)."""
    return re.sub(r"[^a-z]+", "", PurePosixPath(path).stem.lower())


def build_duplicates(
    out: Path,
    rows: Sequence[Mapping[str, str]],
    progress: bool = False,
    split_of_path: Callable[[str], str] | None = None,
) -> list[tuple[str, str, float]]:
    """Fingerprint the usable clips of manifest ``rows`` under ``out`` and write ``out/duplicates.csv``.

    With ``split_of_path`` (corpus path → split), pairs of a training clip and a held-out clip with the
    same file name (digits and separators aside) are also tested with the looser
    :data:`NEAR_DUPLICATE_THRESHOLD` / :data:`NEAR_DUPLICATE_DURATION_REL` (remastered or trimmed
    versions of one sound), so that the training copy can be left out. (The loose test alone would
    pair unrelated explosions: the coarse fingerprint of any decaying broadband sound looks alike.) Pairs of
    two held-out clips only ever use the strict test, which keeps the held-out splits stable.
    """
    from engine.errors import AudioError

    usable = [r for r in rows if r["status"] in ("ok", "duration_mismatch")]
    fps: dict[str, tuple[float, np.ndarray]] = {}
    for r in _progress(usable, len(usable), "fingerprints", progress):
        try:
            fps[r["path"]] = fingerprint(out / r["path"])
        except AudioError as exc:
            log.warning("%s", exc)
    pairs = find_duplicates(fps)
    if split_of_path is not None:

        def train_vs_held_out(a: str, b: str) -> bool:
            split_differs = (split_of_path(a) == "train") != (split_of_path(b) == "train")
            return split_differs and _name_key(a) == _name_key(b)

        near = find_duplicates(
            fps, NEAR_DUPLICATE_THRESHOLD, NEAR_DUPLICATE_DURATION_REL, pair_filter=train_vs_held_out
        )
        pairs = sorted(set(pairs) | set(near))
    write_duplicates(out / "duplicates.csv", pairs)
    return pairs


# --------------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.data.debian_sfx",
        description="Fetch the Debian packages of the sound-effects inventory and copy their clips.",
    )
    p.add_argument("--inventory", type=Path, required=True, help="sfx_inventory.csv")
    p.add_argument("--cache", type=Path, required=True, help="folder for .deb files and unpacked packages")
    p.add_argument("--out", type=Path, required=True, help="corpus root: OUT/PKG/<member path>")
    p.add_argument("--packages", nargs="*", default=None, help="only these packages")
    p.add_argument(
        "--scan-package",
        nargs="+",
        default=(),
        metavar="PKG",
        help="first unpack and scan these packages (clips of 0.1-30 s, music and speech left out by rule) "
        "into the --inventory file, then build them",
    )
    p.add_argument("--skip-packages", nargs="*", default=(), help="leave these packages out")
    p.add_argument(
        "--duplicates", action="store_true", help="also fingerprint the clips and write OUT/duplicates.csv"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0 on success, 1 when packages failed, 2 on a usage error."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        for package in args.scan_package:
            scanned, left_out = scan_into_inventory(package, args.cache, args.inventory)
            log.info(
                "%s: %d clips (%.2f h) inventoried into %s; left out %s",
                package,
                len(scanned),
                sum(r.duration_s for r in scanned) / 3600,
                args.inventory,
                dict(sorted(left_out.items())) or "none",
            )
        packages = args.packages if args.packages is not None else (list(args.scan_package) or None)
        rows = select_rows(read_inventory(args.inventory), packages, args.skip_packages)
        report = build_corpus(rows, args.cache, args.out, progress=not args.no_progress)
    except CorpusError as exc:
        log.error("%s", exc)
        return 2
    if args.duplicates:
        pairs = build_duplicates(
            args.out,
            read_manifest(args.out / "manifest.csv"),
            not args.no_progress,
            split_of_path=lambda path: split_of(path.split("/", 1)[0]),
        )
        log.info("%d duplicate pairs written to %s", len(pairs), args.out / "duplicates.csv")
    counts = report.counts()
    log.info(
        "corpus: %d clips in manifest, %d usable (%.2f h); statuses %s; package failures: %s",
        len(report.rows),
        counts["ok"] + counts["duration_mismatch"],
        report.hours(),
        dict(sorted(counts.items())),
        report.package_failures or "none",
    )
    return 1 if report.package_failures else 0


if __name__ == "__main__":
    raise SystemExit(main())


def sample_clips(corpus: Path, n: int, *, seed: int = 0,
                 extensions: frozenset[str] = frozenset({".wav", ".ogg", ".flac", ".oga", ".mp3"})) -> list[Path]:
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
