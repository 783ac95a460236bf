"""Fixtures for the app tests: offscreen Qt, ALSA's null device, isolated settings, a tiny model, and
an app whose background work runs synchronously (:class:`desktop_app.tasks.SyncPool`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

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
