"""The query-by-example member: whitening, caption prototypes, and the ``examples`` text head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.errors import EarshotError, ModelError
from engine.models.heads import ExamplesHead
from engine.models.registry import build_head
from training.examples import caption_prototypes, whitening


def test_whitening_centres_decorrelates_and_scales_the_leading_components() -> None:
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((6, 6))
    x = rng.standard_normal((4000, 6)) @ mix + 5.0
    w, b = whitening(x, 4)
    y = x @ w + b
    assert w.shape == (6, 4) and b.shape == (4,)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.cov(y.T, bias=True), np.eye(4), atol=1e-6)
    # the leading components: the kept ones carry more variance than any left out
    vals = np.linalg.eigvalsh(np.cov(x.T, bias=True))
    kept = np.var((x - x.mean(0)) @ (w * np.sqrt(np.sort(vals)[::-1][:4])), axis=0)
    np.testing.assert_allclose(np.sort(kept)[::-1], np.sort(vals)[::-1][:4], rtol=1e-6)
    # the basis (signs included) depends on the data, not on the row order the solver saw
    w2, _ = whitening(x[::-1].copy(), 4)
    np.testing.assert_allclose(w2, w, atol=1e-8)
    assert whitening(x, 50)[0].shape == (6, 6)  # never more components than features
    flat = np.concatenate([x[:, :3], x[:, :3] * 2.0], axis=1)  # rank 3: three components have no variance
    wf, bf = whitening(flat, 5)
    assert wf.shape == (6, 3) and np.isfinite(wf).all()
    np.testing.assert_allclose(np.cov((flat @ wf + bf).T, bias=True), np.eye(3), atol=1e-6)
    with pytest.raises(EarshotError):
        whitening(x[:1], 2)


def test_caption_prototypes_average_the_clips_a_normalised_caption_describes() -> None:
    vecs = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    caps = [("Dog  bark",), ("dog bark", "cat"), ("cat",)]
    texts, protos = caption_prototypes(vecs, caps, {"lowercase": True, "collapse_whitespace": True})
    assert texts == ["cat", "dog bark"]
    s = np.sqrt(0.5)
    np.testing.assert_allclose(protos[1], [s, s])  # clips 0 and 1, unit length
    np.testing.assert_allclose(protos[0], [-s, s])  # clips 1 and 2
    with pytest.raises(EarshotError):
        caption_prototypes(vecs, [(), (), ()], {})


def _head(k: int, tau: float) -> ExamplesHead:
    head = build_head("examples", {"in_dim": 4, "out_dim": 3, "n": 4, "k": k, "tau": tau})
    with torch.no_grad():
        head.keys.copy_(torch.eye(4))
        head.values.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]]))
    return head


def test_examples_head_mixes_the_values_of_the_nearest_captions() -> None:
    head = _head(k=1, tau=0.1)
    q = torch.tensor([[0.1, 3.0, 0.2, 0.0], [0.0, 0.0, 0.0, 2.0]])  # scale does not matter: cosine
    np.testing.assert_allclose(head(q).numpy(), [[0, 1, 0], [1, 1, 1]])
    # two nearest, mixed by softmax(cosine / tau): equal cosines give equal shares, the rest none
    head = _head(k=2, tau=0.05)
    out = head(torch.tensor([[1.0, 1.0, 0.0, 0.0]])).numpy()
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0]], atol=1e-6)
    # a softer temperature lets a farther caption in
    soft = _head(k=2, tau=10.0)(torch.tensor([[1.0, 0.2, 0.0, 0.0]])).numpy()[0]
    sharp = _head(k=2, tau=0.01)(torch.tensor([[1.0, 0.2, 0.0, 0.0]])).numpy()[0]
    assert soft[1] > 0.4 and sharp[1] < 1e-3


def test_examples_head_stores_its_table_in_safetensors(tmp_path) -> None:
    head = _head(k=2, tau=0.1)
    save_file({k: v.half() for k, v in head.state_dict().items()}, str(tmp_path / "h.safetensors"))
    again = build_head("examples", {"in_dim": 4, "out_dim": 3, "n": 4, "k": 2, "tau": 0.1})
    again.load_state_dict({k: v.float() for k, v in load_file(str(tmp_path / "h.safetensors")).items()})
    q = torch.tensor([[0.3, 0.9, 0.1, 0.0]])
    torch.testing.assert_close(again(q), head(q))


@pytest.mark.parametrize(
    "config",
    [
        {"in_dim": 4, "out_dim": 3},
        {"in_dim": 4, "out_dim": 3, "n": 0},
        {"in_dim": 4, "out_dim": 3, "n": 2, "tau": 0},
        {"in_dim": 4, "out_dim": 3, "n": 2, "hidden": 8},
    ],
)
def test_examples_head_refuses_a_bad_config(config) -> None:
    with pytest.raises(ModelError):
        build_head("examples", config)
