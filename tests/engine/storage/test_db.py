"""Schema versioning and migrations of the library database."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sqlalchemy import insert, select

from engine import keyword
from engine.errors import LibraryError
from engine.storage import db


def test_new_database_is_current_and_in_wal_mode(tmp_path):
    eng = db.open_engine(tmp_path / "x.db")
    with eng.connect() as c:
        assert int(db.get_meta(c, "schema_version")) == db.SCHEMA_VERSION
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert keyword.keyword_search(c, "anything") == []


def test_migration_from_schema_1_backfills_keyword_index(tmp_path):
    path = tmp_path / "old.db"
    eng = db.open_engine(path)
    with eng.begin() as c:
        c.execute(insert(db.Root).values(path="/sounds/Boom Library", added_at=0))
        c.execute(insert(db.File).values(root_id=1, rel_path="Doors/creaky_barn_door.wav", size=1, mtime_ns=1,
                                         status="ok", metadata_json='{"description": "old hinge squeal"}'))
        c.execute(insert(db.File).values(root_id=1, rel_path="broken.wav", size=1, mtime_ns=1, status="error"))
    eng.dispose()
    # Turn it into a schema-1 database: no keyword index.
    con = sqlite3.connect(path)
    con.execute(f"DROP TABLE {keyword.FTS_TABLE}")
    con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    con.commit()
    con.close()
    eng = db.open_engine(path)
    with eng.connect() as c:
        assert int(db.get_meta(c, "schema_version")) == db.SCHEMA_VERSION
        assert [fid for fid, _ in keyword.keyword_search(c, "hinge")] == [1]
        assert [fid for fid, _ in keyword.keyword_search(c, "barn")] == [1]
        assert keyword.keyword_search(c, "broken") == []


def test_migration_to_schema_5_indexes_the_file_texts_by_text(tmp_path):
    path = tmp_path / "v4.db"
    db.open_engine(path).dispose()
    con = sqlite3.connect(path)
    indexes = "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='file_texts'"
    assert "ix_file_texts_text" in {r[0] for r in con.execute(indexes)}  # a new database has it
    con.execute("DROP INDEX ix_file_texts_text")
    con.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    con.commit()
    con.close()
    eng = db.open_engine(path)
    with eng.connect() as c:
        assert int(db.get_meta(c, "schema_version")) == db.SCHEMA_VERSION == 5
        assert "ix_file_texts_text" in {r[0] for r in c.exec_driver_sql(indexes)}
        plan = " ".join(str(r[-1]) for r in c.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT file_id FROM file_texts WHERE encoder = 'e' AND text IN ('a', 'b')"))
        assert "ix_file_texts_text" in plan
    eng.dispose()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    db.open_engine(path).dispose()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(db.SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(LibraryError, match="newer Earshot"):
        db.open_engine(path)


def test_not_a_database(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"\x00garbage" * 512)
    with pytest.raises(LibraryError, match="cannot open"):
        db.open_engine(path)


def test_vectors_round_trip_float16_and_tombstones(tmp_path):
    eng = db.open_engine(tmp_path / "v.db")
    rng = np.random.default_rng(0)
    v = rng.standard_normal((5, 8)).astype(np.float32)
    with eng.begin() as c:
        c.execute(insert(db.Root).values(path="/r", added_at=0))
        c.execute(insert(db.File).values(root_id=1, rel_path="a.wav", size=1, mtime_ns=1))
        ids = db.insert_windows(c, 1, np.arange(5.0), np.arange(5.0) + 1, v, "B", gen=1)
        got_ids, got = next(db.iter_vectors(c, "B", 8))
        assert list(got_ids) == list(ids)
        np.testing.assert_allclose(got, v, atol=2e-3 * np.abs(v).max())
        assert list(db.iter_vectors(c, "B", 8, after_generation=1)) == []
        db.delete_file_windows(c, [1], gen=2)
        dead = c.exec_driver_sql("SELECT window_id FROM tombstones WHERE generation=2").scalars().all()
        assert sorted(dead) == sorted(ids.tolist())
        assert list(db.iter_vectors(c, "B", 8)) == []


def test_bulk_windows_continue_the_ids_and_round_trip(tmp_path):
    """insert_windows_bulk (many files at once) stores what insert_windows would, with ids that continue
    after every id ever used — also after the newest windows were deleted (AUTOINCREMENT's promise)."""
    eng = db.open_engine(tmp_path / "b.db")
    rng = np.random.default_rng(1)
    v = rng.standard_normal((7, 8)).astype(np.float32)
    with eng.begin() as c:
        c.execute(insert(db.Root).values(path="/r", added_at=0))
        for f in ("a.wav", "b.wav", "c.wav"):
            c.execute(insert(db.File).values(root_id=1, rel_path=f, size=1, mtime_ns=1))
        first = db.insert_windows(c, 1, np.arange(2.0), np.arange(2.0) + 1, v[:2], "B", gen=1)
        db.delete_file_windows(c, [1], gen=2)  # ids 1, 2 are gone but must not come back
        files = np.array([2, 2, 3, 3, 3])
        ids = db.insert_windows_bulk(c, files, np.arange(5.0), np.arange(5.0) + 0.5, v[2:], "B", gen=3)
        assert ids.tolist() == [first[-1] + 1 + i for i in range(5)]
        rows = c.execute(select(db.Window.id, db.Window.file_id, db.Window.start_s, db.Window.end_s)
                         .order_by(db.Window.id)).all()
        assert [tuple(r) for r in rows] == [(int(i), int(f), float(s), s + 0.5)
                                            for i, f, s in zip(ids, files, np.arange(5.0), strict=True)]
        got_ids, got = next(db.iter_vectors(c, "B", 8, after_generation=2))
        assert got_ids.tolist() == ids.tolist()
        np.testing.assert_allclose(got, v[2:], atol=2e-3 * np.abs(v).max())
        later = db.insert_windows(c, 3, np.zeros(1), np.ones(1), v[:1], "B", gen=4)
        assert later[0] == ids[-1] + 1  # the ORM path carries on after the bulk ids
        assert db.insert_windows_bulk(c, np.zeros(0, int), np.zeros(0), np.zeros(0), v[:0], "B", 5).size == 0


def test_a_wal_switch_refused_as_locked_is_retried(tmp_path, monkeypatch):
    # Two processes creating one library: SQLite may refuse one's switch to WAL at once ("database is
    # locked", no busy wait). The refusal here is injected twice; opening must wait it out, not fail.
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    refusals = []

    def refuse(conn, cursor, statement, parameters, context, executemany):
        if "journal_mode=WAL" in statement and len(refusals) < 2:
            refusals.append(statement)
            raise sqlite3.OperationalError("database is locked")

    event.listen(Engine, "before_cursor_execute", refuse)
    try:
        eng = db.open_engine(tmp_path / "x.db")
    finally:
        event.remove(Engine, "before_cursor_execute", refuse)
    assert len(refusals) == 2
    with eng.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    monkeypatch.setattr(db, "WAL_SWITCH_RETRY_S", 0.0)  # a lock that never goes away: a clear error
    event.listen(Engine, "before_cursor_execute", refuse)
    refusals.clear()
    try:
        with pytest.raises(LibraryError, match="busy"):
            db.open_engine(tmp_path / "y.db")
    finally:
        event.remove(Engine, "before_cursor_execute", refuse)
