"""Shared building blocks: condition fusion (concatenation, FiLM, cross-attention),
normalization choice and upsampling blocks.

The upsampling op is a model option because training speed on XLA CPU and operator support on the
Edge TPU differ per op (see `shared/DESIGN.md`, "Measured facts"):

* ``"transpose"``   – stride-2 ``nn.ConvTranspose`` (exports as TRANSPOSE_CONV);
* ``"resize_conv"`` – nearest-neighbour 2× resize then a 3×3 conv (RESIZE_NEAREST_NEIGHBOR +
  CONV_2D; Odena et al. 2016, "Deconvolution and Checkerboard Artifacts"); in training it runs
  as the equivalent sub-pixel convolution (same parameters, same exported graph);
* ``"subpixel"``    – 3×3 conv to 4× channels then depth-to-space (Shi et al. 2016,
  "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel CNN").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax import lax

UPSAMPLE_MODES = ("transpose", "resize_conv", "subpixel")
NORMS = ("instance", "batch", "none")


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


_NHWC = ("NHWC", "HWIO", "NHWC")
# _PHASE_TAPS[p, u, i] = 1 where tap i of a 3×3 kernel, applied to a nearest-upsampled image at
# output row 2r + p, reads input row r - 1 + p + u: phase 0 reads rows (r-1, r, r), phase 1 reads
# (r, r, r+1). The same holds for columns.
_PHASE_TAPS = np.array([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], np.float32)


def _subpixel_resize_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``conv3x3(upsample_nearest_2x(x))`` computed at the input resolution.

    Output pixel ``(2r + p, 2s + q)`` of a 3×3 "SAME" convolution of the upsampled image reads
    only the 2×2 input pixels ``r - 1 + p .. r + p`` × ``s - 1 + q .. s + q``, with the 3×3 taps
    that land on the same input pixel summed (``_PHASE_TAPS``). So one 2×2 "VALID" convolution of
    ``x`` padded by one pixel, with ``4 · C_out`` outputs (one per phase ``(p, q)``), gives every
    output pixel; the phases are then interleaved. This is the sub-pixel form of a resize-conv
    (Shi et al. 2016, §2.2; Odena et al. 2016): 16·(H+1)(W+1) instead of 36·HW multiplies per
    input and output channel, and no upsampled tensor. Explicit padding and a "VALID" conv keep
    XLA CPU's kernel gradient on its fast convolution path.

    Args:
      x: float ``[B, H, W, C_in]``.
      kernel: ``[3, 3, C_in, C_out]`` (HWIO).

    Returns:
      ``[B, 2H, 2W, C_out]``, equal to the resize then conv up to float rounding.
    """
    b, h, w, c = x.shape
    out = kernel.shape[-1]
    phase_kernel = jnp.einsum("pui,qvj,ijco->uvcpqo", _PHASE_TAPS, _PHASE_TAPS, kernel)
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    z = lax.conv_general_dilated(
        padded, phase_kernel.reshape(2, 2, c, 4 * out), (1, 1), "VALID", dimension_numbers=_NHWC
    ).reshape(b, h + 1, w + 1, 2, 2, out)
    rows = [jnp.stack([z[:, p : p + h, q : q + w, p, q] for q in (0, 1)], axis=3) for p in (0, 1)]
    return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, out)


def _subpixel_conv_general_dilated(x, kernel, window_strides, padding, **unused) -> jax.Array:
    """`_subpixel_resize_conv` with the call signature of ``lax.conv_general_dilated`` that
    ``nn.Conv`` uses: an ``nn.Conv((3, 3), padding="SAME")`` built with it upsamples its input
    first, with the parameters of the plain conv."""
    if tuple(window_strides) != (1, 1) or padding != "SAME" or kernel.shape[:2] != (3, 3):
        raise ValueError(
            f"resize-conv needs a 3x3 'SAME' stride-1 conv, got kernel {kernel.shape}, "
            f"strides {window_strides}, padding {padding!r}"
        )
    return _subpixel_resize_conv(x, kernel)


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
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Maps float32 ``[B, H, W, C]`` to ``[B, 2H, 2W, features]``.

        With ``train``, a ``"resize_conv"`` block computes its convolution in the sub-pixel form
        (`_subpixel_resize_conv`: the same parameters and values up to float rounding, about
        half the work and much faster to differentiate on XLA CPU); otherwise it is the literal
        resize then conv that export turns into RESIZE_NEAREST_NEIGHBOR + CONV_2D and that
        profiles count.
        """
        if self.mode == "transpose":
            return nn.ConvTranspose(
                self.features, (4, 4), strides=(2, 2), padding="SAME", use_bias=self.use_bias
            )(x)
        if self.mode == "resize_conv":
            conv = functools.partial(
                nn.Conv, self.features, (3, 3), padding="SAME", use_bias=self.use_bias
            )
            if train:
                return conv(conv_general_dilated=_subpixel_conv_general_dilated)(x)
            return conv()(upsample_nearest_2x(x))
        if self.mode == "subpixel":
            x = nn.Conv(self.features * 4, (3, 3), padding="SAME", use_bias=self.use_bias)(x)
            return depth_to_space(x, 2)
        raise ValueError(f"upsample mode {self.mode!r} is not one of {UPSAMPLE_MODES}")


def normalization(kind: str, train: bool, axis_name: str | None = None, name: str | None = None):
    """A normalization layer for NHWC feature maps, chosen by name.

    * ``"instance"``: per-image, per-channel statistics with a learned scale and bias (Ulyanov et
      al. 2016, "Instance Normalization"); the same in training and inference, so it exports as
      MEAN / SQUARED_DIFFERENCE / RSQRT ops computed on the device.
    * ``"batch"``: batch statistics in training, running averages in inference (Ioffe & Szegedy
      2015), averaged over the devices of ``axis_name``; folds into the preceding convolution at
      export (no normalization op in the graph).
    * ``"none"``: the identity.

    Args:
      kind: one of ``NORMS``.
      train: training mode (``"batch"`` uses and updates batch statistics).
      axis_name: mapped axis of a data-parallel step for ``"batch"`` (None outside one).
      name: the submodule name.

    Returns:
      A callable ``x f32 [B, H, W, C] -> f32 [B, H, W, C]``.

    Raises:
      ValueError: on an unknown ``kind``.
    """
    if kind == "instance":
        return nn.InstanceNorm(epsilon=1e-5, name=name)
    if kind == "batch":
        return nn.BatchNorm(
            use_running_average=not train, momentum=0.9, axis_name=axis_name, name=name
        )
    if kind == "none":
        return lambda x: x
    raise ValueError(f"norm {kind!r} is not one of {NORMS}")


class FiLM(nn.Module):
    """Feature-wise affine modulation by a condition vector (Perez et al. 2018, "FiLM", eq. 1-2;
    the per-block text fusion of Tao et al. 2022, DF-GAN §3.3).

    ``h * (1 + gamma(c)) + beta(c)`` with ``gamma``, ``beta`` zero-initialised Dense maps of
    ``c``, so a new block starts as the identity.
    """

    @nn.compact
    def __call__(self, h: jax.Array, c: jax.Array) -> jax.Array:
        """Modulates float32 ``[B, H, W, C]`` features by ``c`` float32 ``[B, D]``; returns
        ``[B, H, W, C]``."""
        params = nn.Dense(2 * h.shape[-1], kernel_init=nn.initializers.zeros, name="affine")(c)
        gamma, beta = jnp.split(params[:, None, None, :], 2, axis=-1)
        return h * (1.0 + gamma) + beta


class CrossAttention(nn.Module):
    """Attention from image features to token states (Xu et al. 2018, AttnGAN §3.1, eq. 2: each
    pixel attends over the words), added back as a residual.

    Attributes:
      dim: the query/key width.
    """

    dim: int = 32

    @nn.compact
    def __call__(self, h: jax.Array, tokens: jax.Array, mask: jax.Array) -> jax.Array:
        """Attends.

        Args:
          h: float32 ``[B, H, W, C]`` image features (queries).
          tokens: float32 ``[B, L, D]`` token states (keys and values).
          mask: float32 ``[B, L]``, 1 for real tokens, 0 for padding (never attended).

        Returns:
          float32 ``[B, H, W, C]``: ``h`` plus the attended word context mapped to ``C``
          channels (that map starts at zero, so a new block starts as the identity).
        """
        b, height, width, c = h.shape
        tokens = tokens * mask[..., None]  # padding states zeroed: their logits stay small
        queries = nn.Dense(self.dim, name="query")(h.reshape(b, height * width, c))
        keys = nn.Dense(self.dim, name="key")(tokens)
        values = nn.Dense(self.dim, name="value")(tokens)
        logits = jnp.einsum("bqd,bkd->bqk", queries, keys) / np.sqrt(self.dim)
        # Masked by renormalising over the real tokens rather than by a -inf bias, so every
        # tensor stays in a small range, which INT8 activation quantization needs.
        weights = jax.nn.softmax(logits, axis=-1) * mask[:, None, :]
        weights = weights / jnp.maximum(jnp.sum(weights, axis=-1, keepdims=True), 1e-6)
        context = jnp.einsum("bqk,bkd->bqd", weights, values)
        out = nn.Dense(c, kernel_init=nn.initializers.zeros, name="out")(context)
        return h + out.reshape(b, height, width, c)


def instance_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
    """Normalises each image's channels over space, ``(x - μ) / sqrt(σ² + eps)`` (Ulyanov et al.
    2016, "Instance Normalization", eq. 2). Exports as MEAN / SQUARED_DIFFERENCE / RSQRT.

    Args:
      x: float32 ``[B, H, W, C]``.

    Returns:
      float32 ``[B, H, W, C]`` with zero mean and unit variance per image and channel.
    """
    mean, inv_std = instance_stats(x, eps)
    return (x - mean) * inv_std


def instance_stats(x: jax.Array, eps: float = 1e-5) -> tuple[jax.Array, jax.Array]:
    """Per image and channel ``μ`` and ``1 / sqrt(σ² + eps)`` over space (Ulyanov et al. 2016,
    eq. 2), each float32 ``[B, 1, 1, C]``, for ``x`` float32 ``[B, H, W, C]``."""
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)
    return mean, lax.rsqrt(var + eps)


class ConditionalInstanceNorm(nn.Module):
    """Conditional instance normalisation (Dumoulin, Shlens & Kudlur 2017, "A Learned
    Representation for Artistic Style", §2.2, eq. 5): ``γ_s · IN(x) + β_s`` with one ``(γ, β)``
    pair per style, selected by a float one-hot (or mixing) vector so that the exported graph
    has no integer lookup: ``γ = y Γ``, ``β = y B`` with ``Γ, B`` of shape ``[num_styles, C]``.

    Computed as one per-channel affine map of the input, ``x · a + (β - μ a)`` with
    ``a = γ / sqrt(σ² + eps)``: the same function as ``γ · IN(x) + β``, but an INT8 TFLite graph
    then requantizes the full-size tensor twice (``x · a`` and the sum) instead of four times
    (``x - μ``, ``· rsqrt``, ``· γ``, ``+ β``). On the demo's student this took INT8 vs float
    LPIPS from 0.138 to 0.118 and PSNR from 32.2 to 35.8 dB on the held-out photos; the
    per-style colour cast (half the squared error before) fell to a sixth of it.

    Attributes:
      num_styles: rows of ``Γ`` and ``B``.
      eps: variance epsilon of `instance_norm`.
    """

    num_styles: int
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, style: jax.Array) -> jax.Array:
        """Maps ``x`` float32 ``[B, H, W, C]`` with ``style`` float32 ``[B, num_styles]`` (one-hot
        rows pick one style; convex rows mix styles) to ``[B, H, W, C]``."""
        c = x.shape[-1]
        gamma = self.param("scale", nn.initializers.ones, (self.num_styles, c))
        beta = self.param("bias", nn.initializers.zeros, (self.num_styles, c))
        scale, shift = style @ gamma, style @ beta
        mean, inv_std = instance_stats(x, self.eps)
        a = scale[:, None, None, :] * inv_std
        return x * a + (shift[:, None, None, :] - mean * a)
