"""Tests for the LMMS sample names (training/data/debian/lmms.py)."""

from __future__ import annotations

import pytest

from training.data.debian import lmms

S = lmms.SAMPLES_DIR


@pytest.mark.parametrize(
    ("path", "captions"),
    [
        (f"{S}/drums/hihat_closed01.ogg", ["closed hi-hat", "closed hi-hat drum one-shot"]),
        (f"{S}/instruments/e_piano_accord01.ogg", ["electric piano chord", "electric piano chord sample"]),
        (f"{S}/beats/909beat01.ogg", ["909 drum beat", "909 drum beat drum loop"]),
        (f"{S}/waveforms/10sqr.flac", ["square", "square waveform tone"]),
        (f"{S}/latin/latin_guitar02.ogg", ["latin guitar loop", "latin guitar riff"]),
        (f"{S}/drums/snare_hiphop01.ogg", ["hiphop snare drum", "hiphop snare drum drum one-shot"]),
        (f"{S}/misc/undefined01.ogg", []),
        (f"{S}/bassloops/tb303_01.ogg", ["tb-303 acid bass loop", "tb-303 acid bass bass loop"]),
        (f"{S}/unknownfolder/kick01.ogg", []),
    ],
)
def test_captions_from_name_and_folder(path, captions):
    assert lmms.captions_for(path) == captions
