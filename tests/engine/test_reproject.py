"""Backbone features kept at index time: another bundle over the same backbones re-projects the library
from the database, with the audio gone (unmounted drive, unreadable folder)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.indexer import Indexer
from engine.library import Library
from engine.reproject import feature_keys, needs_reprojection, reproject, switch_if_needed
from engine.search import Searcher
from engine.storage import db
from tests import audio_fixtures as af
from tests.bundles import make_tiny_bundle
from tests.learn_fixtures import forbid_audio


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bundles")
    return {
        "a": make_tiny_bundle(d / "a", seed=1, name="tiny-a"),
        "b": make_tiny_bundle(d / "b", seed=1, head_seed=7, name="tiny-b", members=3),
        "other_frame": make_tiny_bundle(d / "c", seed=1, window_s=0.5, hop_s=0.5, name="tiny-c"),
    }


def _sounds(root: Path) -> list[Path]:
    return [
        af.write(root / "hum.wav", af.tone(110, 3.0, 44100), 44100),
        af.write(root / "sub/whistle.flac", af.tone(3000, 2.0, 48000), 48000),
        af.write(root / "hiss.ogg", af.noise(4.0, 22050), 22050),
    ]




def test_backbone_keys_name_backbone_and_framing(bundles):
    from engine.bundle import load_bundle

    a, b, c = (load_bundle(bundles[k]) for k in ("a", "b", "other_frame"))
    assert feature_keys(a) == feature_keys(b)  # same backbone weights, framing: stored features serve both
    assert feature_keys(a) != feature_keys(c)  # same weights, other windows: they do not
    assert a.bundle_id != b.bundle_id


def test_switch_models_without_the_audio(tmp_path, bundles, monkeypatch):
    root = tmp_path / "Sounds"
    files = _sounds(root)
    libdir = tmp_path / "lib"
    with Library(libdir, bundles["a"]) as lib:
        summary = Indexer(lib).run([root])
        assert summary.new == 3
        with lib.engine.connect() as conn:
            n_windows = conn.execute(db.select(db.func.count()).select_from(db.Window)).scalar_one()
            n_feats = conn.execute(db.select(db.func.count()).select_from(db.Feature)).scalar_one()
        assert n_feats == n_windows > 0
    # What bundle b computes from the audio itself, for comparison after the audio is gone.
    with Library(tmp_path / "ref", bundles["b"]) as ref:
        from engine.audio import iter_windows

        b = ref.bundle
        expected = {f.name: np.concatenate([ref.encoder.embed_audio(w) for _, w in
                                            iter_windows(f, b.sample_rate, b.window_s, b.hop_s)]) for f in files}

    hidden = tmp_path / "elsewhere"
    shutil.move(root, hidden)  # the drive is unmounted
    os.chmod(hidden, 0)
    forbid_audio(monkeypatch)
    try:
        with Library(libdir, bundles["b"]) as lib:
            assert needs_reprojection(lib)
            got = switch_if_needed(lib)
            assert got is not None and got.windows == n_windows and got.without_features == 0
            assert not lib.is_writer
            with lib.engine.connect() as conn:
                assert db.get_meta(conn, "bundle_path") == str(bundles["b"].resolve())
                rows = conn.execute(db.select(db.File.id, db.File.rel_path)).all()
                for fid, rel in rows:
                    wids = conn.execute(db.select(db.Window.id).where(db.Window.file_id == fid)
                                        .order_by(db.Window.id)).scalars().all()
                    vecs = db.vectors_for_windows(conn, lib.bundle.bundle_id, lib.bundle.dim, wids)
                    # features are stored float16: the re-projected vectors match the audio's closely
                    assert np.allclose(vecs, expected[Path(rel).name], atol=2e-2)
            hits = Searcher(lib).search("a humming tone", k=5, mode="content")
            assert len(hits) == 3
            assert switch_if_needed(lib) is None  # nothing left to do
        # Back to a: its vectors were kept, no work at all; the library remembers a again.
        with Library(libdir, bundles["a"]) as lib:
            assert not needs_reprojection(lib)
            assert switch_if_needed(lib) is None
            with lib.engine.connect() as conn:
                assert db.get_meta(conn, "bundle_path") == str(bundles["a"].resolve())
            assert len(Searcher(lib).search("a humming tone", k=5, mode="content")) == 3
    finally:
        os.chmod(hidden, 0o755)


def test_index_run_reprojects_instead_of_decoding(tmp_path, bundles, monkeypatch):
    root = tmp_path / "Sounds"
    _sounds(root)
    libdir = tmp_path / "lib"
    with Library(libdir, bundles["a"]) as lib:
        Indexer(lib).run([root])
    forbid_audio(monkeypatch)  # the files are there, but indexing with b must not open them
    with Library(libdir, bundles["b"]) as lib:
        s = Indexer(lib).run([root])
        assert (s.new, s.changed, s.failed) == (0, 0, 0)
        assert len(Searcher(lib).search("tone", k=5, mode="content")) == 3


def test_other_framing_cannot_reproject(tmp_path, bundles):
    root = tmp_path / "Sounds"
    _sounds(root)
    with Library(tmp_path / "lib", bundles["a"]) as lib:
        Indexer(lib).run([root])
    with Library(tmp_path / "lib", bundles["other_frame"]) as lib:
        assert not needs_reprojection(lib)
        s = reproject(lib)
        assert s.windows == 0 and s.without_features > 0 and s.files_without_features == 3
        lib.release_writer()


def test_cancelled_reprojection_keeps_what_it_stored(tmp_path, bundles):
    root = tmp_path / "Sounds"
    _sounds(root)
    with Library(tmp_path / "lib", bundles["a"]) as lib:
        Indexer(lib).run([root])
    with Library(tmp_path / "lib", bundles["b"]) as lib:
        calls = {"n": 0}

        def cancel() -> bool:
            calls["n"] += 1
            return calls["n"] > 1  # after the first batch

        s = reproject(lib, cancel=cancel, batch=4)
        assert s.cancelled and s.windows == 4
        with lib.engine.connect() as conn:  # half-projected: the library still opens with its previous model
            assert db.get_meta(conn, "bundle_path") == str(bundles["a"].resolve())
        s = reproject(lib, batch=4)
        assert not s.cancelled and s.without_features == 0
        lib.release_writer()


def test_cli_model_switch_is_a_reprojection(tmp_path, bundles, monkeypatch, capsys):
    import json

    from engine.cli import main

    root = tmp_path / "Sounds"
    _sounds(root)
    libdir = tmp_path / "lib"
    assert main(["--library", str(libdir), "--model", str(bundles["a"]), "index", str(root), "--json"]) == 0
    capsys.readouterr()
    shutil.move(root, tmp_path / "gone")
    forbid_audio(monkeypatch)
    assert main(["--library", str(libdir), "--model", str(bundles["b"]), "search", "tone", "--mode", "content", "--all"]) == 0
    out, err = capsys.readouterr()
    assert "re-projected" in err and "no audio decoded" in err and "hum.wav" in out
    # The library now uses b without being told.
    assert main(["--library", str(libdir), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bundle"]["name"] == "tiny-b"
