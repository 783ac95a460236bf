"""The desktop app's two quality bars, measured on the real app (offscreen Qt, real thread pools):

1. **GUI stalls while indexing**: a 5 ms ``QTimer`` runs on the GUI thread while a folder is indexed in
   the background (and a search is typed every half second); the longest gap between its ticks, minus
   the interval, is the worst stall of the event loop. Bar: < 50 ms.
2. **Preview start latency**: with the output stream open, ``↓`` is pressed in the results list; the time
   from the key press to the first audio callback that plays the new file (decode included). Bar: < 50 ms.
   "cold" = the file was never decoded before, "cached" = it was (moving back up the list).

Audio goes to the default output device; when there is none (a server, CI), pass ``--alsa-null`` to send
it to ALSA's null device (set up here, before PortAudio starts). Prints a table (``--json`` for JSON).

    .venv/bin/python -m benchmarks.bench_app --files 200 --alsa-null
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "debian_sfx" / "corpus"
AUDIO_EXT = {".wav", ".ogg", ".flac", ".oga", ".mp3"}
QUERIES = ["explosion", "door", "footsteps", "laser gun", "water splash", "engine", "glass breaking", "wind"]


def pick_corpus_files(n: int, seed: int = 0) -> list[Path]:
    """``n`` corpus files spread over its packages (see :func:`training.data.debian.corpus.sample_clips`)."""
    from training.data.debian.corpus import sample_clips

    return sample_clips(CORPUS, n, seed=seed, extensions=frozenset(AUDIO_EXT))


def make_folder(dest: Path, n: int) -> Path:
    files = pick_corpus_files(n) if CORPUS.is_dir() else []
    if files:
        for p in files:
            rel = p.relative_to(CORPUS)
            target = dest / rel.parts[0] / p.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)
        return dest
    from tests import audio_fixtures as af  # no corpus: generated sounds

    for i in range(n):
        sig = af.noise(1.0 + (i % 7), 44100, color=("white", "pink", "brown")[i % 3], seed=i)
        af.write(dest / f"gen/{i:04d}.wav", sig, 44100)
    return dest


def setup_alsa_null(tmp: Path) -> None:
    conf = tmp / "asound.conf"
    system = Path("/usr/share/alsa/alsa.conf")
    conf.write_text(
        (f"<{system}>\n" if system.exists() else "") + "pcm.!default { type null }\n"
        "ctl.!default { type hw card 0 }\n",
        encoding="utf-8",
    )
    os.environ["ALSA_CONFIG_PATH"] = str(conf)


def pump(qapp, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        qapp.processEvents()
        time.sleep(0.001)


def wait_for(qapp, cond, timeout: float) -> bool:
    end = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > end:
            return False
        qapp.processEvents()
        time.sleep(0.0005)
    return True


class SlowCalls:
    """Times the Python methods of the app's GUI-side classes on the GUI thread (``--trace``): which handler
    held the event loop when it stalled. Nested calls count in their callers too."""

    def __init__(self) -> None:
        self.worst: dict[str, float] = {}
        self.active = False

    def wrap(self, classes) -> None:
        import functools
        import inspect
        import threading

        main = threading.main_thread()
        for cls in classes:
            for name, fn in list(vars(cls).items()):
                if not inspect.isfunction(fn) or name.startswith("__"):
                    continue
                label = f"{cls.__name__}.{name}"

                @functools.wraps(fn)
                def timed(*a, _fn=fn, _label=label, **k):
                    if not self.active or threading.current_thread() is not main:
                        return _fn(*a, **k)
                    t0 = time.perf_counter()
                    try:
                        return _fn(*a, **k)
                    finally:
                        dt = time.perf_counter() - t0
                        if dt > self.worst.get(_label, 0.0):
                            self.worst[_label] = dt

                setattr(cls, name, timed)

    def top(self, n: int = 8) -> list[tuple[str, float]]:
        return sorted(self.worst.items(), key=lambda kv: -kv[1])[:n]


class StallProbe:
    """Ticks every ``interval_ms`` on the GUI thread and records the gaps between ticks."""

    def __init__(self, interval_ms: int = 5) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.interval = interval_ms / 1000.0
        self.gaps: list[float] = []
        self._last = 0.0
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.gc_pauses: list[tuple[int, float]] = []  # (generation, seconds) of each collection, any thread
        self._gc_t0 = 0.0

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        elif self._gc_t0:
            self.gc_pauses.append((info["generation"], time.perf_counter() - self._gc_t0))

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last:
            self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self.gc_pauses.clear()
        self._last = 0.0
        gc.callbacks.append(self._gc)
        self.timer.start()

    def stop(self) -> dict:
        self.timer.stop()
        gc.callbacks.remove(self._gc)
        g = sorted(self.gaps) or [0.0]
        full = [t for gen, t in self.gc_pauses if gen == 2]
        return {
            "ticks": len(self.gaps),
            "max_stall_ms": 1000 * max(0.0, g[-1] - self.interval),
            "p99_gap_ms": 1000 * g[min(len(g) - 1, int(0.99 * len(g)))],
            "median_gap_ms": 1000 * statistics.median(g),
            "gc_collections": len(self.gc_pauses),
            "gc_max_ms": 1000 * max((t for _, t in self.gc_pauses), default=0.0),
            "gc_full_collections": len(full),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200, help="sound files to index (default 200)")
    parser.add_argument("--folder", type=Path, help="index this folder instead of a corpus sample")
    parser.add_argument("--model", help="bundle (default: the shipped default, else a tiny random one)")
    parser.add_argument("--presses", type=int, default=25, help="↓ presses to time (default 25)")
    parser.add_argument("--alsa-null", action="store_true", help="play into ALSA's null device")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--trace", action="store_true", help="also list the slowest GUI-thread handlers")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="earshot-bench-app-"))
    if args.alsa_null:
        setup_alsa_null(tmp)  # before PortAudio is loaded
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from desktop_app.app import EarshotApp, Overrides
    from desktop_app.main import configure_process
    from desktop_app.settings import SettingsStore
    from engine.bundle import default_bundle_name

    qapp = QApplication.instance() or QApplication([])
    slow = SlowCalls()
    if args.trace:
        import desktop_app.app as app_mod
        import desktop_app.results_model as rm
        import desktop_app.results_presenter as rp
        import desktop_app.search_controller as sc
        import desktop_app.session as se
        import desktop_app.views.results_view as rv
        import desktop_app.writer as wr

        slow.wrap([rm.ResultsModel, rp.ResultsPresenter, sc.SearchController, se.Session, wr.LibraryWriter,
                   rv.ResultsView, app_mod.EarshotApp])
    configure_process()  # as earshot-app does
    try:
        model = args.model
        if model is None and default_bundle_name() is None:
            from tests.bundles import make_tiny_bundle

            model = str(make_tiny_bundle(tmp / "tiny"))
        folder = args.folder or make_folder(tmp / "sounds", args.files)
        store = SettingsStore(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
        app = EarshotApp(store, Overrides(str(tmp / "lib"), model, "cpu"))
        app.start(show=True)
        if not wait_for(qapp, lambda: app.session.lib is not None, 120):
            print("the library did not open", file=sys.stderr)
            return 1
        wait_for(qapp, lambda: app.runner.pending == 0, 120)  # model warm-up
        player = app.preview.player
        audio = player.device_name if player.available else f"none ({player.error})"
        probe = StallProbe()

        probe.start()
        pump(qapp, 2.0)
        idle = probe.stop()

        probe.start()
        slow.active = True
        t0 = time.perf_counter()
        app.add_folders([str(folder)])
        wait_for(qapp, lambda: app.writer.busy, 10)
        i = 0
        while app.writer.busy:
            app.search.submit(QUERIES[i % len(QUERIES)])
            i += 1
            pump(qapp, 0.5)
        index_s = time.perf_counter() - t0
        busy = probe.stop()
        slow.active = False
        wait_for(qapp, lambda: app.runner.pending == 0, 30)
        app.session.refresh_status()
        wait_for(qapp, lambda: app.runner.pending == 0, 30)
        files = app.session.status["files"]

        lat_cold: list[float] = []
        lat_cached: list[float] = []
        if player.available:
            app.search.submit("explosion")
            wait_for(qapp, lambda: app.model.rowCount() > 0 and app.runner.pending == 0, 30)
            view = app.window.results
            view.setFocus()
            n = min(args.presses, app.model.rowCount() - 1)
            view.select_row(0)
            pump(qapp, 0.3)
            for key, sink in [(Qt.Key.Key_Down, lat_cold)] * n + [(Qt.Key.Key_Up, lat_cached)] * n:
                t0 = time.perf_counter()
                QTest.keyClick(view, key)
                if wait_for(qapp, lambda t0=t0: player.latency_s is not None and player.request_time > t0, 5):
                    sink.append(player.first_callback_time - t0)
                pump(qapp, 0.15)
        app.window.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def stats(xs: list[float]) -> dict:
        if not xs:
            return {"n": 0}
        xs = sorted(xs)
        return {
            "n": len(xs),
            "median_ms": 1000 * statistics.median(xs),
            "p95_ms": 1000 * xs[min(len(xs) - 1, int(0.95 * len(xs)))],
            "max_ms": 1000 * xs[-1],
        }

    result = {
        "model": app.session.status["bundle"]["name"] if app.session.status else model,
        "audio": audio,
        "files_indexed": files,
        "index_seconds": index_s,
        "searches_during_indexing": i,
        "stall_idle": idle,
        "stall_indexing": busy,
        "preview_cold": stats(lat_cold),
        "preview_cached": stats(lat_cached),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"model {result['model']} · audio output: {audio} · {files} files indexed in {index_s:.1f} s "
        f"({i} searches typed meanwhile)"
    )
    print(f"{'measure':34s} {'n':>6s} {'median ms':>10s} {'p95/p99 ms':>11s} {'max ms':>8s}  bar")
    for name, s in (("event-loop stall, idle", idle), ("event-loop stall, while indexing", busy)):
        print(
            f"{name:34s} {s['ticks']:6d} {s['median_gap_ms'] - 5:10.1f} {s['p99_gap_ms'] - 5:11.1f} "
            f"{s['max_stall_ms']:8.1f}  < 50 ms max {'OK' if s['max_stall_ms'] < 50 else 'MISSED'}"
        )
        print(f"{'  garbage collections meanwhile':34s} {s['gc_collections']:6d} {'':>10s} {'':>11s} "
              f"{s['gc_max_ms']:8.1f}  ({s['gc_full_collections']} full)")
    for label, dt in slow.top():
        print(f"  slowest GUI handler while indexing: {label:44s} {1000 * dt:8.1f} ms")
    for name, s in (
        ("preview latency, cold (↓)", result["preview_cold"]),
        ("preview latency, cached (↑)", result["preview_cached"]),
    ):
        if not s["n"]:
            print(f"{name:34s} {'-':>6s}  (no audio device)")
            continue
        print(
            f"{name:34s} {s['n']:6d} {s['median_ms']:10.1f} {s['p95_ms']:11.1f} {s['max_ms']:8.1f}  "
            f"< 50 ms {'OK' if s['p95_ms'] < 50 else 'MISSED'} (p95)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
