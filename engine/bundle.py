"""Model bundles: one self-describing, versioned directory, read by one loader (DESIGN §4).

A bundle directory holds ``bundle.json``, weights as ``*.safetensors`` (never pickles), an optional
``tokenizer/`` folder and ``MODEL_CARD.md``. ``bundle.json`` (format version 1)::

    {
      "format": "earshot-bundle", "format_version": 1,
      "name": "earshot-sfx-small", "version": "1.0.0", "bundle_id": "<sha256 hex>",
      "description": "...", "trained": true,
      "dim": 256,                                  # fused embedding dimension (sum of member dims)
      "audio": {"sample_rate": 44100, "window_s": 2.322, "hop_s": 1.161,
                "backbones": {"aisfx": {"arch": "aisfx_cnn", "config": {...},
                                        "weights": "aisfx_cnn.safetensors"}}},
      "text":  {"normalisation": {"lowercase": true, "collapse_whitespace": true, "max_chars": 512},
                "backbones": {"minilm": {"arch": "minilm", "config": {"pretrained": "package:..."}}}},
      "members": [{"name": "m0", "weight": 0.25, "dim": 64,
                   "audio_backbone": "aisfx", "text_backbone": "minilm",
                   "audio_head": {"arch": "mlp", "config": {...}},
                   "text_head":  {"arch": "mlp", "config": {...}},
                   "weights": "heads.safetensors", "prefix": "m0."}],
      "training": {...}, "created_with": {...}
    }

Members that name the same backbone share its forward pass. Weights of member ``m`` live in the
member's ``weights`` file under keys ``<prefix>audio.*`` and ``<prefix>text.*``.

Bundles installed side by side may share a weights file instead of each carrying a copy (every 2.x default
carries the same 9 MB aiSFX network): ``"shared_weights": {"audio_aisfx.safetensors": "<sha256 hex>"}``
names a file that, when absent from the bundle directory, is read from ``../_shared/<sha256>.safetensors``
beside it (:func:`share_identical_weights` does this to the wheel's copy of ``resources/models``). The
section is not part of the model: the ``bundle_id`` still hashes the file's bytes wherever they are read,
so a wrong or damaged shared file fails the integrity check like a damaged local one.

``bundle_id`` is the sha256 of the canonical JSON of the model-defining sections (``audio``, ``text``,
``members``, ``dim``) followed by the bytes of every referenced weights file in sorted order: two bundles
with the same id produce the same vectors, and a library's vectors are tied to it.

This module does not import torch: listing bundles is cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import BundleError

log = logging.getLogger(__name__)

FORMAT = "earshot-bundle"
SHARED_DIR = "_shared"  # beside the bundle directories: weights files shared by several bundles, by sha256
FORMAT_VERSION = 1
BUNDLE_FILE = "bundle.json"
_MODEL_KEYS = ("dim", "audio", "text", "members")


@dataclass(frozen=True)
class Member:
    name: str
    weight: float
    dim: int
    audio_backbone: str
    text_backbone: str
    audio_head: dict
    text_head: dict
    weights: str | None
    prefix: str


@dataclass(frozen=True)
class Bundle:
    """A parsed, verified bundle. ``path`` is the bundle directory."""

    path: Path
    spec: dict = field(repr=False)

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def version(self) -> str:
        return self.spec["version"]

    @property
    def bundle_id(self) -> str:
        return self.spec["bundle_id"]

    @property
    def dim(self) -> int:
        return int(self.spec["dim"])

    @property
    def trained(self) -> bool:
        return bool(self.spec.get("trained", True))

    @property
    def description(self) -> str:
        return self.spec.get("description", "")

    @property
    def sample_rate(self) -> int:
        """Audio sample rate in Hz that every audio backbone of this bundle consumes."""
        return int(self.spec["audio"]["sample_rate"])

    @property
    def window_s(self) -> float:
        return float(self.spec["audio"]["window_s"])

    @property
    def hop_s(self) -> float:
        return float(self.spec["audio"]["hop_s"])

    @property
    def audio_backbones(self) -> dict[str, dict]:
        return self.spec["audio"]["backbones"]

    @property
    def text_backbones(self) -> dict[str, dict]:
        return self.spec["text"]["backbones"]

    @property
    def text_normalisation(self) -> dict:
        return self.spec["text"].get("normalisation", {})

    @property
    def members(self) -> list[Member]:
        return [
            Member(
                name=m["name"],
                weight=float(m["weight"]),
                dim=int(m["dim"]),
                audio_backbone=m["audio_backbone"],
                text_backbone=m["text_backbone"],
                audio_head=m["audio_head"],
                text_head=m["text_head"],
                weights=m.get("weights"),
                prefix=m.get("prefix", f"{m['name']}."),
            )
            for m in self.spec["members"]
        ]

    @property
    def model_card(self) -> str:
        card = self.path / "MODEL_CARD.md"
        return card.read_text(encoding="utf-8") if card.exists() else ""

    def backbone_key(self, name: str) -> str:
        """The identity of audio backbone ``name`` as it runs in this bundle (see :func:`backbone_key`)."""
        return backbone_key(self.path, self.spec, name)

    def file(self, name: str) -> Path:
        """Path of a file of the bundle (its own, or the shared copy of a weights file: ``shared_weights``);
        refuses names that escape the directory."""
        p = (self.path / name).resolve()
        if self.path.resolve() not in p.parents:
            raise BundleError(f"bundle {self.path} refers to a file outside itself: {name!r}")
        return weights_path(self.path, self.spec, name).resolve()


def weight_files(spec: Mapping[str, Any]) -> list[str]:
    """Every weights file a bundle spec refers to, sorted and de-duplicated."""
    names: set[str] = set()
    for section in ("audio", "text"):
        for bb in spec[section]["backbones"].values():
            if bb.get("weights"):
                names.add(bb["weights"])
    for m in spec["members"]:
        if m.get("weights"):
            names.add(m["weights"])
    return sorted(names)


def _check_inside(directory: Path, name: Any) -> None:
    """Refuse (before anything is opened) a file name that is not a plain relative path inside the bundle."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise BundleError(f"bundle {directory} names an invalid weights file {name!r}")
    parts = Path(name).parts
    if Path(name).is_absolute() or "\\" in name or any(p == ".." for p in parts):
        raise BundleError(f"bundle {directory} refers to a file outside itself: {name!r}")
    root = Path(directory).resolve()
    if root not in (root / name).resolve().parents:
        raise BundleError(f"bundle {directory} refers to a file outside itself: {name!r}")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _shared_digest(spec: Mapping[str, Any], name: str) -> str | None:
    digest = (spec.get("shared_weights") or {}).get(name) if isinstance(spec.get("shared_weights"), dict) else None
    if isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
        return digest
    return None


def weights_path(directory: Path, spec: Mapping[str, Any], name: str) -> Path:
    """Where weights file ``name`` of the bundle in ``directory`` is read from: the bundle's own file, else
    (when ``shared_weights`` names it) ``<directory>/../_shared/<sha256>.safetensors``. Returns the bundle's
    own path when neither exists (the caller reports it missing). ``name`` must have passed
    :func:`_check_inside`."""
    own = Path(directory) / name
    if own.is_file():
        return own
    digest = _shared_digest(spec, name)
    if digest is not None:
        shared = Path(directory).parent / SHARED_DIR / f"{digest}.safetensors"
        if shared.is_file():
            return shared
    return own


def compute_bundle_id(directory: Path, spec: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    names = weight_files(spec)
    for name in names:
        _check_inside(directory, name)
    h.update(_model_json(spec))
    for name in names:
        path = weights_path(directory, spec, name)
        if not path.is_file():
            raise BundleError(f"bundle {directory} is missing its weights file {name}")
        h.update(name.encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


_KEY_CACHE: dict[tuple[str, str, int, int], str] = {}


def backbone_key(directory: Path, spec: Mapping[str, Any], name: str) -> str:
    """``"<arch>-<sha256[:16]>"`` naming audio backbone ``name`` of a bundle *and* how it is fed: its arch,
    config, the hash of its weights file (not the file's name) and the bundle's sample rate, window and hop.
    Two bundles with the same key compute the same features for the same window, so stored features of one
    serve the other (:mod:`engine.reproject`)."""
    entry = spec["audio"]["backbones"][name]
    weights = entry.get("weights")
    wdigest = ""
    if weights:
        path = weights_path(Path(directory), spec, weights)
        st = path.stat()
        ck = (str(path.resolve()), weights, st.st_size, st.st_mtime_ns)
        wdigest = _KEY_CACHE.get(ck, "")
        if not wdigest:
            wdigest = _KEY_CACHE[ck] = _sha256_file(path)
    audio = spec["audio"]
    ident = {"arch": entry["arch"], "config": entry.get("config", {}), "weights": wdigest,
             "sample_rate": int(audio["sample_rate"]), "window_s": round(float(audio["window_s"]), 6),
             "hop_s": round(float(audio["hop_s"]), 6)}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"{entry['arch']}-{digest[:16]}"


def _validate(directory: Path, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise BundleError(f"{directory / BUNDLE_FILE} is not a JSON object")
    if spec.get("format") != FORMAT:
        raise BundleError(f"{directory} is not an Earshot model bundle (format {spec.get('format')!r})")
    version = spec.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise BundleError(
            f"bundle {directory} has format version {version!r}; this Earshot reads up to {FORMAT_VERSION}"
        )
    for key in ("name", "version", "bundle_id", *_MODEL_KEYS):
        if key not in spec:
            raise BundleError(f"bundle {directory} lacks the field {key!r}")
    audio = spec["audio"]
    for key in ("sample_rate", "window_s", "hop_s", "backbones"):
        if key not in audio:
            raise BundleError(f"bundle {directory}: audio section lacks {key!r}")
    if not spec["members"]:
        raise BundleError(f"bundle {directory} has no members")
    total = 0
    weights = 0.0
    for m in spec["members"]:
        for key in ("name", "weight", "dim", "audio_backbone", "text_backbone", "audio_head", "text_head"):
            if key not in m:
                raise BundleError(f"bundle {directory}: member lacks {key!r}")
        if m["audio_backbone"] not in audio["backbones"]:
            raise BundleError(f"bundle {directory}: unknown audio backbone {m['audio_backbone']!r}")
        if m["text_backbone"] not in spec["text"]["backbones"]:
            raise BundleError(f"bundle {directory}: unknown text backbone {m['text_backbone']!r}")
        if float(m["weight"]) <= 0:
            raise BundleError(f"bundle {directory}: member {m['name']} has a non-positive weight")
        total += int(m["dim"])
        weights += float(m["weight"])
    if total != int(spec["dim"]):
        raise BundleError(f"bundle {directory}: dim {spec['dim']} != sum of member dims {total}")
    if abs(weights - 1.0) > 1e-4:
        raise BundleError(f"bundle {directory}: member weights sum to {weights}, not 1")
    try:
        names = weight_files(spec)
    except (AttributeError, TypeError, KeyError) as exc:
        raise BundleError(f"bundle {directory}: malformed backbone or member entries ({exc})") from None
    for name in names:
        _check_inside(directory, name)


def read_spec(directory: Path) -> dict:
    """Parse and validate ``bundle.json`` without hashing the weights (cheap, for listings)."""
    directory = Path(directory)
    path = directory / BUNDLE_FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{directory} is not a model bundle (no {BUNDLE_FILE})") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}") from exc
    _validate(directory, spec)
    return spec


def load_bundle(directory: str | os.PathLike, *, verify: bool = True, stamps: Path | None = None) -> Bundle:
    """Read and validate a bundle; with ``verify`` recompute its ``bundle_id`` from config and weights.

    ``stamps``: a JSON file remembering bundles that passed, by the stat stamp of ``bundle.json`` and of
    every weights file (:func:`_file_stamps`): a bundle whose files are the very ones that passed is not
    hashed again (13 MB per cold ``earshot search`` for the default bundle, gigabytes for a large one).
    A weights file rewritten in any way (even with its size and modification time put back) changes its
    ctime, so it is hashed again; so is a bundle whose model sections changed. An unreadable or unwritable stamps file only means hashing."""
    directory = Path(directory)
    spec = read_spec(directory)
    if verify:
        stamp = None
        if stamps is not None:
            stamp = _file_stamps(directory, spec)
            if stamp is not None and _read_stamps(stamps).get(str(directory.resolve())) == stamp:
                return Bundle(path=directory, spec=spec)
        actual = compute_bundle_id(directory, spec)
        if actual != spec["bundle_id"]:
            raise BundleError(
                f"bundle {directory} failed its integrity check: bundle_id {spec['bundle_id'][:12]}… "
                f"but the weights and config hash to {actual[:12]}… (modified or damaged)"
            )
        if stamp is not None and stamp == _file_stamps(directory, spec):  # unchanged while it was hashed
            _remember_stamp(stamps, str(directory.resolve()), stamp)
    return Bundle(path=directory, spec=spec)


_STAMPS_KEPT = 16  # bundles remembered per stamps file


def _model_json(spec: Mapping[str, Any]) -> bytes:
    """The canonical JSON of the model-defining sections (the first thing :func:`compute_bundle_id` hashes)."""
    return json.dumps({k: spec[k] for k in _MODEL_KEYS}, sort_keys=True, separators=(",", ":")).encode()


def _file_stamps(directory: Path, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"bundle_id", "model": sha256 of the model sections, "files": {name: [device, inode, size, mtime_ns,
    ctime_ns]}}`` of the weights files, or ``None`` when one cannot be read (it is then hashed, and fails
    there)."""
    files = {}
    try:
        for name in weight_files(spec):  # inside the bundle: read_spec checked
            st = os.stat(weights_path(directory, spec, name))
            files[name] = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    except OSError:
        return None
    return {"bundle_id": spec["bundle_id"], "model": hashlib.sha256(_model_json(spec)).hexdigest(), "files": files}


def _read_stamps(path: Path) -> dict[str, Any]:
    try:
        got = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return got if isinstance(got, dict) else {}


def _remember_stamp(path: Path, key: str, stamp: dict[str, Any]) -> None:
    """Add ``key: stamp`` to the stamps file (atomically; the oldest entries beyond :data:`_STAMPS_KEPT`
    dropped). A file that cannot be written is left as it is."""
    stamps = _read_stamps(path)
    stamps.pop(key, None)
    stamps[key] = stamp
    stamps = dict(list(stamps.items())[-_STAMPS_KEPT:])
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(stamps, fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.debug("bundle stamps %s not written: %s", path, exc)


def write_bundle(
    dest: str | os.PathLike,
    spec: dict,
    files: Mapping[str, bytes | Path],
    *,
    model_card: str | None = None,
    overwrite: bool = False,
) -> Bundle:
    """Write a bundle atomically: everything goes to a temporary sibling directory, which is then renamed.

    ``spec`` is the bundle.json content without ``bundle_id`` (computed here); ``files`` maps a relative
    name (``*.safetensors``, ``tokenizer/...``) to bytes or a path to copy. Returns the loaded bundle.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise BundleError(f"{dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a bundle is meant to be shared
        for name, content in files.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes | bytearray):
                target.write_bytes(content)
            else:
                shutil.copyfile(content, target)
        spec = dict(spec)
        spec.setdefault("format", FORMAT)
        spec.setdefault("format_version", FORMAT_VERSION)
        spec["bundle_id"] = ""
        spec["bundle_id"] = compute_bundle_id(tmp, spec)
        _validate(tmp, spec)
        (tmp / BUNDLE_FILE).write_text(json.dumps(spec, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        if model_card is not None:
            (tmp / "MODEL_CARD.md").write_text(model_card, encoding="utf-8")
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(dest)


def share_identical_weights(models_dir: str | os.PathLike) -> int:
    """Keep one copy of every weights file that several bundles of ``models_dir`` carry byte for byte: it
    moves to ``models_dir/_shared/<sha256>.safetensors`` and each of those bundles names it in its
    ``shared_weights`` section (not part of the model: the ``bundle_id`` is unchanged). Audio-backbone and
    member weights only (the files read through :meth:`Bundle.file`). Every bundle touched is verified
    afterwards (:class:`BundleError` if one no longer loads). Returns the bytes saved.

    Meant for a wheel's copy of ``resources/models`` (``setup.py``): the repository keeps self-contained
    bundles, whose identical files git stores once anyway."""
    models_dir = Path(models_dir)
    users: dict[str, list[tuple[Path, str]]] = {}
    for d in sorted(models_dir.iterdir()):
        if not (d / BUNDLE_FILE).is_file():
            continue
        spec = read_spec(d)
        names = {bb["weights"] for bb in spec["audio"]["backbones"].values() if bb.get("weights")}
        names |= {m["weights"] for m in spec["members"] if m.get("weights")}
        for name in sorted(names):
            if (d / name).is_file():  # one already shared is left as it is
                users.setdefault(_sha256_file(d / name), []).append((d, name))
    saved = 0
    touched: set[Path] = set()
    for digest, holders in sorted(users.items()):
        if len(holders) < 2:
            continue
        shared = models_dir / SHARED_DIR / f"{digest}.safetensors"
        shared.parent.mkdir(exist_ok=True)
        if not shared.is_file():
            shutil.copyfile(holders[0][0] / holders[0][1], shared)
        for d, name in holders:
            spec_path = d / BUNDLE_FILE
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
            spec.setdefault("shared_weights", {})[name] = digest
            spec_path.write_text(json.dumps(spec, indent=2, sort_keys=False) + "\n", encoding="utf-8")
            saved += (d / name).stat().st_size
            (d / name).unlink()  # after bundle.json names the shared copy
            touched.add(d)
        saved -= shared.stat().st_size
    for d in sorted(touched):
        load_bundle(d)  # the bundle_id still matches: the same bytes, read from the shared copy
    return saved


# -- where bundles live ---------------------------------------------------------------------------


PACKAGED_MODELS = "_shipped_models"  # where a wheel carries resources/models (setup.py copies it there)


def shipped_models_dir() -> Path:
    """The bundles that came with this installation: ``engine/_shipped_models`` in an installed wheel, else
    ``resources/models`` of the checkout the ``engine`` package was imported from (editable installs)."""
    here = Path(__file__).resolve().parent
    packaged = here / PACKAGED_MODELS
    return packaged if packaged.is_dir() else here.parent / "resources" / "models"


def model_dirs() -> list[Path]:
    """Directories searched for bundles, in priority order: ``$EARSHOT_MODELS_DIR`` (os.pathsep-separated),
    the user's data directory, then the shipped ``resources/models``."""
    from platformdirs import user_data_dir

    dirs: list[Path] = []
    env = os.environ.get("EARSHOT_MODELS_DIR")
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    dirs.append(Path(user_data_dir("earshot", appauthor=False)) / "models")
    dirs.append(shipped_models_dir())
    return dirs


def default_bundle_name() -> str | None:
    """The shipped default bundle's directory name (``resources/models/DEFAULT``), if any."""
    marker = shipped_models_dir() / "DEFAULT"
    return marker.read_text(encoding="utf-8").strip() if marker.exists() else None


def list_bundles(*, verify: bool = False) -> list[tuple[Path, dict | BundleError]]:
    """Every bundle directory found, with its spec or the error that stops it loading; with ``verify``
    the weights are hashed too, so a modified or damaged bundle is listed with its error, not as usable."""
    seen: set[Path] = set()
    out: list[tuple[Path, dict | BundleError]] = []
    for base in model_dirs():
        if not base.is_dir():
            continue
        for d in sorted(base.iterdir()):
            if not (d / BUNDLE_FILE).exists() or d.resolve() in seen:
                continue
            seen.add(d.resolve())
            try:
                out.append((d, load_bundle(d).spec if verify else read_spec(d)))
            except BundleError as exc:
                out.append((d, exc))
    return out


def resolve_bundle(name_or_path: str | os.PathLike | None) -> Path:
    """A bundle directory from a path, a bundle directory name, a bundle ``name`` or ``None`` (the default)."""
    if name_or_path is None:
        name_or_path = os.environ.get("EARSHOT_BUNDLE") or default_bundle_name()
        if name_or_path is None:
            raise BundleError(f"no model bundle is installed ({shipped_models_dir() / 'DEFAULT'} is missing)")
    p = Path(name_or_path).expanduser()
    if (p / BUNDLE_FILE).exists():
        return p
    for d, spec in list_bundles():
        if d.name == str(name_or_path) or (isinstance(spec, dict) and spec.get("name") == str(name_or_path)):
            return d
    raise BundleError(f"model bundle {str(name_or_path)!r} not found (searched {[str(d) for d in model_dirs()]})")


def base_of(bundle: Bundle) -> Bundle:
    """The bundle a learned bundle was derived from (``derived_from`` in its bundle.json, checked by id), or
    the bundle itself when it was not learned. Raises :class:`~engine.errors.LearnError` when that base is
    no longer installed."""
    from engine.errors import LearnError

    src = bundle.spec.get("derived_from")
    if not src:
        return bundle
    for candidate in (src.get("path"), src.get("name")):
        if not candidate:
            continue
        try:
            base = load_bundle(resolve_bundle(candidate))
        except BundleError:
            continue
        if base.bundle_id == src.get("bundle_id"):
            return base
    raise LearnError(f"the model {bundle.name} was learned from {src.get('name')} {src.get('version')}, which is "
                     "no longer installed; reinstall it to go back to it or to learn again")
