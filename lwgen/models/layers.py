"""Shared building blocks: condition fusion and upsampling blocks.

The upsampling op is a model option because training speed on XLA CPU and operator support on the
Edge TPU differ per op (see `shared/DESIGN.md`, "Measured facts"):

* ``"transpose"``   – stride-2 ``nn.ConvTranspose`` (exports as TRANSPOSE_CONV);
* ``"resize_conv"`` – nearest-neighbour 2× resize then a 3×3 conv (RESIZE_NEAREST_NEIGHBOR +
  CONV_2D; Odena et al. 2016, "Deconvolution and Checkerboard Artifacts"); the resize is
  `upsample_nearest_2x`, whose derivative rule avoids XLA CPU's slow gradient of the resize;
* ``"subpixel"``    – 3×3 conv to 4× channels then depth-to-space (Shi et al. 2016,
  "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel CNN").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

UPSAMPLE_MODES = ("transpose", "resize_conv", "subpixel")


def concat_condition(z: jax.Array, y: jax.Array) -> jax.Array:
    """Fuses a latent and a condition vector by concatenation (Mirza & Osindero 2014, §3.2).

    Args:
      z: float32 ``[B, latent_dim]`` latent.
      y: float32 ``[B, cond_dim]`` condition (one-hot class or embedding vector).

    Returns:
      float32 ``[B, latent_dim + cond_dim]``.

    Raises:
      ValueError: if the batch sizes differ.
    """
    if z.shape[0] != y.shape[0]:
        raise ValueError(f"z has batch {z.shape[0]} but condition y has batch {y.shape[0]}")
    return jnp.concatenate([z, y.astype(z.dtype)], axis=-1)


@jax.custom_jvp
def upsample_nearest_2x(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2× upsampling of NHWC ``x``: every pixel becomes a 2×2 block.

    The value is ``jax.image.resize(x, (B, 2H, 2W, C), "nearest")`` itself, so traced without
    differentiation (sampling, jax2tf export) it is the same gather, which the TFLite converter
    turns into RESIZE_NEAREST_NEIGHBOR. Only the derivative differs: the tangent is written as a
    broadcast-and-reshape of the input tangent, which is linear and transposes to a reshape and a
    sum over each 2×2 block (a sum-pool). XLA CPU runs the transpose of the resize's gather as a
    scatter-add, about 10–20× slower (see ``shared/DESIGN.md``, "Measured facts"). A JVP rule
    rather than a VJP rule keeps forward mode (``jax.jvp``, ``jax.hessian``) working.

    Args:
      x: ``[B, H, W, C]`` array of any float dtype.

    Returns:
      ``[B, 2H, 2W, C]`` of the same dtype, ``out[:, i, j] = x[:, i // 2, j // 2]``.
    """
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), method="nearest")


@upsample_nearest_2x.defjvp
def _upsample_nearest_2x_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    b, h, w, c = t.shape
    t_out = jnp.broadcast_to(t[:, :, None, :, None, :], (b, h, 2, w, 2, c))
    return upsample_nearest_2x(x), t_out.reshape(b, 2 * h, 2 * w, c)


def depth_to_space(x: jax.Array, block: int = 2) -> jax.Array:
    """Rearranges ``[B, H, W, C*block²]`` into ``[B, H*block, W*block, C]`` (pixel shuffle)."""
    b, h, w, c = x.shape
    oc = c // (block * block)
    x = x.reshape(b, h, w, block, block, oc)
    x = x.transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * block, w * block, oc)


class Upsample2x(nn.Module):
    """Doubles the spatial size of an NHWC tensor and maps it to ``features`` channels.

    Attributes:
      features: output channels.
      mode: one of ``UPSAMPLE_MODES``.
      use_bias: whether the convolution has a bias (off when a BatchNorm follows).
    """

    features: int
    mode: str = "resize_conv"
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps float32 ``[B, H, W, C]`` to ``[B, 2H, 2W, features]``."""
        if self.mode == "transpose":
            return nn.ConvTranspose(
                self.features, (4, 4), strides=(2, 2), padding="SAME", use_bias=self.use_bias
            )(x)
        if self.mode == "resize_conv":
            x = upsample_nearest_2x(x)
            return nn.Conv(self.features, (3, 3), padding="SAME", use_bias=self.use_bias)(x)
        if self.mode == "subpixel":
            x = nn.Conv(self.features * 4, (3, 3), padding="SAME", use_bias=self.use_bias)(x)
            return depth_to_space(x, 2)
        raise ValueError(f"upsample mode {self.mode!r} is not one of {UPSAMPLE_MODES}")
