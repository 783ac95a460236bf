"""`earshot index --cluster` fails in one clear line when Ray is missing or the cluster cannot be reached,
and keeps the library as it was."""

from __future__ import annotations

import json
import sys

import pytest

from engine.cli import main
from engine.errors import LibraryError
from engine.indexing.cluster import RayExecutor
from tests.bundles import make_tiny_bundle
from tests.faults.harness import make_sounds


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(LibraryError, match=r"pip install 'earshot\[cluster\]'"):
        RayExecutor(None, "auto")._connect()  # type: ignore[arg-type]


def test_cli_with_an_unreachable_cluster_fails_in_one_line(tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'earshot[cluster]')")
    bundle = make_tiny_bundle(tmp_path / "tiny")
    make_sounds(tmp_path / "s", 2, dur_s=1.0)
    lib = tmp_path / "lib"
    code = main(["--library", str(lib), "--model", str(bundle), "index", str(tmp_path / "s"),
                 "--cluster", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot reach the Ray cluster at '127.0.0.1:1'" in err and "Traceback" not in err
    assert main(["--library", str(lib), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == 0
