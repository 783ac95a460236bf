"""``earshot-app [--library DIR] [--model NAME_OR_DIR] [--device auto|cpu|cuda]``: the desktop app."""

from __future__ import annotations

import argparse
import logging
import sys


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
    return p


GIL_SWITCH_INTERVAL_S = 0.001


def configure_process() -> None:
    """Process-wide settings for an interactive app: hand the GIL over every millisecond (default 5 ms),
    so the GUI thread waits less behind the indexing and decoding threads."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    configure_process()
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from desktop_app.app import EarshotApp, Overrides
    from desktop_app.settings import APPLICATION, ORGANISATION, SettingsStore

    qapp = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "earshot-app"])
    qapp.setOrganizationName(ORGANISATION)
    qapp.setApplicationName(APPLICATION)
    qapp.setApplicationDisplayName("Earshot")
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
