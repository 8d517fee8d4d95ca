"""Sample-quality metrics on the host (numpy, scipy): class accuracy, Fréchet distance."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

SQRTM_EPS = 1e-6
IMAG_TOLERANCE = 1e-3


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
