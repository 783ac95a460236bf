"""The passt-roberta recipe is the published one (issue 15): WavCaps paths and exclusions, fine-tuning data,
schedule, DCASE 2025 evaluation file, augmentation and clustering settings — on small files in the real
formats."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from engine.encoder import normalise_text
from training.augment.text_ops import word_deletion
from training.clustering import ClusteringError, cluster_embeddings, umap_hdbscan_labels
from training.config import EvalSetConfig, QueriesConfig, SourceConfig, load_recipe
from training.data.readers import (
    EXCLUSION_LISTS,
    DataError,
    build_eval_set,
    read_id_list,
    read_queries,
    read_source,
)
from training.evaluate import evaluate_embedder, format_metrics
from training.optim import warmup_cosine
from training.teacher import stage_sources, training_clips

RECIPE = Path(__file__).resolve().parents[2] / "training" / "recipes" / "passt-roberta"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ WavCaps


def _wavcaps(entries: list[tuple[str, str]]) -> str:
    """A WavCaps JSON as released: every entry's ``audio`` is the placeholder ``wav_path``."""
    return json.dumps(
        {
            "num_captions_per_audio": 1,
            "data": [
                {"id": i, "caption": c, "audio": "wav_path", "duration": 10.0, "download_link": "x"}
                for i, c in entries
            ],
        }
    )


def test_wavcaps_paths_come_from_ids_not_the_placeholder(tmp_path: Path) -> None:
    fsd = _write(tmp_path / "fsd_final.json", _wavcaps([("180913", "a dog barks"), ("9", "rain falls")]))
    clips = read_source(SourceConfig("wavcaps", str(fsd), audio_root=str(tmp_path / "FreeSound")))
    assert sorted(c.path.name for c in clips) == ["180913.flac", "9.flac"]
    assert all(c.captions for c in clips) and len(clips) == 2  # not one collapsed "wav_path" clip
    # AudioSet_SL ids already end in .wav; the files are Y<id>.flac
    asl = _write(tmp_path / "as_final.json", _wavcaps([("Y---1_cCGK4M.wav", "speech"), ("Yabc.wav", "car")]))
    clips = read_source(SourceConfig("wavcaps", str(asl), audio_root=str(tmp_path / "AudioSet_SL")))
    assert sorted(c.path.name for c in clips) == ["Y---1_cCGK4M.flac", "Yabc.flac"]


def test_freesound_exclusion_list_is_shipped_and_applied(tmp_path: Path) -> None:
    ids = read_id_list("dcase2025_task6")
    assert EXCLUSION_LISTS["dcase2025_task6"].is_file()
    # the official list as published: 3079 Freesound ids and one "Not found" row
    assert len(ids) == 3080 and "354184" in ids and sum(i.isdigit() for i in ids) == 3079
    leaked = sorted(i for i in ids if i.isdigit())[:2]
    fsd = _write(
        tmp_path / "fsd_final.json",
        _wavcaps([(leaked[0], "evaluation sound"), ("1", "kept sound"), (leaked[1], "another one")]),
    )
    src = SourceConfig("wavcaps", str(fsd), options={"exclude_ids": "dcase2025_task6"})
    assert [c.path.name for c in read_source(src)] == ["1.flac"]
    own = _write(tmp_path / "own.csv", "sound_id\n1\n")
    assert read_id_list(str(own)) == {"1"}
    with pytest.raises(DataError, match="exclusion list not found"):
        read_source(SourceConfig("wavcaps", str(fsd), options={"exclude_ids": "nope.csv"}))


def test_audioset_sl_drops_audiocaps_clips(tmp_path: Path) -> None:
    ac = _write(tmp_path / "train.csv", "audiocap_id,youtube_id,start_time,caption\n1,abc,30,a car\n")
    asl = _write(tmp_path / "as_final.json", _wavcaps([("Yabc.wav", "car"), ("Yxyz.wav", "bird")]))
    src = SourceConfig("wavcaps", str(asl), options={"exclude_youtube_ids_from": [str(ac)]})
    assert [c.path.name for c in read_source(src)] == ["Yxyz.flac"]


# --------------------------------------------------------------------------------- the recipe itself


@pytest.fixture(scope="module")
def recipes() -> dict[str, object]:
    return {n: load_recipe(RECIPE / f"{n}.toml") for n in ("stage1", "stage2", "stage3", "teacher")}


def test_stage1_uses_everything_with_exclusions(recipes) -> None:
    train = stage_sources(recipes["stage1"])
    formats = [s.format for s in train]
    assert formats.count("wavcaps") == 4 and formats.count("audiocaps") == 3 and formats[0] == "clotho"
    fsd = next(s for s in train if "FreeSound" in s.path)
    assert fsd.options["exclude_ids"] == "dcase2025_task6"
    asl = next(s for s in train if "AudioSet_SL" in s.path)
    assert len(asl.options["exclude_youtube_ids_from"]) == 3


def test_stages_2_and_3_and_the_teacher_fine_tune_on_clotho_development_only(recipes) -> None:
    for name in ("stage2", "stage3"):
        sources = stage_sources(recipes[name])
        assert [(s.format, Path(s.path).name) for s in sources] == [
            ("clotho", "clotho_captions_development.csv")
        ]
    assert stage_sources(recipes["teacher"], "finetune") == recipes["stage2"].data.finetune


def test_stage_data_selection_reads_the_chosen_sources(tmp_path: Path, recipes) -> None:
    import dataclasses

    audio = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(audio, np.zeros(1600, np.float32), 16000)
    sf.write(tmp_path / "b.wav", np.zeros(1600, np.float32), 16000)
    big = _write(tmp_path / "big.csv", "path,caption\na.wav,rain\nb.wav,wind\n")
    small = _write(tmp_path / "small.csv", "path,caption\na.wav,rain\n")
    r = recipes["stage2"]
    r = dataclasses.replace(
        r,
        data=dataclasses.replace(
            r.data,
            train=(SourceConfig("captions", str(big)),),
            finetune=(SourceConfig("captions", str(small)),),
        ),
    )
    assert [c.path.name for c in training_clips(r, augmented=False)] == ["a.wav"]
    r1 = dataclasses.replace(r, train=dataclasses.replace(r.train, stage="stage1"))
    assert [c.path.name for c in training_clips(r1, augmented=False)] == ["a.wav", "b.wav"]
    forced = dataclasses.replace(r, train=dataclasses.replace(r.train, data="train"))
    assert len(training_clips(forced, augmented=False)) == 2
    # The published recipe insists on an LLM for back-translations and mixes
    with pytest.raises(Exception, match="augment.llm.required"):
        training_clips(r, augmented=True)


def test_published_settings(recipes) -> None:
    r = recipes["stage2"]
    assert r.train.weight_decay == 0.0 and r.train.decay_epochs == 15.0 and r.train.epochs == 20
    assert r.augment.mixes == 50000 and r.augment.word_delete == "one" and r.augment.llm.required
    assert r.model.text_normalisation["strip_punctuation"] == "delete"
    c = recipes["stage3"].clustering
    assert (c.method, c.source, c.prefix) == ("umap_hdbscan", "text_encoder", "query: ")
    assert c.encoder["config"]["bert"]["hidden_size"] == 1024  # e5-large-v2
    test = r.data.eval["test"]
    assert test.queries is not None and test.queries.format == "dcase2025"
    assert test.caption_queries == "per_caption" and r.data.eval["val"].caption_queries == "per_caption"


def test_schedule_decays_over_15_epochs_then_stays_flat() -> None:
    spe, lr, end = 10, 2e-5, 1e-7
    kw = {"total": 20 * spe, "warmup": spe, "lr": lr, "lr_end": end, "decay": 15 * spe}
    assert warmup_cosine(spe - 1, **kw) == pytest.approx(lr)
    mid = warmup_cosine(spe + 15 * spe // 2, **kw)
    assert mid == pytest.approx((lr + end) / 2, rel=1e-6)
    for step in (16 * spe, 17 * spe, 20 * spe - 1):
        assert warmup_cosine(step, **kw) == pytest.approx(end)
    # without ``decay`` the cosine spans every epoch: still above lr_end at epoch 17
    assert warmup_cosine(17 * spe, **{**kw, "decay": 0}) > 10 * end


def test_punctuation_is_deleted_as_the_baseline_does() -> None:
    rules = {"lowercase": True, "strip_punctuation": "delete", "collapse_whitespace": True}
    assert normalise_text("A dog's bark, then -- silence!", rules) == "a dogs bark then silence"
    assert normalise_text("A dog's bark!", {"strip_punctuation": True}) == "a dog's bark"


def test_word_deletion_drops_exactly_one_word() -> None:
    rng = np.random.default_rng(0)
    caption = "a small dog barks loudly at the mail carrier outside"
    for _ in range(20):
        v = word_deletion(caption, rng, None)
        assert len(v.split()) == len(caption.split()) - 1


# ------------------------------------------------------------------------------- DCASE 2025 evaluation

METADATA_EVAL = (
    "query,audio_filenames\n"
    '"A dog barks, twice.","[\'dog.wav\', \'Pensol - le Moulin cours d&#39;eau.wav\']"\n'
    "Rain falls on a roof.,\"['rain.wav']\"\n"
)


def _clotho_eval(tmp_path: Path) -> Path:
    import soundfile as sf

    root = tmp_path / "evaluation"
    root.mkdir()
    for name in ("dog.wav", "rain.wav", "Pensol - le Moulin cours d&#39;eau.wav", "car.wav"):
        sf.write(root / name, np.zeros(800, np.float32), 16000)
    return _write(
        tmp_path / "clotho_captions_evaluation.csv",
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        'dog.wav,"A dog barks, twice.",a dog,dogs bark,barking,woof\n'
        "rain.wav,Rain falls on a roof.,rain,heavy rain,drizzle,a storm\n"
        "Pensol - le Moulin cours d&#39;eau.wav,water flows,a stream,a river,brook,water\n"
        "car.wav,a car passes,traffic,an engine,a car,rain\n",
    )


def test_dcase2025_metadata_eval_reader(tmp_path: Path) -> None:
    csv = _write(tmp_path / "metadata_eval.csv", METADATA_EVAL)
    table = read_queries(QueriesConfig(str(csv), str(tmp_path / "evaluation"), format="dcase2025"))
    assert set(table) == {"A dog barks, twice.", "Rain falls on a roof."}
    assert {p.name for p in table["A dog barks, twice."]} == {"dog.wav", "Pensol - le Moulin cours d&#39;eau.wav"}
    bad = _write(tmp_path / "bad.csv", "query,audio_filenames\nq,not a list\n")
    with pytest.raises(DataError, match="Python list literal"):
        read_queries(QueriesConfig(str(bad), format="dcase2025"))
    with pytest.raises(DataError, match="lacks the column"):
        read_queries(QueriesConfig(str(bad), format="pairs"))


def test_per_caption_queries_keep_identical_captions_apart(tmp_path: Path) -> None:
    src = SourceConfig("clotho", str(_clotho_eval(tmp_path)), audio_root=str(tmp_path / "evaluation"))
    grouped = build_eval_set(EvalSetConfig((src,)))
    per = build_eval_set(EvalSetConfig((src,), caption_queries="per_caption"))
    assert len(per.queries) == 20 and all(len(r) == 1 for r in per.relevant)
    assert len(grouped.queries) == 19  # "rain" is a caption of two clips: one query, two relevant
    assert [len(r) for q, r in zip(per.queries, per.relevant, strict=True) if q == "rain"] == [1, 1]


class _FakeEmbedder:
    """Texts and clips embedded by keyword, so the expected ranking is known."""

    def __init__(self) -> None:
        self.recipe = SimpleNamespace(
            model=SimpleNamespace(text_normalisation={"lowercase": True}), eval=SimpleNamespace(scoring="clip")
        )

    @staticmethod
    def _vec(text: str) -> np.ndarray:
        words = ("dog", "rain", "water", "car")
        v = np.array([float(w in text.lower()) for w in words]) + 1e-3 * np.arange(4)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def texts(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts])

    def audio(self, clips, mode):  # one row per clip
        rows = np.stack([self._vec(c.path.name.replace("eau", "water")) for c in clips])
        return rows, np.arange(len(clips) + 1)


def test_evaluation_reports_multi_and_single_relevance(tmp_path: Path) -> None:
    src = SourceConfig("clotho", str(_clotho_eval(tmp_path)), audio_root=str(tmp_path / "evaluation"))
    csv = _write(tmp_path / "metadata_eval.csv", METADATA_EVAL)
    es = build_eval_set(
        EvalSetConfig(
            (src,),
            QueriesConfig(str(csv), str(tmp_path / "evaluation"), format="dcase2025"),
            caption_queries="per_caption",
        )
    )
    assert len(es.queries) == 2 and es.single is not None and len(es.single[0]) == 20
    m = evaluate_embedder(_FakeEmbedder(), es)
    assert m["queries"] == 2 and m["single/queries"] == 20
    # "A dog barks": dog.wav first (1/1), the water clip ranked below it; AP = (1 + 2/r)/2 with r its rank
    assert 0.5 < m["map@16"] < 1.0 and m["single/R@10"] == 1.0
    assert "single-relevance" in format_metrics(m)


# ---------------------------------------------------------------------------------------- clustering


def test_umap_hdbscan_clusters_with_a_reducer_and_bounds_k() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 5
    x = np.concatenate([c + 0.05 * rng.standard_normal((30, 8)) for c in centres])
    labels = umap_hdbscan_labels(x, 8, reducer=lambda z: z[:, :3], min_cluster_size=10)
    assert len(set(labels.tolist())) == 3
    assert all(len(set(labels[i * 30 : (i + 1) * 30].tolist())) == 1 for i in range(3))
    with pytest.raises(ClusteringError, match="more than clustering.k"):
        cluster_embeddings(x, "hdbscan", 2, min_cluster_size=10)
    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(ClusteringError, match="umap-learn"):
            cluster_embeddings(x, "umap_hdbscan", 8)


# ------------------------------------------------------------------------------ ensemble and overlays


def test_coordinate_search_matches_the_grid_and_scales_to_twelve_members() -> None:
    from training.ensemble import coordinate_weights, grid_size, search_weights

    rng = np.random.default_rng(0)
    q, n = 30, 40
    relevant = [{int(rng.integers(n))} for _ in range(q)]
    truth = np.zeros((q, n), np.float32)
    for i, r in enumerate(relevant):
        truth[i, list(r)] = 1.0
    good = truth + 0.8 * rng.standard_normal((q, n)).astype(np.float32)
    noise = [rng.standard_normal((q, n)).astype(np.float32) for _ in range(2)]
    offsets = np.arange(n + 1)
    grid_w, grid_v = search_weights([good, *noise], offsets, relevant, step=0.1)
    coord_w, coord_v = coordinate_weights([good, *noise], offsets, relevant, step=0.1)
    assert coord_v >= grid_v - 0.05 and coord_w[0] >= max(coord_w[1:])
    assert abs(sum(coord_w) - 1) < 1e-9 and min(coord_w) >= 0
    assert grid_size(12, 0.1) == 352716 and grid_size(3, 0.1) == 66
    twelve = [good + 0.3 * rng.standard_normal((q, n)).astype(np.float32) for _ in range(12)]
    w, v = coordinate_weights(twelve, offsets, relevant, step=0.1, rounds=1)
    assert len(w) == 12 and abs(sum(w) - 1) < 1e-9 and 0 <= v <= 1


def test_backbone_overlays_replace_the_audio_backbone(tmp_path: Path) -> None:
    from engine.models.beats import BeatsConfig
    from engine.models.eat import EatConfig
    from training.config import RecipeError, overlay, read_recipe_document, recipe_from_dict

    base = read_recipe_document(RECIPE / "stage1.toml")
    eat = recipe_from_dict(overlay(base, read_recipe_document(RECIPE / "backbones" / "eat.toml")))
    beats = recipe_from_dict(overlay(base, read_recipe_document(RECIPE / "backbones" / "beats.toml")))
    assert eat.model.audio_backbone.arch == "eat" and "variant" not in eat.model.audio_backbone.config
    EatConfig.from_dict(eat.model.audio_backbone.config)  # no PaSST keys leak into EAT's config
    BeatsConfig.from_dict(beats.model.audio_backbone.config)
    assert eat.model.sample_rate == beats.model.sample_rate == 32000  # ensemble with PaSST
    assert eat.model.text_backbone.arch == "roberta"
    bad = tmp_path / "bad.toml"
    bad.write_text('replace = ["model.nothing"]\n', encoding="utf-8")
    with pytest.raises(RecipeError, match="model.nothing"):
        overlay(base, read_recipe_document(bad))


def test_teacher_and_ensemble_composition(recipes) -> None:
    members = recipes["teacher"].teacher.members
    assert [m.rsplit("/", 1)[1] for m in members] == ["stage1-passt-s0", "stage1-eat-s0", "stage1-beats-s0"]
    ens = load_recipe(RECIPE / "ensemble.toml").ensemble
    assert len(ens.members) == 12 and len(set(ens.members)) == 12
    assert {m.rsplit("-", 2)[1] for m in ens.members} == {"passt", "eat", "beats"}
    assert {m.rsplit("-", 1)[1] for m in ens.members} == {"s0", "s1", "s2", "s3"}


def test_evaluation_keeps_a_clips_repeated_captions_as_queries(tmp_path: Path, recipes) -> None:
    csv = _write(
        tmp_path / "c.csv",
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\na.wav,rain,Rain,rain falls,drops,a storm\n",
    )
    keep = read_source(SourceConfig("clotho", str(csv), options={"keep_duplicates": True}))
    assert keep[0].captions == ("rain", "Rain", "rain falls", "drops", "a storm")
    assert len(read_source(SourceConfig("clotho", str(csv)))[0].captions) == 4
    for name in ("val", "test"):
        assert recipes["stage1"].data.eval[name].sources[0].options == {"keep_duplicates": True}


def test_captions_are_embedded_for_clustering_by_a_registry_text_encoder() -> None:
    import torch

    from engine.models.registry import build_text_backbone
    from training.clustering import encode_for_clustering
    from training.config import ClusteringConfig

    enc = {"arch": "tiny_test", "config": {"out_dim": 8, "seed": 0}, "pretrained": False}
    texts = ["a dog barks", "rain falls"]
    x = encode_for_clustering(ClusteringConfig(source="text_encoder", encoder=enc, prefix="query: "), texts)
    ref = build_text_backbone("tiny_test", {"out_dim": 8, "seed": 0}).eval()
    with torch.no_grad():
        expected = ref.encode(["query: " + t for t in texts]).numpy()
        unprefixed = ref.encode(texts).numpy()
    assert x.shape == (2, 8) and np.allclose(x, expected, atol=1e-6) and not np.allclose(x, unprefixed)
    with pytest.raises(ClusteringError, match="clustering.encoder"):
        encode_for_clustering(ClusteringConfig(source="text_encoder"), texts)
