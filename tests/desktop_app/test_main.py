"""``earshot-app`` starts, opens its library and quits cleanly: the entry point with real threads, run in a
subprocess (quitting a QApplication is for the whole process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QSettings

from desktop_app.main import build_parser
from desktop_app.settings import SettingsStore
from tests.bundles import make_tiny_bundle

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from desktop_app.main import main
app = QApplication(["earshot-app"])
QTimer.singleShot(2000, QApplication.quit)
sys.exit(main(sys.argv[1:]))
"""


def test_main_starts_and_quits(tmp_path, alsa_null_device) -> None:
    bundle = make_tiny_bundle(tmp_path / "tiny")
    ini = tmp_path / "settings.ini"
    args = [
        "--library",
        str(tmp_path / "lib"),
        "--model",
        str(bundle),
        "--device",
        "cpu",
        "--settings",
        str(ini),
    ]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "ALSA_CONFIG_PATH": str(alsa_null_device)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "lib" / "earshot.db").exists()
    # Quitting saved the settings (defaults: the command-line choices are for that run only).
    assert SettingsStore(QSettings(str(ini), QSettings.Format.IniFormat)).load().library_dir == ""
    assert QSettings(str(ini), QSettings.Format.IniFormat).contains("settings/volume")


def test_parser() -> None:
    args = build_parser().parse_args(["--library", "/x", "--device", "cuda", "-vv"])
    assert (args.library, args.device, args.model, args.verbose) == ("/x", "cuda", None, 2)
