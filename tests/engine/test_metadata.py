from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from engine.metadata import FileMetadata, read_metadata, split_keywords
from tests.metadata_fixtures import (
    bext_payload,
    chunk,
    info_payload,
    ixml_document,
    write_mp3,
    write_rf64,
    write_vorbis,
    write_wav,
)

USER = {
    "DESCRIPTION": "Heavy wooden door slams shut, interior",
    "CATEGORY": "DOORS",
    "SUBCATEGORY": "WOOD",
    "CATID": "DOORWood",
    "FXNAME": "Door slam heavy",
    "KEYWORDS": "door, slam; wood\nheavy",
    "LIBRARY": "Castle Doors",
    "DESIGNER": "Jane Doe",
    "TRACKTITLE": "Castle door slam",
    "SHOW": "Night Film",
    "MICROPHONE": "MKH 416",
}
ASWG = {"category": "WRONG", "catId": "DOORWood", "creatorId": "JD", "sourceId": "CSTL", "micType": "shotgun"}


def _full_wav(path: Path, **kw) -> Path:
    core = "<HISTORY><ORIGINAL_FILENAME>castle_door_take4.wav</ORIGINAL_FILENAME></HISTORY><PROJECT>Castle</PROJECT>"
    return write_wav(
        path,
        [
            chunk(
                b"bext",
                bext_payload("Door slam (bext)", originator="Sound Devices 833", originator_reference="REF1"),
            ),
            chunk(b"iXML", ixml_document(USER, ASWG, core).encode("utf-8")),
            chunk(b"LIST", info_payload({"INAM": "Info title", "IKEY": "Door; creak", "IGNR": "Foley"})),
        ],
        **kw,
    )


@pytest.mark.parametrize("before_data", [False, True])
def test_full_professional_wav(tmp_path: Path, before_data: bool) -> None:
    meta = read_metadata(_full_wav(tmp_path / "castle_door_take4.wav", before_data=before_data))
    assert meta.warnings == []
    assert meta.description == USER["DESCRIPTION"]  # USER wins over bext
    assert meta.title == "Castle door slam"  # USER TRACKTITLE wins over INFO INAM
    assert (meta.category, meta.subcategory, meta.cat_id) == ("DOORS", "WOOD", "DOORWood")  # USER over ASWG
    assert meta.fx_name == "Door slam heavy"
    assert meta.library == "Castle Doors" and meta.designer == "Jane Doe"
    assert (meta.creator_id, meta.source_id) == ("JD", "CSTL")  # only ASWG has them
    assert meta.original_filename == "castle_door_take4.wav"
    # keywords: split on , ; and new lines, merged across USER and INFO, de-duplicated case-insensitively
    assert meta.keywords == ["door", "slam", "wood", "heavy", "creak"]
    # nothing said is lost: losers that differ and unmapped raw fields land in extra
    assert meta.extra["bext:originator"] == "Sound Devices 833"
    assert meta.extra["bext:description"] == "Door slam (bext)"
    assert meta.extra["ASWG:category"] == "WRONG"
    assert meta.extra["ASWG:micType"] == "shotgun"
    assert meta.extra["USER:SHOW"] == "Night Film"
    assert meta.extra["INFO:IGNR"] == "Foley"
    assert meta.extra["iXML:PROJECT"] == "Castle"
    assert meta.extra["INFO:title"] == "Info title"


def test_agrees_with_wavinfo_on_a_well_formed_file(tmp_path: Path) -> None:
    wavinfo = pytest.importorskip("wavinfo")
    path = write_wav(
        tmp_path / "plain.wav",
        [
            chunk(b"bext", bext_payload("Rain on tin roof", originator="Recorder X")),
            chunk(b"LIST", info_payload({"INAM": "Rain", "IKEY": "rain; roof", "IART": "Sam"})),
        ],
    )
    ref = wavinfo.WavInfoReader(str(path))
    meta = read_metadata(path)
    assert meta.description == ref.bext.description
    assert meta.extra["bext:originator"] == ref.bext.originator
    assert meta.title == ref.info.title
    assert meta.designer == ref.info.artist
    assert meta.keywords == [k.strip() for k in ref.info.keywords.split(";")]


def test_rf64_chunks_after_the_audio(tmp_path: Path) -> None:
    xml = ixml_document({"DESCRIPTION": "After the audio"}).encode()
    meta = read_metadata(write_rf64(tmp_path / "long.wav", [chunk(b"iXML", xml)]))
    assert meta.warnings == []
    assert meta.description == "After the audio"  # the data size came from ds64, not the 0xFFFFFFFF field


def test_aswg_fills_in_without_user_block(tmp_path: Path) -> None:
    aswg = {
        "category": "GUNS",
        "subCategory": "PISTOL",
        "fxName": "Glock shot",
        "library": "Arms",
        "originator": "Ann",
    }
    path = write_wav(tmp_path / "x.wav", [chunk(b"iXML", ixml_document(aswg=aswg).encode())])
    meta = read_metadata(path)
    assert (meta.category, meta.subcategory) == ("GUNS", "PISTOL")
    assert meta.cat_id == "GUNPis"  # derived from category + subcategory
    assert (meta.fx_name, meta.library, meta.designer) == ("Glock shot", "Arms", "Ann")


def test_user_block_as_free_text_lines(tmp_path: Path) -> None:
    xml = "<BWFXML><USER>CATEGORY: WATER\nDESCRIPTION=Stream babbling\nnot a field</USER></BWFXML>"
    meta = read_metadata(write_wav(tmp_path / "x.wav", [chunk(b"iXML", xml.encode())]))
    assert meta.category == "WATER" and meta.description == "Stream babbling"


def test_info_only_and_text_encodings(tmp_path: Path) -> None:
    path = write_wav(
        tmp_path / "x.wav",
        [
            chunk(b"bext", bext_payload("Caf\u00e9 ambience", encoding="latin-1")),
            chunk(
                b"LIST", info_payload({"ISBJ": "Gr\u00fcner Wald, V\u00f6gel", "IPRD": "Nature", "ICMT": "c"})
            ),
        ],
    )
    meta = read_metadata(path)
    assert meta.description == "Caf\u00e9 ambience"  # bext in Latin-1 is not lost
    assert meta.extra["INFO:description"] == "Gr\u00fcner Wald, V\u00f6gel"  # UTF-8 INFO, lost to bext
    assert meta.library == "Nature"


def test_category_full_is_split(tmp_path: Path) -> None:
    xml = ixml_document({"CATEGORYFULL": "VEHICLES-CAR"})
    meta = read_metadata(write_wav(tmp_path / "x.wav", [chunk(b"iXML", xml.encode())]))
    assert (meta.category, meta.subcategory) == ("VEHICLES", "CAR")


def test_unknown_catid_is_kept_as_text(tmp_path: Path) -> None:
    xml = ixml_document({"CATID": "MYCustom"})
    meta = read_metadata(write_wav(tmp_path / "x.wav", [chunk(b"iXML", xml.encode())]))
    assert meta.cat_id == "MYCustom" and meta.category is None


# --------------------------------------------------------------------------------------- malformed


def test_truncated_ixml_keeps_what_is_there(tmp_path: Path) -> None:
    xml = ixml_document({"DESCRIPTION": "Kept", "CATEGORY": "DOORS", "NOTES": "x" * 400}).encode()
    # the iXML chunk claims 4 KiB more than the file holds: a copy cut short
    raw = chunk(b"bext", bext_payload("bext ok")) + chunk(b"iXML", xml[:-250], declared=len(xml) + 4096)
    meta = read_metadata(write_wav(tmp_path / "x.wav", [raw]))
    assert any("iXML" in w and "truncated" in w for w in meta.warnings)
    assert meta.description == "Kept" and meta.category == "DOORS"
    assert meta.extra["bext:description"] == "bext ok"


def test_broken_xml_is_recorded_and_other_chunks_still_read(tmp_path: Path) -> None:
    broken = b"<BWFXML><USER><DESCRIPTION>Half</DESCRIPTION><CATEGORY>DOORS</CATEG<<>&&</USER>"
    path = write_wav(
        tmp_path / "x.wav",
        [chunk(b"iXML", broken), chunk(b"LIST", info_payload({"INAM": "Still here"}))],
    )
    meta = read_metadata(path)
    assert any("iXML" in w and "well-formed" in w for w in meta.warnings)
    assert meta.description == "Half"
    assert meta.title == "Still here"


def test_unreadable_ixml_is_skipped(tmp_path: Path) -> None:
    path = write_wav(
        tmp_path / "x.wav",
        [chunk(b"iXML", b"\x89\x00garbage\xff\xfe not xml"), chunk(b"LIST", info_payload({"INAM": "T"}))],
    )
    meta = read_metadata(path)
    assert any("iXML" in w for w in meta.warnings)
    assert meta.title == "T"


@pytest.mark.parametrize(("size", "description"), [(100, None), (300, "Partial ok")])
def test_bext_of_wrong_size(tmp_path: Path, size: int, description: str | None) -> None:
    bext = bext_payload("Partial ok", originator="Orig")[:size]
    path = write_wav(
        tmp_path / "x.wav", [chunk(b"bext", bext), chunk(b"LIST", info_payload({"INAM": "Title"}))]
    )
    meta = read_metadata(path)
    assert any("bext" in w and str(size) in w for w in meta.warnings)
    assert meta.description == description
    assert meta.title == "Title"
    assert meta.extra.get("bext:originator") == ("Orig" if size >= 288 else None)


def test_garbage_after_chunks_stops_reading_but_keeps_earlier_ones(tmp_path: Path) -> None:
    path = write_wav(
        tmp_path / "x.wav", [chunk(b"LIST", info_payload({"INAM": "Before"})), b"\x00\x01\xff\xfe" * 8]
    )
    meta = read_metadata(path)
    assert meta.title == "Before"
    assert any("stopped" in w for w in meta.warnings)


def test_missing_pad_byte_is_tolerated(tmp_path: Path) -> None:
    odd = chunk(b"JUNK", b"abc", pad=False)  # 3 bytes, no pad byte: a common writer bug
    path = write_wav(tmp_path / "x.wav", [odd, chunk(b"LIST", info_payload({"INAM": "After odd"}))])
    meta = read_metadata(path)
    assert meta.title == "After odd"
    assert meta.warnings == []


def test_malformed_info_list(tmp_path: Path) -> None:
    body = b"INFO" + chunk(b"INAM", b"Good\0") + b"\x01\x02\x03\x04" + struct.pack("<I", 4) + b"xxxx"
    meta = read_metadata(write_wav(tmp_path / "x.wav", [chunk(b"LIST", body)]))
    assert meta.title == "Good"
    assert any("LIST-INFO" in w for w in meta.warnings)


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"hello, not audio", "not a RIFF/WAVE"),
        (b"", "not a RIFF/WAVE"),
        (b"RIFF\x10\x00\x00\x00WA", "not a RIFF/WAVE"),
    ],
)
def test_not_a_wav(tmp_path: Path, content: bytes, expect: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    meta = read_metadata(path)
    assert any(expect in w for w in meta.warnings)


def test_vanished_file_and_directory_are_recorded(tmp_path: Path) -> None:
    assert read_metadata(tmp_path / "gone.wav").warnings
    assert read_metadata(tmp_path).warnings


# --------------------------------------------------------------------------------------------- tags


def test_id3_on_mp3(tmp_path: Path) -> None:
    from mutagen.id3 import COMM, TALB, TCON, TIT2, TPE1, TXXX

    frames = [
        TIT2(encoding=3, text="Pistol shot"),
        COMM(encoding=3, lang="eng", desc="", text="A 9 mm pistol shot outdoors"),
        COMM(encoding=3, lang="eng", desc="iTunNORM", text="0000 0000"),
        TXXX(encoding=3, desc="CATID", text="GUNPis"),
        TXXX(encoding=3, desc="KEYWORDS", text="gun, shot"),
        TALB(encoding=3, text="Arms Vol 1"),
        TPE1(encoding=3, text="Bob"),
        TCON(encoding=3, text="Sound Effects"),
    ]
    meta = read_metadata(write_mp3(tmp_path / "shot.mp3", frames))
    assert meta.warnings == []
    assert meta.title == "Pistol shot" and meta.description == "A 9 mm pistol shot outdoors"
    assert (meta.cat_id, meta.category, meta.subcategory) == ("GUNPis", "GUNS", "PISTOL")
    assert meta.keywords == ["gun", "shot"]
    assert (meta.library, meta.designer) == ("Arms Vol 1", "Bob")
    assert meta.extra["ID3:GENRE"] == "Sound Effects"
    assert not any("0000" in v for v in meta.extra.values())


def test_garbage_id3_is_recorded_not_raised(tmp_path: Path) -> None:
    garbage = b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + b"\xff\x00" * 40
    meta = read_metadata(write_mp3(tmp_path / "DOORWood_Slam_JD_Lib.mp3", garbage_id3=garbage))
    assert any("tags" in w for w in meta.warnings)
    assert meta.cat_id == "DOORWood"  # the file name still counts


def test_id3_chunk_inside_wav(tmp_path: Path) -> None:
    import io

    from mutagen.id3 import ID3, TIT2, TXXX

    tags = ID3()
    tags.add(TIT2(encoding=3, text="From ID3 chunk"))
    tags.add(TXXX(encoding=3, desc="DESIGNER", text="Zoe"))
    buf = io.BytesIO()
    tags.save(buf)
    meta = read_metadata(write_wav(tmp_path / "x.wav", [chunk(b"id3 ", buf.getvalue())]))
    assert (meta.title, meta.designer) == ("From ID3 chunk", "Zoe")


def test_broken_id3_chunk_inside_wav(tmp_path: Path) -> None:
    path = write_wav(
        tmp_path / "x.wav", [chunk(b"id3 ", b"ID3garbage"), chunk(b"LIST", info_payload({"INAM": "T"}))]
    )
    meta = read_metadata(path)
    assert any("ID3" in w for w in meta.warnings) and meta.title == "T"


@pytest.mark.parametrize("suffix", [".ogg", ".flac"])
def test_vorbis_comments(tmp_path: Path, suffix: str) -> None:
    comments = {
        "TITLE": "Rain",
        "DESCRIPTION": "Rain on a tin roof",
        "COMMENT": "Recorded in May",
        "KEYWORDS": ["rain", "roof"],
        "ALBUM": "Weather",
        "ARTIST": "Kim",
        "CATEGORY": "RAIN",
        "GENRE": "nature",
    }
    meta = read_metadata(write_vorbis(tmp_path / f"rain{suffix}", comments))
    assert meta.warnings == []
    assert (meta.title, meta.description, meta.library, meta.designer) == (
        "Rain",
        "Rain on a tin roof",
        "Weather",
        "Kim",
    )
    assert meta.keywords == ["rain", "roof"]
    assert meta.category == "RAIN"
    assert "Recorded in May" in meta.extra.values() and "nature" in meta.extra.values()


# -------------------------------------------------------------------------------------- UCS names


def test_ucs_file_name_fills_gaps(tmp_path: Path) -> None:
    meta = read_metadata(write_wav(tmp_path / "DOORWood-Int_Front door slam_JD_CastleLib_v2.wav"))
    assert (meta.cat_id, meta.category, meta.subcategory) == ("DOORWood", "DOORS", "WOOD")
    assert (meta.fx_name, meta.creator_id, meta.source_id) == ("Front door slam", "JD", "CastleLib")
    assert meta.extra["UCS:user_category"] == "Int" and meta.extra["UCS:user_data"] == "v2"


def test_ordinary_name_is_not_taken_for_ucs(tmp_path: Path) -> None:
    meta = read_metadata(write_wav(tmp_path / "rain_heavy_01.wav"))
    assert meta.cat_id is None and meta.category is None


def test_metadata_catid_beats_a_conflicting_name(tmp_path: Path) -> None:
    xml = ixml_document({"CATID": "GUNPis"})
    meta = read_metadata(write_wav(tmp_path / "DOORWood_Slam_JD_Lib.wav", [chunk(b"iXML", xml.encode())]))
    assert meta.cat_id == "GUNPis" and meta.category == "GUNS" and meta.fx_name is None


def test_original_file_name_is_used_when_renamed(tmp_path: Path) -> None:
    xml = ixml_document({"ORIGINALFILENAME": "GUNPis_Glock shot_AB_Arms.wav"})
    meta = read_metadata(write_wav(tmp_path / "shot 12.wav", [chunk(b"iXML", xml.encode())]))
    assert (meta.cat_id, meta.fx_name, meta.creator_id) == ("GUNPis", "Glock shot", "AB")


def test_use_filename_false(tmp_path: Path) -> None:
    meta = read_metadata(write_wav(tmp_path / "DOORWood_Slam_JD_Lib.wav"), use_filename=False)
    assert meta.cat_id is None and meta.fx_name is None


# -------------------------------------------------------------------------------------- data class


def test_as_dict_round_trip(tmp_path: Path) -> None:
    meta = read_metadata(_full_wav(tmp_path / "x.wav"))
    d = meta.as_dict()
    assert "warnings" not in d and all(v not in (None, "", [], {}) for v in d.values())
    again = FileMetadata.from_dict(json.loads(json.dumps(d)))
    assert again == meta
    assert FileMetadata().as_dict() == {}
    assert FileMetadata.from_dict({"keywords": "one", "title": 3, "bogus": 1, "extra": "x"}).as_dict() == {
        "keywords": ["one"],
        "title": "3",
    }


def test_split_keywords() -> None:
    assert split_keywords(["a, b;c", "B\tD", " ", "a"]) == ["a", "b", "c", "D"]
    assert len(split_keywords([",".join(str(i) for i in range(500))])) == 200
