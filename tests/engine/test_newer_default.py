"""A library indexed with an older model keeps working and tells the user a newer default exists."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.library import Library, _version_key
from tests import audio_fixtures as af
from tests.bundles import make_tiny_bundle


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    old = make_tiny_bundle(tmp_path / "models" / "tiny-test-1.0.0", version="1.0.0", seed=1)
    new = make_tiny_bundle(tmp_path / "models" / "tiny-test-2.0.0", version="2.0.0", seed=2)
    root = tmp_path / "sounds"
    af.write(root / "hum.wav", af.tone(110, 2.0, 16000), 16000)
    af.write(root / "hiss.wav", af.noise(2.0, 16000), 16000)
    monkeypatch.setenv("EARSHOT_BUNDLE", str(old))  # the default at indexing time: 1.0.0
    lib = tmp_path / "lib"
    assert main(["--library", str(lib), "index", str(root)]) == 0
    return old, new, root, lib


def test_version_order():
    assert _version_key("2.0.0") > _version_key("1.10.0") > _version_key("1.9.9")
    assert _version_key("1.0.1") > _version_key("1.0.0") > _version_key("1.0.0rc1") > _version_key("0.9")


def test_no_notice_while_the_library_uses_the_default(setup, capsys):
    _, _, _, lib = setup
    code, out, err = run(capsys, "--library", lib, "status", "--json")
    assert code == 0 and json.loads(out)["newer_default"] is None
    code, _, err = run(capsys, "--library", lib, "search", "a low hum", "-k", "2")
    assert code == 0 and "newer default" not in err


def test_newer_default_is_announced_and_reindex_clears_it(setup, capsys, monkeypatch):
    old, new, root, lib = setup
    monkeypatch.setenv("EARSHOT_BUNDLE", str(new))  # an update ships 2.0.0 as the default
    # The library keeps searching with the model it was indexed with ...
    code, out, err = run(capsys, "--library", lib, "search", "a low hum", "-k", "2", "--json")
    assert code == 0 and len(json.loads(out)) == 2  # stdout stays machine-readable
    assert err.count("\n") == 1 and "newer default model" in err and "2.0.0" in err and "1.0.0" in err
    assert "earshot index --model tiny-test-2.0.0" in err
    # ... and says so in status (stderr line) and status --json (field).
    code, out, err = run(capsys, "--library", lib, "status")
    assert code == 0 and "1.0.0" in out and "newer default model" in err
    code, out, _ = run(capsys, "--library", lib, "status", "--json")
    st = json.loads(out)
    assert st["bundle"]["version"] == "1.0.0"
    nd = st["newer_default"]
    assert (nd["name"], nd["version"], nd["current_version"]) == ("tiny-test", "2.0.0", "1.0.0")
    with Library(lib) as library:
        assert library.bundle.version == "1.0.0" and library.reindex_notice().startswith("a newer default")
    # Re-indexing with the new model (the printed command) switches the library; the notice goes away.
    code, _, err = run(capsys, "--library", lib, "--model", new, "index")
    assert code == 0, err
    code, out, err = run(capsys, "--library", lib, "status", "--json")
    st = json.loads(out)
    assert st["bundle"]["version"] == "2.0.0" and st["newer_default"] is None and st["files"] == 2


def test_an_older_or_foreign_default_is_not_announced(setup, capsys, monkeypatch, tmp_path):
    _, _, _, lib = setup
    other = make_tiny_bundle(tmp_path / "models" / "other-9.0.0", version="9.0.0", name="other-model")
    monkeypatch.setenv("EARSHOT_BUNDLE", str(other))
    with Library(lib) as library:
        assert library.newer_default() is None
    older = make_tiny_bundle(tmp_path / "models" / "tiny-test-0.9.0", version="0.9.0")
    monkeypatch.setenv("EARSHOT_BUNDLE", str(older))
    with Library(lib) as library:
        assert library.newer_default() is None
