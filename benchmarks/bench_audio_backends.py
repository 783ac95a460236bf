"""The aiSFX audio network alone under several inference backends: ms per window and how close the fused
vectors stay to the torch paths, on real sounds.

    python -m benchmarks.bench_audio_backends [--corpus DIR] [--repeats 10] [--model NAME] [--no-ort]

Windows come from the Debian sound-effects corpus (``manifest.csv``; the reserved packages never): up to
three per file, 640 from the val/test packages to measure and 448 from the train packages to calibrate
int8. Variants (64-window batches, torch on 2 threads, ONNX Runtime on 2 intra-op threads; the log-mel
front-end runs in torch fp32 for every variant):

* ``torch bf16``: the encoder's path on CPUs with native bf16 (channels-last, bf16 autocast).
* ``torch fp32``: the encoder's fp32 path (``EARSHOT_PRECISION=fp32``: channels-last, BatchNorms folded).
* ``torch fp32 unfolded``: the fp32 path before the BatchNorms were folded.
* ``torch bf16 compiled`` (``--compile``): ``torch.compile`` (inductor) of the bf16 path.
* ``ort fp32``: the network exported to ONNX (torch's exporter; BatchNorms folded), all graph optimisations.
* ``ort int8 all``: QDQ static quantisation, per-channel int8 weights, uint8 activations, min–max
  calibration on the train windows; ``ort int8 blocks 3-4``: the same with blocks 1–2 left in fp32.

The variants alternate inside each repeat (order reversed every other repeat) so a shared machine's load
hits them alike; the table gives the median ms per window and the centred cosine (min / mean over the
windows, both centred on the reference's mean) and the share of each window's 10 nearest neighbours kept,
against the torch bf16 and the torch fp32 vectors. ONNX Runtime variants need ``pip install onnxruntime
onnx`` (not dependencies of Earshot: see benchmarks/RESULTS.md, "Audio network inference backends").
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

BATCH = 64


def corpus_windows(corpus: Path, bundle, per_split: dict[str, int]) -> dict[str, np.ndarray]:
    """``{"train": float32 (n, W), "eval": float32 (m, W)}``: up to 3 windows per file, files shuffled
    (seed 0); "eval" = the val and test packages. Reserved packages are never read."""
    from engine.audio import iter_windows
    from training.data.debian.corpus import RESERVED_PACKAGES, split_of

    with open(corpus / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] == "ok" and r["package"] not in RESERVED_PACKAGES]
    random.Random(0).shuffle(rows)
    out: dict[str, list[np.ndarray]] = {k: [] for k in per_split}
    for r in rows:
        split = "train" if split_of(r["package"]) == "train" else "eval"
        if len(out[split]) >= per_split[split]:
            if all(len(out[k]) >= n for k, n in per_split.items()):
                break
            continue
        try:
            _, windows = next(iter_windows(corpus / r["path"], bundle.sample_rate, bundle.window_s, bundle.hop_s))
        except Exception:  # an unreadable clip is simply not used
            continue
        out[split].extend(windows[:3])
    return {k: np.stack(v[: per_split[k]]).astype(np.float32) for k, v in out.items()}


def agreement(ref: np.ndarray, got: np.ndarray, k: int = 10) -> str:
    """Centred cosine min / mean (both centred on ``ref``'s mean) and % of each row's k nearest kept."""
    a, b = ref.astype(np.float64), got.astype(np.float64)
    mu = a.mean(0)
    ca, cb = a - mu, b - mu
    cos = (ca * cb).sum(1) / np.linalg.norm(ca, axis=1) / np.linalg.norm(cb, axis=1)
    nn_a = np.argsort(-(a @ a.T), 1)[:, 1 : k + 1]
    nn_b = np.argsort(-(b @ b.T), 1)[:, 1 : k + 1]
    same = np.mean([len(set(x) & set(y)) / k for x, y in zip(nn_a, nn_b, strict=True)])
    return f"{cos.min():.5f} / {cos.mean():.6f}, {100 * same:.1f} %"


def ort_variants(net, calibration: np.ndarray, tmp: Path) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """ONNX Runtime sessions over the network after the front-end (spectrogram → pooled features)."""
    import onnx
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Backbone(torch.nn.Module):
        def __init__(self, m) -> None:
            super().__init__()
            self.m = m

        def forward(self, spec):
            return self.m.pool_time(self.m.forward_features(spec))

    fp32 = tmp / "aisfx.onnx"
    with torch.no_grad():  # the exporter traces: no inference tensors
        spec = net.frontend(torch.from_numpy(calibration[:2]))
        torch.onnx.export(Backbone(net).eval(), (spec,), str(fp32), input_names=["spec"], output_names=["features"],
                          opset_version=18, dynamo=False, dynamic_axes={"spec": {0: "batch"}, "features": {0: "batch"}})
    quant_pre_process(str(fp32), str(tmp / "pre.onnx"))

    with torch.inference_mode():
        specs = [net.frontend(torch.from_numpy(calibration[i : i + 32])).numpy() for i in range(0, len(calibration), 32)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(specs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"spec": x}

    paths = {"ort fp32": fp32}
    for name, keep in (("ort int8 all", []), ("ort int8 blocks 3-4", [1, 2])):
        out = tmp / f"{name.replace(' ', '_')}.onnx"
        quantize_static(str(tmp / "pre.onnx"), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=[n.name for n in onnx.load(str(fp32)).graph.node
                                          if n.op_type == "Conv" and any(f"conv_block{b}/" in n.name for b in keep)])
        paths[name] = out

    def session(path: Path) -> Callable[[np.ndarray], np.ndarray]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 2, 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # busy shared machine
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        def run(w: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                s = net.frontend(torch.from_numpy(w)).numpy()
            return sess.run(None, {"spec": s})[0]

        return run

    return {name: session(p) for name, p in paths.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=Path("/work/data/debian_sfx/corpus"))
    p.add_argument("--model", default="earshot-sfx-small-2.0.0")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--no-ort", action="store_true", help="torch variants only")
    p.add_argument("--compile", action="store_true", help="also torch.compile of the bf16 path (its compile time is printed)")
    args = p.parse_args(argv)

    import torch

    from engine.bundle import load_bundle, resolve_bundle
    from engine.encoder import Encoder

    torch.set_num_threads(2)
    bundle = load_bundle(resolve_bundle(args.model))
    if not (args.corpus / "manifest.csv").is_file():
        raise SystemExit(f"no manifest.csv in {args.corpus}: build the Debian corpus first")
    data = corpus_windows(args.corpus, bundle, {"train": 448, "eval": 640})
    name = next(iter(bundle.audio_backbones))
    enc_bf16, enc_fp32 = Encoder(bundle, "cpu", "bf16"), Encoder(bundle, "cpu", "fp32")
    net_bf16, net_fp32 = enc_bf16.audio_backbones[name], enc_fp32.audio_backbones[name]

    def torch_run(net, bf16: bool) -> Callable[[np.ndarray], np.ndarray]:
        def run(w: np.ndarray) -> np.ndarray:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return net(torch.from_numpy(w)).float().numpy()

        return run

    variants = {
        "torch bf16": torch_run(net_bf16, True),
        "torch fp32": torch_run(net_fp32, False),
        "torch fp32 unfolded": torch_run(net_bf16, False),  # the bf16 model keeps its BatchNorms
    }
    if args.compile:
        t0 = time.perf_counter()
        compiled = torch.compile(net_bf16)
        variants["torch bf16 compiled"] = torch_run(compiled, True)
        variants["torch bf16 compiled"](data["eval"][:BATCH])
        print(f"torch.compile: first batch after {time.perf_counter() - t0:.0f} s")
    if not args.no_ort:
        variants.update(ort_variants(net_fp32, data["train"], Path(tempfile.mkdtemp(prefix="earshot-ort-"))))

    batches = [data["eval"][i : i + BATCH] for i in range(0, len(data["eval"]), BATCH)]
    fused = {k: enc_bf16.project_audio({name: np.concatenate([f(b) for b in batches])}) for k, f in variants.items()}
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.repeats):
        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for k in order:
            t0 = time.perf_counter()
            variants[k](batches[r % len(batches)])
            times[k].append((time.perf_counter() - t0) * 1000 / BATCH)
    load_after = os.getloadavg()
    ref = statistics.median(times["torch bf16"])
    print(f"{len(data['eval'])} real windows (val/test packages), {BATCH}-window batches, {args.repeats} repeats "
          f"interleaved; load average {load_before[0]:.1f} → {load_after[0]:.1f}; bundle {bundle.name}")
    print("| variant | ms / window (median) | × torch bf16 | vs torch bf16: centred cos min / mean, 10-NN kept "
          "| vs torch fp32: same |")
    print("|---|---|---|---|---|")
    for k, v in times.items():
        med = statistics.median(v)
        print(f"| {k} | {med:.1f} | {ref / med:.2f}× | {agreement(fused['torch bf16'], fused[k])} "
              f"| {agreement(fused['torch fp32'], fused[k])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
