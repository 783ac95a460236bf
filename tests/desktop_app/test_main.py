"""``earshot-app`` starts, opens its library and quits cleanly: the entry point with real threads, run in a
subprocess (quitting a QApplication is for the whole process)."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QSettings

from desktop_app import desktop_entry, qt_platform
from desktop_app.main import build_parser, main
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


# -- start-up check: missing X libraries ------------------------------------------------------------------


def patched_xcb_library(tmp_path: Path, renames: dict[str, str]) -> Path:
    """A copy of PySide6's ``libQt6XcbQpa.so.6`` whose dependencies ``renames`` point at libraries that do not
    exist (same length, so the ELF stays valid): the loader reports them missing exactly as on a machine
    without those packages."""
    qt_lib = qt_platform.pyside_dir() / "Qt" / "lib"
    data = (qt_lib / "libQt6XcbQpa.so.6").read_bytes()
    for old, new in renames.items():
        assert len(old) == len(new) and data.count(old.encode()) == 1, old
        data = data.replace(old.encode(), new.encode())
    # Among links to PySide6's other Qt libraries, so they still resolve through its RUNPATH ($ORIGIN).
    folder = tmp_path / "qtlib"
    folder.mkdir()
    for other in qt_lib.iterdir():
        (folder / other.name).symlink_to(other)
    out = folder / "libQt6XcbQpa.so.6"
    out.unlink()
    out.write_bytes(data)
    return out


def test_missing_x_libraries_named_with_the_apt_command(tmp_path) -> None:
    lib = patched_xcb_library(
        tmp_path, {"libxcb-cursor.so.0": "libxcb-cursor.so.7", "libxkbcommon-x11.so.0": "libxkbcommon-x11.so.7"}
    )
    assert qt_platform.missing_libraries([lib]) == ["libxcb-cursor.so.7", "libxkbcommon-x11.so.7"]
    msg = qt_platform.platform_problem({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":0"}, binaries=[lib])
    assert msg is not None and "\n" not in msg
    assert "libxcb-cursor.so.7, libxkbcommon-x11.so.7" in msg
    assert msg.endswith("sudo apt-get install libxcb-cursor0 libxkbcommon-x11-0")
    # Other platforms do not need the X libraries.
    for env in ({"QT_QPA_PLATFORM": "offscreen"}, {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}):
        assert qt_platform.platform_problem(env, binaries=[lib]) is None


def test_unknown_library_and_missing_display() -> None:
    assert qt_platform.missing_libraries_message(["libfoo.so.3"]).endswith("with your system's package manager")
    msg = qt_platform.missing_libraries_message(["libEGL.so.1", "libfoo.so.3"])
    assert "sudo apt-get install libegl1 (and the packages that provide libfoo.so.3)" in msg
    assert "DISPLAY is not set" in qt_platform.platform_problem({"QT_QPA_PLATFORM": "xcb"}, binaries=[])
    unreachable = qt_platform.platform_problem({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":977"}, binaries=[])
    assert unreachable.startswith("earshot-app: cannot connect to the X display ':977'")
    assert qt_platform.uses_xcb({}) and qt_platform.uses_xcb({"QT_QPA_PLATFORM": "xcb:foo=1"})
    assert not qt_platform.uses_xcb({"QT_QPA_PLATFORM": "wayland;xcb"})


def test_app_exits_with_one_line_when_x_libraries_are_missing(tmp_path) -> None:
    """The whole entry point, in its own process: one line on stderr, exit status 1, and no Qt abort."""
    lib = patched_xcb_library(tmp_path, {"libxcb-icccm.so.4": "libxcb-icccm.so.9"})
    script = (
        "import sys\nfrom pathlib import Path\nimport desktop_app.qt_platform as q\n"
        f"q.xcb_binaries = lambda pyside: [Path({str(lib)!r})]\n"
        "from desktop_app.main import main\nsys.exit(main(['--library', sys.argv[1]]))\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":0"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "lib")], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "earshot-app: Qt cannot open a window: missing system libraries libxcb-icccm.so.9; install them "
        "with: sudo apt-get install libxcb-icccm4"
    ]
    assert not (tmp_path / "lib").exists()  # stopped before opening anything


def test_setup_script_installs_the_packages_the_check_names() -> None:
    """scripts/setup.sh's package:library pairs and the start-up check's table agree."""
    text = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    pairs = re.findall(r"([a-z0-9.+-]+):(lib[\w.+-]+\.so\.\d+)", text.split("system_libs=(", 1)[1].split(")", 1)[0])
    assert len(pairs) >= 15
    for package, soname in pairs:
        if package != "libportaudio2":
            assert qt_platform.debian_package(soname) == package, soname


# -- the desktop entry ------------------------------------------------------------------------------------


def read_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


def test_install_and_uninstall_desktop_entry(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert main(["--install-desktop-entry"]) == 0
    entry = tmp_path / "data" / "applications" / "earshot.desktop"
    icon = tmp_path / "data" / "icons" / "hicolor" / "scalable" / "apps" / "earshot.svg"
    fields = read_entry(entry)
    assert fields["Type"] == "Application" and fields["Name"] == "Earshot" and fields["Icon"] == "earshot"
    program = Path(fields["TryExec"])
    assert program.is_absolute() and os.access(program, os.X_OK)
    assert fields["Exec"].split(" ")[0] == str(program)
    assert "<svg" in icon.read_text(encoding="utf-8")
    assert str(entry) in capsys.readouterr().out
    assert main(["--uninstall-desktop-entry"]) == 0
    assert not entry.exists() and not icon.exists()


def test_desktop_entry_location_follows_xdg(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert desktop_entry.data_home({"XDG_DATA_HOME": "relative/dir"}) == tmp_path / ".local" / "share"
    assert desktop_entry.data_home({}) == tmp_path / ".local" / "share"
    assert desktop_entry.data_home({"XDG_DATA_HOME": "/x/y"}) == Path("/x/y")


def test_desktop_entry_exec_quoting() -> None:
    assert desktop_entry.quote_exec_arg("/usr/bin/earshot-app") == "/usr/bin/earshot-app"
    assert desktop_entry.quote_exec_arg("/opt/my apps/earshot-app") == '"/opt/my apps/earshot-app"'
    assert desktop_entry.quote_exec_arg("/o/$x`y") == '"/o/\\$x\\`y"'
    assert desktop_entry.quote_exec_arg("/a%b") == "/a%%b"
    # The string-value escape doubles the backslashes of the quoting.
    text = desktop_entry.render_entry(["/o/$x", "-m", "desktop_app.main"])
    assert 'Exec="/o/\\\\$x" -m desktop_app.main\n' in text and "TryExec=/o/$x\n" in text
