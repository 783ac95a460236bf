"""Read Qt binary resource bundles (``.rcc``, as written by ``rcc --binary``), e.g. GCompris's sounds.

The format (Qt's ``src/tools/rcc/rcc.cpp``, ``RCCResourceLibrary::writeHeader`` and friends; all
integers big-endian):

* header: magic ``qres``, format version (u32, 1–3), offsets of the tree, the data and the names (u32
  each), and from version 3 a flags word (u32);
* tree: fixed-size nodes (14 bytes; 22 from version 2, which appends a u64 modification time), node 0
  the root. A node is ``name offset`` (u32), ``flags`` (u16: 1 zlib-compressed, 2 directory, 4 zstd)
  and then, for a directory, ``child count`` (u32) and ``first child index`` (u32), for a file
  ``territory`` (u16), ``language`` (u16) and ``data offset`` (u32);
* names: ``length`` (u16, in UTF-16 units), ``hash`` (u32), then the UTF-16BE name;
* data: ``size`` (u32) then the bytes; zlib-compressed entries start with their uncompressed size
  (u32, ``qCompress``) before the zlib stream.

:class:`RccFile` lists the files (``/``-joined paths without a leading slash) and returns their bytes.
zstd-compressed entries raise :class:`RccError` (no zstd in the standard library; GCompris uses zlib or
nothing).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from engine.errors import EarshotError

MAGIC = b"qres"
_COMPRESSED = 0x01
_DIRECTORY = 0x02
_COMPRESSED_ZSTD = 0x04


class RccError(EarshotError):
    """A file is not a readable Qt resource bundle, or an entry cannot be read."""


class RccFile:
    """A Qt binary resource bundle held in memory; ``names()`` lists its files, ``read(name)`` returns one.

    Raises :class:`RccError` when ``source`` is not an ``.rcc`` file or its tree is inconsistent.
    """

    def __init__(self, source: Path | bytes) -> None:
        self._buf = source if isinstance(source, bytes) else Path(source).read_bytes()
        if len(self._buf) < 20 or self._buf[:4] != MAGIC:
            raise RccError("not a Qt resource bundle (no 'qres' magic)")
        self.version, self._tree, self._data, self._names = struct.unpack_from(">IIII", self._buf, 4)
        if self.version not in (1, 2, 3):
            raise RccError(f"unsupported rcc format version {self.version}")
        self._node_size = 14 if self.version == 1 else 22
        self._files: dict[str, tuple[int, int]] = {}  # path -> (flags, data offset)
        self._walk(0, "", depth=0)

    def _u16(self, at: int) -> int:
        return struct.unpack_from(">H", self._buf, at)[0]

    def _u32(self, at: int) -> int:
        return struct.unpack_from(">I", self._buf, at)[0]

    def _name(self, offset: int) -> str:
        at = self._names + offset
        length = self._u16(at)
        raw = self._buf[at + 6 : at + 6 + 2 * length]
        if len(raw) != 2 * length:
            raise RccError("a name runs past the end of the file")
        return raw.decode("utf-16-be")

    def _walk(self, index: int, prefix: str, depth: int) -> None:
        if depth > 64:
            raise RccError("the resource tree is too deep (a loop?)")
        at = self._tree + index * self._node_size
        try:
            name_offset, flags = self._u32(at), self._u16(at + 4)
            name = "" if index == 0 else self._name(name_offset)
            path = f"{prefix}/{name}" if prefix else name
            if flags & _DIRECTORY:
                count, first = self._u32(at + 6), self._u32(at + 10)
                for child in range(first, first + count):
                    if child <= index:
                        raise RccError("a directory points backwards in the tree")
                    self._walk(child, path, depth + 1)
            else:
                self._files[path] = (flags, self._u32(at + 10))
        except struct.error as exc:
            raise RccError("the resource tree runs past the end of the file") from exc

    def names(self) -> list[str]:
        """Paths of the files in the bundle, sorted (``"gcompris/src/.../cat.wav"``)."""
        return sorted(self._files)

    def read(self, name: str) -> bytes:
        """The content of file ``name`` (decompressed). Raises ``KeyError`` when it is not in the bundle
        and :class:`RccError` when it cannot be read."""
        flags, offset = self._files[name]
        at = self._data + offset
        try:
            size = self._u32(at)
        except struct.error as exc:
            raise RccError(f"{name}: data offset past the end of the file") from exc
        payload = self._buf[at + 4 : at + 4 + size]
        if len(payload) != size:
            raise RccError(f"{name}: data runs past the end of the file")
        if flags & _COMPRESSED_ZSTD:
            raise RccError(f"{name}: zstd-compressed entries are not supported")
        if flags & _COMPRESSED:
            try:
                return zlib.decompress(payload[4:])
            except zlib.error as exc:
                raise RccError(f"{name}: corrupt zlib data ({exc})") from exc
        return payload
