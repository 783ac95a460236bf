"""Recipes: typed configuration declared once, read from TOML, saved beside every output (STYLE §7).

A recipe file is TOML. ``extends = "common.toml"`` (a path relative to the file, or a list of them) merges
the named files first: tables merge key by key, everything else (values, arrays) is replaced. Command-line
overrides (``--set train.seed=1``) are applied last. The merged document is turned into :class:`Recipe`
(nested frozen dataclasses); an unknown key or a value of the wrong type is a :class:`RecipeError` that
names the key. :func:`save_recipe` writes the resolved recipe back as TOML into a run directory, so every
output says exactly how it was made.

Relative paths inside a recipe (data, cache, run directories) are taken relative to the current working
directory: run ``earshot-train`` from the repository root.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EarshotError

RECIPE_FILE = "recipe.toml"


class RecipeError(EarshotError):
    """A recipe file is missing, malformed, or holds an unknown key or a value of the wrong type."""


# --------------------------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class SourceConfig:
    """One captioned audio source. ``format`` names a reader in :data:`training.data.readers.READERS`.

    ``path``: the captions file (CSV/JSON/JSONL); ``audio_root``: the folder audio paths are relative to
    (default: the captions file's folder); ``split``: keep only rows of this split (tables with a
    ``split`` column; for Clotho, the split the file holds); ``options``: reader-specific settings;
    ``max_clips``: keep at most this many clips (0: all), for quick runs.
    """

    format: str
    path: str
    audio_root: str = ""
    split: str = ""
    options: dict = field(default_factory=dict)
    max_clips: int = 0


@dataclass(frozen=True)
class QueriesConfig:
    """Multi-relevance ground truth. ``format = "pairs"``: a CSV with columns ``query``, ``path`` (one row
    per relevant file); ``"dcase2025"``: the official DCASE 2025 Task 6 ``metadata_eval.csv``
    (``query, audio_filenames``, the file names a Python list literal, one row per query). File names are
    relative to ``audio_root`` (default: the CSV's folder)."""

    path: str
    audio_root: str = ""
    format: str = "pairs"


@dataclass(frozen=True)
class EvalSetConfig:
    """A retrieval evaluation set: the candidate clips (``sources``) and the queries.

    Without ``queries`` every distinct caption of the sources is a query whose relevant files are all the
    clips carrying that caption (Clotho's protocol when captions are unique).
    """

    sources: tuple[SourceConfig, ...] = ()
    queries: QueriesConfig | None = None
    #: Queries made from captions (without ``queries``, and the single-relevance metrics beside them):
    #: ``"grouped"`` — one query per distinct caption, relevant to every clip carrying it;
    #: ``"per_caption"`` — every caption of every clip is its own query with that one clip relevant (the
    #: DCASE / Clotho protocol, identical captions of two clips included).
    caption_queries: str = "grouped"


@dataclass(frozen=True)
class DataConfig:
    """``train``: the sources of stage 1. ``finetune``: the sources of the fine-tuning stages (2, 3) and of
    the teacher's targets — the published recipe fine-tunes on Clotho development only (empty: ``train``);
    ``train.data`` chooses per stage."""

    train: tuple[SourceConfig, ...] = ()
    finetune: tuple[SourceConfig, ...] = ()
    eval: dict[str, EvalSetConfig] = field(default_factory=dict)
    #: Longest audio a trainable audio backbone sees in training (seconds; longer clips are cropped).
    max_audio_s: float = 30.0


@dataclass(frozen=True)
class BackboneConfig:
    """A backbone from the engine's registry. ``name`` is its name in the bundle.

    ``trainable = false`` freezes it: its features are computed once into the feature cache and only the
    heads train. ``ship_weights``: save the (frozen) backbone's weights inside the exported bundle instead
    of referring to ``config["pretrained"]`` (trained backbones are always shipped). ``lr``: learning rate
    of a trainable backbone (default ``train.lr``).
    """

    name: str
    arch: str
    config: dict = field(default_factory=dict)
    trainable: bool = False
    ship_weights: bool = False
    lr: float = 0.0


@dataclass(frozen=True)
class HeadConfig:
    """A projection head from the engine's registry; ``in_dim``/``out_dim`` are filled in automatically."""

    arch: str = "mlp"
    config: dict = field(default_factory=dict)
    lr: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    """The dual encoder. ``sample_rate``/``window_s``/``hop_s`` are what the bundle will declare (the
    engine windows every file this way); ``embed_dim`` is the shared space's dimension.

    ``clip_pooling`` (frozen audio backbones only) — how a clip of several windows enters the loss:
    ``"max_sim"`` (clip–caption score = best window, what search does), ``"mean"`` (mean window
    features) or ``"random_window"`` (one random window per step).
    """

    sample_rate: int
    window_s: float
    hop_s: float
    embed_dim: int
    audio_backbone: BackboneConfig
    text_backbone: BackboneConfig
    audio_head: HeadConfig = field(default_factory=HeadConfig)
    text_head: HeadConfig = field(default_factory=HeadConfig)
    clip_pooling: str = "max_sim"
    text_normalisation: dict = field(
        default_factory=lambda: {"lowercase": True, "collapse_whitespace": True, "max_chars": 512}
    )


@dataclass(frozen=True)
class LossConfig:
    """Weights of the named loss terms (applied once, by :class:`training.losses.LossTask`) and τ.

    ``positives``: which (audio, caption) pairs of a batch the contrastive term counts as matches. Unset
    (the published recipe): a caption matches only the audio of its own clip. ``"caption"``: a caption
    also matches every other clip of the batch that carries the same caption text — captions joined per
    concept (designer phrases, program names) are shared by many clips, and counting those as
    negatives asks the model to tell apart two sounds by a text that fits both.
    """

    tau: float = 0.05
    contrastive: float = 1.0
    distill: float = 0.0
    cluster_audio: float = 0.0
    cluster_text: float = 0.0
    positives: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    """One training stage. ``out``: the run directory; ``init_from``: a run directory whose weights start
    this stage; ``teacher``: the teacher directory (distillation); ``max_steps`` > 0 stops early (tests).
    ``augment``: train on the augmented set and caption variants of ``[augment]`` (stages 2 and 3).
    ``data``: which sources this stage trains on — ``"train"``, ``"finetune"`` or ``"auto"`` (stage 1:
    ``data.train``, stages 2 and 3: ``data.finetune`` when it is set). ``decay_epochs`` > 0: the cosine
    decay spans that many epochs after warm-up, then the rate stays at ``lr_end`` (the DCASE baseline:
    1 + 15 of 20 epochs); 0: it spans every remaining epoch.
    ``batch_size`` is the global batch (all processes, all accumulation steps). ``amp``: ``"auto"``
    (bf16 on GPUs that support it, else fp16, off on CPU), ``"bf16"``, ``"fp16"`` or ``"off"``.
    ``select``: which epoch's weights become the stage's ``model.safetensors`` (``"best"`` validation
    mAP@16 or ``"last"``). ``cpu_threads``: torch CPU threads for every command (0: torch's default; 1 is
    fastest for small models on a busy machine). ``gather``: in multi-process runs the similarity matrix spans every process's
    batch (features gathered with gradients)."""

    stage: str = "stage1"
    out: str = ""
    init_from: str = ""
    teacher: str = ""
    augment: bool = False
    data: str = "auto"
    epochs: int = 20
    max_steps: int = 0
    batch_size: int = 64
    grad_accum: int = 1
    lr: float = 2e-5
    lr_end: float = 1e-7
    warmup_epochs: float = 1.0
    decay_epochs: float = 0.0
    weight_decay: float = 0.01
    clip_grad_norm: float = 0.0
    amp: str = "auto"
    seed: int = 0
    device: str = "auto"
    cpu_threads: int = 0
    eval_set: str = "val"
    eval_every: int = 1
    select: str = "best"
    gather: bool = True
    plot: bool = True


@dataclass(frozen=True)
class LLMConfig:
    """An OpenAI-compatible chat-completions endpoint (``{base_url}/chat/completions``).

    Empty ``base_url`` means no endpoint: the offline rule-based fallback is used (and says so). The key
    is read from the environment variable ``api_key_env`` and never logged. ``cache``: the JSONL answer
    cache (default ``<augment dir>/llm_cache.jsonl``).
    """

    base_url: str = ""
    model: str = ""
    api_key_env: str = "EARSHOT_LLM_API_KEY"
    timeout_s: float = 60.0
    retries: int = 5
    backoff_s: float = 2.0
    requests_per_minute: float = 60.0
    temperature: float = 0.7
    max_tokens: int = 200
    cache: str = ""
    #: Refuse to build the augmented set without an endpoint (the published recipe's back-translations and
    #: mixed captions come from an LLM); false: the rule-based fallback is accepted, logged and recorded.
    required: bool = False


@dataclass(frozen=True)
class AugmentConfig:
    """Data augmentation (stage 2 and 3).

    ``text_p``: probability that a training caption is replaced by one of ``text_variants`` precomputed
    word-deletion / synonym-replacement variants; ``word_delete``: ``"one"`` (drop exactly one random
    word, the published recipe) or ``"bernoulli"`` (drop each word with ``word_delete_p``). ``backtranslations``: back-translated captions per
    training caption (through a random language of ``languages``). ``mixes``: number of mixed clips (two
    clips summed with the second at a random gain in ``mix_gain_db``, captions merged). ``out``: where
    the augmented set is stored (default ``<teacher dir>/augment``). ``wordnet``: also replace caption
    words by WordNet synonyms and hypernyms (:mod:`training.augment.wordnet`, database in ``wordnet_dir``).
    """

    text_p: float = 0.0
    text_variants: int = 4
    word_delete: str = "bernoulli"
    word_delete_p: float = 0.15
    backtranslations: int = 0
    languages: tuple[str, ...] = ("French", "German", "Spanish", "Italian", "Japanese", "Korean", "Chinese")
    mixes: int = 0
    mix_gain_db: tuple[float, float] = (-6.0, 0.0)
    seed: int = 0
    out: str = ""
    llm: LLMConfig = field(default_factory=LLMConfig)
    wordnet: bool = False
    wordnet_dir: str = "/usr/share/wordnet"


@dataclass(frozen=True)
class TeacherConfig:
    """Stage-1 runs whose mean similarity is the distillation target; ``out``: where targets are stored."""

    members: tuple[str, ...] = ()
    out: str = ""


@dataclass(frozen=True)
class ClusteringConfig:
    """Caption clusters for the cluster-classification heads.

    ``source``: ``"teacher"`` (mean teacher text embeddings), ``"text_backbone"`` (the recipe's frozen
    text backbone) or ``"text_encoder"`` (the text backbone ``encoder = {arch, config}`` of the engine's
    registry, with pretrained weights, each caption prefixed by ``prefix`` — the published recipe:
    e5-large-v2 with ``"query: "``). ``method``: ``"kmeans"`` (spherical, ``k`` clusters), ``"hdbscan"``
    or ``"umap_hdbscan"`` (UMAP to ``umap_dim`` dimensions with ``umap_neighbors`` neighbours, then
    HDBSCAN with ``min_cluster_size``, 0: ``N // (4k)``; needs ``umap-learn``). ``k`` is the size of the
    classification heads: HDBSCAN may find fewer clusters, never more.
    """

    method: str = "kmeans"
    k: int = 32
    source: str = "teacher"
    seed: int = 0
    iters: int = 100
    n_init: int = 4
    encoder: dict = field(default_factory=dict)
    prefix: str = ""
    umap_dim: int = 5
    umap_neighbors: int = 15
    min_cluster_size: int = 0


@dataclass(frozen=True)
class EvalConfig:
    """``scoring``: ``"windows"`` (a file's score is its best window, as search does) or ``"clip"`` (one
    embedding of the whole clip, the DCASE protocol). ``batch``: windows or texts per forward pass."""

    scoring: str = "windows"
    batch: int = 64


@dataclass(frozen=True)
class EnsembleConfig:
    """Ensemble weight search: ``members`` (run directories), grid ``step``, on eval set ``eval_set``;
    ``search``: how the weights are found; ``max_members`` (0: no limit; grid search only): at most this
    many members get a non-zero weight (each one adds ``embed_dim`` dimensions to every stored vector);
    ``tolerance`` (grid search only, in units of the metric: 0.01 = one point of mAP): among the grid points
    within this much of the best, the most balanced weights win — a small validation set cannot tell
    such points apart, and balanced weights hold up better on unseen queries."""

    members: tuple[str, ...] = ()
    eval_set: str = "val"
    step: float = 0.1
    metric: str = "map@16"
    out: str = ""
    #: ``"auto"`` (the full grid when it is small, else coordinate ascent), ``"grid"``, ``"coordinate"``
    #: or ``"uniform"`` (see :mod:`training.ensemble`).
    search: str = "auto"
    max_members: int = 0
    tolerance: float = 0.0


@dataclass(frozen=True)
class ExamplesConfig:
    """The query-by-example member that export adds (:mod:`training.examples`); ``weight`` 0 adds none.

    ``weight``: its share of the ensemble score (the trained members keep ``1 - weight`` between them);
    ``dim``: the whitened audio space (principal components of the training windows' backbone features);
    ``k``, ``tau``: how many stored captions a query mixes, and the softmax temperature of that mixture."""

    weight: float = 0.0
    dim: int = 64
    k: int = 10
    tau: float = 0.1


@dataclass(frozen=True)
class ExportConfig:
    """``source``: an ensemble directory (``ensemble.json``) or one run directory; ``dest``: the bundle
    directory to write; ``evaluate``: eval sets whose metrics go into the model card."""

    source: str = ""
    dest: str = ""
    name: str = ""
    version: str = ""
    description: str = ""
    fp16: bool = True
    overwrite: bool = False
    evaluate: tuple[str, ...] = ()
    data_note: str = ""
    examples: ExamplesConfig = field(default_factory=ExamplesConfig)


@dataclass(frozen=True)
class CacheConfig:
    """Where backbone features and decoded audio are cached (shared by every run of every recipe)."""

    dir: str = "cache/training"


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    description: str = ""

    def validate(self) -> None:
        """Check cross-field rules; raises :class:`RecipeError`."""
        m = self.model
        if self.loss.positives not in (None, "clip", "caption"):
            raise RecipeError(f"loss.positives must be clip or caption, not {self.loss.positives!r}")
        if m.clip_pooling not in ("max_sim", "mean", "random_window"):
            raise RecipeError(
                f"model.clip_pooling must be max_sim, mean or random_window, not {m.clip_pooling!r}"
            )
        if not (m.window_s > 0 and m.hop_s > 0 and m.sample_rate > 0 and m.embed_dim > 0):
            raise RecipeError("model.window_s, hop_s, sample_rate and embed_dim must be positive")
        t = self.train
        if t.batch_size < 2 or t.grad_accum < 1 or t.epochs < 1:
            raise RecipeError("train.batch_size must be >= 2, grad_accum >= 1 and epochs >= 1")
        if t.amp not in ("auto", "bf16", "fp16", "off"):
            raise RecipeError(f"train.amp must be auto, bf16, fp16 or off, not {t.amp!r}")
        if t.data not in ("auto", "train", "finetune"):
            raise RecipeError(f"train.data must be auto, train or finetune, not {t.data!r}")
        if t.decay_epochs < 0:
            raise RecipeError("train.decay_epochs must not be negative")
        if self.augment.word_delete not in ("one", "bernoulli"):
            raise RecipeError(f"augment.word_delete must be one or bernoulli, not {self.augment.word_delete!r}")
        for name, es in self.data.eval.items():
            if es.caption_queries not in ("grouped", "per_caption"):
                raise RecipeError(f"data.eval.{name}.caption_queries must be grouped or per_caption")
            if es.queries is not None and es.queries.format not in ("pairs", "dcase2025"):
                raise RecipeError(f"data.eval.{name}.queries.format must be pairs or dcase2025")
        if t.select not in ("best", "last"):
            raise RecipeError(f"train.select must be best or last, not {t.select!r}")
        if self.loss.tau <= 0:
            raise RecipeError("loss.tau must be positive")
        for key in ("contrastive", "distill", "cluster_audio", "cluster_text"):
            if getattr(self.loss, key) < 0:
                raise RecipeError(f"loss.{key} must not be negative")
        if not 0.0 <= self.augment.text_p <= 1.0:
            raise RecipeError("augment.text_p must be in [0, 1]")
        if self.eval.scoring not in ("windows", "clip"):
            raise RecipeError(f"eval.scoring must be windows or clip, not {self.eval.scoring!r}")
        if not 0 < self.ensemble.step <= 1:
            raise RecipeError("ensemble.step must be in (0, 1]")
        x = self.export.examples
        if not 0.0 <= x.weight < 1.0:
            raise RecipeError("export.examples.weight must be in [0, 1)")
        if x.dim < 1 or x.k < 1 or not x.tau > 0:
            raise RecipeError("export.examples.dim and k must be positive, tau above 0")


# ------------------------------------------------------------------------------------------ conversion


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Check/convert one TOML value to the annotated type ``tp`` (dataclasses, tuples, dicts, scalars)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise RecipeError(f"{where} must be a table, not {value!r}")
        return _build(tp, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise RecipeError(f"{where} must be an array, not {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise RecipeError(f"{where} must have {len(args)} elements, not {len(value)}")
        return tuple(
            _convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise RecipeError(f"{where} must be a table, not {value!r}")
        args = typing.get_args(tp)
        if args:
            return {k: _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecipeError(f"{where} must be a number, not {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{where} must be an integer, not {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where} must be true or false, not {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(f"{where} must be a string, not {value!r}")
        return value
    raise RecipeError(f"{where}: unsupported type {_type_name(tp)}")  # pragma: no cover - programming error


def _build(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        keys = ", ".join(f"{where}.{k}".lstrip(".") for k in unknown)
        raise RecipeError(f"unknown recipe key(s) {keys}; known here: {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}".lstrip(".")
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecipeError(f"the recipe lacks the required key {key}")
    return cls(**kwargs)


def recipe_from_dict(data: Mapping[str, Any]) -> Recipe:
    """Build and validate a :class:`Recipe` from a parsed TOML document (``extends`` already merged)."""
    data = {k: v for k, v in data.items() if k != "extends"}
    recipe = _build(Recipe, data)
    recipe.validate()
    return recipe


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data (tuples become lists, ``None`` values are dropped)."""

    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if v is not None}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    return clean(dataclasses.asdict(recipe))


# ------------------------------------------------------------------------------------------- TOML I/O


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise RecipeError(f"recipe file not found: {path}") from None
    except OSError as exc:
        raise RecipeError(f"cannot read the recipe {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"the recipe {path} is not valid TOML: {exc}") from exc


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two TOML documents: tables merge recursively, any other value in ``over`` wins."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def overlay(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Merge an overlay file (``--with``) over a recipe: like :func:`merge`, except that the tables the
    overlay lists in ``replace = ["model.audio_backbone", …]`` replace the base's tables wholesale (so a
    backbone's ``config`` does not inherit another backbone's keys)."""
    over = dict(over)
    paths = over.pop("replace", [])
    if isinstance(paths, str):
        paths = [paths]
    out = dict(base)
    for path in paths:
        keys = str(path).split(".")
        node: Any = over
        for k in keys:
            node = node.get(k) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            raise RecipeError(f"the overlay's replace names {path!r}, which it does not define as a table")
        parent = out
        chain = []
        for k in keys[:-1]:
            chain.append((parent, k))
            parent = dict(parent.get(k, {})) if isinstance(parent.get(k), Mapping) else {}
        parent[keys[-1]] = dict(node)
        for holder, k in reversed(chain):
            holder[k] = parent
            parent = holder
    return merge(out, over)


def read_recipe_document(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a recipe file and the files it ``extends`` (recursively), merged."""
    path = Path(path).resolve()
    if path in _seen:
        raise RecipeError(f"recipe {path} extends itself (through {[str(p) for p in _seen]})")
    doc = _read_toml(path)
    parents = doc.pop("extends", [])
    if isinstance(parents, str):
        parents = [parents]
    merged: dict[str, Any] = {}
    for parent in parents:
        merged = merge(merged, read_recipe_document(path.parent / parent, (*_seen, path)))
    return merge(merged, doc)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.seed=1"`` → (``["train", "seed"]``, ``1``). The value is parsed as TOML when it can be
    (numbers, booleans, arrays, quoted strings), else kept as a string."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not re.fullmatch(r"[A-Za-z0-9_.\-]+", key):
        raise RecipeError(f"an override must look like section.key=value, not {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_overrides(doc: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    out = dict(doc)
    for text in overrides:
        keys, value = parse_override(text)
        patch: dict[str, Any] = {keys[-1]: value}
        for k in reversed(keys[:-1]):
            patch = {k: patch}
        out = merge(out, patch)
    return out


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe file (``extends`` merged, ``overrides`` applied) into a validated :class:`Recipe`."""
    return recipe_from_dict(apply_overrides(read_recipe_document(path), overrides))


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return (
            "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
        )
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def to_toml(doc: Mapping[str, Any]) -> str:
    """Serialise plain data (tables, arrays, strings, numbers, booleans) as TOML."""
    lines: list[str] = []

    def table(prefix: str, d: Mapping[str, Any]) -> None:
        scalars = [(k, v) for k, v in d.items() if not isinstance(v, Mapping) and v is not None]
        tables = [(k, v) for k, v in d.items() if isinstance(v, Mapping)]
        if prefix and (scalars or not tables):
            lines.append(f"\n[{prefix}]")
        for k, v in scalars:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in tables:
            table(f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k), v)

    table("", doc)
    return "\n".join(lines).lstrip("\n") + "\n"


def save_recipe(recipe: Recipe, directory: str | Path) -> Path:
    """Write the resolved recipe to ``directory/recipe.toml`` (atomically); returns the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RECIPE_FILE
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(to_toml(recipe_to_dict(recipe)), encoding="utf-8")
    tmp.replace(path)
    return path


def load_run_recipe(run_dir: str | Path) -> Recipe:
    """The recipe saved in a run directory by :func:`save_recipe`."""
    path = Path(run_dir) / RECIPE_FILE
    if not path.is_file():
        raise RecipeError(f"{run_dir} is not a training run (no {RECIPE_FILE}); run its stage first")
    return load_recipe(path)
