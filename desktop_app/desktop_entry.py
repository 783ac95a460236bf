"""The freedesktop.org launcher entry: ``earshot-app --install-desktop-entry`` (and ``--uninstall-…``).

Writes ``applications/earshot.desktop`` and ``icons/hicolor/scalable/apps/earshot.svg`` under
``$XDG_DATA_HOME`` (default ``~/.local/share``), so Earshot appears in the desktop's application launcher.
The entry's ``Exec`` is the absolute path of this installation's ``earshot-app`` (a virtualenv's ``bin`` is
rarely on the launcher's ``PATH``). The templates are package data (``desktop_app/resources/``); distribution
packagers can ship them as they are.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

APP_ID = "earshot"
ENTRY_NAME = f"{APP_ID}.desktop"
ICON_NAME = f"{APP_ID}.svg"


def data_home(env: dict[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when it is unset or not absolute (XDG Base Directory spec)."""
    env = dict(os.environ) if env is None else env
    value = env.get("XDG_DATA_HOME", "")
    return Path(value) if value and os.path.isabs(value) else Path.home() / ".local" / "share"


def entry_path(base: Path) -> Path:
    return base / "applications" / ENTRY_NAME


def icon_path(base: Path) -> Path:
    return base / "icons" / "hicolor" / "scalable" / "apps" / ICON_NAME


def template(name: str) -> str:
    """A file of ``desktop_app/resources/`` as text."""
    return resources.files("desktop_app").joinpath("resources").joinpath(name).read_text(encoding="utf-8")


def icon_file() -> Path:
    """The packaged SVG icon (for ``QIcon``)."""
    return Path(str(resources.files("desktop_app").joinpath("resources").joinpath(ICON_NAME)))


def launcher_command() -> list[str]:
    """How to start this installation's app: its ``earshot-app`` script beside the running interpreter (a
    virtualenv or pipx ``bin``), else the one on ``PATH``, else ``python -m desktop_app.main``."""
    beside = Path(sys.executable).with_name("earshot-app")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside.absolute())]
    found = shutil.which("earshot-app")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "desktop_app.main"]


def quote_exec_arg(arg: str) -> str:
    """One argument of a desktop entry's ``Exec`` key, quoted as the Desktop Entry spec asks (and with
    ``%`` doubled, since field codes start with it)."""
    arg = arg.replace("%", "%%")
    if not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`'):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return f'"{escaped}"'


def render_entry(command: list[str]) -> str:
    """The packaged ``earshot.desktop`` with ``Exec``/``TryExec`` pointing at ``command``. The escaping of
    string values (``\\\\`` for a backslash) is applied on top of the quoting, as the spec requires."""
    exec_value = " ".join(quote_exec_arg(a) for a in command).replace("\\", "\\\\")
    out = []
    for line in template(ENTRY_NAME).splitlines():
        if line.startswith("Exec="):
            line = f"Exec={exec_value}"
        elif line.startswith("TryExec="):
            line = f"TryExec={command[0]}"
        out.append(line)
    return "\n".join(out) + "\n"


def install(base: Path | None = None, command: list[str] | None = None) -> list[Path]:
    """Write the entry and the icon under ``base`` (default :func:`data_home`); returns the files written.
    Existing files are replaced atomically."""
    base = data_home() if base is None else base
    written = []
    for path, text in (
        (entry_path(base), render_entry(command or launcher_command())),
        (icon_path(base), template(ICON_NAME)),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    _refresh_caches(base)
    return written


def uninstall(base: Path | None = None) -> list[Path]:
    """Remove the entry and the icon from ``base`` (default :func:`data_home`); returns the files removed."""
    base = data_home() if base is None else base
    removed = []
    for path in (entry_path(base), icon_path(base)):
        if path.exists():
            path.unlink()
            removed.append(path)
    _refresh_caches(base)
    return removed


def _refresh_caches(base: Path) -> None:
    """Tell launchers that cache the application list (where the tool is installed; optional)."""
    tool = shutil.which("update-desktop-database")
    if tool and (base / "applications").is_dir():
        try:
            subprocess.run([tool, str(base / "applications")], capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("update-desktop-database failed: %s", exc)
