"""Corpus readers (Clotho, AudioCaps, WavCaps, generic CSV/JSONL, Debian SFX) and evaluation sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training import synthetic as syn
from training.config import EvalSetConfig, QueriesConfig, SourceConfig
from training.data.readers import DataError, build_eval_set, read_source, read_sources


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_clotho_five_captions_per_file(tmp_path: Path) -> None:
    csv = _write(
        tmp_path / "clotho_captions_development.csv",
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        "b.wav,rain on a roof,rain falls,heavy rain,rain on a roof,rain drips\n"
        'a.wav,"a dog barks, twice",dog barking,a dog,barking dog,the dog barks\n',
    )
    clips = read_source(SourceConfig("clotho", str(csv), audio_root=str(tmp_path / "dev"), split="train"))
    assert [c.path.name for c in clips] == ["a.wav", "b.wav"]  # sorted by path
    assert clips[0].captions[0] == "a dog barks, twice" and len(clips[0].captions) == 5
    assert len(clips[1].captions) == 4  # the duplicate caption is dropped
    assert clips[0].path == (tmp_path / "dev" / "a.wav").resolve() and clips[0].split == "train"


def test_audiocaps_groups_rows_of_one_file(tmp_path: Path) -> None:
    csv = _write(
        tmp_path / "val.csv",
        "audiocap_id,youtube_id,start_time,caption\n1,abc,30,A man speaks\n2,abc,30,Someone talks\n3,xyz,0,Birds sing\n",
    )
    clips = read_source(SourceConfig("audiocaps", str(csv), audio_root=str(tmp_path)))
    assert [(c.path.name, len(c.captions)) for c in clips] == [("abc_30.wav", 2), ("xyz_0.wav", 1)]
    custom = read_source(SourceConfig("audiocaps", str(csv), options={"filename": "Y{youtube_id}.flac"}))
    assert custom[0].path.name == "Yabc.flac"
    with pytest.raises(DataError, match="unknown column 'nope'"):
        read_source(SourceConfig("audiocaps", str(csv), options={"filename": "{nope}.wav"}))


def test_wavcaps_json(tmp_path: Path) -> None:
    doc = {
        "data": [
            {"id": "7", "caption": "Wind blows.", "duration": 12.5, "audio": "wav_path"},
            {"id": "3", "caption": "A bell rings.", "audio": "wav_path"},
        ]
    }
    path = _write(tmp_path / "fsd_final.json", json.dumps(doc))
    clips = read_source(SourceConfig("wavcaps", str(path), audio_root=str(tmp_path / "audio")))
    assert [c.path.relative_to(tmp_path / "audio").as_posix() for c in clips] == ["3.flac", "7.flac"]
    assert clips[1].duration_s == 12.5
    _write(tmp_path / "broken.json", "{")
    with pytest.raises(DataError, match="cannot read the WavCaps"):
        read_source(SourceConfig("wavcaps", str(tmp_path / "broken.json")))
    _write(tmp_path / "noid.json", json.dumps({"data": [{"caption": "x", "audio": "wav_path"}]}))
    with pytest.raises(DataError, match="entry 0 needs an 'id'"):
        read_source(SourceConfig("wavcaps", str(tmp_path / "noid.json")))


def test_generic_csv_and_jsonl_with_split_filter(tmp_path: Path) -> None:
    csv = _write(tmp_path / "caps.csv", "path,caption,split\nx.wav,door slam,train\ny.wav,door creak,val\n")
    jsonl = _write(
        tmp_path / "caps.jsonl",
        '{"path": "x.wav", "caption": "door slam"}\n\n{"path": "z.wav", "caption": "a knock"}\n',
    )
    assert [c.path.name for c in read_source(SourceConfig("captions", str(csv), split="val"))] == ["y.wav"]
    both = read_sources([SourceConfig("captions", str(csv)), SourceConfig("captions", str(jsonl))])
    by_name = {c.path.name: c for c in both}
    assert set(by_name) == {"x.wav", "y.wav", "z.wav"} and by_name["x.wav"].captions == ("door slam",)
    _write(tmp_path / "bad.csv", "file,text\na,b\n")
    with pytest.raises(DataError, match="lacks the column"):
        read_source(SourceConfig("captions", str(tmp_path / "bad.csv")))
    with pytest.raises(DataError, match="unknown data format"):
        read_source(SourceConfig("freesound", str(csv)))
    with pytest.raises(DataError, match="not found"):
        read_source(SourceConfig("captions", str(tmp_path / "none.csv")))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return syn.make_corpus(tmp_path_factory.mktemp("corpus"))


def test_debian_table_and_multi_relevance_queries(corpus: dict[str, Path]) -> None:
    src = SourceConfig("debian_sfx", str(corpus["captions"]), audio_root=str(corpus["audio"]), split="test")
    clips = read_source(src)
    assert len(clips) == 10 and all(c.licence == "CC0-1.0" and c.split == "test" for c in clips)
    assert all(len(c.captions) == 3 and c.concept == c.captions[0] for c in clips)
    es = build_eval_set(EvalSetConfig((src,), QueriesConfig(str(corpus["queries"]), str(corpus["audio"]))))
    assert sorted(es.queries) == sorted(syn.QUERIES.values())
    for q, rel in zip(es.queries, es.relevant, strict=True):
        concept = next(k for k, v in syn.QUERIES.items() if v == q)
        assert {es.clips[i].path.parent.name for i in rel} == {concept} and len(rel) == 2


def test_eval_set_from_captions_groups_identical_captions(corpus: dict[str, Path]) -> None:
    src = SourceConfig("debian_sfx", str(corpus["captions"]), audio_root=str(corpus["audio"]), split="val")
    es = build_eval_set(EvalSetConfig((src,)))
    assert len(es.queries) == 15 and all(len(r) == 2 for r in es.relevant)


def test_missing_audio_is_dropped_from_eval_sets(tmp_path: Path, corpus: dict[str, Path], caplog) -> None:
    csv = _write(
        tmp_path / "caps.csv",
        f"path,caption\n{corpus['audio']}/hum/val_0.wav,low hum\n{tmp_path}/gone.wav,low hum\n",
    )
    es = build_eval_set(EvalSetConfig((SourceConfig("captions", str(csv)),)))
    assert len(es.clips) == 1 and "missing" in caplog.text
    with pytest.raises(DataError, match="none of the 1 audio files"):
        build_eval_set(
            EvalSetConfig(
                (SourceConfig("captions", str(_write(tmp_path / "g.csv", "path,caption\ngone.wav,x\n"))),)
            )
        )


def test_captions_table_keeps_the_packages_a_recipe_names(tmp_path: Path) -> None:
    from training.config import SourceConfig
    from training.data.readers import DataError, read_sources

    table = tmp_path / "cov.csv"
    table.write_text(
        "path,caption,package,licence,split\n"
        "a/x.wav,a flute note,fluid,GPL-2+,train\n"
        "b/y.wav,a flute note,musescore,MIT,train\n"
        "a/z.wav,a dog barks,fluid,GPL-2+,train\n",
        encoding="utf-8",
    )
    every = read_sources([SourceConfig("captions", str(table), str(tmp_path), "train")])
    assert len(every) == 3
    kept = read_sources([SourceConfig("captions", str(table), str(tmp_path), "train", options={"packages": ["fluid"]})])
    assert sorted(c.path.name for c in kept) == ["x.wav", "z.wav"] and {c.licence for c in kept} == {"GPL-2+"}
    plain = tmp_path / "plain.csv"
    plain.write_text("path,caption\na/x.wav,a flute note\n", encoding="utf-8")
    with pytest.raises(DataError, match="package"):
        read_sources([SourceConfig("captions", str(plain), str(tmp_path), options={"packages": ["fluid"]})])


def test_concept_captions_join_every_clip_of_a_concept(tmp_path: Path) -> None:
    table = _write(
        tmp_path / "cov.csv",
        "path,caption,concept,package,licence,split\n"
        "a/lo.wav,cello note,\"cello sustained note, low pitch\",fluid,GPL-2+,train\n"
        "a/hi.wav,cello note high,\"cello sustained note, high pitch\",fluid,GPL-2+,train\n"
        "a/dog.wav,a dog barks,dog bark,fluid,GPL-2+,train\n",
    )
    queries = _write(
        tmp_path / "designer.tsv",
        "concept\tquery\n"
        "Cello  sustained note\tbowed cello sustain\n"
        "cello sustained note\tcello note\n"  # the same as a caption: not repeated
        "door slam\tslamming door\n",  # no clip of this concept: ignored
    )
    src = SourceConfig("captions", str(table), str(tmp_path), "train", options={"concept_captions": str(queries)})
    clips = {c.path.name: c for c in read_sources([src])}
    assert clips["lo.wav"].captions == ("cello note", "bowed cello sustain")
    assert clips["hi.wav"].captions == ("cello note high", "bowed cello sustain", "cello note")
    assert clips["dog.wav"].captions == ("a dog barks",)
    plain = _write(tmp_path / "plain.csv", "path,caption\na/x.wav,a flute note\n")
    with pytest.raises(DataError, match="concept"):
        read_sources([SourceConfig("captions", str(plain), str(tmp_path), options={"concept_captions": str(queries)})])
    with pytest.raises(DataError, match="not found"):
        read_sources([SourceConfig("captions", str(table), str(tmp_path), options={"concept_captions": "nope.tsv"})])
    # a list of tables: read in order, each one's queries appended (a repeat is not added twice)
    more = _write(tmp_path / "more.csv", "concept,query\ndog bark,woof\ndog bark,bowed cello sustain\n")
    both = {"concept_captions": [str(queries), str(more)]}
    listed = {c.path.name: c for c in read_sources([SourceConfig("captions", str(table), str(tmp_path), "train", options=both)])}
    assert listed["dog.wav"].captions == ("a dog barks", "woof", "bowed cello sustain")
    assert listed["lo.wav"].captions == ("cello note", "bowed cello sustain")


def test_sample_weight_marks_a_sources_clips(tmp_path: Path) -> None:
    table = _write(tmp_path / "cov.csv", "path,caption,package\na/x.wav,a flute note,fluid\na/z.wav,a dog barks,game\n")
    fonts = SourceConfig("captions", str(table), str(tmp_path), options={"packages": ["fluid"], "sample_weight": 0.25})
    games = SourceConfig("captions", str(table), str(tmp_path), options={"packages": ["game"]})
    clips = read_sources([fonts, games])
    assert {c.path.name: c.sample_weight for c in clips} == {"x.wav": 0.25, "z.wav": 1.0}
    for bad in (0.0, 1.5):
        wrong = SourceConfig("captions", str(table), str(tmp_path), options={"sample_weight": bad})
        with pytest.raises(DataError, match="sample_weight"):
            read_sources([wrong])
