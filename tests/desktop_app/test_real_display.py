"""``earshot-app`` on a real X server: Xvfb with Qt's ``xcb`` platform (the rest of the suite uses
``offscreen``, which cannot see a missing X library). The app starts as a user starts it, its window is
photographed from the X server and must not be blank."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from desktop_app.qt_platform import platform_problem
from tests.bundles import make_tiny_bundle
from tests.desktop_app.xvfb import XServer, have_xvfb, photograph_app, x_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not have_xvfb(), reason="Xvfb is not installed (scripts/setup.sh --dev installs it as root on Debian)"
)


def test_app_window_on_real_x_server(tmp_path, alsa_null_device) -> None:
    bundle = make_tiny_bundle(tmp_path / "tiny")
    command = [
        sys.executable, "-m", "desktop_app.main", "--library", str(tmp_path / "lib"), "--model", str(bundle),
        "--device", "cpu", "--settings", str(tmp_path / "settings.ini"),
    ]
    env = {**os.environ, "ALSA_CONFIG_PATH": str(alsa_null_device)}
    stats, log = photograph_app(command, tmp_path / "screen.png", cwd=ROOT, env=env)
    assert (tmp_path / "screen.png").stat().st_size > 10_000
    assert stats.problems() == [], (stats, log)
    assert "Could not load the Qt platform plugin" not in log
    # The window is the main window at its default size, not a dialog or a splash.
    x0, y0, x1, y1 = stats.bbox
    assert x1 - x0 >= 1000 and y1 - y0 >= 600, stats


def test_no_problem_reported_where_x_works() -> None:
    """With the X libraries installed and a display, the start-up check lets the app through (CI installs
    them with setup.sh; a false alarm here would stop every user)."""
    with XServer() as display:
        assert platform_problem(x_env(display)) is None
