from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from engine.errors import AudioError, LibraryError
from engine.storage.scanner import (
    ScannedFile,
    content_hash,
    from_rel_posix,
    normalise_extensions,
    scan,
    to_rel_posix,
)

AUDIO = frozenset({".wav", ".flac", ".mp3"})
needs_symlinks = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def rels(root: Path, **kw) -> list[str]:
    return [f.rel_path for f in scan(root, AUDIO, **kw)]


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    touch(root / "b.wav", b"12345")
    touch(root / "a.WAV")
    touch(root / "notes.txt")
    touch(root / "Drums" / "Kicks" / "kick 01.flac")
    touch(root / "Drums" / "snare.Mp3")
    touch(root / "Drums" / "._snare.Mp3")  # AppleDouble
    touch(root / ".hidden" / "secret.wav")
    touch(root / ".dot.wav")
    touch(root / "__MACOSX" / "Drums" / "kick.wav")
    touch(root / "ambience" / "rain.ogg")
    (root / "empty").mkdir()
    return root


def test_nested_hidden_and_extension_case(library: Path) -> None:
    assert rels(library) == ["Drums/Kicks/kick 01.flac", "Drums/snare.Mp3", "a.WAV", "b.wav"]


def test_scanned_file_fields(library: Path) -> None:
    found = {f.rel_path: f for f in scan(library, frozenset({"wav"}))}  # extension without the dot
    b = found["b.wav"]
    assert isinstance(b, ScannedFile)
    assert b.root == library.resolve() and b.root.is_absolute()
    st = (library / "b.wav").stat()
    assert (b.size, b.mtime_ns) == (5, st.st_mtime_ns)
    assert b.path == library.resolve() / "b.wav"


def test_order_is_deterministic_and_sorted(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    names = ["z.wav", "m/y.wav", "m/a.wav", "A.wav", "b/c/d.wav", "b.wav", "0.wav"]
    for name in names:
        touch(root / name)
    first = rels(root)
    assert first == ["0.wav", "A.wav", "b/c/d.wav", "b.wav", "m/a.wav", "m/y.wav", "z.wav"]
    assert rels(root) == first


def test_rel_paths_are_posix(library: Path) -> None:
    for rel in rels(library):
        assert "\\" not in rel and not rel.startswith("/")
        assert from_rel_posix(library.resolve(), rel).is_file()


@needs_symlinks
def test_symlink_loop_terminates(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    touch(root / "sub" / "s.wav")
    os.symlink(root, root / "sub" / "up")  # sub/up -> its parent's parent: a loop
    os.symlink(root / "sub", root / "sub" / "self")  # sub/self -> sub
    assert rels(root) == ["sub/s.wav"]


@needs_symlinks
def test_symlinked_folder_outside_root_uses_link_location(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    touch(outside / "deep" / "x.wav")
    root = tmp_path / "lib"
    touch(root / "real" / "y.wav")
    os.symlink(outside, root / "aaa-link")
    os.symlink(root / "real", root / "0-alias")  # inside the root: the real path wins
    os.symlink(outside / "deep" / "x.wav", root / "real" / "link.wav")  # file symlink
    got = rels(root)
    assert sorted(got) == ["aaa-link/deep/x.wav", "real/link.wav", "real/y.wav"]
    assert rels(root, follow_symlinks=False) == ["real/y.wav"]


@needs_symlinks
def test_broken_symlink_is_reported_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    touch(root / "ok.wav")
    os.symlink(tmp_path / "missing.wav", root / "gone.wav")
    errors: list[tuple[str, str]] = []
    assert rels(root, on_error=lambda p, r: errors.append((p, r))) == ["ok.wav"]
    assert errors == [(str(root.resolve() / "gone.wav"), "broken symlink")]


def test_unreadable_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "lib"
    touch(root / "locked" / "x.wav")
    touch(root / "z.wav")
    real_scandir = os.scandir

    def scandir(path):  # chmod 000 does not stop root, so refuse the listing here
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr("engine.storage.scanner.os.scandir", scandir)
    errors: list[tuple[str, str]] = []
    assert rels(root, on_error=lambda p, r: errors.append((p, r))) == ["z.wav"]
    assert errors == [(str(root.resolve() / "locked"), "permission denied")]


def test_folder_vanishing_during_scan_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    touch(root / "a" / "1.wav")
    touch(root / "b" / "2.wav")
    touch(root / "c.wav")
    errors: list[tuple[str, str]] = []
    found = []
    for f in scan(root, AUDIO, on_error=lambda p, r: errors.append((p, r))):
        found.append(f.rel_path)
        if f.rel_path == "a/1.wav":
            shutil.rmtree(root / "b")
    assert found == ["a/1.wav", "c.wav"]
    assert errors == [(str(root.resolve() / "b"), "vanished while scanning")]


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(LibraryError):
        list(scan(tmp_path / "nope", AUDIO))
    touch(tmp_path / "file.wav")
    with pytest.raises(LibraryError):
        list(scan(tmp_path / "file.wav", AUDIO))


def test_cancel_stops_the_walk(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    for i in range(600):
        touch(root / f"d{i // 100}" / f"{i:03d}.wav")
    found = []
    for f in scan(root, AUDIO, cancel=lambda: len(found) >= 10):
        found.append(f)
    assert 10 <= len(found) < 600
    assert rels(root, cancel=lambda: True) == []


def test_normalise_extensions() -> None:
    assert normalise_extensions({"WAV", ".Flac", " mp3 ", ""}) == {".wav", ".flac", ".mp3"}


def test_content_hash(tmp_path: Path) -> None:
    chunk = 1024
    small = touch(tmp_path / "s.wav", b"abc")
    assert content_hash(small) == content_hash(touch(tmp_path / "moved.wav", b"abc"))
    assert content_hash(small) != content_hash(touch(tmp_path / "t.wav", b"abd"))
    assert len(content_hash(small)) == 32 and int(content_hash(small), 16) >= 0

    data = bytearray(os.urandom(10 * chunk))
    big = touch(tmp_path / "big.wav", bytes(data))
    h = content_hash(big, chunk=chunk)
    for offset in (0, (len(data) - chunk) // 2, len(data) - 1):  # head, middle, tail are covered
        changed = bytearray(data)
        changed[offset] ^= 0xFF
        assert content_hash(touch(tmp_path / "c.wav", bytes(changed)), chunk=chunk) != h
    changed = bytearray(data)
    changed[2 * chunk] ^= 0xFF  # outside the sampled regions: a fingerprint, not a full hash
    assert content_hash(touch(tmp_path / "d.wav", bytes(changed)), chunk=chunk) == h
    assert content_hash(touch(tmp_path / "e.wav", bytes(data) + b"\0"), chunk=chunk) != h  # size counts
    with pytest.raises(AudioError):
        content_hash(tmp_path / "missing.wav")


def test_rel_posix_helpers(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    path = root / "Drums" / "Kick 01.wav"
    assert to_rel_posix(root, path) == "Drums/Kick 01.wav"
    assert from_rel_posix(root, "Drums/Kick 01.wav") == path
    with pytest.raises(ValueError):
        to_rel_posix(root, tmp_path / "other.wav")
    for bad in ("", "/abs.wav", "../up.wav", "a/../../b.wav"):
        with pytest.raises(ValueError):
            from_rel_posix(root, bad)
