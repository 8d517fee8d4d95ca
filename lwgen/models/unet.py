"""Class-conditional U-Net denoiser for diffusion models, and the sinusoidal timestep embedding.

The network follows Ho et al. 2020 ("Denoising Diffusion Probabilistic Models", App. B), itself a
PixelCNN++-style U-Net (Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical
Image Segmentation"): a 3×3 input conv; per resolution ``num_res_blocks`` Wide-ResNet residual
blocks (Zagoruyko & Komodakis 2016) then a stride-2 3×3 conv; a middle of residual block,
(self-attention,) residual block; the mirrored up path with ``num_res_blocks + 1`` residual
blocks per resolution, each fed the concatenation of the current features and one saved down-path
activation, then nearest 2× resize + 3×3 conv; norm → swish → 3×3 output conv. As in Ho's code the
last conv of every residual branch and the output projection of attention are zero-initialised,
so each block starts as the identity (also what lets ``norm="none"`` train: SkipInit, De & Smith
2020; Fixup, Zhang et al. 2019).

Conditioning: the sinusoidal timestep embedding (`timestep_embedding`) is computed *outside* the
module and fed in as a float vector, so the exported graph has no SIN/COS (which the Edge TPU
cannot run); inside, Dense → swish → Dense maps it to ``4 * base_width`` and a bias-free Dense of
the float one-hot class (a zero vector is the unconditional "null" class of classifier-free
guidance, Ho & Salimans 2022) is added. An ``nn.Embed`` lookup would export as GATHER. Every
residual block adds a Dense projection of swish(embedding) to its features (Ho), or with
``scale_shift`` applies ``norm(h) * (1 + scale) + shift`` (Nichol & Dhariwal 2021, §3).

Choices measured (``UNet(num_classes=10, base_width=16, channel_mults=(1, 2, 2),
num_res_blocks=1, embed_dim=32)`` on 32×32×1 inputs, trained 300 Adam steps (lr 2e-3, batch 32)
on a toy ε-prediction task: blocky random images shifted by class, linear β schedule, T = 1000;
converted with ``lwgen.export.convert`` calibrated on 256 forward-process samples ``(x_t, t, y)``
and verified on 64 others. Coverage = ``lwgen.export.edgetpu.edgetpu_report`` on the ``int8_io``
model; PSNR of the INT8 ε̂ against JAX at peak-to-peak 2, SNR = var(ε̂) / MSE; float32 TFLite
matched JAX to > 127 dB in every case)::

  variant              INT8 ops  Edge TPU  PSNR dB  SNR dB  loss@300  ops beyond the "none" graph
  none (default)          130     100 %     31.9     25.9    0.028    —
  none + scale_shift      185     100 %     32.7     26.5    0.027    SLICE 22, RESHAPE 11
  batch                   199     100 %     28.8     22.6    0.023    SUB 23, MUL/ADD +23 each
  group (16 groups)       500     1.4 %     22.2     16.2    0.019    RESHAPE 61, SUM 46, SUB 46,
                                                                      RSQRT 23, MUL +138,
                                                                      BROADCAST_TO 10
  group (8 groups)        590     1.2 %     28.7     22.9    0.018    as above, RESHAPE 115,
                                                                      BROADCAST_TO 46
  none + attention        186    24.7 %     31.5     25.4    0.028    BATCH_MATMUL 8, SOFTMAX 4,
                                                                      SLICE 12, RESHAPE 16
  group + attention       616     1.1 %     20.0     14.0    0.018

The "none" graph is CONV_2D 34, DEPTHWISE_CONV_2D 1 (the 1-channel input conv), FULLY_CONNECTED
14, ADD 23, LOGISTIC 25 + MUL 25 (swish), CONCATENATION 6, RESIZE_NEAREST_NEIGHBOR 2 and the
float-IO QUANTIZE/DEQUANTIZE: no SIN, COS, GATHER or TRANSPOSE_CONV, every op on the Edge TPU.
So the defaults are ``norm="none"`` and ``attention=False``:

* GroupNorm (Ho's choice; Wu & He 2018) reshapes to 5-D tensors, which end the Edge TPU segment
  at the first block, and it loses INT8 accuracy (3 dB below "none" at 2 channels per group,
  10 dB at 1, i.e. instance norm), although it trained fastest on the toy task.
* BatchNorm (Ioffe & Szegedy 2015) maps fully, but its pre-activation placement (after a residual
  sum, before swish) cannot fold into a conv, so it stays as MUL/ADD/SUB; its running averages
  are one set of statistics for all noise levels, it needs the ``batch_stats`` collection and
  ``axis_name`` in the data-parallel step, and it lost 3 dB of INT8 PSNR.
* "none" trains through the zero-initialised residual branches (SkipInit/Fixup) and quantizes
  best; scale-shift conditioning (Nichol & Dhariwal 2021, §3) adds 55 ops for +0.8 dB, so the
  default is Ho's bias add.
* Attention exports as BATCH_MATMUL (not an Edge TPU op) and a SOFTMAX over ``[HW, HW]`` (only
  1-D softmax maps): the segment ends at the first attention block. It costs no INT8 accuracy,
  so it is there for CPU/Pi targets.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from lwgen.models.layers import Upsample2x

NORMS = ("group", "none", "batch")


def timestep_embedding(
    t: jax.Array | np.ndarray, dim: int, max_period: float = 10_000
) -> jax.Array:
    """Sinusoidal timestep embedding (Vaswani et al. 2017, §3.5; Ho et al. 2020, App. B).

    ``emb[:, i] = sin(t * f_i)`` and ``emb[:, dim/2 + i] = cos(t * f_i)`` with frequencies
    ``f_i = max_period ** (-i / (dim/2))`` for ``i = 0 .. dim/2 - 1`` (sines first, then cosines,
    as in Ho's code; Vaswani interleaves them, which is the same embedding up to a fixed
    permutation of its entries).

    Args:
      t: ``[B]`` timesteps: the *integer step index* ``0 .. T-1`` of the diffusion process, given
        as a float (or int) array; numpy input works and the Pi-side sampler computes the same in
        numpy.
      dim: embedding width, even and ≥ 2.
      max_period: the longest wavelength, ``2π · max_period`` steps.

    Returns:
      float32 ``[B, dim]`` in ``[-1, 1]``.

    Raises:
      ValueError: if ``dim`` is odd or < 2, or ``t`` is not one-dimensional.
    """
    if dim < 2 or dim % 2:
        raise ValueError(f"timestep embedding dim must be even and >= 2, got {dim}")
    t = jnp.asarray(t, jnp.float32)
    if t.ndim != 1:
        raise ValueError(f"timesteps t must be one-dimensional [B], got shape {t.shape}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = t[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class Norm(nn.Module):
    """The normalization choice of a `UNet` (see the module docstring for what each exports as).

    Attributes:
      kind: ``"group"`` – GroupNorm (Wu & He 2018) with ``gcd(num_groups, C)`` groups;
        ``"none"`` – the identity; ``"batch"`` – BatchNorm (Ioffe & Szegedy 2015) with
        ``batch_stats`` (running averages in inference, mean over ``axis_name`` in training).
      num_groups: groups of GroupNorm before the gcd with the channels.
      axis_name: mapped axis for BatchNorm statistics in the data-parallel step, or None.
    """

    kind: str = "group"
    num_groups: int = 8
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.kind == "group":
            return nn.GroupNorm(num_groups=math.gcd(self.num_groups, x.shape[-1]))(x)
        if self.kind == "batch":
            return nn.BatchNorm(
                use_running_average=not train, momentum=0.9, axis_name=self.axis_name
            )(x)
        if self.kind == "none":
            return x
        raise ValueError(f"norm {self.kind!r} is not one of {NORMS}")


class ResBlock(nn.Module):
    """Residual block of Ho et al. 2020 App. B (a Wide-ResNet block): norm → swish → conv3×3 →
    add Dense(swish(emb)) → norm → swish → dropout → conv3×3 (zero-initialised), plus the input
    (through a 1×1 conv when the width changes).

    Attributes:
      features: output channels.
      make_norm: builds a fresh `Norm` (the `UNet`'s choice).
      dropout: dropout rate before the second conv (Ho: 0.1 on CIFAR-10).
      scale_shift: condition by ``norm(h) * (1 + scale) + shift`` (Nichol & Dhariwal 2021, §3)
        instead of adding a projected bias before the second norm.
    """

    features: int
    make_norm: Callable[[], nn.Module]
    dropout: float = 0.0
    scale_shift: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array, train: bool = False) -> jax.Array:
        h = nn.Conv(self.features, (3, 3))(nn.swish(self.make_norm()(x, train)))
        cond = nn.Dense(self.features * (2 if self.scale_shift else 1))(nn.swish(emb))
        cond = cond[:, None, None, :]
        if self.scale_shift:
            scale, shift = jnp.split(cond, 2, axis=-1)
            h = self.make_norm()(h, train) * (1.0 + scale) + shift
        else:
            h = self.make_norm()(h + cond, train)
        h = nn.Dropout(self.dropout, deterministic=not train)(nn.swish(h))
        h = nn.Conv(self.features, (3, 3), kernel_init=nn.initializers.zeros)(h)
        if x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), name="skip")(x)
        return x + h


class SelfAttention(nn.Module):
    """Single-head spatial self-attention (Ho et al. 2020 App. B; Wang et al. 2018, "Non-local
    Neural Networks"): norm → 1×1 convs to q, k, v → ``softmax(q kᵀ / √C) v`` over the ``H·W``
    positions → zero-initialised 1×1 conv, plus the input. 1×1 convs rather than Dense keep the
    projections CONV_2D in TFLite (the Edge TPU takes FULLY_CONNECTED only with a 1-D output).

    Attributes:
      make_norm: builds a fresh `Norm` (the `UNet`'s choice).
    """

    make_norm: Callable[[], nn.Module]

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        b, h, w, c = x.shape
        qkv = nn.Conv(3 * c, (1, 1), name="qkv")(self.make_norm()(x, train))
        q, k, v = (a.reshape(b, h * w, c) for a in jnp.split(qkv, 3, axis=-1))
        weights = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", q, k) / math.sqrt(c), axis=-1)
        out = jnp.einsum("bqk,bkc->bqc", weights, v).reshape(b, h, w, c)
        return x + nn.Conv(c, (1, 1), kernel_init=nn.initializers.zeros, name="out")(out)


class UNet(nn.Module):
    """Class-conditional U-Net noise (or v) predictor ``f(x_t, t_embedding, y)``.

    Attributes:
      num_classes: width of the one-hot class ``y``.
      base_width: channels at the first resolution (Ho: 128; 32 here for a CPU-sized model).
      channel_mults: width multiplier per resolution, highest resolution first; the image is
        halved ``len(channel_mults) - 1`` times (Ho's CIFAR-10 layout by default).
      num_res_blocks: residual blocks per resolution on the down path (``+ 1`` on the up path).
      attention: self-attention after every residual block at the lowest resolution and in the
        middle block (Ho uses it at 16×16).
      embed_dim: width of the ``t_embedding`` input (`timestep_embedding`'s ``dim``).
      norm: one of ``NORMS``.
      num_groups: GroupNorm groups (``gcd`` with the channels is used; Ho has 32 at ≥ 128
        channels, 8 keeps ≥ 4 channels per group at ``base_width=32``).
      scale_shift: FiLM-style scale-shift conditioning in the residual blocks.
      dropout: dropout rate in the residual blocks (needs a ``"dropout"`` RNG in training).
      out_channels: output channels; None uses the input's.
      axis_name: mapped axis for ``norm="batch"`` statistics in the data-parallel step.

    Cost per denoiser call at 32×32×1 with 10 classes (``lwgen.eval.profile.profile_model``):
    the defaults have 1,454,369 parameters and 243.3 M MACs; ``base_width=16`` (the narrow
    distillation student) 365,969 parameters and 61.0 M MACs.
    """

    num_classes: int
    base_width: int = 32
    channel_mults: Sequence[int] = (1, 2, 2, 2)
    num_res_blocks: int = 1
    attention: bool = False
    embed_dim: int = 32
    norm: str = "none"
    num_groups: int = 8
    scale_shift: bool = False
    dropout: float = 0.0
    out_channels: int | None = None
    axis_name: str | None = None

    def _check(self, x_t: jax.Array, t_embedding: jax.Array, y: jax.Array) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"norm {self.norm!r} is not one of {NORMS}")
        factor = 2 ** (len(self.channel_mults) - 1)
        if x_t.ndim != 4 or x_t.shape[1] % factor or x_t.shape[2] % factor:
            raise ValueError(
                f"x_t must be [B, H, W, C] with H and W divisible by {factor} "
                f"(2 ** (len(channel_mults) - 1)), got shape {x_t.shape}"
            )
        b = x_t.shape[0]
        if t_embedding.shape != (b, self.embed_dim):
            raise ValueError(
                f"t_embedding must be [{b}, embed_dim={self.embed_dim}], got {t_embedding.shape}"
            )
        if y.shape != (b, self.num_classes):
            raise ValueError(
                f"y must be a float one-hot [{b}, num_classes={self.num_classes}], got {y.shape}"
            )

    @nn.compact
    def __call__(
        self, x_t: jax.Array, t_embedding: jax.Array, y: jax.Array, train: bool = False
    ) -> jax.Array:
        """Predicts the noise (or whatever target it was trained on) of ``x_t``.

        Args:
          x_t: float32 ``[B, H, W, C]`` noisy images; H and W divisible by
            ``2 ** (len(channel_mults) - 1)``.
          t_embedding: float32 ``[B, embed_dim]``, ``timestep_embedding(t, embed_dim)``.
          y: float32 ``[B, num_classes]`` one-hot class, or all zeros for the null class.
          train: dropout on, BatchNorm batch statistics, and the upsampling convs in their
            sub-pixel training form (``Upsample2x``; same parameters and values).

        Returns:
          float32 ``[B, H, W, out_channels or C]``.

        Raises:
          ValueError: on an unknown ``norm`` or mis-shaped inputs, before any work.
        """
        self._check(x_t, t_embedding, y)
        make_norm = functools.partial(Norm, self.norm, self.num_groups, self.axis_name)
        width = 4 * self.base_width
        emb = nn.Dense(width, name="time_mlp_0")(t_embedding.astype(jnp.float32))
        emb = nn.Dense(width, name="time_mlp_1")(nn.swish(emb))
        emb = emb + nn.Dense(width, use_bias=False, name="class_embed")(y.astype(jnp.float32))

        def res_block(h: jax.Array, features: int) -> jax.Array:
            return ResBlock(features, make_norm, self.dropout, self.scale_shift)(h, emb, train)

        def attend(h: jax.Array) -> jax.Array:
            return SelfAttention(make_norm)(h, train) if self.attention else h

        last = len(self.channel_mults) - 1
        h = nn.Conv(self.base_width, (3, 3), name="conv_in")(x_t.astype(jnp.float32))
        skips = [h]
        for level, mult in enumerate(self.channel_mults):
            for _ in range(self.num_res_blocks):
                h = res_block(h, self.base_width * mult)
                h = attend(h) if level == last else h
                skips.append(h)
            if level != last:
                h = nn.Conv(h.shape[-1], (3, 3), strides=(2, 2), name=f"down_{level}")(h)
                skips.append(h)
        h = res_block(attend(res_block(h, h.shape[-1])), h.shape[-1])
        for level, mult in reversed(list(enumerate(self.channel_mults))):
            for _ in range(self.num_res_blocks + 1):
                h = res_block(jnp.concatenate([h, skips.pop()], axis=-1), self.base_width * mult)
                h = attend(h) if level == last else h
            if level != 0:
                h = Upsample2x(h.shape[-1], "resize_conv", name=f"up_{level}")(h, train)
        h = nn.swish(make_norm()(h, train))
        out = self.out_channels or x_t.shape[-1]
        return nn.Conv(out, (3, 3), name="conv_out")(h)
