"""The shipped bundles: the default is the newest earshot-sfx-small, the previous one stays installed, and a
library indexed with the previous one keeps it and is told that a re-index with the default is available."""

from __future__ import annotations

from engine.bundle import default_bundle_name, load_bundle, resolve_bundle, shipped_models_dir
from engine.library import Library, _version_key


def _shipped(name: str) -> list:
    out = []
    for d in sorted(shipped_models_dir().iterdir()):
        if (d / "bundle.json").is_file():
            b = load_bundle(d)  # verifies every weight file's hash
            if b.name == name:
                out.append(b)
    return out


def test_default_is_the_newest_and_older_versions_stay_loadable():
    default = load_bundle(resolve_bundle(None))
    assert default.path.name == default_bundle_name()
    family = _shipped(default.name)
    assert len(family) >= 2, "the previous earshot-sfx-small must stay installed for libraries indexed with it"
    assert max(_version_key(b.version) for b in family) == _version_key(default.version)
    assert all(b.trained for b in family)


def test_library_on_the_previous_version_is_told_about_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("EARSHOT_BUNDLE", raising=False)
    default = load_bundle(resolve_bundle(None))
    older = [b for b in _shipped(default.name) if _version_key(b.version) < _version_key(default.version)]
    with Library(tmp_path / "lib", older[0].path) as lib:
        newer = lib.newer_default()
        assert newer is not None and newer["version"] == default.version
        assert newer["current_version"] == older[0].version
        assert f"--model {default.path.name}" in lib.reindex_notice()
    with Library(tmp_path / "lib2", default.path) as lib:
        assert lib.newer_default() is None
