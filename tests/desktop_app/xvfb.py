"""Start a program on a real X server (Xvfb, Qt's ``xcb`` platform — not ``offscreen``), wait for its window,
photograph the screen and say whether anything was drawn.

Used by ``tests/desktop_app/test_real_display.py`` (the checkout's app) and by ``.ci/run`` (the app of a
wheel installed in a fresh virtualenv)::

    python -m tests.desktop_app.xvfb --out shot.png [--title Earshot] [--isolated --cwd DIR] -- \
        /path/to/earshot-app --library DIR

(``--isolated`` drops ``PYTHONPATH``/``PYTHONHOME`` from the app's environment, so an installed app cannot
pick up a checkout's packages.)

The screenshot is taken by a separate process that connects to the same X server and grabs the root window
(``QScreen.grabWindow(0)``), i.e. what the X server shows, not what the app believes it drew.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SCREEN = (1280, 800)

_GRAB = r"""
import json, sys
import numpy as np
from PySide6.QtGui import QGuiApplication, QImage
app = QGuiApplication(["earshot-screenshot"])
img = app.primaryScreen().grabWindow(0).toImage().convertToFormat(QImage.Format.Format_RGB32)
img.save(sys.argv[1])
h, w = img.height(), img.width()
px = np.frombuffer(img.constBits(), np.uint8).reshape(h, img.bytesPerLine())[:, : 4 * w].reshape(h, w, 4)
rgb = px[..., :3].astype(np.uint32)
drawn = rgb.any(axis=2)  # Xvfb -br paints the root window black
ys, xs = np.nonzero(drawn)
packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
print(json.dumps({
    "width": w, "height": h,
    "drawn_fraction": float(drawn.mean()),
    "bbox": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if xs.size else None,
    "colours": int(np.unique(packed).size),
}))
"""


@dataclass
class ScreenStats:
    width: int
    height: int
    drawn_fraction: float  # share of pixels that differ from the black root window
    bbox: list[int] | None  # x0, y0, x1, y1 of the drawn pixels
    colours: int  # distinct colours on screen

    def problems(self, min_size: tuple[int, int] = (400, 300)) -> list[str]:
        """Why this does not look like an application window (empty when it does)."""
        out = []
        if self.bbox is None:
            return ["the screen is blank"]
        w, h = self.bbox[2] - self.bbox[0], self.bbox[3] - self.bbox[1]
        if w < min_size[0] or h < min_size[1]:
            out.append(f"the drawn area is only {w}×{h} px")
        if self.drawn_fraction < 0.2:
            out.append(f"only {self.drawn_fraction:.0%} of the screen is drawn")
        if self.colours < 16:
            out.append(f"only {self.colours} colours (a blank or single-colour window)")
        return out


def have_xvfb() -> bool:
    return shutil.which("Xvfb") is not None


class XServer:
    """``with XServer() as display:`` — an Xvfb on a free display number (``-displayfd``)."""

    def __init__(self, size: tuple[int, int] = SCREEN) -> None:
        self.size = size
        self.proc: subprocess.Popen | None = None
        self.display = ""

    def __enter__(self) -> str:
        r, w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{self.size[0]}x{self.size[1]}x24",
                 "-nolisten", "tcp", "-br", "-noreset"],
                pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            os.close(w)
            w = -1
            number = b""
            deadline = time.monotonic() + 30
            while not number.endswith(b"\n"):
                ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(r, 16) if ready else b""
                if not chunk:
                    raise RuntimeError("Xvfb did not start (no display number within 30 s)")
                number += chunk
        finally:
            os.close(r)
            if w != -1:
                os.close(w)
        self.display = f":{number.decode().strip()}"
        return self.display

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def x_env(display: str, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
    env.pop("WAYLAND_DISPLAY", None)
    return env


def window_listed(display: str, title: str) -> bool | None:
    """Whether a window titled ``title`` exists on ``display`` (``None`` when ``xwininfo`` is missing)."""
    tool = shutil.which("xwininfo")
    if tool is None:
        return None
    out = subprocess.run(
        [tool, "-root", "-tree"], env=x_env(display), capture_output=True, text=True, timeout=30
    ).stdout
    return f'"{title}"' in out


def grab(display: str, out_png: Path, python: str = sys.executable) -> ScreenStats:
    """Photograph the root window of ``display`` into ``out_png``."""
    res = subprocess.run(
        [python, "-c", _GRAB, str(out_png)], env=x_env(display), capture_output=True, text=True, timeout=120
    )
    if res.returncode != 0:
        raise RuntimeError(f"screenshot failed: {res.stderr[-2000:]}")
    return ScreenStats(**json.loads(res.stdout.strip().splitlines()[-1]))


def photograph_app(
    command: list[str], out_png: Path, *, title: str = "Earshot", timeout_s: float = 120.0,
    cwd: str | os.PathLike | None = None, env: dict[str, str] | None = None,
) -> tuple[ScreenStats, str]:
    """Start ``command`` on a fresh Xvfb, wait until a window titled ``title`` shows and is drawn, photograph
    it; returns the last screen statistics and the app's stderr. Raises ``RuntimeError`` when the app exits
    or never draws a window within ``timeout_s``."""
    with XServer() as display:
        log = out_png.with_suffix(".log")
        with open(log, "w+", encoding="utf-8") as err:
            app = subprocess.Popen(
                command, cwd=cwd, env=x_env(display, env), stdout=err, stderr=subprocess.STDOUT
            )
            try:
                deadline = time.monotonic() + timeout_s
                stats: ScreenStats | None = None
                while time.monotonic() < deadline:
                    if app.poll() is not None:
                        err.seek(0)
                        raise RuntimeError(f"the app exited with {app.returncode}: {err.read()[-3000:]}")
                    if window_listed(display, title) is not False:
                        stats = grab(display, out_png)
                        if not stats.problems():
                            break
                    time.sleep(1.0)
                else:
                    raise RuntimeError(
                        f"no drawn window titled {title!r} within {timeout_s:.0f} s (last screen: {stats})"
                    )
            finally:
                app.terminate()
                try:
                    app.wait(15)
                except subprocess.TimeoutExpired:
                    app.kill()
                    app.wait()
            err.seek(0)
            return stats, err.read()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="screenshot PNG")
    p.add_argument("--title", default="Earshot")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--cwd", help="working folder of the app")
    p.add_argument("--isolated", action="store_true", help="start the app without PYTHONPATH/PYTHONHOME")
    p.add_argument("command", nargs="+")
    args = p.parse_args(argv)
    env = dict(os.environ)
    if args.isolated:
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
    if not have_xvfb():
        print("Xvfb is not installed (Debian: apt-get install xvfb)", file=sys.stderr)
        return 1
    try:
        stats, _ = photograph_app(
            args.command, args.out, title=args.title, timeout_s=args.timeout, cwd=args.cwd, env=env
        )
    except RuntimeError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"window drawn on a real X server: {stats}; screenshot {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
