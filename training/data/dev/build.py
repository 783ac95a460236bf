"""The development set: the val split's clips, searched with queries written apart from captioning.

It chooses what the 73 caption-derived val queries are too few and too close to the captions to choose
(ensemble weights): see ``training/data/dev/README.md``. Files beside this module:

* ``clips.tsv`` — exactly what the query writer saw: one row per val clip (key, package, file, duration,
  channels, sample rate, peak level, an 8-segment loudness envelope, spectral centroid, flatness, pitch);
* ``queries.txt`` — the authoring file (``category | query | KEY KEY ...``, keys of ``clips.tsv``);
* ``queries.csv`` / ``query_categories.csv`` — generated from the two above.

    python -m training.data.dev.build --measure     # (re)write clips.tsv from the corpus
    python -m training.data.dev.build               # queries.txt → queries.csv + query_categories.csv
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import EarshotError
from training.data.blind.build import expand_authoring, write_queries

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
CLIPS = HERE / "clips.tsv"
AUTHORING = HERE / "queries.txt"
CAPTIONS = HERE.parent / "debian_sfx_captions.csv"
COLUMNS = (
    "key", "package", "file", "dur_s", "ch", "sr", "peak_dbfs", "env_db_8seg", "centroid_hz", "flatness",
    "pitch_hz",
)  # fmt: skip
FRAME = 2048


def val_clips(captions: Path = CAPTIONS) -> list[tuple[str, str]]:
    """``(package, path)`` of every clip of the val split, in captions-table order, each once."""
    seen: dict[str, str] = {}
    with open(captions, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["split"] == "val":
                seen.setdefault(row["path"], row["package"])
    return [(package, path) for path, package in seen.items()]


def measure(audio: np.ndarray, sr: int) -> dict[str, str]:
    """What can be read off a clip without listening (``audio``: float ``[samples, channels]``)."""
    mono = audio.mean(axis=1)
    peak = 20 * np.log10(np.abs(mono).max() + 1e-9)
    envelope = [round(10 * np.log10(float(np.mean(s**2)) + 1e-12)) for s in np.array_split(mono, 8) if len(s)]
    frames = [mono[i : i + FRAME] for i in range(0, max(1, len(mono) - FRAME), FRAME // 2)][:400]
    frames = [np.pad(f, (0, FRAME - len(f))) for f in frames]
    freqs = np.fft.rfftfreq(FRAME, 1 / sr)
    centroids, flatness = [], []
    for f in frames:
        if np.sqrt(np.mean(f**2)) < 1e-3:
            continue
        mag = np.abs(np.fft.rfft(f * np.hanning(FRAME))) + 1e-10
        centroids.append(float((freqs * mag).sum() / mag.sum()))
        flatness.append(float(np.exp(np.log(mag).mean()) / mag.mean()))
    pitch = ""
    if frames:  # autocorrelation of the loudest frame, 50 Hz - 2 kHz, when clearly periodic
        f = max(frames, key=lambda a: float((a**2).sum()))
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[len(f) - 1 :]
        lo, hi = int(sr / 2000), int(sr / 50)
        if hi < len(ac) and ac[0] > 0:
            lag = lo + int(np.argmax(ac[lo:hi]))
            if ac[lag] / ac[0] > 0.6:
                pitch = str(int(sr / lag))
    return {
        "dur_s": f"{len(mono) / sr:.2f}",
        "ch": str(audio.shape[1]),
        "sr": str(sr),
        "peak_dbfs": f"{peak:.1f}",
        "env_db_8seg": " ".join(map(str, envelope)),
        "centroid_hz": str(int(np.median(centroids))) if centroids else "0",
        "flatness": str(round(float(np.median(flatness)), 3)) if flatness else "0",
        "pitch_hz": pitch,
    }


def write_clips(corpus: Path, out: Path = CLIPS, captions: Path = CAPTIONS) -> int:
    """Measure every val clip of ``corpus`` into ``out``; returns the number of rows."""
    rows = []
    for package, path in val_clips(captions):
        audio, sr = sf.read(corpus / path, always_2d=True, dtype="float32")
        rows.append({"package": package, "file": path.split("/", 1)[1], **measure(audio, sr)})
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        for i, row in enumerate(rows):
            writer.writerow([f"v{i:04d}", *(row[c] for c in COLUMNS[1:])])
    return len(rows)


def clip_keys(clips: Path = CLIPS) -> dict[str, str]:
    """Key → ``<package>/<file>`` path (as the captions table and ``data.eval`` queries name clips)."""
    with open(clips, newline="", encoding="utf-8") as fh:
        return {r["key"]: f"{r['package']}/{r['file']}" for r in csv.DictReader(fh, delimiter="\t")}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.data.dev.build", description=__doc__.splitlines()[0])
    p.add_argument("--measure", action="store_true", help="(re)write clips.tsv from --corpus and stop")
    p.add_argument("--corpus", type=Path, default=Path("data/debian_sfx/corpus"))
    p.add_argument("--clips", type=Path, default=CLIPS)
    p.add_argument("--authoring", type=Path, default=AUTHORING)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 on success, 2 on bad input."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.measure:
            log.info("%d clips measured into %s", write_clips(args.corpus, args.clips), args.clips)
            return 0
        entries = expand_authoring(args.authoring.read_text(encoding="utf-8"), clip_keys(args.clips))
        folder = args.clips.parent
        write_queries(entries, folder / "queries.csv", folder / "query_categories.csv")
        log.info(
            "%d queries, %d relevant pairs written to %s",
            len(entries),
            sum(len(e[2]) for e in entries),
            folder / "queries.csv",
        )
        return 0
    except (EarshotError, OSError) as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
