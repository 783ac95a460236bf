"""Take the README's screenshots of the desktop app on a real indexed folder of Debian sound effects.

Copies ``--files`` sound effects from varied packages of ``data/debian_sfx/corpus/`` (plus two broken
files, so the library view has failures to show) into a temporary folder, starts the app on a temporary
library with the shipped default model, indexes the folder, and saves PNGs into ``--out`` (default
``docs/``):

    app-empty.png      first start: the empty state
    app-indexing.png   indexing in the background, already searchable
    app-browse.png     the empty search box: the whole library, sorted by a column
    app-search.png     a query: relevance bars, what each row matched by, the "weaker matches" divider,
                       the selected result previewing (channel lanes, time grid, best match highlighted)
                       and its metadata in the details panel
    app-similar.png    "find similar" on a result: the reference pinned on top, its duplicate marked
    app-narrow.png     1024×700 with a 300-character query: labels elide, the window keeps its size
    app-categories.png the UCS category browser, searched for "--category-query"
    app-library.png    the library view with the failed files
    app-settings.png   settings with the model card

Runs under Xvfb (started here when ``DISPLAY`` is unset and ``Xvfb`` is installed; ``apt-get install
xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1``), else on Qt's offscreen platform. Audio goes to ALSA's null device (so previews run on a server).

    .venv/bin/python scripts/screenshots.py --files 300
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "debian_sfx" / "corpus"
AUDIO_EXT = {".wav", ".ogg", ".flac", ".oga"}
log = logging.getLogger("screenshots")


def pick_files(n: int, seed: int = 1) -> list[Path]:
    """``n`` corpus files spread over its packages (see :func:`training.data.debian.corpus.sample_clips`)."""
    from training.data.debian.corpus import sample_clips

    return sample_clips(CORPUS, n, seed=seed, extensions=frozenset(AUDIO_EXT))


def make_folder(dest: Path, n: int) -> Path:
    for p in pick_files(n):
        target = dest / p.relative_to(CORPUS).parts[0] / p.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
    broken = dest / "incoming"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "session notes.wav").write_text("not audio, just notes\n" * 40, encoding="utf-8")
    first = next(dest.rglob("*.ogg"), None)
    if first is not None:
        (broken / "half_download.ogg").write_bytes(first.read_bytes()[:600])
    return dest


def start_xvfb() -> subprocess.Popen | None:
    if os.environ.get("DISPLAY") or not shutil.which("Xvfb"):
        return None
    display = ":93"
    proc = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    if proc.poll() is not None:
        return None
    os.environ["DISPLAY"] = display
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    probe = subprocess.run(
        [sys.executable, "-c", "from PySide6.QtWidgets import QApplication; QApplication([])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:  # Qt aborts when its xcb plugin cannot load (e.g. libxcb-cursor0 missing)
        log.warning("Qt cannot use Xvfb (%s)", probe.stderr.strip().splitlines()[:1])
        proc.terminate()
        del os.environ["DISPLAY"]
        return None
    return proc


def null_audio(tmp: Path) -> None:
    system = Path("/usr/share/alsa/alsa.conf")
    conf = tmp / "asound.conf"
    conf.write_text(
        (f"<{system}>\n" if system.exists() else "") + "pcm.!default { type null }\n"
        "ctl.!default { type hw card 0 }\n",
        encoding="utf-8",
    )
    os.environ["ALSA_CONFIG_PATH"] = str(conf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--model", help="bundle (default: the shipped default)")
    parser.add_argument("--query", default="explosion", help="the query shown in app-search.png")
    parser.add_argument("--category-query", default="door", help="typed into the category browser")
    parser.add_argument("--long-query", default=(
        "huge distant explosion rolling across a valley with debris falling on a metal roof, then a "
        "long low rumble fading out while sirens start far away and a dog barks twice near the camera, "
        "recorded outdoors at night with light wind in the trees and a little rain on the microphone "
        "cover, no music, no voices"), help="the query of app-narrow.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not CORPUS.is_dir():
        log.error("no corpus at %s", CORPUS)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="earshot-shots-"))
    xvfb = start_xvfb()
    if xvfb is None and not os.environ.get("DISPLAY"):
        log.warning("no X display and no Xvfb: using Qt's offscreen platform")
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    null_audio(tmp)
    try:
        return _shoot(args, tmp)
    finally:
        if xvfb is not None:
            xvfb.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


def _shoot(args, tmp: Path) -> int:
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from desktop_app.app import EarshotApp, Overrides
    from desktop_app.main import configure_process
    from desktop_app.results_model import COL
    from desktop_app.settings import SettingsStore

    qapp = QApplication.instance() or QApplication(["earshot-app"])
    qapp.setApplicationDisplayName("Earshot")
    configure_process()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    def pump(seconds: float, until=None) -> bool:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            qapp.processEvents()
            if until is not None and until():
                return True
            time.sleep(0.005)
        return until is None

    def save(widget, name: str) -> None:
        pump(0.3)
        widget.grab().save(str(out / name))
        log.info("wrote %s", out / name)

    folder = make_folder(tmp / "Game sound effects", args.files)
    store = SettingsStore(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    app = EarshotApp(store, Overrides(str(tmp / "library"), args.model, "cpu"))
    w = app.window
    w.resize(1280, 800)
    app.start(show=True)
    pump(120, lambda: app.session.lib is not None and app.runner.pending == 0)
    w.notice.hide()  # the "untrained placeholder" notice is shown once; the status bar still names the model
    save(w, "app-empty.png")

    app.add_folders([str(folder)])
    pump(600, lambda: (app.session.status or {}).get("files", 0) >= args.files // 3)
    QTest.keyClicks(w.search_bar.edit, "door")
    app.search.submit("door")
    pump(30, lambda: app.search.current.kind == "text" and not w.search_bar.busy.text() and app.model.rowCount() > 0)
    save(w, "app-indexing.png")

    pump(1800, lambda: not app.writer.busy)
    pump(10, lambda: app.runner.pending == 0)
    w.failed_notice.hide()
    w.search_bar.edit.clear()
    app.search.text_edited("")
    pump(10, lambda: app.runner.pending == 0 and app.search.current.kind == "browse")
    w.results.sortByColumn(COL["Duration"], Qt.SortOrder.DescendingOrder)
    pump(10, lambda: app.runner.pending == 0)
    w.results.select_row(
        next((r for r in range(w.results.proxy.rowCount()) if w.results.hit_at(w.results.proxy.index(r, 0)).duration_s < 9), 0)
    )
    pump(10, lambda: len(w.waveform.peaks) > 0 and app.runner.pending == 0)
    pump(0.5)
    save(w, "app-browse.png")
    w.results.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
    w.search_bar.edit.clear()
    QTest.keyClicks(w.search_bar.edit, args.query)
    app.search.submit(args.query)
    pump(10, lambda: app.model.rowCount() > 0 and app.runner.pending == 0)
    QTest.keyClick(w.search_bar.edit, Qt.Key.Key_Down)
    QTest.keyClick(w.results, Qt.Key.Key_Down)
    long_enough = next(
        (
            r
            for r in range(min(15, app.model.rowCount()))
            if (h := w.results.hit_at(w.results.proxy.index(r, 0))) and h.duration_s > 2.5
        ),
        1,
    )
    w.results.select_row(long_enough)
    pump(0.6)
    save(w, "app-search.png")

    # A copy of the selected file elsewhere in the library, so "find similar" has a duplicate to mark.
    hit = w.results.current_hit()
    copy = folder / "incoming" / f"{Path(hit.path).stem} (copy){Path(hit.path).suffix}"
    shutil.copy2(hit.path, copy)
    app.add_folders([str(folder)])
    pump(600, lambda: not app.writer.busy)
    pump(10, lambda: app.runner.pending == 0)
    w.failed_notice.hide()
    w.results.select_path(hit.path)
    w.act_similar.trigger()
    pump(10, lambda: app.runner.pending == 0)
    w.results.setFocus()
    w.results.select_row(1)  # the first candidate, under the pinned reference
    pump(10, lambda: len(w.waveform.peaks) > 0 and app.runner.pending == 0)
    pump(0.5)
    save(w, "app-similar.png")

    w.resize(1024, 700)
    w.search_bar.edit.clear()
    QTest.keyClicks(w.search_bar.edit, args.long_query[:300])
    app.search.submit(args.long_query[:300])
    pump(10, lambda: app.runner.pending == 0 and app.search.current.kind == "text")
    QTest.keyClick(w.search_bar.edit, Qt.Key.Key_Down)
    pump(0.6)
    if w.size().width() != 1024:
        log.error("the window grew to %s with a long query", w.size())
    save(w, "app-narrow.png")
    w.resize(1280, 800)

    w.act_categories.trigger()
    browser = app.categories.browser
    if browser.empty_hint.isVisible():  # the demo sounds name no UCS category: browse them all
        browser.show_all.setChecked(True)
    QTest.keyClicks(browser.search, args.category_query)
    save(browser, "app-categories.png")
    browser.close()

    app.show_library()
    pump(10, lambda: app.runner.pending == 0)
    save(app.library_dialog, "app-library.png")
    app.library_dialog.close()

    app.show_settings()
    pump(10, lambda: app.runner.pending == 0)
    save(app.settings_dialog, "app-settings.png")
    app.settings_dialog.reject()
    w.close()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
