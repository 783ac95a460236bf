"""Caption clustering: correct on separated groups, deterministic, independent of input order."""

from __future__ import annotations

import numpy as np
import pytest

from training.clustering import ClusteringError, cluster_embeddings, cohesion, spherical_kmeans


def _blobs(seed: int = 0, per: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(8)[:4] * 5
    x = np.concatenate([c + rng.normal(scale=0.4, size=(per, 8)) for c in centres])
    truth = np.repeat(np.arange(4), per)
    return x.astype(np.float32), truth


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        len({(int(x), int(y)) for x, y in zip(a, b, strict=True)})
        == len(set(a.tolist()))
        == len(set(b.tolist()))
    )


def test_finds_separated_groups_with_first_appearance_labels() -> None:
    x, truth = _blobs()
    labels, centres = spherical_kmeans(x, 4, seed=0)
    assert labels.tolist() == truth.tolist()  # groups come in order, so labels are numbered alike
    assert np.allclose(np.linalg.norm(centres, axis=1), 1.0, atol=1e-5)


def test_deterministic_for_a_seed_and_independent_of_row_order() -> None:
    x, _ = _blobs(seed=3)
    a = cluster_embeddings(x, "kmeans", 4, seed=7)
    b = cluster_embeddings(x, "kmeans", 4, seed=7)
    assert np.array_equal(a, b)
    perm = np.random.default_rng(0).permutation(len(x))
    c = cluster_embeddings(x[perm], "kmeans", 4, seed=7)
    assert _same_partition(a[perm], c)


def test_clusters_are_tighter_than_random_labels() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    labels = cluster_embeddings(x, "kmeans", 8, seed=0)
    assert len(set(labels.tolist())) == 8
    assert cohesion(x, labels) > cohesion(x, rng.integers(0, 8, size=200)) + 0.05


def test_errors_are_clear() -> None:
    x, _ = _blobs(per=1)
    with pytest.raises(ClusteringError, match="lower clustering.k"):
        spherical_kmeans(x, 10)
    with pytest.raises(ClusteringError, match="unknown clustering method"):
        cluster_embeddings(x, "umap", 2)
