"""A run's weights file is a function of its weights: two builds that train the same numbers write the same bytes."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from training.model import read_model_meta, save_safetensors


def test_one_state_gives_one_file_byte_for_byte(tmp_path):
    # safetensors keeps the metadata in a hash map whose order changes from one save to the next (20 saves of
    # one state gave 6 different files before save_safetensors sorted it).
    state = {"audio_head.net.1.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
             "text_head.net.4.bias": torch.ones(3, dtype=torch.float16)}
    meta = {"n_clusters": "0", "audio_in": "512", "text_in": "384"}
    files = set()
    for i in range(20):
        path = tmp_path / f"m{i}.safetensors"
        save_safetensors(state, path, meta)
        files.add(path.read_bytes())
    assert len(files) == 1
    assert not list(tmp_path.glob("*.part"))
    # Still a plain safetensors file: the tensors, and the metadata the trainer reads back.
    got = load_file(str(tmp_path / "m7.safetensors"))
    assert got.keys() == state.keys()
    assert all(got[k].equal(state[k]) for k in state)
    assert read_model_meta(tmp_path / "m7.safetensors") == {"n_clusters": 0, "audio_in": 512, "text_in": 384}
