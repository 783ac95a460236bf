"""The `earshot` command line as a user runs it: JSON contract, errors, resume after `kill -9`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from tests import audio_fixtures as af
from tests.bundles import make_tiny_bundle

HIT_KEYS = {"path", "score", "start_s", "end_s", "duration_s"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("sounds")
    af.write(root / "low_hum.wav", af.tone(110, 3.0, 44100), 44100)
    af.write(root / "whistle.flac", af.tone(3000, 2.0, 48000), 48000)
    af.write(root / "hiss.ogg", af.noise(5.0, 44100), 44100)
    af.write(root / "ticks.wav", af.clicks(2.0, 22050), 22050)
    (root / "broken.wav").write_text("not audio")
    lib = tmp_path_factory.mktemp("lib")
    return root, lib


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_index_search_similar_status_json(indexed, tiny, capsys):
    root, lib = indexed
    code, out, err = run(capsys, "--library", lib, "--model", tiny, "index", root, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["new"] == 4 and summary["failed"] == 1
    # --json after the subcommand works as well as before it
    code, out, _ = run(capsys, "--library", lib, "search", "a low hum", "-k", "3", "--json")
    assert code == 0
    hits = json.loads(out)
    assert isinstance(hits, list) and len(hits) == 3
    assert all(HIT_KEYS <= set(h) for h in hits)
    assert all(os.path.isabs(h["path"]) for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)

    code, out, _ = run(capsys, "--library", lib, "--json", "similar", root / "low_hum.wav", "-k", "10")
    sims = json.loads(out)
    assert code == 0 and len(sims) == 3 and all(HIT_KEYS <= set(h) for h in sims)
    assert str((root / "low_hum.wav").resolve()) not in {h["path"] for h in sims}

    code, out, _ = run(capsys, "--library", lib, "status", "--json")
    st = json.loads(out)
    assert {"files", "windows", "errors", "bundle"} <= set(st)
    assert (st["files"], st["errors"]) == (4, 1) and st["windows"] > 4
    assert st["bundle"]["name"] == "tiny-test"

    # The library remembers its model: no --model needed.
    code, out, _ = run(capsys, "--library", lib, "status")
    assert code == 0 and "tiny-test" in out and "1 failed" in out


def test_queries_file_prints_one_json_line_per_query(indexed, tiny, capsys, tmp_path):
    root, lib = indexed
    run(capsys, "--library", lib, "--model", tiny, "index", root)
    qf = tmp_path / "q.txt"
    qf.write_text("low hum\n\n  \nhigh whistle\nhiss\n")
    code, out, _ = run(capsys, "--library", lib, "search", "--queries", qf, "--json", "-k", "2")
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [x["query"] for x in lines] == ["low hum", "high whistle", "hiss"]
    assert all(len(x["hits"]) == 2 and HIT_KEYS <= set(x["hits"][0]) for x in lines)


def test_a_search_in_a_fresh_process_leaves_the_orm_out(indexed, tiny, capsys):
    """A cold `earshot search` pays for every module it imports (issue 11): the storage layer is
    SQLAlchemy Core, so the ORM (~80 ms of each start) is never imported, nor filelock (~10 ms: a reader
    takes no lock) — and the answer is the in-process one."""
    root, lib = indexed
    run(capsys, "--library", lib, "--model", tiny, "index", root)
    code, out, _ = run(capsys, "--library", lib, "search", "a low hum", "-k", "3", "--json")
    assert code == 0
    script = ("import json, sys\nfrom engine.cli import main\n"
              f"code = main(['--library', {str(lib)!r}, 'search', 'a low hum', '-k', '3', '--json'])\n"
              "print(json.dumps([code, sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'filelock')))]))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    hits, status = proc.stdout.splitlines()
    code, modules = json.loads(status)
    assert code == 0 and json.loads(hits) == json.loads(out)
    assert "sqlalchemy.engine" in modules  # the check sees what was imported
    assert not [m for m in modules if m.startswith(("sqlalchemy.orm", "filelock"))], modules


def test_a_quick_command_leaves_without_the_interpreter_teardown(indexed, tiny, capsys):
    """`earshot search` exits as soon as its output is flushed (issue 11: the teardown was ~100 ms of a cold
    search): same answer, same exit status, atexit handlers skipped; other commands exit as usual."""
    root, lib = indexed
    run(capsys, "--library", lib, "--model", tiny, "index", root)
    code, out, _ = run(capsys, "--library", lib, "search", "a low hum", "-k", "3", "--json")
    assert code == 0
    script = ("import atexit, sys\natexit.register(lambda: print('torn down', file=sys.stderr))\n"
              "from engine.cli import run\nrun()")

    def earshot(*argv):
        return subprocess.run([sys.executable, "-c", script, *map(str, argv)], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[2])

    p = earshot("--library", lib, "search", "a low hum", "-k", "3", "--json")
    assert (p.returncode, json.loads(p.stdout)) == (0, json.loads(out)) and "torn down" not in p.stderr
    p = earshot("--library", lib, "search", "")
    assert p.returncode == 2 and "empty" in p.stderr and "torn down" not in p.stderr
    p = earshot("--library", lib, "status", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["files"] == 4 and "torn down" in p.stderr


def test_the_collector_pauses_for_the_first_answer_only(indexed, tiny, capsys, tmp_path, monkeypatch):
    """No cyclic-GC passes over the start-up's objects before the first answer (issue 11: ~40 ms of a cold
    search); with --queries the collector is back from the second query on, and after the command it is as
    it was."""
    import gc

    from engine.search import Searcher

    root, lib = indexed
    run(capsys, "--library", lib, "--model", tiny, "index", root)
    seen = []
    real = Searcher.search

    def spy(self, *a, **k):
        seen.append(gc.isenabled())
        return real(self, *a, **k)

    monkeypatch.setattr(Searcher, "search", spy)
    qf = tmp_path / "q.txt"
    qf.write_text("low hum\nhiss\nwhistle\n")
    assert gc.isenabled()
    code, _, _ = run(capsys, "--library", lib, "search", "--queries", qf, "--json", "-k", "2")
    assert code == 0 and seen == [False, True, True] and gc.isenabled()
    code, _, _ = run(capsys, "--library", lib, "search", "hiss", "--json")
    assert code == 0 and seen[-1] is False and gc.isenabled()
    gc.disable()
    try:  # a caller that had it off keeps it off
        run(capsys, "--library", lib, "search", "--queries", qf, "--json")
        assert not gc.isenabled() and seen[-3:] == [False, False, False]
    finally:
        gc.enable()


def test_errors_go_to_stderr_with_nonzero_exit(indexed, tiny, capsys, tmp_path):
    root, lib = indexed
    code, out, err = run(capsys, "--library", lib, "--model", tiny, "search", "")
    assert code != 0 and out == "" and "empty" in err
    code, out, err = run(capsys, "--library", lib, "--model", tiny, "index", tmp_path / "nope")
    assert code != 0 and "not found" in err
    code, out, err = run(capsys, "--library", lib, "--model", tmp_path / "no-model", "status")
    assert code != 0 and "not found" in err
    bad_db = tmp_path / "badlib"
    bad_db.mkdir()
    (bad_db / "earshot.db").write_bytes(b"garbage" * 100)
    code, out, err = run(capsys, "--library", bad_db, "--model", tiny, "status")
    assert code != 0 and "cannot open" in err


def test_models_lists_the_shipped_default(capsys):
    code, out, _ = run(capsys, "models", "--json")
    rows = json.loads(out)
    assert code == 0 and any(r.get("default") for r in rows)
    code, out, _ = run(capsys, "models")
    default = next(r for r in rows if r.get("default"))
    if not default["trained"]:
        assert "UNTRAINED" in out


def _count_files(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return c.execute("SELECT count(*) FROM files WHERE status='ok'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _index_in_background(tmp_path, tiny, *, until_files: int, n: int = 40):
    """Start `earshot index` on ``n`` 6 s files in a subprocess (small batches: many commits) and wait
    until ``until_files`` are committed. Returns (process, command, library folder)."""
    root = tmp_path / "many"
    for i in range(n):
        af.write(root / f"f{i:02d}.wav", af.noise(6.0, 16000, seed=i), 16000)
    lib = tmp_path / "lib"
    cmd = [sys.executable, "-m", "engine.cli", "--library", str(lib), "--model", str(tiny), "index", str(root),
           "--batch", "2", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _count_files(lib / "earshot.db") < until_files and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    return proc, cmd, lib


def test_kill_minus_9_mid_index_then_resume(tmp_path, tiny):
    n = 40
    proc, cmd, lib = _index_in_background(tmp_path, tiny, until_files=3, n=n)
    done_before = _count_files(lib / "earshot.db")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < done_before < n, "the indexer finished before it could be killed; make the test folder bigger"
    committed = _count_files(lib / "earshot.db")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    s = json.loads(out.stdout)
    # Nothing committed is redone; everything else is done now.
    assert s["unchanged"] == committed and s["new"] == n - committed
    assert _count_files(lib / "earshot.db") == n
    status = json.loads(subprocess.run([sys.executable, "-m", "engine.cli", "--library", str(lib), "status", "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert status["files"] == n and status["windows"] == n * 11  # 6 s, 1 s windows, 0.5 s hop


def test_ctrl_c_stops_cleanly_and_rerun_resumes(tmp_path, tiny):
    n = 40
    proc, cmd, _ = _index_in_background(tmp_path, tiny, until_files=2, n=n)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    first = json.loads(out)
    assert first["cancelled"] and 0 < first["new"] < n
    s = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    assert s["unchanged"] == first["new"] and s["new"] == n - first["new"]


def test_text_output_shows_good_matches_and_hides_weak_ones(capsys):
    from engine.cli import _print_hits
    from engine.search import Hit

    def hit(name, rel, why):
        return Hit(path=f"/lib/{name}", score=rel / 100, start_s=0.0, end_s=1.0, duration_s=1.0, sample_rate=44100,
                   channels=1, format="WAV", file_id=hash(name) % 1000, relevance=rel, matched_by=why)

    hits = [hit("cow.wav", 91.0, ["sound", "name"]), hit("bull.wav", 62.0, ["name"]), hit("hum.wav", 12.0, [])]
    _print_hits(hits, as_json=False, show_all=False)
    out = capsys.readouterr().out
    assert "cow.wav" in out and "bull.wav" in out and "hum.wav" not in out
    assert "[sound, name]" in out and "91%" in out
    assert "1 weaker matches not shown: add --all" in out
    _print_hits(hits, as_json=False, show_all=True)
    out = capsys.readouterr().out
    assert out.index("bull.wav") < out.index("-- weaker matches --") < out.index("hum.wav")
    _print_hits(hits[2:], as_json=False, show_all=False)
    assert "no good matches (1 weaker ones" in capsys.readouterr().out
    _print_hits(hits, as_json=True)
    data = json.loads(capsys.readouterr().out)
    assert [d["relevance"] for d in data] == [91.0, 62.0, 12.0]  # JSON keeps every hit
    assert data[0]["matched_by"] == ["sound", "name"]
