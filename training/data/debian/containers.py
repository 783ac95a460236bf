"""Readers for clips stored inside a file of a package, chosen by the file's suffix.

A reader opens one container (``open_container(path)``) and writes a member to a file
(``extract(member, dest)``; ``KeyError`` when the member is not there), then is closed. Members are
matched ignoring case (newer packages rename files). Registered readers (:data:`READERS`):

* ``.zip``/``.pk3``/``.wz`` — zip archives (game data packs);
* ``.rcc`` — Qt binary resource bundles (:mod:`training.data.debian.rcc`; GCompris);
* ``.sf2``/``.sf3`` — General MIDI sound fonts: the member path names a note, which is rendered
  (:mod:`training.data.debian.soundfont`).
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from training.data.debian.rcc import RccFile


class ContainerReader(Protocol):
    """What the corpus builder needs from an open container."""

    def extract(self, member: str, dest: Path) -> None: ...

    def close(self) -> None: ...


class ZipReader:
    """Members of a zip archive, matched ignoring case."""

    def __init__(self, path: Path) -> None:
        self._zf = zipfile.ZipFile(path)
        self._index = {n.lower(): n for n in self._zf.namelist()}

    def extract(self, member: str, dest: Path) -> None:
        name = self._index[member.lower()]
        with self._zf.open(name) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst)

    def close(self) -> None:
        self._zf.close()


class RccReader:
    """Members of a Qt resource bundle, matched ignoring case."""

    def __init__(self, path: Path) -> None:
        self._rcc = RccFile(path)
        self._index = {n.lower(): n for n in self._rcc.names()}

    def extract(self, member: str, dest: Path) -> None:
        dest.write_bytes(self._rcc.read(self._index[member.lower()]))

    def close(self) -> None:
        self._rcc = None  # type: ignore[assignment]


def _soundfont(path: Path) -> ContainerReader:
    from training.data.debian.soundfont import SoundFontReader

    return SoundFontReader(path)


#: Container suffix (lower case) → reader factory.
READERS: dict[str, Callable[[Path], ContainerReader]] = {
    ".zip": ZipReader,
    ".pk3": ZipReader,
    ".wz": ZipReader,
    ".rcc": RccReader,
    ".sf2": _soundfont,
    ".sf3": _soundfont,
}


def open_container(path: Path) -> ContainerReader:
    """A reader for the container at ``path``, chosen by its suffix (zip for unknown suffixes, as the
    first inventories only had zip containers)."""
    return READERS.get(path.suffix.lower(), ZipReader)(path)
