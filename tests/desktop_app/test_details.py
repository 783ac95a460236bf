"""The text the results table, its tooltips and the details panel show for a file's metadata."""

from __future__ import annotations

from desktop_app.details import (
    TOOLTIP_DESCRIPTION_CHARS,
    TOOLTIP_WIDTH,
    category_filter_value,
    category_text,
    description_text,
    hit_details,
    hit_tooltip,
)
from engine import ucs
from engine.metadata import FileMetadata
from engine.search import Hit


def hit(meta: dict, path: str = "/sfx/Doors/door_take1.wav") -> Hit:
    return Hit(path, 0.5, 1.0, 2.0, 3.25, 48000, 2, "WAV", 7, meta)


def test_columns_text() -> None:
    assert description_text({}) == "" and category_text({}) == "" and category_filter_value({}) == ""
    assert description_text({"description": "  Door\n slams  shut ", "title": "t"}) == "Door slams shut"
    assert description_text({"title": "Slam", "fx_name": "f"}) == "Slam"
    assert description_text({"fx_name": "Front door slam"}) == "Front door slam"
    meta = FileMetadata(category="DOORS", subcategory="WOOD", cat_id="DOORWood").as_dict()
    assert category_text(meta) == "DOORS › WOOD" and category_filter_value(meta) == "DOORWood"
    assert (
        category_text({"category": "Foley"}) == "Foley"
        and category_filter_value({"category": "Foley"}) == "Foley"
    )
    assert category_text({"cat_id": "XYZAbc"}) == "XYZAbc"  # a CatID the UCS list does not know


def test_tooltip_wraps_and_truncates() -> None:
    plain = hit_tooltip(hit({}))
    assert plain.splitlines() == ["/sfx/Doors/door_take1.wav", "best match 0:01.0–0:02.0 · score 0.500"]
    long = " ".join(["creaky"] * 200)
    lines = hit_tooltip(
        hit({"description": long, "category": "DOORS", "subcategory": "WOOD", "cat_id": "DOORWood"})
    )
    lines = lines.splitlines()
    assert all(len(line) <= TOOLTIP_WIDTH for line in lines[2:])
    body = " ".join(lines[2:-1])
    assert body.endswith("…") and len(body) <= TOOLTIP_DESCRIPTION_CHARS
    assert lines[-1] == "category: DOORS › WOOD (DOORWood)"


def test_details_rows() -> None:
    assert hit_details(None).empty and hit_details(None).rows == []
    meta = FileMetadata(
        description="Heavy door",
        title="Heavy door",  # the same as the description: shown once
        cat_id="DOORWood",
        category="DOORS",
        subcategory="WOOD",
        keywords=["door", "slam"],
        library="Foley Essentials",
        designer="Jane Doe",
        extra={"ASWG:micType": "MKH 416"},
    ).as_dict()
    d = hit_details(hit(meta))
    labels = [label for label, _ in d.rows]
    assert d.title == "door_take1.wav" and "Title" not in labels
    rows = dict(d.rows)
    assert rows["Description"] == "Heavy door" and rows["Keywords"] == "door, slam"
    assert rows["UCS"] == ucs.lookup("DOORWood").explanation and rows["ASWG:micType"] == "MKH 416"
    assert rows["File"] == "3.2 s · 48 kHz · stereo · WAV"
    assert labels[-1] == "Path" and rows["Path"] == "/sfx/Doors/door_take1.wav"
    assert (d.category_value, d.category_label) == ("DOORWood", "DOORS › WOOD")
    bare = hit_details(hit({}, "C:\\sfx\\x.wav"))
    assert bare.title == "x.wav" and dict(bare.rows)["Metadata"] == "none embedded in this file"
    assert bare.category_value == ""
