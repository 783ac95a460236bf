"""The real passt-roberta recipe files, end to end in tiny form on CPU: datasets in their real formats under
``data/`` (Clotho CSVs, AudioCaps CSVs, WavCaps JSONs with the ``wav_path`` placeholder, the DCASE 2025
``metadata_eval.csv``), tiny random-weight PaSST / EAT / BEATs through the recipe's backbone overlays,
every command through the CLI: stage 1 per backbone → PaSST+EAT+BEATs teacher → stages 2 and 3 (Clotho
development only) → evaluation (multi- and single-relevance) → ensemble → export, loaded by the engine.

Deviations from the published settings, all through ``--with``/``--set``: tiny architectures, a tiny text
backbone, 1 s windows, 2 epochs, k-means clusters on the teacher (no umap-learn / e5 here), the rule-based
LLM fallback, three ensemble members instead of twelve.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.training import synthetic as syn
from training.cli import main

RECIPE = Path(__file__).resolve().parents[2] / "training" / "recipes" / "passt-roberta"
QUIET = ["--quiet", "--log-level", "WARNING"]
R = "runs/passt-roberta"

TINY_CONFIG = {
    "passt": "{embed_dim = 32, depth = 1, num_heads = 2, segment_s = 1.0, s_patchout_t = 2, s_patchout_f = 1}",
    "eat": "{sample_rate = 32000, segment_s = 1.0, target_length = 112, embed_dim = 32, depth = 1, num_heads = 4}",
    "beats": "{sample_rate = 32000, segment_s = 1.0, embed_dim = 16, encoder_layers = 1, encoder_embed_dim = 32, "
    "encoder_ffn_embed_dim = 64, encoder_attention_heads = 4, conv_pos = 8, conv_pos_groups = 4, num_buckets = 32, "
    "max_distance = 64}",
}


def _tiny_overlay(backbone: str) -> str:
    return f"""
replace = ["model.audio_backbone.config", "model.text_backbone", "clustering"]

[model]
window_s = 1.0
hop_s = 0.5
embed_dim = 16

[model.audio_backbone]
config = {TINY_CONFIG[backbone]}

[model.text_backbone]
name = "tiny"
arch = "tiny_test"
config = {{out_dim = 32, seed = 0}}
trainable = true

[data]
max_audio_s = 2.0

[train]
epochs = 2
batch_size = 8
lr = 1e-3
device = "cpu"
cpu_threads = 1
plot = false

[augment]
mixes = 4
llm = {{required = false}}

[clustering]
method = "kmeans"
k = 4
source = "teacher"

[eval]
batch = 8
"""


def _wav(path: Path, concept: str, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, syn.make_signal(concept, rng), syn.SR)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def make_datasets(root: Path) -> dict[str, int]:
    """Every dataset of the recipe under ``root/data`` in its real format; returns expected clip counts."""
    rng = np.random.default_rng(0)
    concepts = list(syn.CAPTIONS)
    data = root / "data"

    def clotho(split: str, folder: str, per_concept: int) -> list[tuple[str, str]]:
        rows, names = [], []
        for c in concepts:
            for i in range(per_concept):
                name = f"{c} {split} {i}.wav"
                _wav(data / "clotho" / folder / name, c, rng)
                caps = list(syn.CAPTIONS[c]) + [
                    f"{syn.CAPTIONS[c][0]}, recorded {i}",
                    f"{c} sound number {i}.",
                ]
                rows.append([name, *caps])
                names.append((name, c))
        _write_csv(
            data / "clotho" / f"clotho_captions_{split}.csv",
            ["file_name", *(f"caption_{k}" for k in range(1, 6))],
            rows,
        )
        return names

    clotho("development", "development", 2)
    clotho("validation", "validation", 1)
    evaluation = clotho("evaluation", "evaluation", 2)
    # DCASE 2025 multi-relevance judgements: one query per concept, both clips of that concept relevant
    meta = []
    for c in concepts:
        files = [n for n, cc in evaluation if cc == c]
        meta.append([f"{syn.CAPTIONS[c][0]}, recorded 0", repr(files)])
    _write_csv(data / "clotho" / "metadata_eval.csv", ["query", "audio_filenames"], meta)
    youtube = {}
    for split in ("train", "val", "test"):
        rows = []
        for k, c in enumerate(concepts[:2]):
            yid = f"{split[:2]}{k}abcdefgh"[:11]
            youtube.setdefault(split, []).append(yid)
            _wav(data / "audiocaps" / split / f"{yid}_30.wav", c, rng)
            rows.append([str(len(rows)), yid, "30", syn.CAPTIONS[c][1]])
        _write_csv(
            data / "audiocaps" / f"{split}.csv", ["audiocap_id", "youtube_id", "start_time", "caption"], rows
        )

    def wavcaps(subset: str, file: str, entries: list[tuple[str, str, str]]) -> None:
        for _, stem, c in entries:
            _wav(data / "wavcaps" / subset / f"{stem}.flac", c, rng)
        doc = {
            "num_captions_per_audio": 1,
            "data": [
                {
                    "id": i,
                    "caption": syn.CAPTIONS[c][2],
                    "audio": "wav_path",
                    "duration": 1.2,
                    "download_link": "x",
                }
                for i, _, c in entries
            ],
        }
        path = data / "wavcaps" / "json_files" / subset / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc), encoding="utf-8")

    # 354184 is on the DCASE 2025 exclusion list (Clotho evaluation audio): its file exists but must be left out
    wavcaps("FreeSound", "fsd_final.json", [("354184", "354184", "hum"), ("77", "77", "hiss")])
    wavcaps("BBC_Sound_Effects", "bbc_final.json", [("NHU05", "NHU05", "clock")])
    wavcaps("SoundBible", "sb_final.json", [("1234", "1234", "sweep")])
    ac = youtube["train"][0]
    wavcaps(
        "AudioSet_SL",
        "as_final.json",
        [(f"Y{ac}.wav", f"Y{ac}", "hum"), ("Yzzzzzzzzzzz.wav", "Yzzzzzzzzzzz", "whistle")],
    )
    return {"stage1": 10 + 6 + 1 + 1 + 1 + 1, "finetune": 10}


def _cli(*args: str) -> None:
    assert main([*args, *QUIET]) == 0, args


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_published_recipe_runs_end_to_end_in_tiny_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    counts = make_datasets(tmp_path)
    tiny = {}
    for bb in ("passt", "eat", "beats"):
        tiny[bb] = tmp_path / f"tiny-{bb}.toml"
        tiny[bb].write_text(_tiny_overlay(bb), encoding="utf-8")

    def stage_args(stage: str, bb: str) -> list[str]:
        args = [
            stage,
            "--config",
            str(RECIPE / f"{stage}.toml"),
            "--with",
            str(RECIPE / "backbones" / f"{bb}.toml"),
        ]
        args += ["--with", str(tiny[bb]), "--set", f"train.out={R}/{stage}-{bb}-s0"]
        if stage != "stage1":
            prev = {"stage2": "stage1", "stage3": "stage2"}[stage]
            args += ["--set", f"train.init_from={R}/{prev}-{bb}-s0"]
        return args

    for bb in ("passt", "eat", "beats"):
        _cli(*stage_args("stage1", bb))
        final = json.loads((tmp_path / R / f"stage1-{bb}-s0" / "final.json").read_text())
        assert final["clips"] == counts["stage1"]  # WavCaps kept, 354184 and the AudioCaps clip dropped
    _cli("teacher", "--config", str(RECIPE / "teacher.toml"), "--with", str(tiny["passt"]))
    teacher = json.loads((tmp_path / R / "teacher" / "teacher.json").read_text())
    assert len(teacher["members"]) == 3 and len(teacher["clip_keys"]) == counts["finetune"] + 4
    assert all("clotho" in k or k.startswith("mix:") for k in teacher["clip_keys"])
    for stage in ("stage2", "stage3"):
        for bb in ("passt", "eat", "beats"):
            _cli(*stage_args(stage, bb))
            final = json.loads((tmp_path / R / f"{stage}-{bb}-s0" / "final.json").read_text())
            assert final["clips"] == counts["finetune"] + 4  # Clotho development + 4 mixes
    run = f"{R}/stage3-eat-s0"
    _cli(
        "evaluate",
        "--config",
        str(RECIPE / "stage3.toml"),
        "--with",
        str(RECIPE / "backbones" / "eat.toml"),
        "--with",
        str(tiny["eat"]),
        "--run",
        run,
        "--eval-set",
        "test",
    )
    metrics = json.loads((tmp_path / run / "eval-test.json").read_text())
    assert metrics["queries"] == 5 and metrics["single/queries"] == 50  # DCASE queries + every caption
    assert 0.0 <= metrics["map@16"] <= 1.0 and 0.0 <= metrics["single/map@16"] <= 1.0
    members = "[" + ", ".join(f'"{R}/stage3-{bb}-s0"' for bb in ("passt", "eat", "beats")) + "]"
    _cli(
        "ensemble",
        "--config",
        str(RECIPE / "ensemble.toml"),
        "--with",
        str(tiny["passt"]),
        "--set",
        f"ensemble.members={members}",
        "--set",
        "ensemble.search=coordinate",
    )
    ens = json.loads((tmp_path / R / "ensemble" / "ensemble.json").read_text())
    assert ens["search"] == "coordinate" and abs(sum(m["weight"] for m in ens["members"]) - 1) < 1e-6
    _cli(
        "export",
        "--config",
        str(RECIPE / "export.toml"),
        "--with",
        str(tiny["passt"]),
        "--set",
        'export.evaluate=["test"]',
        "--set",
        "export.fp16=false",
    )
    bundle = tmp_path / R / "bundle" / "earshot-passt-roberta-1.0.0"
    manifest = json.loads((bundle / "bundle.json").read_text())
    archs = sorted(b["arch"] for b in manifest["audio"]["backbones"].values())
    assert archs == ["beats", "eat", "passt"] and manifest["audio"]["sample_rate"] == 32000
    assert manifest["text"]["normalisation"]["strip_punctuation"] == "delete"
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "`test` (this bundle, through the engine): map@16" in card  # the engine loaded EAT and BEATs
