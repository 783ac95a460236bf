from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import ucs

DATA = Path(ucs.__file__).parent / "data" / "ucs"


def test_table_is_the_full_official_list() -> None:
    table = ucs.ucs_table()
    assert len(table) == 753
    assert len({r.category for r in table.values()}) == 82
    # every row of the shipped community JSON is there, unchanged
    rows = json.loads((DATA / "ucs-8.2.1-en.json").read_text(encoding="utf-8"))
    assert len(rows) == 752
    for obj in rows:
        row = table[obj["CatID"]]
        assert (row.category, row.subcategory, row.explanation) == (
            obj["Category"],
            obj["SubCategory"],
            obj["Explanations"],
        )
        assert row.synonyms == tuple(obj["Synonyms"])


def test_airblow_is_added() -> None:
    row = ucs.lookup("AIRBlow")
    assert row is not None
    assert (row.category, row.subcategory, row.cat_short) == ("AIR", "BLOW", "AIR")
    assert row.explanation and row.synonyms


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        ucs.ucs_table()["X"] = None  # type: ignore[index]


def test_notice_states_source_and_licence() -> None:
    text = (DATA / "NOTICE").read_text(encoding="utf-8")
    assert "iluvcapra/ucs-community" in text and "CC0" in text


@pytest.mark.parametrize("text", ["DOORWood", "doorwood", "DOORWOOD", "  DoorWood "])
def test_lookup_is_case_insensitive(text: str) -> None:
    row = ucs.lookup(text)
    assert row is not None and row.cat_id == "DOORWood"
    assert (row.category, row.subcategory) == ("DOORS", "WOOD")


@pytest.mark.parametrize("text", ["", None, "DOORPlastic", "Door Wood"])
def test_lookup_unknown(text: str | None) -> None:
    assert ucs.lookup(text) is None


def test_find_by_names() -> None:
    assert ucs.find("doors", "Wood").cat_id == "DOORWood"
    assert ucs.find("DOORS", "NOPE") is None
    assert ucs.find(None, "WOOD") is None


def test_categories_tree_covers_every_catid() -> None:
    tree = ucs.categories()
    assert len(tree) == 82
    assert tree["DOORS"]["WOOD"] == "DOORWood"
    assert tree["AIR"]["BLOW"] == "AIRBlow"
    leaves = [cat_id for subs in tree.values() for cat_id in subs.values()]
    assert sorted(leaves) == sorted(ucs.ucs_table())
    # the tree is a copy: editing it does not change the next one
    tree["DOORS"].clear()
    assert ucs.categories()["DOORS"]["WOOD"] == "DOORWood"


def test_parse_full_name() -> None:
    p = ucs.parse_ucs_filename("DOORWood-Int_Front door slam_JD_MyLib_take 3_alt")
    assert p == {
        "cat_id": "DOORWood",
        "user_category": "Int",
        "fx_name": "Front door slam",
        "creator_id": "JD",
        "source_id": "MyLib",
        "user_data": "take 3_alt",
        "known": True,
        "exact_case": True,
        "category": "DOORS",
        "subcategory": "WOOD",
    }


def test_parse_missing_parts_and_case() -> None:
    p = ucs.parse_ucs_filename("doorwood_Slam")
    assert p["cat_id"] == "DOORWood" and p["known"] and not p["exact_case"]
    assert p["fx_name"] == "Slam" and p["creator_id"] is None and p["source_id"] is None
    assert p["user_data"] is None and p["user_category"] is None
    p = ucs.parse_ucs_filename("GUNPis_Shot__Lib")  # empty CreatorID block
    assert p["creator_id"] is None and p["source_id"] == "Lib"


def test_parse_unknown_catid_is_kept_as_text() -> None:
    p = ucs.parse_ucs_filename("ZZZFoo_Something_AB_Lib")
    assert p["cat_id"] == "ZZZFoo" and not p["known"] and p["category"] is None
    assert ucs.parse_ucs_filename("ZZZFoo_Something_AB_Lib", strict=True) is None


@pytest.mark.parametrize(
    "stem", ["", "DOORWood", "DOORWood_", "_Slam_JD", "12ab_Slam", "Door Wood_Slam", "-Int_x"]
)
def test_parse_rejects_non_ucs(stem: str) -> None:
    assert ucs.parse_ucs_filename(stem) is None


@pytest.mark.parametrize(
    ("stem", "accepted"),
    [
        ("rain_heavy", False),
        ("RAIN_heavy", True),
        ("Rain_heavy", True),
        ("test_tone", False),
        ("DOORWood_x", True),
    ],
)
def test_strict_parse_guards_against_ordinary_words(stem: str, accepted: bool) -> None:
    assert ucs.parse_ucs_filename(stem)["known"]
    assert (ucs.parse_ucs_filename(stem, strict=True) is not None) is accepted
