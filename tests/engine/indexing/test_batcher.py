"""The batcher packs windows of many files into full encoder batches and hands back whole files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.audio import AudioInfo
from engine.indexing.batcher import Batcher
from engine.indexing.decode import FileEnded, FileFailed, FileStarted, Windows
from engine.indexing.plan import Change, Job
from engine.storage.scanner import ScannedFile

DIM = 3


def job(i: int) -> Job:
    return Job(Change.NEW, 1, ScannedFile(Path("/r"), f"{i}.wav", 10, 1))


def events(j: Job, n: int, first_value: float):
    info = AudioInfo("WAV", "PCM_16", 8000, 1, 8000, 1.0)
    yield FileStarted(j, info, None)
    values = first_value + np.arange(n, dtype=np.float32)
    yield Windows(j, np.arange(n) * 1.0, np.repeat(values[:, None], 8, axis=1))
    yield FileEnded(j)


def test_one_window_files_fill_whole_batches_and_keep_their_vectors():
    sizes: list[int] = []

    def embed(w: np.ndarray) -> np.ndarray:
        sizes.append(len(w))
        return w[:, :DIM] * 2

    b = Batcher(embed, batch_windows=4, dim=DIM)
    jobs = [job(i) for i in range(10)]
    done = []
    for i, j in enumerate(jobs):
        for ev in events(j, 1 if i != 5 else 3, 100.0 * i):
            done.extend(b.feed(ev))
    done.extend(b.flush())
    assert sizes == [4, 4, 4]  # 12 windows of 10 files: three calls, two full
    assert [r.job for r in done] == jobs
    for i, r in enumerate(done):
        n = 1 if i != 5 else 3
        assert r.error is None and r.windows == n
        np.testing.assert_array_equal(r.vectors[:, 0], 2 * (100.0 * i + np.arange(n)))


def test_a_failed_file_leaves_the_batch_and_others_are_unharmed():
    b = Batcher(lambda w: w[:, :DIM], batch_windows=8, dim=DIM)
    good, bad = job(0), job(1)
    out = []
    evs_good = list(events(good, 2, 1.0))
    evs_bad = list(events(bad, 3, 50.0))
    for ev in (evs_good[0], evs_bad[0], evs_good[1], evs_bad[1], FileFailed(bad, "corrupt", "cut short"),
               evs_good[2]):
        out.extend(b.feed(ev))
    assert out == [] and b.pending_windows == 2  # the failed file waits for the good one before it
    rest = b.flush()
    assert [(r.job, r.error) for r in rest] == [(good, None), (bad, ("corrupt", "cut short"))]
    assert rest[0].vectors[:, 0].tolist() == [1.0, 2.0]


def test_results_come_out_in_start_order():
    b = Batcher(lambda w: w[:, :DIM], batch_windows=3, dim=DIM)
    jobs = [job(i) for i in range(4)]
    out = []
    for ev in events(jobs[0], 2, 0.0):
        out.extend(b.feed(ev))
    out.extend(b.feed(FileFailed(jobs[1], "missing", "gone")))  # never started
    for ev in events(jobs[2], 1, 5.0):
        out.extend(b.feed(ev))
    assert [r.job for r in out] == jobs[:3]  # the batch of 3 filled: all three complete, in order
    for ev in events(jobs[3], 1, 9.0):
        out.extend(b.feed(ev))
    out.extend(b.flush())
    assert [r.job for r in out] == jobs and [r.error is None for r in out] == [True, False, True, True]
