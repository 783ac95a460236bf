"""Fetch Debian packages with ``apt-get download`` and unpack them with ``dpkg -x`` (resumable)."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from training.data.debian.corpus import CorpusError, check_not_reserved

log = logging.getLogger(__name__)

_MARKER = ".earshot-extracted"

Runner = Callable[[Sequence[str], Path], None]


def _run(cmd: Sequence[str], cwd: Path) -> None:
    subprocess.run(list(cmd), cwd=cwd, check=True, capture_output=True, text=True)


def find_deb(package: str, debs_dir: Path) -> Path | None:
    """The newest-looking ``PKG_*.deb`` already in ``debs_dir`` (there is normally one), or ``None``."""
    found = sorted(debs_dir.glob(f"{glob_escape(package)}_*.deb"))
    return found[-1] if found else None


def glob_escape(text: str) -> str:
    """Escape the glob characters ``*?[`` in ``text`` for :meth:`Path.glob`."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def fetch_deb(package: str, debs_dir: Path, runner: Runner = _run) -> Path:
    """Return the ``.deb`` of ``package`` in ``debs_dir``, downloading it with ``apt-get download`` if it
    is not there yet (``apt-get update`` and one retry when the first download fails)."""
    check_not_reserved([package])
    debs_dir.mkdir(parents=True, exist_ok=True)
    deb = find_deb(package, debs_dir)
    if deb is not None:
        return deb
    log.info("downloading %s", package)
    try:
        runner(["apt-get", "download", package], debs_dir)
    except (subprocess.CalledProcessError, OSError) as first:
        log.warning("apt-get download %s failed (%s); running apt-get update and retrying", package, first)
        try:
            runner(["apt-get", "update"], debs_dir)
            runner(["apt-get", "download", package], debs_dir)
        except (subprocess.CalledProcessError, OSError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise CorpusError(f"Could not download the package {package}: {detail.strip()}") from exc
    deb = find_deb(package, debs_dir)
    if deb is None:
        raise CorpusError(f"apt-get download {package} reported success but left no .deb in {debs_dir}.")
    return deb


def deb_version(deb: Path) -> str:
    """The ``Version`` field of a ``.deb`` (empty when ``dpkg-deb`` cannot read it)."""
    try:
        out = subprocess.run(
            ["dpkg-deb", "--field", str(deb), "Version"], check=True, capture_output=True, text=True
        )
    except (subprocess.CalledProcessError, OSError):
        return ""
    return out.stdout.strip()


def is_extracted(dest: Path) -> bool:
    """Whether ``dest`` holds a complete ``dpkg -x`` of a package (its marker file is there)."""
    return (dest / _MARKER).is_file()


def extract_deb(deb: Path, dest: Path) -> None:
    """``dpkg -x`` ``deb`` into ``dest`` through a temporary sibling folder, then mark it complete.

    Idempotent: returns at once when ``dest`` is already marked complete.
    """
    if is_extracted(dest):
        return
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.mkdir(parents=True)
    try:
        subprocess.run(["dpkg", "-x", str(deb), str(tmp)], check=True, capture_output=True, text=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        detail = getattr(exc, "stderr", "") or str(exc)
        raise CorpusError(f"Could not unpack {deb.name}: {detail.strip()}") from exc
    (tmp / _MARKER).write_text(f"{deb.name}\n{deb_version(deb)}\n", encoding="utf-8")
    tmp.rename(dest)


def extracted_version(dest: Path) -> str:
    """The package version recorded in the marker of an extracted package ('' if unknown)."""
    try:
        lines = (dest / _MARKER).read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    return lines[1].strip() if len(lines) > 1 else ""
