"""Show a file in the system's file manager, selected where the platform allows it.

:func:`launch_reveal` may wait up to two seconds for D-Bus, so the app runs it on its worker pool; when it
returns False the GUI thread opens the file's folder instead (:func:`open_folder`).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def reveal_command(path: str | Path, platform: str = sys.platform) -> list[str] | None:
    """The command that opens the file manager with ``path`` selected, or None when there is none."""
    p = Path(path)
    if platform == "darwin":
        return ["open", "-R", str(p)]
    if platform.startswith("win"):
        return ["explorer", f"/select,{p}"]
    if shutil.which("dbus-send"):
        return [
            "dbus-send",
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.FileManager1",
            "--type=method_call",
            "/org/freedesktop/FileManager1",
            "org.freedesktop.FileManager1.ShowItems",
            f"array:string:{p.resolve().as_uri()}",
            "string:",
        ]
    return None


def launch_reveal(path: str | Path) -> bool:
    """Run the platform's reveal command; False when it is missing or fails (off the GUI thread)."""
    cmd = reveal_command(path)
    if cmd is None:
        return False
    try:
        if cmd[0] == "dbus-send":
            return subprocess.run(cmd, capture_output=True, timeout=2.0, check=False).returncode == 0
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return True
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("cannot reveal %s: %s", path, exc)
        return False


def open_folder(path: str | Path) -> bool:
    """Open the folder holding ``path`` with the desktop's default handler (GUI thread)."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices

    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))
