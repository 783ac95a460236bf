"""plan() is pure: listings in, new / changed / resumed / moved / vanished out."""

from __future__ import annotations

from pathlib import Path

from engine.indexing.plan import MASS_DELETE_MIN, Change, KnownFile, RootListing, plan
from engine.storage.scanner import ScannedFile

ROOT = Path("/lib/root")


def sf(rel: str, size: int = 100, mtime: int = 1) -> ScannedFile:
    return ScannedFile(ROOT, rel, size, mtime)


def kf(fid: int, rel: str, size: int = 100, mtime: int = 1, *, ok: bool = True, fp: str | None = None,
       vectors: bool = True) -> KnownFile:
    return KnownFile(fid, rel, size, mtime, ok, fp, vectors)


def no_reads(path: Path) -> str | None:
    raise AssertionError(f"fingerprinted {path} needlessly")


def test_each_kind_of_change_is_told_apart():
    known = {k.rel_path: k for k in [
        kf(1, "same.wav"), kf(2, "edited.wav", mtime=5), kf(3, "killed.wav", vectors=False),
        kf(4, "failed.wav", ok=False, vectors=False), kf(5, "old/moved.wav", size=777, fp="abc"),
        kf(6, "deleted.wav", size=55, fp="zzz"),
    ]}
    found = [sf("edited.wav"), sf("failed.wav"), sf("killed.wav"), sf("new.wav"), sf("new/moved.wav", size=777),
             sf("same.wav")]
    prints = {ROOT / "new/moved.wav": "abc"}
    p = plan([RootListing(ROOT, 1, known, found)], fingerprint=lambda path: prints[path])
    assert [(j.change, j.file.rel_path, j.file_id) for j in p.jobs] == [
        (Change.CHANGED, "edited.wav", 2), (Change.RESUMED, "killed.wav", 3), (Change.NEW, "new.wav", None)]
    assert [j.file.rel_path for j in p.new] == ["new.wav"] and len(p.changed) == len(p.resumed) == 1
    assert [(m.file_id, m.file.rel_path) for m in p.moved] == [(5, "new/moved.wav")]
    assert p.vanished == [6]
    assert p.unchanged == 2  # same.wav, and failed.wav (unchanged since it failed: not retried)


def test_new_files_of_another_size_are_not_fingerprinted():
    known = {"gone.wav": kf(1, "gone.wav", size=10, fp="x")}
    p = plan([RootListing(ROOT, 1, known, [sf("a.wav", size=11), sf("b.wav", size=12)])], fingerprint=no_reads)
    assert len(p.new) == 2 and p.vanished == [1] and not p.moved


def test_same_size_other_content_is_not_a_move():
    known = {"gone.wav": kf(1, "gone.wav", size=10, fp="x")}
    p = plan([RootListing(ROOT, 1, known, [sf("a.wav", size=10)])], fingerprint=lambda path: "y")
    assert [j.fingerprint for j in p.new] == ["y"] and p.vanished == [1] and not p.moved


def test_a_root_that_looks_unmounted_or_emptied_is_kept():
    known = {f"{i}.wav": kf(i, f"{i}.wav") for i in range(MASS_DELETE_MIN * 2)}
    empty = plan([RootListing(ROOT, 1, known, [])], fingerprint=no_reads)
    assert empty.vanished == [] and empty.unavailable_roots[0]["reason"] == "it had files and now shows none"
    most = plan([RootListing(ROOT, 1, known, [sf("0.wav")])], fingerprint=no_reads)
    assert most.vanished == [] and most.unavailable_roots[0]["vanished"] == len(known) - 1
    allowed = plan([RootListing(ROOT, 1, known, [sf("0.wav")])], fingerprint=no_reads, allow_mass_delete=True)
    assert len(allowed.vanished) == len(known) - 1 and not allowed.unavailable_roots
    few = {f"{i}.wav": kf(i, f"{i}.wav") for i in range(MASS_DELETE_MIN - 1)}
    assert len(plan([RootListing(ROOT, 1, few, [sf("0.wav")])], fingerprint=no_reads).vanished) == len(few) - 1


def test_unreadable_root_and_unlisted_folders_keep_their_files():
    known = {"a/x.wav": kf(1, "a/x.wav"), "b/y.wav": kf(2, "b/y.wav"), "b/z.wav": kf(3, "b/z.wav")}
    gone = plan([RootListing(ROOT, 1, known, None, failure="permission denied")], fingerprint=no_reads)
    assert gone.vanished == [] and gone.unavailable_roots[0]["reason"] == "permission denied"
    listing = RootListing(ROOT, 1, known, [sf("b/y.wav")], scan_errors=[(str(ROOT / "a"), "permission denied")])
    p = plan([listing], fingerprint=no_reads)
    assert p.vanished == [3]  # a/x.wav is under a folder the scan could not list: kept
    assert p.scan_errors == [(str(ROOT / "a"), "unreadable", "permission denied")]
