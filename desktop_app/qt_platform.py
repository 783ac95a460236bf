"""Can Qt open a window here? Checked before a ``QApplication`` exists.

When the ``xcb`` platform plugin cannot load (PySide6 wheels need X libraries such as ``libxcb-cursor0``
that many Debian/Ubuntu installs lack), Qt aborts the process with a generic "Could not load the Qt platform
plugin" that names no library. This module asks the dynamic loader (``ldd``) which libraries the plugin and
the widgets module cannot find, and turns that into one line naming them and the ``apt-get`` command that
installs them. It imports no Qt module (importing ``PySide6.QtWidgets`` already fails without ``libGL``).
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

# Shared-library name without its version (``libxcb-cursor.so.0`` → ``libxcb-cursor``) → the Debian/Ubuntu
# package that provides it. Covers what PySide6's xcb plugin and QtWidgets load (``ldd`` on them).
DEBIAN_PACKAGES: dict[str, str] = {
    "libxcb-cursor": "libxcb-cursor0",
    "libxcb-icccm": "libxcb-icccm4",
    "libxcb-image": "libxcb-image0",
    "libxcb-keysyms": "libxcb-keysyms1",
    "libxcb-randr": "libxcb-randr0",
    "libxcb-render-util": "libxcb-render-util0",
    "libxcb-render": "libxcb-render0",
    "libxcb-shape": "libxcb-shape0",
    "libxcb-shm": "libxcb-shm0",
    "libxcb-sync": "libxcb-sync1",
    "libxcb-util": "libxcb-util1",
    "libxcb-xfixes": "libxcb-xfixes0",
    "libxcb-xinerama": "libxcb-xinerama0",
    "libxcb-xinput": "libxcb-xinput0",
    "libxcb-xkb": "libxcb-xkb1",
    "libxcb": "libxcb1",
    "libxkbcommon-x11": "libxkbcommon-x11-0",
    "libxkbcommon": "libxkbcommon0",
    "libX11-xcb": "libx11-xcb1",
    "libX11": "libx11-6",
    "libXau": "libxau6",
    "libXdmcp": "libxdmcp6",
    "libGL": "libgl1",
    "libGLX": "libglx0",
    "libGLdispatch": "libglvnd0",
    "libOpenGL": "libopengl0",
    "libEGL": "libegl1",
    "libfontconfig": "libfontconfig1",
    "libfreetype": "libfreetype6",
    "libglib-2.0": "libglib2.0-0",
    "libgthread-2.0": "libglib2.0-0",
    "libdbus-1": "libdbus-1-3",
    "libpng16": "libpng16-16",
    "libz": "zlib1g",
    "libzstd": "libzstd1",
    "libexpat": "libexpat1",
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


def _stem(soname: str) -> str:
    return soname.split(".so", 1)[0]


def debian_package(soname: str) -> str | None:
    """The Debian/Ubuntu package that provides the shared library ``soname``, if known."""
    return DEBIAN_PACKAGES.get(_stem(soname))


def pyside_dir() -> Path | None:
    """PySide6's installed folder, found without importing it (``None`` when it is not installed)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def xcb_binaries(pyside: Path) -> list[Path]:
    """The files whose dependencies must resolve for a window on X: the xcb platform plugin and the
    QtWidgets extension module (``ldd`` follows their dependencies transitively)."""
    files = [pyside / "Qt" / "plugins" / "platforms" / "libqxcb.so"]
    files += sorted(pyside.glob("QtWidgets*.so"))
    return [f for f in files if f.is_file()]


def missing_libraries(binaries: Iterable[Path]) -> list[str]:
    """Shared libraries that the dynamic loader cannot find for ``binaries`` (in first-seen order); empty
    when all resolve, or when ``ldd`` is not available to ask."""
    ldd = shutil.which("ldd")
    if ldd is None:
        log.debug("ldd not found; skipping the Qt library check")
        return []
    files = [str(b) for b in binaries]
    if not files:
        return []
    try:
        out = subprocess.run([ldd, *files], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("ldd %s failed: %s", files, exc)
        return []
    missing: list[str] = []
    for line in out.splitlines():
        m = _NOT_FOUND.match(line)
        if m and m.group(1) not in missing:
            missing.append(m.group(1))
    return missing


def missing_libraries_message(missing: list[str]) -> str:
    """One line naming the missing libraries and, where their packages are known, the command that installs
    them."""
    packages = sorted({p for p in map(debian_package, missing) if p})
    unknown = [lib for lib in missing if debian_package(lib) is None]
    line = f"earshot-app: Qt cannot open a window: missing system libraries {', '.join(missing)}"
    if packages:
        line += f"; install them with: sudo apt-get install {' '.join(packages)}"
        if unknown:
            line += f" (and the packages that provide {', '.join(unknown)})"
    else:
        line += "; install the packages that provide them with your system's package manager"
    return line


def uses_xcb(env: Mapping[str, str]) -> bool:
    """Whether Qt will try the ``xcb`` (X11) platform first, as Qt 6 chooses it on Linux."""
    platform = env.get("QT_QPA_PLATFORM", "").strip()
    if platform:
        return platform.split(";")[0].split(":")[0].strip() == "xcb"
    return not (env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE", "").lower() == "wayland")


def platform_problem(env: Mapping[str, str] | None = None, binaries: list[Path] | None = None) -> str | None:
    """A one-line reason why Qt cannot open a window here, or ``None`` when nothing is known to be wrong.

    Only the X11 (``xcb``) platform on Linux is checked; ``offscreen``, Wayland, macOS and Windows pass.
    ``binaries`` overrides the files checked (default: PySide6's xcb plugin and QtWidgets module).
    """
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or not uses_xcb(env):
        return None
    if binaries is None:
        pyside = pyside_dir()
        binaries = xcb_binaries(pyside) if pyside is not None else []
    missing = missing_libraries(binaries)
    if missing:
        return missing_libraries_message(missing)
    display = env.get("DISPLAY", "")
    if not display:
        return (
            "earshot-app: no X display to open a window on (DISPLAY is not set); start it from a desktop "
            "session, or set QT_QPA_PLATFORM=offscreen to run it without one"
        )
    if x_display_reachable(display) is False:
        return (
            f"earshot-app: cannot connect to the X display {display!r} (is the X server running, and may this "
            "user open windows on it? over ssh, use ssh -X)"
        )
    return None


def x_display_reachable(display: str) -> bool | None:
    """Whether an X connection to ``display`` opens (``None`` when libxcb itself cannot be loaded)."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return None
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)  # never NULL: an error connection at worst
    try:
        return xcb.xcb_connection_has_error(conn) == 0
    finally:
        xcb.xcb_disconnect(conn)
