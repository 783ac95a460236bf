"""`earshot learn`: the model learns a library's own words from the features stored at indexing, with the
audio gone; refusals, interruptions and a full disk leave the library on its model, searchable."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.bundle import load_bundle
from engine.errors import LearnError
from engine.indexer import Indexer
from engine.library import Library
from engine.reproject import undo_learned
from engine.search import Searcher
from engine.storage import db
from tests import audio_fixtures as af
from tests.bundles import make_tiny_bundle
from tests.learn_fixtures import forbid_audio, write_named_library
from training.learn import learn_library, library_captions

ROOT = Path(__file__).resolve().parents[2]
SR = 16000
OPTS = {"min_files": 20, "epochs": 25, "batch": 16, "lr": 3e-3, "seed": 0}




@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny", seed=3, name="tiny-base")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, base):
    """A library of 60 named files, indexed once; each test copies it."""
    d = tmp_path_factory.mktemp("named")
    root = d / "Sounds"
    write_named_library(root, 12)
    with Library(d / "lib", base) as lib:
        assert Indexer(lib).run([root]).new == 60
    return d


@pytest.fixture
def library(tmp_path, indexed, monkeypatch):
    shutil.copytree(indexed / "lib", tmp_path / "lib")
    monkeypatch.setenv("EARSHOT_MODELS_DIR", str(tmp_path / "models"))  # learned bundles are found here
    forbid_audio(monkeypatch)  # and the audio folder is never read again
    return tmp_path / "lib"


def _model_of(libdir: Path) -> str:
    with Library(libdir) as lib:
        return lib.bundle.name


def test_captions_from_a_professional_files_words():
    meta = {"description": "Heavy wooden door creaks open slowly", "cat_id": "DOORWood"}
    caps = library_captions("Doors/DOORWood_Creak Open Slow_JD_Lib.wav", "/lib", meta)
    assert caps[0] == "heavy wooden door creaks open slowly"
    assert any(c.startswith("doors wood") for c in caps)
    assert "creak open slow" in caps
    assert library_captions("SmlExpl_02.ogg", "/x", None) == ["small explosion"]
    assert library_captions("ZOOM0042.WAV", "/x", None) == ["zoom"]  # (not counted as described: see below)


def test_learn_switch_and_undo_without_the_audio(library, tmp_path, base):
    with Library(library) as lib:
        report = learn_library(lib, {**OPTS, "dest": str(tmp_path / "models")})
        assert report["switched"] and not report["cancelled"]
        assert report["described"] == 60 and report["heldout_files"] == 12
        b, a = report["heldout_before"]["map@16"], report["heldout_after"]["map@16"]
        print("held-out mAP@16", b, "->", a)
        assert a > b + 0.15, (b, a)
        assert report["reprojected_windows"] > 0
    learned = load_bundle(report["bundle"])
    assert learned.spec["derived_from"]["bundle_id"] == load_bundle(base).bundle_id
    card = learned.model_card
    assert f"{100 * a:.1f}" in card and "tiny-base" in card and str(library) in card
    with Library(library) as lib:  # the library opens with the learned model now
        assert lib.bundle.bundle_id == learned.bundle_id
        hits = Searcher(lib).search("low hum", k=5, mode="content")
        assert len(hits) == 5
        t0 = time.perf_counter()
        done = undo_learned(lib)
        assert done["reprojected_windows"] == 0 and time.perf_counter() - t0 < 10
    assert _model_of(library) == "tiny-base"
    with Library(library) as lib:
        assert len(Searcher(lib).search("low hum", k=5, mode="content")) == 5
        with pytest.raises(LearnError, match="nothing to undo"):
            undo_learned(lib)


def test_too_few_described_files_is_refused(library, tmp_path):
    with Library(library) as lib, pytest.raises(LearnError, match="describe themselves.*at least 200"):
        learn_library(lib, {"dest": str(tmp_path / "models")})
    assert not (tmp_path / "models").exists()
    assert _model_of(library) == "tiny-base"


def test_opaque_names_are_not_descriptions(tmp_path, base, monkeypatch):
    root = tmp_path / "Field"
    for i in range(25):
        af.write(root / f"ZOOM{i:04d}.WAV", af.tone(200 + 30 * i, 1.0, SR), SR)
    with Library(tmp_path / "lib", base) as lib:
        Indexer(lib).run([root])
        with pytest.raises(LearnError, match=r"only 0 of the library's 25 files"):
            learn_library(lib, {**OPTS, "dest": str(tmp_path / "models")})
        assert len(Searcher(lib).search("tone", k=5, mode="content")) == 5


def test_cancelled_learn_changes_nothing(library, tmp_path):
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with Library(library) as lib:
        report = learn_library(lib, {**OPTS, "dest": str(tmp_path / "models")}, cancel=cancel)
        assert report["cancelled"] and report["bundle"] is None and "keeps tiny-base" in report["message"]
        assert not lib.is_writer
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    assert _model_of(library) == "tiny-base"


def test_full_disk_while_writing_the_bundle(library, tmp_path, monkeypatch):
    import engine.bundle

    real = engine.bundle.shutil.copyfile

    def full(src, dst, *a, **k):
        real(src, dst, *a, **k)
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(engine.bundle.shutil, "copyfile", full)
    with Library(library) as lib:
        with pytest.raises(LearnError, match="disk is full.*keeps tiny-base"):
            learn_library(lib, {**OPTS, "epochs": 2, "dest": str(tmp_path / "models")})
        assert not lib.is_writer
    models = tmp_path / "models"
    assert not models.exists() or not any(models.iterdir())  # no half-written bundle left
    assert _model_of(library) == "tiny-base"
    with Library(library) as lib:
        assert len(Searcher(lib).search("hiss", k=5, mode="content")) == 5


def test_cli_learn_refuses_then_learns_and_undoes(library, tmp_path, monkeypatch, capsys):
    from engine import plugins
    from engine.cli import main
    from training.learn import plugin

    monkeypatch.setattr(plugins, "load", lambda name: plugin())  # the entry point, as an install declares it
    lib = ["--library", str(library)]
    assert main([*lib, "learn"]) == 1
    assert "at least 200" in capsys.readouterr().err
    monkeypatch.setenv("EARSHOT_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr("training.learn.user_models_dir", lambda: tmp_path / "models")
    assert main([*lib, "learn", "--min-files", "20", "--epochs", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["switched"] and Path(report["bundle"]).parent == tmp_path / "models"
    assert _model_of(library) == "tiny-base-learned"
    assert main([*lib, "learn", "--undo"]) == 0
    assert "tiny-base 0.0.1 again" in capsys.readouterr().out
    assert _model_of(library) == "tiny-base"


KILL_SCRIPT = """
import sys, time
from engine.library import Library
from training.learn import learn_library
lib = Library(sys.argv[1])
def progress(phase, done, total):
    if phase == "train" and done == 3:
        print("training", flush=True)
    if phase == "train":
        time.sleep(0.05)
learn_library(lib, {"min_files": 20, "epochs": 500, "batch": 16, "dest": sys.argv[2]}, on_progress=progress)
"""


def test_kill_9_during_learning_leaves_the_library_on_its_model(library, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EARSHOT_MODELS_DIR": str(tmp_path / "models")}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(library), str(tmp_path / "models")],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "training"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert _model_of(library) == "tiny-base"
    with Library(library) as lib:
        assert len(Searcher(lib).search("whistle", k=5, mode="content")) == 5
        with lib.engine.connect() as conn:
            assert db.get_meta(conn, "bundle_path") == str(Path(lib.bundle.path).resolve())
        lib.acquire_writer()  # the dead process's writer lock is free again
        lib.release_writer()
