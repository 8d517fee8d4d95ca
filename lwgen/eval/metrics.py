"""Sample-quality metrics on the host (numpy, scipy): class accuracy, improved precision and recall,
Fréchet distance."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

SQRTM_EPS = 1e-6
IMAG_TOLERANCE = 1e-3
PR_NEIGHBOURS = 3  # k of Kynkäänniemi et al. 2019
PR_BATCH = 512  # rows per distance block of `precision_recall`


def class_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max logit equals the label.

    Args:
      logits: float ``[N, K]`` class scores.
      labels: int ``[N]`` classes in ``[0, K)``.

    Returns:
      Accuracy in ``[0, 1]``.

    Raises:
      ValueError: if ``logits`` is not 2-D, ``N`` is 0 or differs from ``len(labels)``, or a
        label lies outside ``[0, K)``.
    """
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],) or logits.shape[0] == 0:
        raise ValueError(
            f"expected logits [N, K] and labels [N] with N >= 1, got {logits.shape} and "
            f"{labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(
            f"labels must lie in [0, {logits.shape[1]}), got [{labels.min()}, {labels.max()}]"
        )
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def _point_set(features: np.ndarray, name: str, k: int) -> np.ndarray:
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] <= k:
        raise ValueError(
            f"{name} must be [N, D] with N > k = {k} samples, got shape {features.shape}"
        )
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{name} must be finite")
    return features


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[len(a), len(b)]`` squared Euclidean distances in float64 (clamped at 0)."""
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(squared, 0.0)


def knn_radii(
    features: np.ndarray, k: int = PR_NEIGHBOURS, batch_size: int = PR_BATCH
) -> np.ndarray:
    """Squared distance from each point to its ``k``-th nearest other point of the same set.

    The radius of the point's ball in the k-NN manifold estimate of Kynkäänniemi et al. 2019
    ("Improved Precision and Recall Metric for Assessing Generative Models", Sec. 2).

    Args:
      features: float ``[N, D]``, ``N > k``.
      k: neighbourhood size, ≥ 1.
      batch_size: rows of the ``[batch_size, N]`` distance block held at a time.

    Returns:
      float64 ``[N]`` squared radii (squared feature units).
    """
    radii = np.empty(len(features))
    for start in range(0, len(features), batch_size):
        block = _squared_distances(features[start : start + batch_size], features)
        # Each row holds the point's own distance 0, so index k is its k-th neighbour.
        radii[start : start + len(block)] = np.partition(block, k, axis=1)[:, k]
    return radii


def manifold_coverage(
    queries: np.ndarray, features: np.ndarray, radii: np.ndarray, batch_size: int = PR_BATCH
) -> float:
    """Fraction of ``queries`` inside at least one ball ``‖q − φ‖² ≤ radii[φ]`` (boundary included).

    Args:
      queries: float ``[M, D]``.
      features: float ``[N, D]`` ball centres.
      radii: float ``[N]`` squared radii (`knn_radii`).
      batch_size: query rows held at a time.

    Returns:
      The fraction in ``[0, 1]``.
    """
    inside = 0
    for start in range(0, len(queries), batch_size):
        block = _squared_distances(queries[start : start + batch_size], features)
        inside += int(np.count_nonzero(np.any(block <= radii[None, :], axis=1)))
    return inside / len(queries)


def precision_recall(
    real: np.ndarray, generated: np.ndarray, k: int = PR_NEIGHBOURS, batch_size: int = PR_BATCH
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, Sec. 2, eq. 1–2).

    Each set's manifold is the union of balls around its points, each ball reaching the point's
    ``k``-th nearest neighbour in the same set. Precision is the fraction of generated points
    inside the real manifold; recall the fraction of real points inside the generated manifold.
    Distances are Euclidean in float64, computed ``batch_size`` rows at a time (two
    ``[batch_size, N]`` blocks), so 10,000 × 10,000 points need about 80 MB at the default.
    The paper compares equally many real and generated points (the estimate depends on the counts).

    Args:
      real: float ``[N, D]`` real features, ``N > k``.
      generated: float ``[M, D]`` generated features, ``M > k``.
      k: neighbourhood size (the paper's default 3).
      batch_size: rows per distance block, ≥ 1.

    Returns:
      ``(precision, recall)``, each in ``[0, 1]``.

    Raises:
      ValueError: if a set is not 2-D, has ``k`` points or fewer, or is not finite; if the
        feature sizes differ; if ``k`` or ``batch_size`` is below 1.
    """
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be >= 1, got k={k}, batch_size={batch_size}")
    real = _point_set(real, "real", k)
    generated = _point_set(generated, "generated", k)
    if real.shape[1] != generated.shape[1]:
        raise ValueError(
            f"feature sizes differ: real has D={real.shape[1]}, generated D={generated.shape[1]}"
        )
    precision = manifold_coverage(generated, real, knn_radii(real, k, batch_size), batch_size)
    recall = manifold_coverage(real, generated, knn_radii(generated, k, batch_size), batch_size)
    return precision, recall


def _moments(features: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"{name} must be [N, D] with N >= 2 samples, got shape {features.shape}")
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """``scipy.linalg.sqrtm`` without its singular-matrix warning (the caller checks the result)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID's formula).

    ``d² = ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2})`` (Heusel et al. 2017, "GANs
    Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", eq. 2), with
    sample means and unbiased covariances in float64. The matrix square root is
    ``scipy.linalg.sqrtm``; if it is not finite (a singular product, e.g. from dead features),
    ``SQRTM_EPS · I`` is added to both covariances; imaginary parts from round-off are dropped.

    Args:
      feats_a: float ``[N, D]`` features, N ≥ 2.
      feats_b: float ``[M, D]`` features, M ≥ 2.

    Returns:
      The squared Fréchet distance (≥ 0 up to round-off), in squared feature units.

    Raises:
      ValueError: if a set has fewer than 2 samples or is not 2-D, the feature sizes differ, a
        value is not finite, or ``sqrtm`` leaves an imaginary part above ``IMAG_TOLERANCE``.
    """
    mu_a, sigma_a = _moments(feats_a, "feats_a")
    mu_b, sigma_b = _moments(feats_b, "feats_b")
    if mu_a.shape != mu_b.shape:
        raise ValueError(
            f"feature sizes differ: feats_a has D={mu_a.shape[0]}, feats_b has D={mu_b.shape[0]}"
        )
    if not (np.all(np.isfinite(sigma_a)) and np.all(np.isfinite(sigma_b))):
        raise ValueError("features must be finite")
    covmean = _sqrtm(sigma_a @ sigma_b)
    if not np.all(np.isfinite(covmean)):
        offset = SQRTM_EPS * np.eye(len(mu_a))
        covmean = _sqrtm((sigma_a + offset) @ (sigma_b + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(covmean.imag))
        if imag > IMAG_TOLERANCE * max(1.0, np.max(np.abs(covmean.real))):
            raise ValueError(f"sqrtm(Σ_a Σ_b) has an imaginary part of {imag:.3g}")
        covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean))
