"""What an indexing run has to do, decided without touching audio or the database.

:func:`scan_root` lists one root on disk beside what the database knows of it; :func:`plan` is pure: it
turns those listings into new / changed / resumed files to decode, moves (same content fingerprint: the
windows and vectors are kept, only the path changes) and vanished files to delete. Records are never
deleted because a root *looks* empty or unreadable: a root that had files and now shows none, or would lose
more than :data:`MASS_DELETE_SHARE` of them (and at least :data:`MASS_DELETE_MIN` files) in one run, is
reported as unavailable and kept as it was, unless the caller allows the mass delete. Files under a
folder that could not be listed are kept too.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.audio import AUDIO_EXTENSIONS
from engine.errors import LibraryError
from engine.storage.scanner import ScannedFile, scan, to_rel_posix

log = logging.getLogger(__name__)

MASS_DELETE_SHARE = 0.5
MASS_DELETE_MIN = 20


class Change(enum.Enum):
    """Why a file is decoded again."""

    NEW = "new"  # no row yet
    CHANGED = "changed"  # size or mtime differs from its row
    RESUMED = "resumed"  # its row is complete but it has no vectors for this bundle (a run was killed)


@dataclass(frozen=True)
class KnownFile:
    """What the database holds about one file of a root."""

    id: int
    rel_path: str
    size: int
    mtime_ns: int
    ok: bool  # status == "ok"
    fingerprint: str | None
    has_vectors: bool  # has vectors for the bundle being indexed


@dataclass
class RootListing:
    """One root as the disk and the database see it (what :func:`scan_root` returns).

    ``found`` is ``None`` when the root itself could not be read (``failure`` says why)."""

    root: Path
    root_id: int
    known: dict[str, KnownFile]
    found: list[ScannedFile] | None
    scan_errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    failure: str | None = None


@dataclass
class Job:
    """One file to decode and embed."""

    change: Change
    root_id: int
    file: ScannedFile
    file_id: int | None = None  # its existing row (changed / resumed)
    fingerprint: str | None = None

    @property
    def root(self) -> Path:
        return self.file.root

    @property
    def path(self) -> Path:
        return self.file.path


@dataclass(frozen=True)
class Move:
    """A vanished file found again elsewhere: row ``file_id`` now lives at ``file``."""

    file_id: int
    root_id: int
    file: ScannedFile


@dataclass
class Plan:
    """The work of one run. ``jobs`` keeps scan order; :attr:`new`, :attr:`changed` and :attr:`resumed` are
    views of it."""

    jobs: list[Job] = field(default_factory=list)
    moved: list[Move] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)  # file ids
    unchanged: int = 0
    unavailable_roots: list[dict] = field(default_factory=list)  # {path, known, found, vanished, reason}
    scan_errors: list[tuple[str, str, str]] = field(default_factory=list)  # (path, "unreadable", reason)

    def _of(self, change: Change) -> list[Job]:
        return [j for j in self.jobs if j.change is change]

    @property
    def new(self) -> list[Job]:
        return self._of(Change.NEW)

    @property
    def changed(self) -> list[Job]:
        return self._of(Change.CHANGED)

    @property
    def resumed(self) -> list[Job]:
        return self._of(Change.RESUMED)


def scan_root(root: Path, root_id: int, known: dict[str, KnownFile], *, cancelled: Callable[[], bool],
              on_file: Callable[[int, str], None] | None = None) -> RootListing:
    """List the audio files under ``root`` (see :func:`engine.storage.scanner.scan`) beside ``known``.

    ``on_file(n, rel_path)`` is called every 500 files. A root that cannot be read at all gives a listing
    with ``found=None``."""
    listing = RootListing(root, root_id, known, [])
    found = listing.found
    assert found is not None

    def on_error(path: str, reason: str) -> None:
        listing.scan_errors.append((path, reason))

    try:  # the scan raises before its first file when the root itself cannot be read
        for sf in scan(root, AUDIO_EXTENSIONS, cancel=cancelled, on_error=on_error):
            found.append(sf)
            if on_file is not None and len(found) % 500 == 0:
                on_file(len(found), sf.rel_path)
    except LibraryError as exc:
        listing.found = None
        listing.failure = str(exc)
    return listing


def _rel_prefix(root: Path, path: str) -> str | None:
    try:
        return to_rel_posix(root, Path(path))
    except ValueError:
        return None


def _gone(listing: RootListing, seen: set[str], allow_mass_delete: bool, plan: Plan) -> list[KnownFile]:
    """Known files of a root that are not on disk any more, unless the root looks unavailable."""
    blocked = [b for b in (_rel_prefix(listing.root, p) for p, _ in listing.scan_errors) if b is not None]
    gone = [kf for rel, kf in listing.known.items()
            if rel not in seen and not any(rel == b or rel.startswith(b + "/") for b in blocked)]
    known = len(listing.known)
    if gone and not allow_mass_delete and (
        not seen or (len(gone) > MASS_DELETE_SHARE * known and len(gone) >= MASS_DELETE_MIN)
    ):
        reason = ("it had files and now shows none" if not seen else
                  f"{len(gone)} of its {known} files would be removed at once")
        log.warning("root %s looks unavailable (%s); kept as it was", listing.root, reason)
        plan.unavailable_roots.append({"path": str(listing.root), "known": known, "found": len(seen),
                                       "vanished": len(gone), "reason": reason})
        return []
    return gone


def plan(listings: Iterable[RootListing], *, fingerprint: Callable[[Path], str | None],
         allow_mass_delete: bool = False) -> Plan:
    """Decide what a run does. Pure but for ``fingerprint(path)`` (a content fingerprint, ``None`` when
    unreadable), asked only for new files the size of a vanished one (the rest are fingerprinted while
    decoding, so planning a big new folder reads no audio)."""
    out = Plan()
    vanished: list[KnownFile] = []
    for listing in listings:
        if listing.found is None:  # root unreadable: keep everything under it
            out.unavailable_roots.append({"path": str(listing.root), "known": len(listing.known), "found": 0,
                                          "vanished": 0, "reason": listing.failure or "unreadable"})
            continue
        out.scan_errors.extend((p, "unreadable", r) for p, r in listing.scan_errors)
        seen: set[str] = set()
        for sf in listing.found:
            seen.add(sf.rel_path)
            kf = listing.known.get(sf.rel_path)
            if kf is None:
                out.jobs.append(Job(Change.NEW, listing.root_id, sf))
            elif kf.size != sf.size or kf.mtime_ns != sf.mtime_ns:
                out.jobs.append(Job(Change.CHANGED, listing.root_id, sf, kf.id))
            elif kf.ok and not kf.has_vectors:
                out.jobs.append(Job(Change.RESUMED, listing.root_id, sf, kf.id, kf.fingerprint))
            else:
                out.unchanged += 1
        vanished.extend(_gone(listing, seen, allow_mass_delete, out))
    _find_moves(out, vanished, fingerprint)
    return out


def _find_moves(out: Plan, vanished: Sequence[KnownFile], fingerprint: Callable[[Path], str | None]) -> None:
    """A new file whose fingerprint matches a vanished one's is that file moved."""
    by_print: dict[tuple[str, int], list[int]] = {}
    for kf in vanished:
        if kf.fingerprint:
            by_print.setdefault((kf.fingerprint, kf.size), []).append(kf.id)
    sizes = {kf.size for kf in vanished}
    gone = {kf.id for kf in vanished}
    remaining: list[Job] = []
    for job in out.jobs:
        if job.change is Change.NEW and job.file.size in sizes:
            job.fingerprint = fingerprint(job.path)
            olds = by_print.get((job.fingerprint, job.file.size)) if job.fingerprint else None
            if olds:
                old = olds.pop()
                gone.discard(old)
                out.moved.append(Move(old, job.root_id, job.file))
                continue
        remaining.append(job)
    out.jobs = remaining
    out.vanished = [kf.id for kf in vanished if kf.id in gone]
