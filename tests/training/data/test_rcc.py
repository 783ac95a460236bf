"""Tests for the Qt resource bundle reader (training/data/debian/rcc.py) on small synthetic bundles."""

from __future__ import annotations

import struct
import zlib

import pytest

from training.data.debian.rcc import MAGIC, RccError, RccFile


def write_rcc(files: dict[str, bytes], version: int = 2, compress: frozenset[str] = frozenset()) -> bytes:
    """A ``.rcc`` laid out as Qt's ``rcc --binary`` writes it: header, breadth-first tree, data, names."""
    tree: dict = {}
    for path, content in files.items():
        node = tree
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = (path, content)
    names = bytearray()
    name_at: dict[str, int] = {}

    def name_offset(name: str) -> int:
        if name not in name_at:
            name_at[name] = len(names)
            encoded = name.encode("utf-16-be")
            names.extend(struct.pack(">HI", len(encoded) // 2, zlib.crc32(encoded)) + encoded)
        return name_at[name]

    data = bytearray()
    tail = b"\0" * 8 if version >= 2 else b""
    nodes: list[bytes] = [b""]
    queue: list[tuple[int, str, object]] = [(0, "", tree)]
    while queue:
        index, name, value = queue.pop(0)
        offset = name_offset(name) if index else 0
        if isinstance(value, dict):
            first, children = len(nodes), sorted(value.items())
            nodes.extend(b"" for _ in children)
            queue.extend((first + k, n, v) for k, (n, v) in enumerate(children))
            nodes[index] = struct.pack(">IHII", offset, 2, len(children), first) + tail
        else:
            path, content = value  # type: ignore[misc]
            flags = 0
            if path in compress:
                content, flags = struct.pack(">I", len(content)) + zlib.compress(content), 1
            nodes[index] = struct.pack(">IHHHI", offset, flags, 0, 0, len(data)) + tail
            data.extend(struct.pack(">I", len(content)) + content)
    header_size = 24 if version >= 3 else 20
    tree_bytes = b"".join(nodes)
    header = MAGIC + struct.pack(
        ">IIII",
        version,
        header_size,
        header_size + len(tree_bytes),
        header_size + len(tree_bytes) + len(data),
    )
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + tree_bytes + bytes(data) + bytes(names)


FILES = {
    "gcompris/src/activities/x/resource/cat.wav": b"RIFF-cat" * 10,
    "gcompris/src/activities/x/resource/dog.ogg": b"OggS-dog",
    "gcompris/src/activities/x/x.svg": b"<svg/>",
    "top.txt": b"",
}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_lists_and_reads_every_file(version):
    rcc = RccFile(
        write_rcc(FILES, version, compress=frozenset({"gcompris/src/activities/x/resource/cat.wav"}))
    )
    assert rcc.version == version
    assert rcc.names() == sorted(FILES)
    for name, content in FILES.items():
        assert rcc.read(name) == content


def test_reads_from_a_path(tmp_path):
    path = tmp_path / "x.rcc"
    path.write_bytes(write_rcc({"a/é.wav": b"12345"}))
    assert RccFile(path).read("a/é.wav") == b"12345"


def test_unknown_member_is_a_key_error():
    with pytest.raises(KeyError):
        RccFile(write_rcc(FILES)).read("nope.wav")


@pytest.mark.parametrize(
    "blob", [b"", b"not an rcc file at all", MAGIC + struct.pack(">IIII", 9, 20, 20, 20)]
)
def test_not_an_rcc_is_a_clear_error(blob):
    with pytest.raises(RccError):
        RccFile(blob)


def test_truncated_bundle_is_a_clear_error():
    blob = write_rcc(FILES)
    with pytest.raises(RccError):
        RccFile(blob[:40])


def test_corrupt_compressed_entry_is_a_clear_error():
    blob = bytearray(write_rcc({"a.wav": b"x" * 100}, compress=frozenset({"a.wav"})))
    i = blob.index(zlib.compress(b"x" * 100))
    blob[i + 2 : i + 6] = b"\xff\xff\xff\xff"
    with pytest.raises(RccError):
        RccFile(bytes(blob)).read("a.wav")
