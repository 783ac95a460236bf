"""Settings: defaults, round trip, and upgrades of settings written by older versions."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QByteArray, QSettings

from desktop_app.settings import SCHEMA_VERSION, AppSettings, SettingsStore


def store(path) -> SettingsStore:
    return SettingsStore(QSettings(str(path), QSettings.Format.IniFormat))


def test_round_trip_and_bad_values(tmp_path) -> None:
    s = store(tmp_path / "a.ini")
    assert s.load() == AppSettings() and s.load().search_mode == "both" and s.load().show_details
    s.save(AppSettings(search_mode="keywords", show_details=False, volume=0.3))
    again = store(tmp_path / "a.ini").load()
    assert (again.search_mode, again.show_details, again.volume) == ("keywords", False, 0.3)
    s.q.setValue("settings/search_mode", "telepathy")  # hand-edited or from a future version
    assert s.load().search_mode == "both"


@pytest.mark.parametrize("old_version", [1, 2])
def test_upgrade_from_an_older_schema_drops_the_old_column_layout(tmp_path, old_version) -> None:
    q = QSettings(str(tmp_path / "old.ini"), QSettings.Format.IniFormat)
    q.setValue("schema_version", old_version)
    q.setValue("ui/header", QByteArray(b"eight columns"))
    q.setValue("ui/splitter", QByteArray(b"kept"))
    q.setValue("settings/volume", 0.5)
    q.sync()
    s = store(tmp_path / "old.ini")
    assert s.state("header") is None and s.state("splitter") == QByteArray(b"kept")
    assert s.load().volume == 0.5 and int(s.q.value("schema_version")) == SCHEMA_VERSION == 3
    s.set_state("header", QByteArray(b"ten columns"))  # written by this version: kept on the next start
    s.sync()
    assert store(tmp_path / "old.ini").state("header") == QByteArray(b"ten columns")


def test_column_widths_round_trip(tmp_path) -> None:
    s = store(tmp_path / "w.ini")
    assert s.column_widths() == {}
    s.set_column_widths({"Name": 333, "Matched by": 90})
    s.sync()
    assert store(tmp_path / "w.ini").column_widths() == {"Name": 333, "Matched by": 90}
