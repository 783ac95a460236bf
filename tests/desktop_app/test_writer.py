"""The writer waits a moment for the library's write lock (a search may be saving the index under it)."""

from __future__ import annotations

import time

import pytest

from desktop_app.writer import acquire_writer
from engine.errors import LibraryLockedError
from engine.indexing import CancelToken


class BusyLib:
    """A library whose lock is busy for the first ``busy`` tries."""

    def __init__(self, busy: int) -> None:
        self.busy, self.tries = busy, 0

    def acquire_writer(self) -> None:
        self.tries += 1
        if self.tries <= self.busy:
            raise LibraryLockedError("another Earshot process is already indexing the library")


def test_waits_for_a_briefly_held_lock() -> None:
    lib = BusyLib(busy=3)
    acquire_writer(lib, wait_s=2.0)
    assert lib.tries == 4


def test_gives_up_after_the_wait_or_when_cancelled() -> None:
    lib = BusyLib(busy=10**6)
    t0 = time.monotonic()
    with pytest.raises(LibraryLockedError):
        acquire_writer(lib, wait_s=0.2)
    assert 0.2 <= time.monotonic() - t0 < 1.5 and lib.tries > 1
    token = CancelToken()
    token.cancel()
    lib = BusyLib(busy=10**6)
    with pytest.raises(LibraryLockedError):
        acquire_writer(lib, token, wait_s=5.0)
    assert lib.tries == 1


def test_unavailable_root_is_reported_and_removed_only_when_confirmed(tmp_path, qtbot) -> None:
    """Issue 13: an emptied folder (unmounted drive) is kept; the dialog's Remove re-indexes with mass
    delete allowed; Keep leaves it."""
    from PySide6.QtWidgets import QMessageBox

    from desktop_app.tasks import SyncPool, TaskRunner
    from desktop_app.writer import LibraryWriter, ask_about_unavailable_roots
    from engine.library import Library
    from engine.status import library_status
    from tests.bundles import make_tiny_bundle
    from tests.faults.harness import make_sounds

    bundle = make_tiny_bundle(tmp_path / "tiny")
    root = tmp_path / "drive"
    make_sounds(root, 3, dur_s=1.0)
    lib = Library(tmp_path / "lib", bundle)
    writer = LibraryWriter(TaskRunner(SyncPool()))
    writer.set_library(lib)
    reported: list = []
    writer.roots_unavailable.connect(reported.append)
    writer.index([str(root)])
    assert not reported
    root.rename(tmp_path / "away")
    root.mkdir()
    writer.index(None)
    assert [r["path"] for r in reported[0]] == [str(root.resolve())]
    assert library_status(lib)["files"] == 3
    box = ask_about_unavailable_roots(None, writer, reported[0])
    assert "unavailable" in box.text() and str(root.resolve()) in box.text()
    keep = next(b for b in box.buttons() if b.text() == "Keep")
    keep.click()
    assert library_status(lib)["files"] == 3
    box = ask_about_unavailable_roots(None, writer, reported[0])
    remove = next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole)
    remove.click()
    assert library_status(lib)["files"] == 0
    lib.close()


def test_teach_earshot_my_library_and_go_back(tmp_path, make_app, bundle_dir, monkeypatch) -> None:
    """Library ▸ Teach Earshot my library…: runs on the writer, shows the before/after summary, the library
    searches with the learned model; the summary's button goes back to the original model."""
    from PySide6.QtWidgets import QMessageBox

    from engine import plugins
    from engine.indexer import Indexer
    from engine.library import Library
    from tests.learn_fixtures import write_named_library
    from training.learn import plugin

    root = tmp_path / "Sounds"
    write_named_library(root, per_kind=42, dur_s=1.0)  # 210 described files: above the 200 floor
    with Library(tmp_path / "lib", bundle_dir) as lib:
        Indexer(lib).run([root])
    monkeypatch.setattr(plugins, "load", lambda name: plugin())
    monkeypatch.setattr("training.learn.user_models_dir", lambda: tmp_path / "models")
    monkeypatch.setenv("EARSHOT_MODELS_DIR", str(tmp_path / "models"))
    ea = make_app(tmp_path / "lib")
    phases: list[str] = []
    ea.writer.progress.connect(lambda p: phases.append(p.phase))
    ea.window.act_learn.trigger()
    assert "learn:train" in phases and "learn:reproject" in phases
    box = ea.learn_box
    assert "mAP@16" in box.text() and "now uses tiny-test-learned" in box.text()
    assert ea.session.lib.bundle.name == "tiny-test-learned"
    assert len(ea.session.lib.bundle.spec["derived_from"]["bundle_id"]) == 64
    undo = next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole)
    undo.click()
    assert ea.session.lib.bundle.name == "tiny-test"
