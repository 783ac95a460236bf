"""Build the corpus: fetch and unpack each package, copy (or extract) its inventoried clips, write the manifest.

1. refuses the reserved packages and skips drum one-shots and keyboard clicks by rule
   (:func:`training.data.debian.corpus.skip_reason`);
2. ``apt-get download``\\ s each package into ``CACHE/debs/`` (once; ``apt-get update`` and one retry on
   failure) and ``dpkg -x``\\ s it into ``CACHE/extracted/PKG/`` (once: a marker file makes it resumable);
3. copies every clip to ``OUT/PKG/<member path>`` (members of containers are extracted or rendered by the
   container reader registered for their suffix, see :data:`CONTAINER_READERS`), decodes its header to
   check the duration against the inventory (a newer package may differ: clips are matched by path,
   mismatches are recorded), and reads ``usr/share/doc/PKG/copyright`` for a licence string;
4. writes ``OUT/manifest.csv``, one row per inventory clip, skipped and failed clips included with their
   status. Failures are recorded, never fatal.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from training.data.debian.containers import ContainerReader, open_container
from training.data.debian.corpus import (
    BuildReport,
    CorpusError,
    InventoryRow,
    ManifestRow,
    check_not_reserved,
    durations_match,
    measure_duration,
    progress_iter,
    skip_reason,
    write_manifest,
)
from training.data.debian.fetch import Runner, _run, extract_deb, extracted_version, fetch_deb, is_extracted
from training.data.debian.licences import clip_licence, read_copyright_entries, read_licence
from training.data.debian.rcc import RccError

log = logging.getLogger(__name__)


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
    """Open the containers of one package once (:func:`training.data.debian.containers.open_container`)."""

    def __init__(self, extracted: Path) -> None:
        self._extracted = extracted
        self._open: dict[str, ContainerReader] = {}

    def get(self, container: str) -> ContainerReader:
        if container not in self._open:
            path = _case_insensitive_lookup(self._extracted, container)
            if path is None:
                raise FileNotFoundError(f"container {container} is not in the package")
            self._open[container] = open_container(path)
        return self._open[container]

    def close(self) -> None:
        for reader in self._open.values():
            reader.close()
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
        reader = containers.get(row.container)

        def write(tmp: Path) -> None:
            try:
                reader.extract(row.member_path, tmp)
            except KeyError:
                raise FileNotFoundError(f"{row.member_path} is not in {row.container}") from None

    else:
        src_path = _case_insensitive_lookup(extracted, row.member_path)
        if src_path is None:
            raise FileNotFoundError(f"{row.member_path} is not in the package")

        def write(tmp: Path) -> None:
            shutil.copyfile(src_path, tmp)

    _write_atomic(dest, write)
    return dest


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
        for row in progress_iter(rows, len(rows), package, progress):
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
    except (CorpusError, RccError) as exc:  # a container that cannot be read or rendered
        return ManifestRow(row, "container_error", version=version, detail=str(exc), licence=licence)
    try:
        measured = measure_duration(dest)
    except AudioError as exc:
        return ManifestRow(row, "decode_error", version=version, detail=str(exc), licence=licence)
    if durations_match(measured, row.duration_s):
        return ManifestRow(row, "ok", version, measured, licence=licence)
    detail = f"inventory {row.duration_s:.3f} s, decoded {measured:.3f} s"
    return ManifestRow(row, "duration_mismatch", version, measured, detail=detail, licence=licence)


def build_corpus(
    rows: Sequence[InventoryRow],
    cache: Path,
    out: Path,
    runner: Runner = _run,
    progress: bool = False,
    skip_rules: bool = True,
) -> BuildReport:
    """Build the corpus for ``rows`` (see the module docstring) and write ``out/manifest.csv``.

    Clips skipped by rule are recorded (``skipped:<reason>``) without fetching their package when every
    clip of it is skipped. ``skip_rules=False`` builds every row (for inventories that chose their drum
    clips already, such as the coverage inventory, which caps them per kit). The manifest merges with an existing one: rows of packages not built now are
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
            reason = skip_reason(row) if skip_rules else None
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
