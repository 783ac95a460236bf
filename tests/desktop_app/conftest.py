"""Fixtures for the app tests: offscreen Qt, ALSA's null device, isolated settings, a tiny model, and
an app whose background work runs synchronously (:class:`desktop_app.tasks.SyncPool`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings
from PySide6.QtTest import QTest

from desktop_app.app import EarshotApp, Overrides
from desktop_app.settings import SettingsStore
from desktop_app.tasks import SyncPool
from tests.bundles import make_tiny_bundle

SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")


def write_alsa_config(path: Path, *, null_output: bool) -> Path:
    """An ``ALSA_CONFIG_PATH`` file: the system configuration plus either a ``null`` default output (plays
    into nothing, no sound card needed) or a default that points at a card that does not exist."""
    lines = [f"<{SYSTEM_ALSA_CONF}>"] if SYSTEM_ALSA_CONF.exists() else []
    if null_output:
        lines.append("pcm.!default { type null }")
    else:
        lines.append("pcm.!default { type hw card 99 }")
    lines.append("ctl.!default { type hw card 0 }")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session", autouse=True)
def alsa_null_device(tmp_path_factory) -> Path:
    """Route PortAudio's default output to ALSA's null device for the whole session (set before the
    player first imports sounddevice, which is when PortAudio reads the configuration)."""
    conf = write_alsa_config(tmp_path_factory.mktemp("alsa") / "asound.conf", null_output=True)
    old = os.environ.get("ALSA_CONFIG_PATH")
    os.environ["ALSA_CONFIG_PATH"] = str(conf)
    yield conf
    if old is None:
        os.environ.pop("ALSA_CONFIG_PATH", None)
    else:
        os.environ["ALSA_CONFIG_PATH"] = old


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture
def make_app(qtbot, tmp_path, bundle_dir):
    """``make(library=None, *, threads=False, settings=None) -> EarshotApp``: a started, shown app on the
    tiny model (``threads=False``: background work runs inline); every app is shut down afterwards."""
    apps: list[EarshotApp] = []

    def make(
        library: Path | None = None, *, threads: bool = False, settings: Path | None = None
    ) -> EarshotApp:
        store = SettingsStore(
            QSettings(str(settings or tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        )
        pools = {} if threads else {"pool": SyncPool(), "writer_pool": SyncPool()}
        ea = EarshotApp(
            store,
            Overrides(str(library or tmp_path / "lib"), str(bundle_dir), "cpu"),
            debounce_ms=0,
            reveal=lambda p: ea.revealed.append(p) or True,
            **pools,
        )
        ea.revealed = []
        qtbot.addWidget(ea.window)
        ea.start(show=True)
        apps.append(ea)
        return ea

    yield make
    for ea in apps:
        ea.shutdown()


def search(qtbot, app: EarshotApp, text: str) -> None:
    """Type ``text`` into the search box and wait until the app searched for it."""
    bar = app.window.search_bar
    bar.edit.clear()
    QTest.keyClicks(bar.edit, text)
    qtbot.waitUntil(lambda: app.search.current is not None and app.search.current.text == text, timeout=3000)
