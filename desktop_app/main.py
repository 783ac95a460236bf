"""``earshot-app [--library DIR] [--model NAME_OR_DIR] [--device auto|cpu|cuda]``: the desktop app.

``earshot-app --install-desktop-entry`` adds Earshot to the desktop's application launcher
(:mod:`desktop_app.desktop_entry`). Before Qt is started, :mod:`desktop_app.qt_platform` checks that it can
open a window and otherwise prints one line saying what to install (exit status 1).
"""

from __future__ import annotations

import argparse
import logging
import sys

from desktop_app import desktop_entry


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="earshot-app", description="Find sounds in your library by describing them."
    )
    p.add_argument(
        "--library",
        metavar="DIR",
        help="library folder (default: the one in Settings, else the one the earshot CLI uses)",
    )
    p.add_argument("--model", metavar="NAME_OR_DIR", help="model bundle for this run")
    p.add_argument("--device", help="compute device for this run: auto, cpu, cuda or cuda:N")
    p.add_argument("--settings", metavar="FILE", help="use this INI file for settings (default: the user's)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    entry = p.add_mutually_exclusive_group()
    entry.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="add Earshot to the application launcher ($XDG_DATA_HOME/applications, default ~/.local/share) "
        "and exit",
    )
    entry.add_argument(
        "--uninstall-desktop-entry", action="store_true", help="remove that launcher entry and icon, and exit"
    )
    return p


GIL_SWITCH_INTERVAL_S = 0.001


def configure_process() -> None:
    """Process-wide settings for an interactive app: hand the GIL over every millisecond (default 5 ms),
    so the GUI thread waits less behind the indexing and decoding threads."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def desktop_entry_command(*, install: bool) -> int:
    """``--install-desktop-entry`` / ``--uninstall-desktop-entry``: report the files written or removed."""
    try:
        files = desktop_entry.install() if install else desktop_entry.uninstall()
    except OSError as exc:
        print(f"earshot-app: cannot {'write' if install else 'remove'} the desktop entry: {exc}", file=sys.stderr)
        return 1
    if install:
        print(f"Installed {files[0]} (starts {desktop_entry.launcher_command()[0]}) and the icon {files[1]}")
    else:
        print("Removed " + ", ".join(map(str, files)) if files else "No Earshot desktop entry was installed")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        return desktop_entry_command(install=args.install_desktop_entry)
    from desktop_app.qt_platform import platform_problem

    problem = platform_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    configure_process()
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from desktop_app.app import EarshotApp, Overrides
    from desktop_app.settings import APPLICATION, ORGANISATION, SettingsStore

    qapp = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "earshot-app"])
    qapp.setOrganizationName(ORGANISATION)
    qapp.setApplicationName(APPLICATION)
    qapp.setApplicationDisplayName("Earshot")
    qapp.setDesktopFileName(desktop_entry.APP_ID)  # Wayland/X11 match the window to earshot.desktop
    qapp.setWindowIcon(QIcon(str(desktop_entry.icon_file())))
    qsettings = (
        QSettings(args.settings, QSettings.Format.IniFormat)
        if args.settings
        else QSettings(ORGANISATION, APPLICATION)
    )
    app = EarshotApp(SettingsStore(qsettings), Overrides(args.library, args.model, args.device))
    qapp.aboutToQuit.connect(app.shutdown)
    app.start()
    return int(qapp.exec())


if __name__ == "__main__":
    sys.exit(main())
