from __future__ import annotations

import sqlite3

import pytest

from engine.errors import LibraryError
from engine.keyword import (
    FTS_COLUMNS,
    FTS_DDL,
    ParsedQuery,
    Term,
    constraint_sql,
    delete_document,
    document_for,
    keyword_search,
    parse_query,
    put_document,
    split_words,
    to_fts5,
    ucs_expansion,
)
from engine.metadata import FileMetadata

# id -> (relative path, metadata)
LIBRARY: dict[int, tuple[str, FileMetadata]] = {
    1: (
        "Doors/DOORWood_Front door slam_JD_Castle.wav",
        FileMetadata(
            description="Heavy wooden front door slams shut",
            cat_id="DOORWood",
            category="DOORS",
            subcategory="WOOD",
            fx_name="Front door slam",
            keywords=["door", "slam", "wood"],
            library="Castle Doors",
            designer="Jane Doe",
            creator_id="JD",
        ),
    ),
    2: (
        "Doors/DOORMetl_Prison door_JD_Castle.wav",
        FileMetadata(
            description="Metal prison cell door closing with a clank",
            cat_id="DOORMetl",
            library="Castle Doors",
            designer="Jane Doe",
        ),
    ),
    3: (
        "Weather/Rain/rain_on_tin_roof.wav",
        FileMetadata(
            description="Rain falling on a tin roof",
            keywords=["rain", "roof", "metal"],
            library="Nature Pack",
        ),
    ),
    4: (
        "Explosions/BigExplosion01.wav",
        FileMetadata(
            title="Big explosion", description="A huge explosion with debris", library="Boom Library"
        ),
    ),
    5: (
        "Foley/creaky_hinge.wav",
        FileMetadata(description="Old door hinge squeaks", extra={"USER:MANUFACTURER": "Squeak Corp"}),
    ),
    6: (
        "misc/caf\u00e9_ambience.wav",
        FileMetadata(description="Caf\u00e9 ambience with cups", designer="Zo\u00eb"),
    ),
}


@pytest.fixture()
def conn() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    for stmt in FTS_DDL:
        db.execute(stmt)
    for file_id, (rel, meta) in LIBRARY.items():
        put_document(db, file_id, document_for(rel, "/Volumes/SFX/My Library", meta))
    return db


def ids(conn: sqlite3.Connection, q: str) -> list[int]:
    return [i for i, _ in keyword_search(conn, q)]


# ------------------------------------------------------------------------------------------ documents


def test_split_words() -> None:
    assert split_words("DoorSlam_heavy-01(take2)") == "Door Slam heavy 01 take 2"
    assert split_words("HTTPServer v2.wav") == "HTTP Server v 2 wav"
    assert split_words("___") == ""


def test_document_columns() -> None:
    rel, meta = LIBRARY[1]
    doc = document_for(rel, "/Volumes/SFX/My Library/", meta)
    assert set(doc) == {name for name, _ in FTS_COLUMNS}
    assert "Front door slam" in doc["name"] and "DOORWood" in doc["name"]
    assert "My Library" in doc["folder"] and "Doors" in doc["folder"]
    assert "DOORS" in doc["category"] and "WOOD" in doc["category"]
    assert doc["catid"] == "DOORWood"
    assert "JD" in doc["designer"] and "Jane Doe" in doc["designer"]
    assert doc["ucs"] == "DOORWood"  # the target of query-time synonym expansion
    # the same from the stored dict form
    assert document_for(rel, "/Volumes/SFX/My Library", meta.as_dict()) == doc
    assert document_for("x.wav", "/", None)["name"] == "x"


def test_ucs_expansion_fills_category_for_catid_only_files(conn: sqlite3.Connection) -> None:
    doc = document_for(LIBRARY[2][0], "/r", LIBRARY[2][1])  # metadata has a CatID but no category
    assert "DOORS" in doc["category"] and "METAL" in doc["category"]
    assert sorted(ids(conn, "category:doors")) == [1, 2]
    assert ids(conn, "category:metal") == [2]


# ----------------------------------------------------------------------------------------- searching


def test_words_all_must_match(conn: sqlite3.Connection) -> None:
    assert ids(conn, "door slam") == [1]
    assert sorted(ids(conn, "door")) == [1, 2, 5]


def test_scores_are_positive_and_sorted(conn: sqlite3.Connection) -> None:
    hits = keyword_search(conn, "door")
    scores = [s for _, s in hits]
    assert all(s > 0 for s in scores) and scores == sorted(scores, reverse=True)
    assert keyword_search(conn, "door", limit=1) == hits[:1]


def test_unknown_catid_is_indexed_as_text_without_expansion() -> None:
    doc = document_for("a/b.wav", "/r", FileMetadata(cat_id="MYCustom"))
    assert doc["catid"] == "MYCustom" and doc["ucs"] == "" and doc["category"] == ""


def test_ucs_synonyms_expand_the_query(conn: sqlite3.Connection) -> None:
    # "barn" is only a UCS synonym of DOORWood (file 1); a file that says it in its description must win
    put_document(conn, 7, document_for("x/barn_owl.wav", "/r", FileMetadata(description="barn owl hooting")))
    assert ids(conn, "barn") == [7, 1]
    assert keyword_search(conn, "barn", expand_ucs=False) == keyword_search(conn, "barn")[:1]
    assert ids(conn, "barn wood") == [1]  # each word may match through the CatID
    assert sorted(ids(conn, "door -barn")) == [1, 2, 5]  # excludes are not expanded: file 1 stays
    assert "DOORWood" in ucs_expansion(Term("barn"))
    assert "DOORWood" in ucs_expansion(Term("bar", prefix=True))
    assert ucs_expansion(Term("barn", field="name")) == []
    assert ucs_expansion(Term("xyzzy")) == []


def test_stemming(conn: sqlite3.Connection) -> None:
    assert ids(conn, "explosions") == [4]
    assert 1 in ids(conn, "slamming")


def test_phrase(conn: sqlite3.Connection) -> None:
    assert ids(conn, '"tin roof"') == [3]
    assert ids(conn, '"roof tin"') == []


def test_prefix(conn: sqlite3.Connection) -> None:
    assert ids(conn, "expl*") == [4]
    assert 4 in ids(conn, '"big expl"*')
    assert ids(conn, "squ*") == [5]


def test_exclude(conn: sqlite3.Connection) -> None:
    assert sorted(ids(conn, "door -metal")) == [1, 5]
    assert sorted(ids(conn, 'door -"prison cell"')) == [1, 5]
    assert sorted(ids(conn, "door NOT metal")) == [1, 5]
    assert ids(conn, "-metal") == []  # nothing positive to rank


def test_or(conn: sqlite3.Connection) -> None:
    assert sorted(ids(conn, "explosion OR rain")) == [3, 4]
    assert sorted(ids(conn, "roof OR hinge")) == [3, 5]
    assert ids(conn, "rain OR xyzzy") == [3]
    assert ids(conn, "rain or xyzzy") == []  # lower-case "or" is a word, so all three must match


def test_field_filters(conn: sqlite3.Connection) -> None:
    assert ids(conn, "library:boom") == [4]
    assert sorted(ids(conn, 'library:"castle doors"')) == [1, 2]
    assert ids(conn, "door library:castle catid:doorwood") == [1]
    assert ids(conn, "designer:jd") == [1]
    assert ids(conn, "designer:zoe") == [6]  # diacritics folded
    assert ids(conn, "lib:squeak") == [5]  # manufacturer is indexed with the library
    assert ids(conn, "folder:rain") == [3]
    assert ids(conn, "metal -keywords:metal") == [2]
    assert ids(conn, "cat:door*") and sorted(ids(conn, "cat:door*")) == [1, 2]


def test_unknown_field_is_plain_text(conn: sqlite3.Connection) -> None:
    assert ids(conn, "foo:door") == []  # "foo door" must both match
    assert ids(conn, "cafe") == [6]


@pytest.mark.parametrize(
    "q",
    [
        '"',
        '"door',
        'door"',
        "NEAR(door slam)",
        "NEAR(door, 2)",
        "door*slam",
        "*",
        "**door",
        ":",
        "category:",
        "::door::",
        "-",
        "- -",
        "OR",
        "AND OR NOT",
        "door OR",
        "OR door",
        "^door",
        "door^",
        "(door",
        "door)",
        "{name}: door",
        "name : door",
        "\x00door\x1f",
        "'; DROP TABLE files_fts; --",
        'x" OR 1=1 --',
        "\u00e9\u00e8",
        "door " * 500,
    ],
)
def test_odd_input_never_raises(conn: sqlite3.Connection, q: str) -> None:
    parsed = parse_query(q)
    expr = to_fts5(parsed)
    hits = keyword_search(conn, q)
    assert isinstance(hits, list)
    if expr is not None:
        assert expr.count('"') % 2 == 0
    # the index survived
    assert sorted(ids(conn, "door")) == [1, 2, 5]


def test_injection_stays_inside_strings() -> None:
    def fts(q: str) -> str | None:
        return to_fts5(parse_query(q), expand_ucs=False)

    assert fts("NEAR(door slam") == '"NEAR" AND "door" AND "slam"'
    assert fts('say "hi"" there') == '"say" AND "hi" AND "there"'
    assert fts("a:b") == '"a:b"'
    assert fts("do*r") == '"do*r"'
    # expansion adds only CatIDs from the list, quoted
    expanded = to_fts5(parse_query("barn"))
    assert expanded.startswith('("barn" OR {ucs} : ("') and '"DOORWood"' in expanded
    # a quote inside a term is doubled, never closes the string
    assert Term('a"b').fts5() == '"a""b"'


# ------------------------------------------------------------------------------------------- parsing


def test_parse_structure() -> None:
    p = parse_query('category:doors creaky OR squeaky "old hinge"* -metal lib:"Boom Lib"')
    assert p.clauses == (
        (Term("doors", field="category"),),
        (Term("creaky"), Term("squeaky")),
        (Term("old hinge", phrase=True, prefix=True),),
        (Term("Boom Lib", phrase=True, field="library"),),
    )
    assert p.excludes == (Term("metal"),)
    assert p.free_text == "creaky squeaky old hinge"
    assert [t.text for t in p.filters] == ["doors", "Boom Lib"]
    assert [t.text for t in p.phrases] == ["old hinge", "Boom Lib"]
    assert [t.text for t in p.prefixes] == ["old hinge"]


@pytest.mark.parametrize("q", ["", "   ", "-", "*", "OR", '""', "- * OR AND NOT", "category:", "!!!"])
def test_empty_queries(q: str) -> None:
    p = parse_query(q)
    assert p.is_empty and to_fts5(p) is None


def test_or_does_not_join_across_an_exclude() -> None:
    p = parse_query("a OR -b c")
    assert p.clauses == ((Term("a"),), (Term("c"),)) and p.excludes == (Term("b"),)


def test_term_count_is_bounded() -> None:
    assert len(parse_query("w " * 1000).terms) == 64


# -------------------------------------------------------------------------------------- constraints


def test_constraint_sql_restricts_semantic_results(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE files (id INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO files VALUES (?)", [(i,) for i in range(1, 8)])

    def allowed(q: str) -> list[int]:
        c = constraint_sql(parse_query(q))
        assert c is not None
        sql, params = c
        return [r[0] for r in conn.execute(f"SELECT id FROM files WHERE {sql} ORDER BY id", params)]

    assert allowed("creaky category:doors") == [1, 2]  # free text ignored, filter kept
    assert allowed("whatever -metal") == [1, 4, 5, 6, 7]  # file 7 has no index row: not excluded
    assert allowed("library:castle -prison") == [1]
    assert constraint_sql(parse_query("just words")) is None
    assert constraint_sql(ParsedQuery()) is None


# ------------------------------------------------------------------------------------ maintenance


def test_put_replaces_and_delete_removes(conn: sqlite3.Connection) -> None:
    put_document(conn, 4, document_for("x/thunder.wav", "/r", FileMetadata(description="thunder clap")))
    assert ids(conn, "explosion") == [] and ids(conn, "thunder") == [4]
    delete_document(conn, 4)
    delete_document(conn, 4)  # twice is fine
    assert ids(conn, "thunder") == []


def test_sqlalchemy_connection() -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine("sqlite://")
    with engine.begin() as sa:
        for stmt in FTS_DDL:
            sa.exec_driver_sql(stmt)
        put_document(sa, 11, document_for("a/door_knock.wav", "/r", FileMetadata(description="knock knock")))
        assert keyword_search(sa, "knock")[0][0] == 11


def test_missing_table_is_a_library_error() -> None:
    with pytest.raises(LibraryError):
        keyword_search(sqlite3.connect(":memory:"), "door")


# ---------------------------------------------------------------- phrasing that people type (issue 16)


@pytest.fixture()
def phrasing_db():
    conn = sqlite3.connect(":memory:")
    for stmt in FTS_DDL:
        conn.execute(stmt)
    files = {1: "x/default_gravel_footstep.1.ogg", 2: "x/default_gravel_footstep.2.ogg", 3: "x/bombexplosion.ogg",
             4: "x/door_open.wav", 5: "y/car_door.wav", 6: "trash-empty.oga", 7: "metal/door_slam.wav"}
    for fid, rel in files.items():
        put_document(conn, fid, document_for(rel, "/r", None))
    return conn


def _ids(rows):
    return [r[0] for r in rows]


def test_small_words_are_ignored(phrasing_db):
    from engine.keyword import keyword_matches

    assert set(_ids(keyword_matches(phrasing_db, "footsteps on gravel"))) == {1, 2}
    assert _ids(keyword_matches(phrasing_db, "a door opening"))[0] == 4
    assert keyword_matches(phrasing_db, "the")  == [] or all(s > 0 for _, s, _ in keyword_matches(phrasing_db, "the"))


def test_all_words_first_then_any_word(phrasing_db):
    from engine.keyword import keyword_matches

    got = keyword_matches(phrasing_db, "door opening")
    assert got[0][0] == 4 and got[0][2] == 1.0
    partial = {fid: share for fid, _, share in got[1:]}
    assert partial and set(partial) <= {5, 7} and all(s == 0.5 for s in partial.values())
    scores = [s for _, s, _ in got]
    assert scores == sorted(scores, reverse=True)


def test_words_match_inside_run_together_names(phrasing_db):
    from engine.keyword import keyword_matches

    assert _ids(keyword_matches(phrasing_db, "explosion")) == [3]
    assert keyword_matches(phrasing_db, "xqzvbnm") == []


def test_excludes_and_fields_hold_in_the_relaxed_match(phrasing_db):
    from engine.keyword import keyword_matches

    got = _ids(keyword_matches(phrasing_db, "door opening -metal"))
    assert 7 not in got and 4 in got
    assert 7 not in _ids(keyword_matches(phrasing_db, "door creak folder:x"))


def test_put_documents_in_bulk_equals_one_by_one(conn: sqlite3.Connection) -> None:
    from engine.keyword import put_documents

    other = sqlite3.connect(":memory:")
    for stmt in FTS_DDL:
        other.execute(stmt)
    put_documents(other, [(fid, document_for(rel, "/Volumes/SFX/My Library", meta))
                          for fid, (rel, meta) in LIBRARY.items()])
    for q in ("door", "cafe cups", "wood*", "category:doors"):
        assert ids(other, q) == ids(conn, q)
    fid = next(iter(LIBRARY))
    put_documents(other, [(fid, document_for("x/zebra_gallop.wav", "/r", None))])  # replaces, no duplicate
    assert ids(other, "zebra") == [fid]
    from engine.keyword import FTS_TABLE, TRIGRAM_TABLE

    for table in (FTS_TABLE, TRIGRAM_TABLE):
        assert other.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == len(LIBRARY)


def test_relaxed_match_counts_every_file_of_a_clause_up_to_the_cap(monkeypatch):
    """A file matching most of the words is found however many files match each word alone (it used to need a
    place in each word's 1,000 best by BM25); a word matching more than CLAUSE_ALL files counts only those."""
    import engine.keyword as kw

    conn = sqlite3.connect(":memory:")
    for stmt in FTS_DDL:
        conn.execute(stmt)
    docs = [(i, document_for(f"x/door_{i:04d}.wav", "/r", None)) for i in range(1, 1101)]
    docs += [(i, document_for(f"x/slam_{i:04d}.wav", "/r", None)) for i in range(1101, 2201)]
    # long names: BM25 puts these two last among the files with "door" (or "slam")
    docs += [(3000, document_for("x/door_slam_old_barn_gate_heavy_take_one_two_three.wav", "/r", None)),
             (3001, document_for("x/door_slam_old_barn_gate_heavy_take_four_five_six.wav", "/r", None))]
    kw.put_documents(conn, docs)
    got = kw.keyword_matches(conn, "door slam wooden", limit=10)
    assert [fid for fid, _, _ in got] == [3000, 3001]  # 2 of 3 words; the others match 1 of 3 (< min_share)
    assert [share for _, _, share in got] == [pytest.approx(2 / 3)] * 2
    assert len(kw.keyword_matches(conn, "door slam wooden", limit=10, min_share=0.3)) == 10
    monkeypatch.setattr(kw, "CLAUSE_ALL", 500)  # each word now counts its pool (1,000 best) only
    assert kw.keyword_matches(conn, "door slam wooden", limit=10) == []


def test_optimize_merges_segments_and_keeps_answers() -> None:
    from engine.storage import fts

    conn = sqlite3.connect(":memory:")
    for stmt in FTS_DDL:
        conn.execute(stmt)
    for fid, (rel, meta) in LIBRARY.items():  # one write each: a segment each
        put_document(conn, fid, document_for(rel, "/Volumes/SFX/My Library", meta))
        conn.commit()
    before = {q: ids(conn, q) for q in ("door", "cafe cups", "wood*", "category:doors")}
    assert fts.segments(conn) > 1 and fts.segments(conn, fts.TRIGRAM_TABLE) > 1
    fts.optimize(conn)
    assert fts.segments(conn) == 1 and fts.segments(conn, fts.TRIGRAM_TABLE) == 1
    assert {q: ids(conn, q) for q in before} == before
