"""The player on the real PortAudio stack (ALSA's null device), the "no audio device" path, and the
task runner's hand-back to the GUI thread."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from desktop_app.player import Player
from desktop_app.tasks import SyncPool, TaskRunner
from engine.errors import QueryError
from tests.desktop_app.conftest import write_alsa_config


def _wait(cond, timeout: float = 3.0) -> bool:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            return False
        time.sleep(0.002)
    return True


@pytest.fixture
def player():
    p = Player()
    yield p
    p.close()


def test_player_plays_through_portaudio(player: Player) -> None:
    assert player.open(), player.error
    assert player.available and player.error is None and player.samplerate > 0
    sr = player.samplerate
    # The null device has no clock: within its first second of audio the player notices and paces it.
    assert _wait(lambda: player.emulated_clock, 2.0)
    assert not player.play(np.zeros(0, np.float32))  # nothing to play
    # A 2 s buffer that starts at file time 10 s, played from 10.5 s.
    assert player.play(np.full(2 * sr, 0.1, np.float32), offset_s=10.0, start_s=10.5)
    assert _wait(lambda: player.latency_s is not None)
    assert 0 <= player.latency_s < 0.05  # the stream is open: the next callback picks the buffer up
    t0 = time.monotonic()
    time.sleep(0.3)
    pos, elapsed = player.position_s, time.monotonic() - t0
    # Paced at real time.
    assert 10.5 + 0.5 * elapsed < pos < 10.5 + elapsed + 0.1
    player.stop()
    assert not player.playing
    held = player.position_s
    time.sleep(0.05)
    assert player.position_s == held
    player.seek(11.9)
    assert player.resume()
    assert _wait(lambda: not player.playing, 1.0)  # reaches the end of the buffer and stops
    assert player.position_s == pytest.approx(12.0)


def test_player_loops_a_region_and_replaces_buffers(player: Player) -> None:
    assert player.open(), player.error
    assert _wait(lambda: player.emulated_clock, 2.0)
    sr = player.samplerate
    player.set_loop(True)
    player.play(np.zeros(sr, np.float32), offset_s=0.0)
    player.set_region(0.2, 0.3)
    time.sleep(0.35)  # several trips around a 0.1 s loop
    assert player.playing and 0.2 <= player.position_s <= 0.3
    # The whole file (5 s) replaces the first second without moving the playhead.
    before = player.position_s
    player.set_region(None, None)
    player.set_loop(False)
    player.replace(np.zeros(5 * sr, np.float32), offset_s=0.0)
    assert abs(player.position_s - before) < 0.05
    player.set_volume(3.0)
    assert player.volume == 1.0


def test_no_audio_device(tmp_path, alsa_null_device) -> None:
    """Without any output device the player reports it and does nothing; a rescan finds the device again."""
    p = Player()
    try:
        os.environ["ALSA_CONFIG_PATH"] = str(write_alsa_config(tmp_path / "none.conf", null_output=False))
        p.rescan()
        assert p.output_devices() == []
        assert not p.open()
        assert not p.available and "No audio device" in p.error
        assert not p.play(np.ones(100, np.float32)) and not p.resume()
        p.stop()
        p.seek(1.0)
    finally:
        os.environ["ALSA_CONFIG_PATH"] = str(alsa_null_device)
        p.rescan()
    assert p.open(), p.error
    p.close()


def test_player_bad_device_name(player: Player) -> None:
    assert not player.open("no such device")
    assert "no such device" in player.error


def test_task_runner_delivers_on_the_gui_thread(qtbot) -> None:
    runner = TaskRunner(max_threads=2)
    main = threading.get_ident()
    seen: dict[str, object] = {}

    def work():
        seen["worker"] = threading.get_ident()
        return 42

    runner.submit(work, lambda r: seen.update(result=r, cb=threading.get_ident()))
    qtbot.waitUntil(lambda: "result" in seen, timeout=3000)
    assert seen["result"] == 42 and seen["cb"] == main and seen["worker"] != main

    def fail():
        raise QueryError("bad query")

    runner.submit(fail, lambda r: seen.update(bad=r), lambda e: seen.update(err=e))
    qtbot.waitUntil(lambda: "err" in seen, timeout=3000)
    assert isinstance(seen["err"], QueryError) and "bad" not in seen

    # Only the newest task of a group delivers.
    gate = threading.Event()
    got: list[str] = []
    runner.submit(lambda: gate.wait(3) and "old", got.append, group="search")
    runner.submit(lambda: "new", got.append, group="search")
    gate.set()
    qtbot.waitUntil(lambda: runner.pending == 0, timeout=3000)
    assert got == ["new"]
    assert runner.close(3000)


def test_sync_pool_runs_inline() -> None:
    runner = TaskRunner(SyncPool())
    got = []
    runner.submit(lambda: threading.get_ident(), got.append)
    assert got == [threading.get_ident()] and runner.synchronous and runner.pending == 0
