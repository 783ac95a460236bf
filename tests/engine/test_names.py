"""The text a file's own words make (semantic metadata search) and how informative it is."""

from __future__ import annotations

import pytest

from engine.metadata import FileMetadata
from engine.names import file_text, is_real_word, split_compound


@pytest.mark.parametrize("rel", ["ZOOM0042.WAV", "Audio 1_03.wav", "clip_0001.ogg", "12.wav", "xqzvbnm.wav",
                                 "Track 5.aif", "untitled_take_017.wav"])
def test_opaque_names_say_nothing(rel):
    ft = file_text(rel, "/tmp/lib", None)
    assert ft.informativeness == 0.0, ft


@pytest.mark.parametrize(("rel", "words"), [
    ("cattle/cow_moo_03.wav", ["cow", "cattle"]),
    ("Ambience/forest_birds_morning.wav", ["forest", "birds", "morning", "ambience"]),
    ("sounds/bombexplosion.ogg", ["bomb", "explosion"]),
    ("doorslam2.wav", ["door", "slam"]),
    ("Sounds/Footsteps/default_gravel_footstep.1.ogg", ["gravel", "footstep", "footsteps"]),
])
def test_named_files_give_their_words(rel, words):
    ft = file_text(rel, "/x/Library", None)
    for w in words:
        assert w in ft.text.replace(".", " ").split(), (w, ft)
    assert ft.informativeness >= 0.5
    assert not any(ch.isdigit() for ch in ft.text)


def test_name_comes_first_then_ucs_then_description_then_folders():
    meta = FileMetadata(description="Old barn door creaks open slowly", keywords=["hinge", "rusty"],
                        cat_id="DOORWood")
    ft = file_text("Foley/Doors/DOORWood_Creak Open Slow_JD_Barn.wav", "/Volumes/SFX", meta)
    parts = ft.text.split(". ")
    assert parts[0] == "creak open slow"
    assert "doors" in parts[1] and "wood" in parts[1]  # UCS category and subcategory
    assert "barn door creaks" in ft.text and "hinge rusty" in ft.text
    assert parts[-1].startswith("foley") or "foley" in parts[-1]
    assert ft.informativeness == 1.0


def test_a_description_makes_an_opaque_name_informative():
    ft = file_text("ZOOM0042.WAV", "/rec", FileMetadata(description="thunder rumble, distant"))
    assert "thunder rumble distant" in ft.text
    assert ft.informativeness >= 0.5


def test_compounds_and_real_words():
    assert split_compound("bombexplosion") == ["bomb", "explosion"]
    assert split_compound("doorslam") == ["door", "slam"]
    assert split_compound("harmonica") == ["harmonica"]
    assert split_compound("xqzvbnm") == ["xqzvbnm"]
    assert is_real_word("harmonica") and is_real_word("cows")
    assert not is_real_word("xqzvbnm")
