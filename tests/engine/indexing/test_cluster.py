"""The Ray executor on a local cluster of 2 workers: the library it builds is the library a local run
builds (rows, ids, windows, bad-file records, moves, deletions), and a worker killed mid-task loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'earshot[cluster]'): the cluster "
                                         "executor is not tested here")

from engine.indexing import Indexer  # noqa: E402
from engine.indexing.cluster import RayExecutor, embed_task  # noqa: E402
from engine.library import Library  # noqa: E402
from tests import audio_fixtures as af  # noqa: E402
from tests.bundles import make_tiny_bundle  # noqa: E402
from tests.faults.harness import SR, make_sounds  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # a local cluster: 2 worker slots
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("cluster-bundle") / "tiny")


def make_folder(root: Path) -> None:
    make_sounds(root / "a", 9, dur_s=2.5)
    make_sounds(root / "b" / "deep", 6, dur_s=0.4, seed=3)  # shorter than a window
    af.write(root / "b" / "long.wav", af.noise(7.0, SR, seed=9), SR)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")  # a bad-file record


def contents(libdir: Path) -> tuple[list, list, np.ndarray]:
    con = sqlite3.connect(libdir / "earshot.db")
    files = con.execute("SELECT f.id, r.path, f.rel_path, f.size, f.mtime_ns, f.content_hash, f.duration_s, "
                        "f.sample_rate, f.channels, f.format, f.metadata_json, f.status, f.error_reason "
                        "FROM files f JOIN roots r ON r.id = f.root_id ORDER BY f.id").fetchall()
    windows = con.execute("SELECT file_id, start_s, end_s FROM windows ORDER BY file_id, start_s").fetchall()
    vecs = np.stack([np.frombuffer(b, np.float16) for (b,) in con.execute(
        "SELECT v.data FROM vectors v JOIN windows w ON w.id = v.window_id ORDER BY w.file_id, w.start_s")])
    fts = con.execute("SELECT rowid, * FROM files_fts ORDER BY rowid").fetchall()
    con.close()
    return files + fts, windows, vecs


def assert_same(a: Path, b: Path) -> None:
    (rows_a, win_a, vec_a), (rows_b, win_b, vec_b) = contents(a), contents(b)
    assert rows_a == rows_b
    assert win_a == win_b
    # batches are packed differently on the workers: the same numbers up to float rounding
    np.testing.assert_allclose(vec_a.astype(np.float32), vec_b.astype(np.float32), atol=2e-3)


def index(libdir: Path, bundle: Path, root: Path, executor=None):
    with Library(libdir, bundle) as lib:
        if executor is not None:
            executor = executor(lib.bundle)
        return Indexer(lib, batch_windows=4, commit_windows=8, executor=executor).run([root])


def test_without_a_cluster_the_error_says_what_to_do(tmp_path, tiny):
    from engine.errors import LibraryError

    root = tmp_path / "sounds"
    make_sounds(root, 1, dur_s=1.0)
    assert not ray.is_initialized()  # this test runs before the module's cluster starts
    with pytest.raises(LibraryError, match="Ray cluster"):
        index(tmp_path / "lib", tiny, root, lambda b: RayExecutor(b, "127.0.0.1:1", files_per_task=1))


def test_cluster_index_equals_local_index_through_changes(tmp_path, tiny, cluster):
    root = tmp_path / "sounds"
    make_folder(root)
    local, remote = tmp_path / "local", tmp_path / "remote"
    on_ray = lambda bundle: RayExecutor(bundle, None, files_per_task=3, batch_windows=4)  # noqa: E731
    s_local = index(local, tiny, root)
    s_remote = index(remote, tiny, root, on_ray)
    assert (s_remote.new, s_remote.failed, s_remote.windows) == (s_local.new, s_local.failed, s_local.windows) == (
        16, 1, s_local.windows)
    assert_same(local, remote)
    # a move, a deletion, an edit: the same plan is applied the same way
    shutil.move(root / "a" / "s000_001.wav", root / "b" / "moved.wav")
    (root / "a" / "s000_002.wav").unlink()
    af.write(root / "a" / "s000_003.wav", af.tone(440.0, 3.5, SR), SR)
    s_local = index(local, tiny, root)
    s_remote = index(remote, tiny, root, on_ray)
    assert (s_remote.moved, s_remote.deleted, s_remote.changed) == (s_local.moved, s_local.deleted,
                                                                     s_local.changed) == (1, 1, 1)
    assert_same(local, remote)


def test_a_worker_killed_mid_task_loses_nothing(tmp_path, tiny, cluster):
    root = tmp_path / "sounds"
    make_folder(root)
    marker = tmp_path / "killed-once"

    def dies_once(*args):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return embed_task(*args)
        os.kill(os.getpid(), signal.SIGKILL)  # this worker process dies in the middle of its task
        raise AssertionError("unreachable")

    local, remote = tmp_path / "local", tmp_path / "remote"
    index(local, tiny, root)
    s = index(remote, tiny, root, lambda b: RayExecutor(b, None, files_per_task=2, batch_windows=4, task=dies_once))
    assert marker.exists()  # a worker did die
    assert s.new == 16 and s.failed == 1
    assert_same(local, remote)
