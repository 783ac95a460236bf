"""Caption clusters → class labels for the cluster-classification heads (stage 3).

The seed system embeds the captions (e5-large-v2), reduces them with UMAP and clusters with HDBSCAN,
reassigning the outliers: ``"umap_hdbscan"`` (needs ``umap-learn``, imported only when asked for). The
alternative, ``"kmeans"``, is spherical k-means on the L2-normalised caption embeddings (k-means++ start, best of
``n_init`` restarts, all from one seed): no extra dependency, every caption gets a cluster (no outliers to
reassign), and the result is a pure function of the embeddings and the seed. ``"hdbscan"`` (scikit-learn) clusters
the embeddings themselves; outliers always go to the nearest cluster centre.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from engine.errors import EarshotError
from training.config import ClusteringConfig

log = logging.getLogger(__name__)


class ClusteringError(EarshotError):
    """Clustering cannot run with these embeddings or settings."""


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [x[rng.integers(len(x))]]
    dist = 1.0 - x @ centres[0]
    for _ in range(1, k):
        d = np.maximum(dist, 0.0)
        total = d.sum()
        idx = int(rng.choice(len(x), p=d / total)) if total > 0 else int(rng.integers(len(x)))
        centres.append(x[idx])
        dist = np.minimum(dist, 1.0 - x @ x[idx])
    return np.stack(centres)


def spherical_kmeans(
    x: np.ndarray, k: int, *, seed: int = 0, iters: int = 100, n_init: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster rows of ``x`` (float ``[N, D]``) by cosine similarity into ``k`` clusters.

    Returns ``(labels int64 [N], centres float32 [k, D] unit-norm)``. Deterministic for a given seed;
    labels are renumbered by first appearance, so they do not depend on the restart that won. An emptied
    cluster is re-seeded with the point farthest from its centre.
    """
    x = _normalise(x)
    n = len(x)
    if k < 1:
        raise ClusteringError(f"the number of clusters must be at least 1, got {k}")
    if n < k:
        raise ClusteringError(f"cannot make {k} clusters from {n} captions; lower clustering.k")
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(max(1, n_init)):
        centres = _kmeans_pp(x, k, rng)
        labels = np.full(n, -1, dtype=np.int64)
        for _ in range(iters):
            sims = x @ centres.T
            new = sims.argmax(axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            for c in range(k):
                members = labels == c
                if members.any():
                    centres[c] = x[members].sum(axis=0)
                else:  # re-seed an empty cluster with the worst-served point
                    worst = int(sims[np.arange(n), labels].argmin())
                    centres[c] = x[worst]
                    labels[worst] = c
            centres = _normalise(centres)
        score = float((x * centres[labels]).sum())
        if best is None or score > best[0] + 1e-9:
            best = (score, labels.copy(), centres.copy())
    assert best is not None
    _, labels, centres = best
    order = {int(c): i for i, c in enumerate(dict.fromkeys(labels.tolist()))}
    remap = np.array([order.get(c, -1) for c in range(k)])
    unused = [c for c in range(k) if remap[c] < 0]
    for j, c in enumerate(unused):
        remap[c] = len(order) + j
    new_centres = np.empty_like(centres)
    new_centres[remap] = centres
    return remap[labels].astype(np.int64), new_centres.astype(np.float32)


def _hdbscan(x: np.ndarray, min_cluster_size: int, metric_space: np.ndarray) -> np.ndarray:
    """HDBSCAN (scikit-learn) on ``metric_space``; outliers join the nearest cluster centre of ``x``."""
    try:
        from sklearn.cluster import HDBSCAN
    except ImportError as exc:
        raise ClusteringError("HDBSCAN clustering needs scikit-learn (pip install scikit-learn)") from exc
    labels = HDBSCAN(min_cluster_size=max(2, min_cluster_size), copy=True).fit_predict(metric_space)
    found = sorted(set(labels.tolist()) - {-1})
    if not found:
        raise ClusteringError("HDBSCAN found no clusters; lower clustering.min_cluster_size or use kmeans")
    centres = _normalise(np.stack([x[labels == c].mean(axis=0) for c in found]))
    out = labels.copy()
    outliers = labels == -1
    out[outliers] = np.array(found)[(x[outliers] @ centres.T).argmax(axis=1)]
    remap = {c: i for i, c in enumerate(found)}
    return np.array([remap[int(c)] for c in out], dtype=np.int64)


def _min_size(n: int, k: int, min_cluster_size: int) -> int:
    return min_cluster_size if min_cluster_size > 0 else max(2, n // (4 * max(1, k)))


def hdbscan_labels(x: np.ndarray, k: int, *, min_cluster_size: int = 0, **_: object) -> np.ndarray:
    """HDBSCAN on normalised embeddings; outliers join the nearest cluster centre.

    ``min_cluster_size`` (0: ``max(2, N // (4k))``, a rough size prior from ``k``).
    """
    x = _normalise(x)
    return _hdbscan(x, _min_size(len(x), k, min_cluster_size), x)


def umap_hdbscan_labels(
    x: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    umap_dim: int = 5,
    umap_neighbors: int = 15,
    min_cluster_size: int = 0,
    reducer: Callable[[np.ndarray], np.ndarray] | None = None,
    **_: object,
) -> np.ndarray:
    """The seed system's clustering: UMAP (cosine, ``umap_dim`` dims, ``umap_neighbors`` neighbours) of the
    normalised embeddings, HDBSCAN there, outliers reassigned to the nearest cluster centre (cosine, in
    the embedding space). ``reducer`` replaces UMAP (tests)."""
    x = _normalise(x)
    if reducer is None:
        try:
            import umap
        except ImportError as exc:
            raise ClusteringError(
                "clustering.method = 'umap_hdbscan' needs umap-learn (pip install umap-learn), or use "
                "clustering.method = 'kmeans'"
            ) from exc
        model = umap.UMAP(
            n_components=umap_dim, n_neighbors=umap_neighbors, metric="cosine", random_state=seed
        )
        reducer = model.fit_transform
    low = np.asarray(reducer(x), dtype=np.float64)
    return _hdbscan(x, _min_size(len(x), k, min_cluster_size), low)


def _kmeans_labels(
    x: np.ndarray, k: int, *, seed: int = 0, iters: int = 100, n_init: int = 4, **_: object
) -> np.ndarray:
    return spherical_kmeans(x, k, seed=seed, iters=iters, n_init=n_init)[0]


#: Clustering method name → ``f(embeddings [N, D], k, seed=, iters=, n_init=, ...) -> labels int64 [N]``.
METHODS: dict[str, Callable[..., np.ndarray]] = {
    "kmeans": _kmeans_labels,
    "hdbscan": hdbscan_labels,
    "umap_hdbscan": umap_hdbscan_labels,
}


def cluster_embeddings(
    x: np.ndarray, method: str, k: int, *, seed: int = 0, iters: int = 100, n_init: int = 4, **options: object
) -> np.ndarray:
    """Labels int64 ``[N]`` in ``0 … K-1`` (``K ≤ k``) for caption embeddings ``x`` float ``[N, D]``;
    ``options`` go to the method (e.g. ``umap_dim``, ``min_cluster_size``)."""
    try:
        fn = METHODS[method]
    except KeyError:
        raise ClusteringError(f"unknown clustering method {method!r}; known: {sorted(METHODS)}") from None
    labels = fn(np.asarray(x), k, seed=seed, iters=iters, n_init=n_init, **options)
    sizes = np.bincount(labels)
    if len(sizes) > k:
        raise ClusteringError(
            f"{method} found {len(sizes)} clusters, more than clustering.k = {k} (the heads' size); "
            "raise clustering.k or clustering.min_cluster_size"
        )
    log.info(
        "clustered %d captions into %d clusters (sizes %d…%d)",
        len(labels),
        len(sizes),
        sizes.min(),
        sizes.max(),
    )
    return labels


def cohesion(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine between each embedding and its cluster's mean direction (higher = tighter clusters)."""
    x = _normalise(x)
    total = 0.0
    for c in np.unique(labels):
        members = x[labels == c]
        centre = members.mean(axis=0)
        centre /= max(np.linalg.norm(centre), 1e-12)
        total += float((members @ centre).sum())
    return total / len(x)


def method_options(cfg: ClusteringConfig) -> dict[str, object]:
    """The method-specific settings of ``cfg`` for :func:`cluster_embeddings`."""
    if cfg.method == "umap_hdbscan":
        return {
            "umap_dim": cfg.umap_dim,
            "umap_neighbors": cfg.umap_neighbors,
            "min_cluster_size": cfg.min_cluster_size,
        }
    if cfg.method == "hdbscan":
        return {"min_cluster_size": cfg.min_cluster_size}
    return {}


def encode_for_clustering(
    cfg: ClusteringConfig, texts: list[str], device: str | object = "cpu"
) -> np.ndarray:
    """Embed captions with ``cfg.encoder`` (``{"arch", "config"}`` of a registry text backbone, its
    pretrained weights loaded), each prefixed by ``cfg.prefix``: float32 ``[N, D]``."""
    import torch

    from engine.models.registry import build_text_backbone

    enc = cfg.encoder
    if not enc.get("arch"):
        raise ClusteringError("clustering.source = 'text_encoder' needs clustering.encoder = {arch, config}")
    config = dict(enc.get("config", {}))
    module = build_text_backbone(str(enc["arch"]), config)
    if enc.get("pretrained", True) and hasattr(module, "load_pretrained"):
        module.load_pretrained(config, None)
    module = module.to(device).eval()
    with torch.no_grad():
        out = module.encode([cfg.prefix + t for t in texts])
    return out.float().cpu().numpy()
