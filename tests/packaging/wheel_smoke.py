"""Use an installed Earshot as a user would: ``earshot models``, ``index``, ``search``, ``similar``, ``status``.

Run by ``scripts/check_wheel.sh`` with the interpreter of a fresh virtualenv that has the built wheel
installed, from a folder outside the repository::

    /tmp/venv/bin/python tests/packaging/wheel_smoke.py --bin /tmp/venv/bin --work /tmp/work

It imports nothing from the checkout (only the standard library, numpy and soundfile, which the wheel's
dependencies bring) and exits non-zero with the reason when something is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SR = 22050


def write_sounds(folder: Path) -> dict[str, Path]:
    """Four 2-second mono WAVs of different character, named as a user would name them."""
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    sounds = {
        "beep": 0.3 * np.sin(2 * np.pi * 880 * t),
        "rain": 0.2 * rng.standard_normal(t.size),
        "knock": 0.6 * rng.standard_normal(t.size) * np.exp(-((t * 4) % 1) * 30),
        "thunder": 0.5 * np.convolve(rng.standard_normal(t.size), np.ones(200) / 200, mode="same") * 8,
    }
    paths = {}
    for name, audio in sounds.items():
        paths[name] = folder / f"{name}_take_01.wav"
        sf.write(paths[name], audio.astype(np.float32), SR, subtype="PCM_16")
    return paths


def run(bin_dir: Path, *args: str, cwd: Path) -> str:
    cmd = [str(bin_dir / args[0]), *args[1:]]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(cmd)} exited {res.returncode}:\n{res.stderr[-3000:]}")
    return res.stdout


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", type=Path, required=True, help="the virtualenv's bin folder")
    p.add_argument("--work", type=Path, required=True, help="an empty folder outside the repository")
    p.add_argument("--bundles", type=int, help="how many model bundles the wheel should carry")
    args = p.parse_args(argv)
    venv = args.bin.resolve().parent
    work = args.work.resolve()
    lib = work / "library"

    where = run(args.bin, "python", "-c", "import engine, desktop_app; print(engine.__file__)", cwd=work).strip()
    check(Path(where).is_relative_to(venv), f"engine was imported from {where}, not from the virtualenv {venv}")

    models = json.loads(run(args.bin, "earshot", "models", "--json", cwd=work))
    default = [m for m in models if m.get("default")]
    check(len(default) == 1, f"no default model bundle is installed: {models}")
    shipped = [m for m in models if Path(m["path"]).is_relative_to(venv)]
    check(args.bundles is None or len(shipped) == args.bundles,
          f"the wheel carries {len(shipped)} bundles, expected {args.bundles}: {models}")
    check(Path(default[0]["path"]).is_relative_to(venv), f"the default bundle is not the wheel's: {default}")
    print(f"models: {len(models)} bundle(s), default {default[0]['name']} {default[0]['version']}")

    sounds = write_sounds(work / "sounds")
    index = json.loads(run(args.bin, "earshot", "--library", str(lib), "index", str(work / "sounds"), "--json",
                           cwd=work))
    check(index["new"] == len(sounds) and index["failed"] == 0, f"index: {index}")
    print(f"index: {index['new']} new files, {index['windows']} windows in {index['seconds']:.1f} s")

    status = json.loads(run(args.bin, "earshot", "--library", str(lib), "status", "--json", cwd=work))
    check(status["files"] == len(sounds), f"status: {status}")

    hits = json.loads(run(args.bin, "earshot", "--library", str(lib), "search", "heavy rain", "-k", "10",
                          "--json", cwd=work))
    check(len(hits) == len(sounds), f"search returned {len(hits)} hits for {len(sounds)} files: {hits}")
    check({h["path"] for h in hits} == {str(p) for p in sounds.values()}, f"search paths: {hits}")
    kinds = {"sound", "name", "description", "category"}
    check(all(0 <= h["relevance"] <= 100 and set(h["matched_by"]) <= kinds for h in hits),
          f"relevance/matched_by: {hits}")
    content = json.loads(run(args.bin, "earshot", "--library", str(lib), "search", "a high beep", "--mode",
                             "content", "-k", "10", "--json", cwd=work))
    check(len(content) == len(sounds) and all(-1.0 <= h["score"] <= 1.0 for h in content),
          f"content search: {content}")
    keywords = json.loads(run(args.bin, "earshot", "--library", str(lib), "search", "thunder", "--mode",
                              "keywords", "--json", cwd=work))
    check(bool(keywords) and keywords[0]["path"] == str(sounds["thunder"]), f"keyword search: {keywords}")
    print(f"search: {len(hits)} hits (both), content top {Path(content[0]['path']).name}, "
          f"keywords top {Path(keywords[0]['path']).name}")

    similar = json.loads(run(args.bin, "earshot", "--library", str(lib), "similar", str(sounds["rain"]), "--json",
                             cwd=work))
    check(bool(similar) and all(Path(h["path"]).parent == work / "sounds" for h in similar), f"similar: {similar}")
    print(f"similar: {len(similar)} hits, top {Path(similar[0]['path']).name}")
    print("wheel smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
