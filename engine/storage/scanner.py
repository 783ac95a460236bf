"""Find the audio files under a library root, and fingerprint them for move detection.

Paths are stored relative to their root in POSIX form (``Drums/Kick 01.wav``) so a library on a moved
drive can be re-linked by changing the root alone.

Walk rules (:func:`scan`):

* iterative ``os.scandir`` walk; entries of each directory in sorted (code-point) order, depth first;
* hidden names (starting with ``.``, which covers AppleDouble ``._*`` files), ``__MACOSX`` and system
  folders such as ``$RECYCLE.BIN`` are skipped;
* extensions match case-insensitively;
* directory symlinks are followed but never twice into the same directory (``(st_dev, st_ino)`` of every
  visited directory is remembered), so loops end. Real directories are walked before symlinked ones, so
  a folder reachable both directly and through a link keeps its real path; a file reached only through
  a link gets the rel_path of the link location;
* a directory that vanishes or cannot be listed, a broken symlink, an unreadable entry: reported through
  ``on_error(path, reason)`` and skipped — never fatal.

This module never imports torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import AudioError, LibraryError

log = logging.getLogger(__name__)

SKIPPED_NAMES = frozenset({"__MACOSX", "$RECYCLE.BIN", "System Volume Information", "@eaDir"})
"""Directory (or file) names never scanned, besides every name that starts with a dot."""

_FINGERPRINT_TAG = b"earshot-fp1"
_CANCEL_EVERY = 256


@dataclass(frozen=True)
class ScannedFile:
    """One audio file found by :func:`scan`.

    Attributes:
        root: the library root it was found under (absolute, resolved).
        rel_path: POSIX path relative to ``root`` (what the database stores).
        size: file size in bytes.
        mtime_ns: modification time in nanoseconds since the epoch.
    """

    root: Path
    rel_path: str
    size: int
    mtime_ns: int

    @property
    def path(self) -> Path:
        """The absolute path of the file."""
        return from_rel_posix(self.root, self.rel_path)


def normalise_extensions(
    extensions: frozenset[str] | set[str] | list[str] | tuple[str, ...],
) -> frozenset[str]:
    """``{"WAV", ".flac"}`` -> ``{".wav", ".flac"}``: lower case with a leading dot."""
    out = set()
    for ext in extensions:
        ext = ext.strip().lower()
        if ext:
            out.add(ext if ext.startswith(".") else "." + ext)
    return frozenset(out)


def _is_hidden(entry: os.DirEntry[str]) -> bool:
    name = entry.name
    if name.startswith(".") or name in SKIPPED_NAMES:
        return True
    attrs = getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0)
    if attrs and os.name == "nt":  # Windows "hidden" attribute; DirEntry.stat() is free there
        try:
            return bool(entry.stat(follow_symlinks=False).st_file_attributes & attrs)
        except OSError:
            return False
    return False


def _reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "vanished while scanning"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, NotADirectoryError):
        return "not a folder"
    return exc.strerror or type(exc).__name__


def scan(
    root: Path,
    extensions: frozenset[str],
    *,
    follow_symlinks: bool = True,
    cancel: Callable[[], bool] | None = None,
    on_error: Callable[[str, str], None] | None = None,
) -> Iterator[ScannedFile]:
    """Yield the files under ``root`` whose extension is in ``extensions``, in a deterministic order.

    Args:
        root: library folder. It is resolved to an absolute path first.
        extensions: e.g. ``{".wav", ".flac"}`` (case and the leading dot do not matter).
        follow_symlinks: when False, symlinks (to files or folders) are skipped.
        cancel: polled regularly; when it returns True the walk stops (the iterator just ends).
        on_error: ``on_error(path, reason)`` for every entry skipped because of an error.

    Raises:
        LibraryError: the root itself is missing, not a folder or unreadable. (An unplugged drive must
            not look like an empty library, or a caller would drop every file it knew.)
    """
    exts = normalise_extensions(extensions)
    try:
        root = Path(root).expanduser().resolve(strict=True)
        root_stat = root.stat()
    except OSError as exc:
        raise LibraryError(f"The library folder {root} cannot be reached: {_reason(exc)}.") from exc
    if not stat.S_ISDIR(root_stat.st_mode):
        raise LibraryError(f"The library folder {root} is not a folder.")
    try:
        with os.scandir(root):
            pass
    except OSError as exc:
        raise LibraryError(f"The library folder {root} cannot be read: {_reason(exc)}.") from exc

    def report(path: str, reason: str) -> None:
        log.debug("scan: skipped %s: %s", path, reason)
        if on_error is not None:
            on_error(path, reason)

    visited: set[tuple[int, int]] = {(root_stat.st_dev, root_stat.st_ino)}
    # Directory symlinks met during a pass; walked (in the order met) after all real directories.
    linked: list[tuple[str, str]] = []
    seen = 0

    def walk(top: str, top_rel: str) -> Iterator[ScannedFile]:
        nonlocal seen
        # stack of (directory path, rel prefix, remaining sorted entries), processed depth first
        stack: list[tuple[str, str, list[os.DirEntry[str]]]] = []

        def push(path: str, rel: str) -> None:
            try:
                with os.scandir(path) as it:
                    entries = sorted(it, key=lambda e: e.name, reverse=True)
            except OSError as exc:
                report(path, _reason(exc))
                return
            stack.append((path, rel, entries))

        push(top, top_rel)
        while stack:
            if cancel is not None and cancel():
                return
            _, rel_dir, entries = stack[-1]
            if not entries:
                stack.pop()
                continue
            entry = entries.pop()
            if _is_hidden(entry):
                continue
            seen += 1
            if cancel is not None and seen % _CANCEL_EVERY == 0 and cancel():
                return
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                report(entry.path, "file name is not valid UTF-8")
                continue
            try:
                is_link = entry.is_symlink()
                if is_link and not follow_symlinks:
                    continue
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = not is_dir and entry.is_file(follow_symlinks=True)
            except OSError as exc:
                report(entry.path, _reason(exc))
                continue
            if is_link and not (is_dir or is_file):
                report(entry.path, "broken symlink")
                continue
            if is_dir:
                if is_link:
                    linked.append((entry.path, rel))
                    continue
                try:
                    st = entry.stat(follow_symlinks=True)
                except OSError as exc:
                    report(entry.path, _reason(exc))
                    continue
                key = (st.st_dev, st.st_ino)
                if key in visited:
                    continue
                visited.add(key)
                push(entry.path, rel)
                continue
            if not is_file or os.path.splitext(entry.name)[1].lower() not in exts:
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                report(entry.path, _reason(exc))
                continue
            yield ScannedFile(root=root, rel_path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns)

    yield from walk(str(root), "")
    while linked:
        batch, linked = linked, []
        for path, rel in batch:
            if cancel is not None and cancel():
                return
            try:
                st = os.stat(path)
            except OSError as exc:
                report(path, _reason(exc))
                continue
            key = (st.st_dev, st.st_ino)
            if key in visited:
                continue
            visited.add(key)
            yield from walk(path, rel)


def content_hash(path: Path, *, chunk: int = 1 << 20) -> str:
    """A fast content *fingerprint* (not a full-file hash) used to recognise a moved or renamed file.

    blake2b (128-bit) over the file size, the first ``chunk`` bytes, ``chunk`` bytes from the middle and
    the last ``chunk`` bytes; files up to ``3 * chunk`` bytes are hashed whole. Two files that differ only
    outside those regions get the same fingerprint — compare size and mtime too before trusting it.

    Returns:
        32 hex characters.

    Raises:
        AudioError: the file cannot be read (``reason="unreadable"``).
    """
    path = Path(path)
    h = hashlib.blake2b(digest_size=16)
    h.update(_FINGERPRINT_TAG)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            h.update(size.to_bytes(8, "little"))
            if size <= 3 * chunk:
                h.update(fh.read())
            else:
                for offset in (0, (size - chunk) // 2, size - chunk):
                    fh.seek(offset)
                    h.update(fh.read(chunk))
    except OSError as exc:
        raise AudioError(f"Cannot read {path}: {_reason(exc)}.", reason="unreadable") from exc
    return h.hexdigest()


def to_rel_posix(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (lexical: symlinks are not resolved).

    Raises:
        ValueError: ``path`` is not under ``root``.
    """
    rel = Path(path).relative_to(Path(root))
    if not rel.parts:
        raise ValueError(f"{path} is the root itself, not a file under it")
    return PurePosixPath(*rel.parts).as_posix()


def from_rel_posix(root: Path, rel: str) -> Path:
    """The absolute path of the stored relative path ``rel`` under ``root`` (any OS).

    Raises:
        ValueError: ``rel`` is empty, absolute or climbs out of the root with ``..``.
    """
    parts = PurePosixPath(rel).parts
    bad_chars = (":", "\\") if os.name == "nt" else ()
    if (
        not parts
        or rel.startswith("/")
        or any(part == ".." or any(c in part for c in bad_chars) for part in parts)
    ):
        raise ValueError(f"not a relative library path: {rel!r}")
    return Path(root).joinpath(*parts)
