"""Inventory the sound clips of an unpacked package (how ``extra_inventory.csv`` was made)."""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

from training.data.captions import clean_name
from training.data.debian.corpus import InventoryRow, check_not_reserved, write_inventory
from training.data.debian.fetch import Runner, _run, extract_deb, extracted_version, fetch_deb, is_extracted

log = logging.getLogger(__name__)


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
