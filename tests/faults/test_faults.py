"""Issue 13: the library survives what real machines do. One regression test per defect found by the
fault-injection run, plus a few quick runs of the soak's scenarios (``benchmarks/bench_faults.py``)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.errors import LibraryError
from engine.library import Library
from engine.search import Searcher
from engine.storage import db
from engine.storage.vector_index import VectorIndex
from tests import audio_fixtures as af
from tests.faults import harness as h


def cli(capsys, lib: Path, model: Path | None, *argv) -> tuple[int, str, str]:
    args = ["--library", str(lib)] + (["--model", str(model)] if model else []) + [str(a) for a in argv]
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def one_line(code: int, err: str) -> bool:
    return h.one_line_error(code, err)


def exact_similar_ok(libdir: Path, model: Path) -> None:
    """``similar`` of every indexed file equals an exact search over the stored vectors."""
    with Library(libdir, model) as lib:
        con = sqlite3.connect(libdir / "earshot.db")
        rows = con.execute("SELECT w.file_id, v.data FROM vectors v JOIN windows w ON w.id = v.window_id").fetchall()
        paths = dict(con.execute("SELECT f.id, r.path || '/' || f.rel_path FROM files f JOIN roots r ON r.id = f.root_id"))
        con.close()
        by_file: dict[int, list] = {}
        for fid, blob in rows:
            by_file.setdefault(fid, []).append(np.frombuffer(blob, np.float16).astype(np.float32))
        s = Searcher(lib)
        for qfid in list(by_file)[:3]:
            q = np.stack(by_file[qfid])
            exact = {paths[f]: float((np.stack(v) @ q.T).max()) for f, v in by_file.items() if f != qfid}
            hits = s.similar(paths[qfid], k=len(exact))
            assert {x.path for x in hits} == set(exact)
            for x in hits:
                assert np.isfinite(x.score) and x.score == pytest.approx(exact[x.path], abs=2e-3)


# -- 1. an unmounted drive never empties the library ------------------------------------------------


def test_emptied_root_is_kept_until_the_user_confirms(tmp_path, tiny, capsys):
    root, lib = tmp_path / "drive", tmp_path / "lib"
    files = h.make_sounds(root, 6, dur_s=1.2)
    assert cli(capsys, lib, tiny, "index", root)[0] == 0
    root.rename(tmp_path / "elsewhere")
    root.mkdir()  # the mount point stays as an empty folder
    code, out, err = cli(capsys, lib, tiny, "index", "--json")
    assert code == 3 and json.loads(out)["deleted"] == 0
    assert "unavailable" in err and "--allow-mass-delete" in err
    st = json.loads(cli(capsys, lib, tiny, "status", "--json")[1])
    assert st["files"] == len(files)
    # An explicit root that is empty now: kept as well.
    assert cli(capsys, lib, tiny, "index", root, "--json")[0] == 3
    # The user confirms: then the records go.
    code, out, _ = cli(capsys, lib, tiny, "index", "--allow-mass-delete", "--json")
    assert code == 0 and json.loads(out)["deleted"] == len(files)


def test_losing_most_files_at_once_is_kept_but_ordinary_deletes_happen(tmp_path, tiny, capsys):
    root, lib = tmp_path / "drive", tmp_path / "lib"
    files = h.make_sounds(root, 24, dur_s=1.0)
    cli(capsys, lib, tiny, "index", root)
    for p in files[:2]:
        p.unlink()
    code, out, _ = cli(capsys, lib, tiny, "index", "--json")
    assert code == 0 and json.loads(out)["deleted"] == 2
    for p in files[2:22]:
        p.unlink()
    code, out, err = cli(capsys, lib, tiny, "index", "--json")
    assert code == 3 and json.loads(out)["deleted"] == 0 and "20 of its 22 files" in err
    assert json.loads(cli(capsys, lib, tiny, "status", "--json")[1])["files"] == 22


def test_files_under_an_unreadable_folder_are_kept(tmp_path, tiny, capsys, monkeypatch):
    root, lib = tmp_path / "drive", tmp_path / "lib"
    h.make_sounds(root / "a", 3, dur_s=1.0)
    h.make_sounds(root / "b", 3, dur_s=1.0, seed=1)
    cli(capsys, lib, tiny, "index", root)
    import engine.storage.scanner as scanner

    real = os.scandir

    def scandir(path="."):
        if str(path).endswith("/b"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(scanner.os, "scandir", scandir)
    code, out, _ = cli(capsys, lib, tiny, "index", "--json")
    assert code == 0 and json.loads(out)["deleted"] == 0
    st = json.loads(cli(capsys, lib, tiny, "status", "--failed", "--json")[1])
    assert st["files"] == 6
    assert any(f["path"].endswith("/b") and "ermission" in f["message"] for f in st["failed"])


# -- 2. NaN / Inf audio ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_audio_fails_cleanly_and_the_library_stays_usable(tmp_path, tiny, capsys, value):
    root, lib = tmp_path / "s", tmp_path / "lib"
    h.make_sounds(root, 3, dur_s=1.5)
    x = af.tone(440, 2.0, h.SR).copy()
    x[5000] = value
    bad = af.write(root / "bad.wav", x, h.SR, subtype="FLOAT")
    code, out, _ = cli(capsys, lib, tiny, "index", root, "--json")
    s = json.loads(out)
    assert code == 0 and s["new"] == 3 and s["failed"] == 1
    assert [e[1] for e in s["errors"]] == ["non_finite"]
    for argv in (("index", root), ("search", "tone", "--json"), ("status", "--failed")):
        code, out, err = cli(capsys, lib, tiny, *argv)
        assert code == 0, err
    assert "bad.wav: non_finite" in out
    code, _, err = cli(capsys, lib, tiny, "similar", bad)
    assert code == 2 and "NaN or infinite" in err
    exact_similar_ok(lib, tiny)


def test_vectors_are_validated_before_commit(tmp_path, tiny, monkeypatch):
    """Whatever makes the model give NaN, nothing non-finite reaches the database."""
    root = tmp_path / "s"
    h.make_sounds(root, 3, dur_s=1.5)
    from engine.encoder import Encoder
    from engine.indexing import Indexer

    real = Encoder.embed_audio_features  # what indexing calls (vectors + the backbone features it keeps)

    def embed(self, windows):
        v, feats = real(self, windows)
        v[:, 0] = np.nan
        return v, feats

    monkeypatch.setattr(Encoder, "embed_audio_features", embed)
    with Library(tmp_path / "lib", tiny) as lib:
        s = Indexer(lib, batch_windows=64).run([root])
        assert s.failed == 3 and {e[1] for e in s.errors} == {"non_finite"}
        with lib.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM vectors").scalar() == 0
            assert conn.exec_driver_sql("SELECT count(*) FROM features").scalar() == 0


def test_non_finite_vectors_stored_by_an_older_version_do_not_break_anything(tmp_path, tiny):
    root, libdir = tmp_path / "s", tmp_path / "lib"
    h.make_sounds(root, 4, dur_s=1.5)
    from engine.indexing import Indexer

    with Library(libdir, tiny) as lib:
        Indexer(lib).run([root])
        st = af.write(root / "old_nan.wav", af.tone(200, 1.0, h.SR), h.SR).stat()
        with lib.engine.begin() as conn:  # what the old indexer committed for a NaN file
            conn.exec_driver_sql("INSERT INTO files (root_id, rel_path, size, mtime_ns, status, duration_s) "
                                 f"VALUES (1, 'old_nan.wav', {st.st_size}, {st.st_mtime_ns}, 'ok', 1.0)")
            fid = conn.exec_driver_sql("SELECT id FROM files WHERE rel_path='old_nan.wav'").scalar()
            gen = db.bump_generation(conn)
            db.insert_windows(conn, fid, np.zeros(1), np.ones(1), np.full((1, lib.bundle.dim), np.nan),
                              lib.bundle.bundle_id, gen)
    for f in (libdir / "index").glob("*"):
        f.unlink()
    with Library(libdir) as lib:  # a reader: searches work, the bad vector is left out
        assert len(Searcher(lib).search_text("tone", k=10)) == 4
    with Library(libdir) as lib:  # the writer marks the file as failed
        Indexer(lib).run(None)
        with lib.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT status, error_reason FROM files WHERE rel_path='old_nan.wav'"
                                        ).one() == ("error", "non_finite")
    exact_similar_ok(libdir, tiny)


# -- 3. the ANN cache is verified against its database ------------------------------------------------


def test_stale_cache_after_database_reset_is_not_trusted(tmp_path, tiny, capsys):
    lib = tmp_path / "lib"
    h.make_sounds(tmp_path / "a", 10, dur_s=3.0, seed=1)
    cli(capsys, lib, tiny, "index", tmp_path / "a")
    saved = {p.name: p.read_bytes() for p in (lib / "index").glob("*.hnsw*")}
    for suffix in ("", "-wal", "-shm"):
        Path(str(lib / "earshot.db") + suffix).unlink(missing_ok=True)
    h.make_sounds(tmp_path / "b", 4, dur_s=2.0, seed=2)
    cli(capsys, lib, tiny, "index", tmp_path / "b")
    for name, data in saved.items():  # the old cache back, as a kill -9 before the save leaves it
        (lib / "index" / name).write_bytes(data)
    exact_similar_ok(lib, tiny)
    cli(capsys, lib, tiny, "index")  # the writer must not keep (and save) the foreign cache either
    exact_similar_ok(lib, tiny)


@pytest.mark.parametrize("damage", ["vectors", "labels"])
def test_damaged_cache_with_a_matching_checksum_is_caught_by_the_sample(tmp_path, tiny, capsys, damage):
    import zlib

    from engine.storage.vector_index import _HEADER

    lib = tmp_path / "lib"
    h.make_sounds(tmp_path / "a", 10, dur_s=3.0)
    cli(capsys, lib, tiny, "index", tmp_path / "a")
    hnsw = next((lib / "index").glob("*.hnsw"))
    side = hnsw.with_name(hnsw.name + ".json")
    data = bytearray(hnsw.read_bytes())
    _, _, n, per, label_off, data_off, *_ = _HEADER.unpack_from(data)
    rng = np.random.default_rng(0)
    for i in range(0, n - 1, 2):
        off = _HEADER.size + i * per
        if damage == "vectors":
            v = rng.standard_normal((label_off - data_off) // 4).astype(np.float32)
            data[off + data_off : off + label_off] = (v / np.linalg.norm(v)).tobytes()
        else:
            o2 = off + per
            a = bytes(data[off + label_off : off + label_off + 8])
            data[off + label_off : off + label_off + 8] = data[o2 + label_off : o2 + label_off + 8]
            data[o2 + label_off : o2 + label_off + 8] = a
    hnsw.write_bytes(bytes(data))
    meta = json.loads(side.read_text())
    meta["crc32"] = zlib.crc32(bytes(data))
    side.write_text(json.dumps(meta))
    exact_similar_ok(lib, tiny)


def test_cache_with_flipped_bytes_is_rebuilt(tmp_path, tiny, capsys):
    lib = tmp_path / "lib"
    h.make_sounds(tmp_path / "a", 6, dur_s=3.0)
    cli(capsys, lib, tiny, "index", tmp_path / "a")
    hnsw = next((lib / "index").glob("*.hnsw"))
    data = bytearray(hnsw.read_bytes())
    data[len(data) // 2] ^= 0x40
    hnsw.write_bytes(bytes(data))
    assert VectorIndex.load(16, hnsw, expected_generation=10**6, allow_stale=True) is None
    exact_similar_ok(lib, tiny)


# -- 4. disk full ----------------------------------------------------------------------------------------


def test_a_truncated_index_write_fails_loudly_and_keeps_the_old_file(tmp_path, monkeypatch):
    import hnswlib

    path = tmp_path / "x.hnsw"
    rng = np.random.default_rng(0)
    v = rng.standard_normal((300, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    idx = VectorIndex(8, path)
    idx.add(np.arange(300), v)
    idx.save(1, "lib")
    good = path.read_bytes()
    real = hnswlib.Index.save_index

    def full_disk(self, name):  # hnswlib ignores write errors: the file just ends early
        real(self, name)
        with open(name, "r+b") as fh:
            fh.truncate(os.path.getsize(name) - 100)

    monkeypatch.setattr(hnswlib.Index, "save_index", full_disk)
    idx.add(np.arange(300, 310), v[:10])
    with pytest.raises(LibraryError, match="incomplete"):
        idx.save(2, "lib")
    assert path.read_bytes() == good
    assert VectorIndex.load(8, path, expected_generation=1, library_id="lib").count == 300
    assert not list(tmp_path.glob("*.tmp"))


def test_disk_full_on_a_small_tmpfs(tmp_path, tiny):
    o = h.disk_full(tmp_path, tiny, free_kb=60)
    if o.runs == 0:
        pytest.skip(o.notes[0])
    assert o.clean, o


# -- 5. damaged database states ------------------------------------------------------------------------


def test_zero_byte_database_is_reported_not_taken_for_an_empty_library(tmp_path, tiny, capsys):
    lib = tmp_path / "lib"
    h.make_sounds(tmp_path / "a", 3, dur_s=1.0)
    cli(capsys, lib, tiny, "index", tmp_path / "a")
    (lib / "earshot.db").write_bytes(b"")
    for argv in (("status",), ("search", "x"), ("index",)):
        code, out, err = cli(capsys, lib, tiny, *argv)
        assert one_line(code, err) and "0 bytes" in err and out == ""
    code, out, _ = cli(capsys, lib, tiny, "repair")
    assert code == 1 and "cannot" in out and "backup" in out


def test_garbled_page_gives_one_line_and_repair_rebuilds(tmp_path, tiny, capsys):
    lib = tmp_path / "lib"
    files = h.make_sounds(tmp_path / "a", 12, dur_s=2.0)
    cli(capsys, lib, tiny, "index", tmp_path / "a")
    con = sqlite3.connect(lib / "earshot.db")
    page = con.execute("SELECT rootpage FROM sqlite_master WHERE name='files'").fetchone()[0]
    con.close()
    with open(lib / "earshot.db", "r+b") as fh:
        fh.seek((page - 1) * 4096)
        fh.write(b"\xa5" * 4096)
    code, out, err = cli(capsys, lib, tiny, "status")
    assert one_line(code, err) and "damaged" in err and "repair" in err
    code, out, err = cli(capsys, lib, tiny, "repair")
    assert code == 0, out + err
    assert "fresh database" in out
    code, out, _ = cli(capsys, lib, tiny, "index", tmp_path / "a", "--json")
    assert code == 0
    env = h.Env(tmp_path, tiny)
    assert h.check(env, files).clean


def test_damaged_write_ahead_log_is_reported_and_repaired(tmp_path, tiny):
    o = h.damaged_db(tmp_path, tiny, mode="wal")
    assert o.clean, o


def test_check_wal_flags_damage_but_not_a_torn_tail(tmp_path):
    path = tmp_path / "w.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE t(x)")
    for _ in range(10):
        con.execute("INSERT INTO t VALUES (?)", (os.urandom(3000),))
        con.commit()
    data = (tmp_path / "w.db-wal").read_bytes()
    con.close()
    assert db._check_wal_bytes(data) is None
    torn = bytearray(data)
    torn[-50] ^= 1
    assert db._check_wal_bytes(bytes(torn)) is None  # only the last transaction: what a crash may leave
    bad = bytearray(data)
    bad[32 + 24 + 4096 + 24 + 10] ^= 1
    assert "committed transaction" in db._check_wal_bytes(bytes(bad))


def test_no_false_corruption_warning_on_a_fresh_library(tmp_path, tiny, capsys, caplog):
    caplog.set_level(logging.INFO, logger="engine")
    lib = tmp_path / "lib"
    for _ in range(2):
        assert cli(capsys, lib, tiny, "search", "anything")[0] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


# -- 6. two processes creating a library -----------------------------------------------------------------


def test_concurrent_creation(tmp_path, tiny):
    o = h.concurrent_create(tmp_path, tiny, tries=4)
    assert o.clean, o


def test_kill_9_at_random_points(tmp_path, tiny):
    o = h.kill9(tmp_path, tiny, points=2, files=10)
    assert o.clean, o


# -- 7. the smaller defects ------------------------------------------------------------------------------


def test_queries_file_survives_wordless_queries_and_bad_bytes(tmp_path, tiny, capsys):
    lib = tmp_path / "lib"
    h.make_sounds(tmp_path / "a", 3, dur_s=1.0)
    cli(capsys, lib, tiny, "index", tmp_path / "a")
    q = tmp_path / "q.txt"
    q.write_bytes("hum\n🔥💥\n".encode() + b"caf\xe9 noise\nhiss\n")
    code, out, err = cli(capsys, lib, tiny, "search", "--queries", q, "--json", "-k", "2")
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 2 and [x["query"] for x in lines] == ["hum", "🔥💥", "caf\ufffd noise", "hiss"]
    assert "error" in lines[1] and lines[3]["hits"]
    assert "no words" in err


def test_category_with_quotes_and_similar_arguments(tmp_path, tiny, capsys):
    lib = tmp_path / "lib"
    files = h.make_sounds(tmp_path / "a", 3, dur_s=1.5)
    cli(capsys, lib, tiny, "index", tmp_path / "a")
    code, out, err = cli(capsys, lib, tiny, "search", "door", "--category", 'DOORS" OR "x', "--json")
    assert code == 0 and json.loads(out) == []
    code, _, err = cli(capsys, lib, tiny, "search", "door", "--category", '"')
    assert code == 2 and "category" in err
    outside = af.write(tmp_path / "outside.wav", af.tone(300, 1.5, h.SR), h.SR)
    for target in (files[0], outside):
        for args in (("--start", "-5"), ("--start", "100", "--end", "101"), ("--start", "nan")):
            code, out, err = cli(capsys, lib, tiny, "similar", target, *args)
            assert code == 2 and one_line(code, err) and out == "", (target, args, err)


def test_scan_failures_are_listed_by_status_failed_and_json_is_utf8(tmp_path, tiny, capsys):
    root, lib = tmp_path / "r", tmp_path / "lib"
    h.make_sounds(root, 2, dur_s=1.0)
    os.symlink(root / "nowhere", root / "broken_link")
    os.symlink(root / "loop", root / "loop")  # a symlink to itself
    af.write(root / "tmp.wav", af.tone(300, 1.0, h.SR), h.SR)
    os.rename(bytes(root / "tmp.wav"), bytes(root) + b"/bad\xffname.wav")  # a name that is not UTF-8
    code, out, _ = cli(capsys, lib, tiny, "index", root, "--json")
    out.encode("utf-8")  # valid UTF-8 (a lone surrogate would raise here)
    assert "\\xff" in out and json.loads(out)["new"] == 2
    code, out, _ = cli(capsys, lib, tiny, "status", "--failed")
    assert "broken_link" in out and "loop" in out and "bad\\xffname.wav" in out


def test_models_honours_model_and_flags_tampered_bundles(tmp_path, tiny, capsys, monkeypatch):
    code, out, _ = cli(capsys, tmp_path / "lib", tiny, "models", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["path"] for r in rows] == [str(tiny)]
    models = tmp_path / "models"
    shutil.copytree(tiny, models / "tampered")
    w = next((models / "tampered").glob("*.safetensors"))
    w.write_bytes(w.read_bytes()[:-1] + b"\x00")
    monkeypatch.setenv("EARSHOT_MODELS_DIR", str(models))
    code, out, _ = cli(capsys, tmp_path / "lib", None, "models", "--json")
    row = next(r for r in json.loads(out) if Path(r["path"]).name == "tampered")
    assert "integrity" in row["error"]


def test_bundle_file_outside_the_bundle_is_refused_before_it_is_read(tmp_path, tiny, monkeypatch):
    from engine.bundle import load_bundle
    from engine.errors import BundleError

    d = tmp_path / "b"
    shutil.copytree(tiny, d)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"x")
    spec = json.loads((d / "bundle.json").read_text())
    spec["members"][0]["weights"] = "../secret.bin"
    (d / "bundle.json").write_text(json.dumps(spec))
    opened = []
    real_open = Path.open

    def spy(self, *a, **k):
        opened.append(self.resolve())
        return real_open(self, *a, **k)

    monkeypatch.setattr(Path, "open", spy)
    with pytest.raises(BundleError, match="outside"):
        load_bundle(d)
    assert secret.resolve() not in opened
