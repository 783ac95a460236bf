"""Tests of the RoBERTa text backbone with a tiny random model and a tokenizer trained offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.errors import ModelError
from engine.models.registry import TEXT_BACKBONES
from engine.models.roberta import RobertaBackbone, RobertaBackboneConfig

CORPUS = [
    "a dog barks in the distance",
    "rain falls on a tin roof",
    "a car passes by quickly on a wet road",
    "birds sing in the morning while wind blows through the trees",
]
TINY_ARCH = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 66,
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RoBERTa (hidden 32, 2 layers) and a byte-level BPE tokenizer, saved like a hub folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaModel

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(CORPUS, trainer)
    bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=bpe.get_vocab_size(), pad_token_id=1, bos_token_id=0, eos_token_id=2, **TINY_ARCH
    )
    folder = tmp_path_factory.mktemp("tiny-roberta")
    RobertaModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def backbone(model_dir: Path) -> RobertaBackbone:
    model = RobertaBackbone.from_config({"pretrained": str(model_dir), "max_tokens": 8})
    model.load_pretrained()
    return model.eval()


def test_module_import_is_cheap_and_registered() -> None:
    assert TEXT_BACKBONES["roberta"] is RobertaBackbone
    root = Path(__file__).resolve().parents[3]
    code = "import sys, engine.models.roberta; print('transformers' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_round_trip_loads_the_saved_weights(model_dir: Path, backbone: RobertaBackbone) -> None:
    from transformers import AutoModel

    reference = AutoModel.from_pretrained(model_dir, local_files_only=True, add_pooling_layer=False).eval()
    assert backbone.out_dim == 32
    for key, value in reference.state_dict().items():
        assert torch.equal(backbone.model.state_dict()[key], value), key
    fresh = RobertaBackbone.from_config({"pretrained": str(model_dir)})  # random weights, no load
    assert fresh.out_dim == 32
    assert not torch.equal(
        fresh.model.embeddings.word_embeddings.weight, backbone.model.embeddings.word_embeddings.weight
    )


def test_encode_is_cls_pooling(model_dir: Path, backbone: RobertaBackbone) -> None:
    from transformers import AutoModel

    reference = AutoModel.from_pretrained(model_dir, local_files_only=True, add_pooling_layer=False).eval()
    texts = ["a dog barks", "rain falls on a tin roof in the morning"]
    with torch.no_grad():
        out = backbone.encode(texts)
        batch = backbone.tokenize(texts)
        hidden = reference(**batch).last_hidden_state
        alone = backbone.encode(texts[:1])
    assert out.shape == (2, 32) and out.dtype == torch.float32
    assert batch["input_ids"][:, 0].tolist() == [0, 0]  # <s> first: the token CLS pooling takes
    torch.testing.assert_close(out, hidden[:, 0])
    # right padding in a batch does not change a text's embedding
    torch.testing.assert_close(alone[0], out[0], atol=1e-5, rtol=1e-4)
    assert backbone.encode([]).shape == (0, 32)


def test_mean_pooling_ignores_padding(model_dir: Path, backbone: RobertaBackbone) -> None:
    model = RobertaBackbone.from_config({"pretrained": str(model_dir), "pooling": "mean"})
    model.load_pretrained()
    model.eval()
    with torch.no_grad():
        batch = model.tokenize(["a dog", "a car passes by quickly"])
        hidden = model.model(**batch).last_hidden_state
        pooled = model(**batch)
    n = int(batch["attention_mask"][0].sum())
    torch.testing.assert_close(pooled[0], hidden[0, :n].mean(0))
    assert not torch.allclose(pooled, backbone(**batch))


def test_max_tokens_truncates(backbone: RobertaBackbone) -> None:
    long_text = " ".join(CORPUS)
    batch = backbone.tokenize([long_text, "rain"])
    ids = batch["input_ids"]
    assert ids.shape == (2, 8)
    assert ids[0, 0].item() == 0 and ids[0, -1].item() == 2  # <s> … </s> kept around the cut
    n = int(batch["attention_mask"][1].sum())
    assert batch["attention_mask"][0].all() and 3 <= n < 8
    assert ids[1, n - 1].item() == 2 and ids[1, n:].eq(1).all()  # the short text is padded with <pad>
    # everything after the first max_tokens - 2 word pieces is ignored
    words = long_text.split()
    with torch.no_grad():
        assert torch.allclose(backbone.encode([long_text]), backbone.encode([" ".join(words[:12])]))


def test_forward_trains(model_dir: Path) -> None:
    model = RobertaBackbone.from_config({"pretrained": str(model_dir), "dropout": 0.2})
    model.load_pretrained()
    assert model.model.config.hidden_dropout_prob == 0.2
    model.train()
    model.encode(CORPUS).pow(2).sum().backward()
    assert model.model.encoder.layer[0].attention.self.query.weight.grad is not None


def test_tokenizer_from_bundle_folder(model_dir: Path, tmp_path: Path) -> None:
    """A bundle's tokenizer/ folder wins over the model folder, and relative paths are inside the bundle."""
    import shutil

    shutil.copytree(model_dir, tmp_path / "text")
    shutil.copytree(model_dir, tmp_path / "tokenizer")
    (tmp_path / "text" / "tokenizer.json").unlink()
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    config = {"pretrained": "text", "model_config": TINY_ARCH | {"vocab_size": vocab}}
    model = RobertaBackbone.from_config(config)
    model.load_pretrained(bundle_dir=tmp_path)
    assert model.tokenize(["a dog"])["input_ids"].shape[1] >= 3


def test_hub_name_offline_raises_clear_error() -> None:
    name = "earshot-tests/not-a-cached-model"  # never in a Hugging Face cache; the network is not allowed
    model = RobertaBackbone.from_config({"pretrained": name, "model_config": TINY_ARCH})
    with pytest.raises(ModelError) as info:
        model.load_pretrained()
    assert name in str(info.value) and "not allowed" in str(info.value)


def test_missing_folder_and_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        RobertaBackbone.from_config({"pretrained": str(tmp_path / "absent")})
    with pytest.raises(ModelError, match="unknown roberta config keys"):
        RobertaBackbone.from_config({"pretrained": "roberta-large", "max_len": 3})
    with pytest.raises(ModelError, match="pooling"):
        RobertaBackboneConfig.from_dict({"pooling": "max"})
    with pytest.raises(ModelError, match="Unknown RoBERTa model"):
        RobertaBackbone.from_config({"pretrained": "someone/other-model"})


def test_weights_of_another_width_are_rejected(model_dir: Path) -> None:
    model = RobertaBackbone.from_config(
        {"pretrained": str(model_dir), "model_config": TINY_ARCH | {"hidden_size": 64}}
    )
    with pytest.raises(ModelError, match="hidden size"):
        model.load_pretrained()
