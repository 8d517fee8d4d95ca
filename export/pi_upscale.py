"""Device-side up-scaling for ``pi_infer.py``: an ``upscaler`` bundle enlarging images.

Standalone like ``pi_infer.py`` (numpy only here; ``pi_infer.py`` loads it with
``sibling_module`` and hands it the bundle model to run). An ``upscaler`` bundle holds one model
per input side (``bundle.json`` fields ``scale``, ``channels``, ``input_sizes`` and
``models_by_size``); `model_for` picks the one for the images at hand, so a generator's 32×32
samples use ``upscaler_32`` and 64×64 photos ``upscaler_64``.

Channels (`upscale`): a one-channel up-scaler enlarges RGB images channel by channel (each
channel is an image of the batch); a three-channel up-scaler enlarges a gray image (Fashion-MNIST,
digits) as RGB with three equal channels and returns the full-range BT.601 luma of its output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, full range


def model_for(fields: dict[str, Any], height: int, width: int) -> str:
    """The bundle model for ``height``×``width`` inputs.

    Raises:
      ValueError: if the images are not square or the bundle has no model of their side, naming
        the sides it has.
    """
    models = fields.get("models_by_size")
    if not isinstance(models, dict) or not models:
        raise ValueError("bundle.json: an upscaler bundle needs fields.models_by_size")
    if height != width or str(height) not in models:
        sides = ", ".join(f"{side}x{side}" for side in sorted(models, key=int))
        raise ValueError(
            f"the up-scaler bundle has models for {sides} inputs, not {height}x{width}: "
            "re-export it with --config.export.input_sizes including that side"
        )
    return models[str(height)]


def upscale(
    run: Callable[[np.ndarray], np.ndarray], images: np.ndarray, model_channels: int
) -> np.ndarray:
    """Enlarges images with the up-scaler ``run``, converting channels (module docstring).

    Args:
      run: the bundle model, float32 ``[n, h, w, model_channels] -> [n, h·s, w·s,
        model_channels]``, images in ``[-1, 1]``.
      images: float32 ``[N, h, w, C]`` in ``[-1, 1]``, C = 1 or 3.
      model_channels: the up-scaler's channels (1 or 3).

    Returns:
      float32 ``[N, h·s, w·s, C]`` in ``[-1, 1]``.

    Raises:
      ValueError: on a channel count other than 1 or 3.
    """
    n, h, w, c = images.shape
    if c not in (1, 3) or model_channels not in (1, 3):
        raise ValueError(f"can up-scale 1- or 3-channel images, got {c} for a {model_channels}")
    if c == model_channels:
        return run(images)
    if model_channels == 3:
        return (run(np.repeat(images, 3, axis=-1)) @ GRAY_WEIGHTS)[..., None]
    planes = images.transpose(0, 3, 1, 2).reshape(n * c, h, w, 1)
    out = run(planes)
    return out.reshape(n, c, *out.shape[1:3]).transpose(0, 2, 3, 1)
