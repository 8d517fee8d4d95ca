"""Super-resolution metrics on the host: PSNR on the luminance channel and SSIM.

Conventions of the super-resolution literature (e.g. Dong et al. 2016, FSRCNN §4.1; Lim et al.
2017, EDSR §4.1): images are rounded to uint8 first, RGB images are scored on the ITU-R BT.601
luma ``Y`` of the "studio swing" YCbCr conversion (MATLAB's ``rgb2ycbcr``), one-channel images on
their single channel, and ``shave`` pixels are cut from every border (the network and the bicubic
baseline both lack context there). SSIM is scikit-image's ``structural_similarity`` with the
settings of Wang et al. 2004 ("Image Quality Assessment: From Error Visibility to Structural
Similarity", §III-C: 11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, population
covariances).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

# Y = 16 + (65.481 R + 128.553 G + 24.966 B) with R, G, B in [0, 1] (ITU-R BT.601, studio swing).
LUMA_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
LUMA_OFFSET = 16.0
PEAK = 255.0
MAX_PSNR_DB = 100.0  # an image equal to its reference (a flat tile) scores this, not infinity


def luminance(images: np.ndarray) -> np.ndarray:
    """The channel metrics are computed on.

    Args:
      images: uint8 ``[..., H, W, C]`` with C = 3 (RGB) or C = 1.

    Returns:
      float64 ``[..., H, W]``: BT.601 studio-swing ``Y`` in [16, 235] for RGB, the channel itself
      in [0, 255] for one channel.

    Raises:
      ValueError: if the images are not uint8 or C is not 1 or 3.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim < 3 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected uint8 [..., H, W, 1|3] images, got {images.dtype} {images.shape}"
        )
    pixels = images.astype(np.float64)
    if images.shape[-1] == 1:
        return pixels[..., 0]
    return LUMA_OFFSET + pixels @ LUMA_WEIGHTS


def _shaved_pairs(pred: np.ndarray, truth: np.ndarray, shave: int):
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim != 4:
        raise ValueError(f"expected two [N, H, W, C] batches of one shape, got {pred.shape}, "
                         f"{truth.shape}")  # fmt: skip
    if shave < 0 or 2 * shave >= min(pred.shape[1:3]):
        raise ValueError(f"shave {shave} leaves nothing of {pred.shape[1]}x{pred.shape[2]} images")
    crop = (slice(None), slice(shave, pred.shape[1] - shave), slice(shave, pred.shape[2] - shave))
    return luminance(pred)[crop], luminance(truth)[crop]


def psnr_y(pred: np.ndarray, truth: np.ndarray, shave: int = 0) -> np.ndarray:
    """PSNR of each image's luminance: ``10 log10(255² / MSE)`` in dB.

    Args:
      pred: uint8 ``[N, H, W, C]`` images (C = 1 or 3).
      truth: uint8 ``[N, H, W, C]`` reference images.
      shave: pixels cut from each border before scoring.

    Returns:
      float64 ``[N]`` PSNR in dB, at most ``MAX_PSNR_DB`` (where an image equals its reference).

    Raises:
      ValueError: on mismatched shapes, bad dtypes or a ``shave`` that leaves no pixel.
    """
    y_pred, y_true = _shaved_pairs(pred, truth, shave)
    mse = np.mean((y_pred - y_true) ** 2, axis=(1, 2))
    with np.errstate(divide="ignore"):
        return np.minimum(10.0 * np.log10(PEAK**2 / mse), MAX_PSNR_DB)


def ssim_y(pred: np.ndarray, truth: np.ndarray, shave: int = 0) -> np.ndarray:
    """SSIM of each image's luminance (Wang et al. 2004, eq. 13, mean over the SSIM map).

    Args:
      pred, truth, shave: as in `psnr_y`; the shaved images must be at least 11×11.

    Returns:
      float64 ``[N]`` SSIM in [-1, 1] (1 for identical images).

    Raises:
      ValueError: as `psnr_y`.
    """
    y_pred, y_true = _shaved_pairs(pred, truth, shave)
    return np.array([
        structural_similarity(
            a, b, data_range=PEAK, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        for a, b in zip(y_pred, y_true, strict=True)
    ])  # fmt: skip


def score_images(pred: np.ndarray, truth: np.ndarray, shave: int) -> dict[str, float]:
    """``{"psnr_y_db", "ssim"}``: `psnr_y` and `ssim_y` averaged over the images (the mean of the
    per-image PSNR in dB, as super-resolution benchmarks report it)."""
    return {
        "psnr_y_db": float(np.mean(psnr_y(pred, truth, shave))),
        "ssim": float(np.mean(ssim_y(pred, truth, shave))),
    }
