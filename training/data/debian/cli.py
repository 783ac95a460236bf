"""Command line of the corpus builder: ``python -m training.data.debian --inventory CSV --cache DIR --out DIR``.

With ``--scan-package PKG ...`` the packages are first unpacked and inventoried
(:func:`training.data.debian.scan.scan_package`; the inventory CSV is written, merged by package) and
then built: that is how ``extra_inventory.csv`` was made. Audio and ``.deb`` files stay in the cache and
output folders (``/data/`` in the repository is git-ignored).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from training.data.debian.build import build_corpus
from training.data.debian.corpus import CorpusError, read_inventory, read_manifest, select_rows, split_of
from training.data.debian.duplicates import build_duplicates
from training.data.debian.scan import scan_into_inventory

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.data.debian",
        description="Fetch the Debian packages of the sound-effects inventory and copy their clips.",
    )
    p.add_argument("--inventory", type=Path, required=True, help="sfx_inventory.csv")
    p.add_argument("--cache", type=Path, required=True, help="folder for .deb files and unpacked packages")
    p.add_argument("--out", type=Path, required=True, help="corpus root: OUT/PKG/<member path>")
    p.add_argument("--packages", nargs="*", default=None, help="only these packages")
    p.add_argument(
        "--scan-package",
        nargs="+",
        default=(),
        metavar="PKG",
        help="first unpack and scan these packages (clips of 0.1-30 s, music and speech left out by rule) "
        "into the --inventory file, then build them",
    )
    p.add_argument("--skip-packages", nargs="*", default=(), help="leave these packages out")
    p.add_argument(
        "--duplicates", action="store_true", help="also fingerprint the clips and write OUT/duplicates.csv"
    )
    p.add_argument(
        "--no-skip-rules",
        action="store_true",
        help="build every inventory row (no drum/keyboard-click rules: the inventory chose its clips)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0 on success, 1 when packages (or containers: a sound font
    without fluidsynth) failed, 2 on a usage error."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        for package in args.scan_package:
            scanned, left_out = scan_into_inventory(package, args.cache, args.inventory)
            log.info(
                "%s: %d clips (%.2f h) inventoried into %s; left out %s",
                package,
                len(scanned),
                sum(r.duration_s for r in scanned) / 3600,
                args.inventory,
                dict(sorted(left_out.items())) or "none",
            )
        packages = args.packages if args.packages is not None else (list(args.scan_package) or None)
        rows = select_rows(read_inventory(args.inventory), packages, args.skip_packages)
        report = build_corpus(
            rows, args.cache, args.out, progress=not args.no_progress, skip_rules=not args.no_skip_rules
        )
    except CorpusError as exc:
        log.error("%s", exc)
        return 2
    if args.duplicates:
        pairs = build_duplicates(
            args.out,
            read_manifest(args.out / "manifest.csv"),
            not args.no_progress,
            split_of_path=lambda path: split_of(path.split("/", 1)[0]),
        )
        log.info("%d duplicate pairs written to %s", len(pairs), args.out / "duplicates.csv")
    counts = report.counts()
    log.info(
        "corpus: %d clips in manifest, %d usable (%.2f h); statuses %s; package failures: %s",
        len(report.rows),
        counts["ok"] + counts["duration_mismatch"],
        report.hours(),
        dict(sorted(counts.items())),
        report.package_failures or "none",
    )
    return 1 if report.package_failures or counts["container_error"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
