"""Class-conditional DCGAN generator and projection discriminator.

Architecture after Radford et al. 2016 ("Unsupervised Representation Learning with Deep
Convolutional GANs", §3: strided convs, BatchNorm and ReLU in G, LeakyReLU in D, tanh output), with
the class entering G as a one-hot vector concatenated to ``z`` (Mirza & Osindero 2014) and
entering D by projection (Miyato & Koyama 2018, "cGANs with Projection Discriminator", eq. 3).
Spectral normalization in D after Miyato et al. 2018.

The class is a float one-hot ``[B, num_classes]`` rather than an ``nn.Embed`` lookup: an embedding
exports through jax2tf as GATHER_ND/SELECT ops that the Edge TPU cannot run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from lwgen.models.layers import UPSAMPLE_MODES, Upsample2x, concat_condition


def generator_widths(image_size: int, base_width: int, width_mult: float) -> tuple[int, ...]:
    """Default channel widths of the generator blocks, widest first.

    Args:
      image_size: output height (= width) in pixels, a power of two ≥ 8.
      base_width: channels of the last hidden block before width scaling.
      width_mult: multiplier applied to every block (0.25 makes a 4× thinner model).

    Returns:
      One width per block: the 4×4 dense block, then one per hidden upsampling block.

    Raises:
      ValueError: if ``image_size`` is not a power of two ≥ 8.
    """
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    num_up = int(math.log2(image_size // 4))
    return tuple(
        max(1, round(base_width * width_mult * 2 ** (num_up - 1 - i))) for i in range(num_up)
    )


class Generator(nn.Module):
    """Conditional DCGAN generator ``G(z, y)``.

    ``concat(z, y)`` → Dense → reshape to ``[4, 4, widths[0]]`` → BatchNorm, ReLU → one
    ``Upsample2x`` + BatchNorm + ReLU block per remaining width → a last ``Upsample2x`` to the image
    channels → tanh.

    Attributes:
      num_classes: number of classes of the one-hot condition.
      image_shape: ``(H, W, C)`` of the output; H = W, a power of two ≥ 8.
      latent_dim: size of ``z``.
      base_width: channels of the last hidden block at ``width_mult=1``.
      width_mult: scales every block's width (small and large variants of one definition).
      widths: explicit per-block widths overriding ``base_width``/``width_mult`` (used by
        structured pruning to load a physically smaller model into this same code).
      upsample: one of ``"transpose"``, ``"resize_conv"``, ``"subpixel"``.
      axis_name: mapped axis over which BatchNorm averages batch statistics in training
        (``"batch"`` inside the data-parallel step), ``None`` outside one.
    """

    num_classes: int
    image_shape: Sequence[int] = (32, 32, 1)
    latent_dim: int = 64
    base_width: int = 64
    width_mult: float = 1.0
    widths: Sequence[int] | None = None
    upsample: str = "resize_conv"
    axis_name: str | None = None

    def block_widths(self) -> tuple[int, ...]:
        """The per-block widths this generator uses (explicit ``widths`` or the default rule)."""
        default = generator_widths(self.image_shape[0], self.base_width, self.width_mult)
        if self.widths is None:
            return default
        if len(self.widths) != len(default):
            raise ValueError(
                f"widths must have {len(default)} entries for a {self.image_shape[0]}px image, "
                f"got {tuple(self.widths)}"
            )
        return tuple(int(w) for w in self.widths)

    def _norm(self, x: jax.Array, train: bool, name: str) -> jax.Array:
        return nn.BatchNorm(
            use_running_average=not train, momentum=0.9, axis_name=self.axis_name, name=name
        )(x)

    @nn.compact
    def __call__(self, z: jax.Array, y: jax.Array, train: bool = False) -> jax.Array:
        """Generates images.

        Args:
          z: float32 ``[B, latent_dim]``, usually ``N(0, I)``.
          y: float32 ``[B, num_classes]`` one-hot class.
          train: batch statistics (True) or running averages (False) in BatchNorm; in training a
            ``"resize_conv"`` block runs as the equivalent sub-pixel convolution (see
            ``Upsample2x``).

        Returns:
          float32 ``[B, H, W, C]`` NHWC images in ``[-1, 1]``.

        Raises:
          ValueError: on a wrong ``z``/``y`` shape or an unknown ``upsample`` mode.
        """
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample {self.upsample!r} is not one of {UPSAMPLE_MODES}")
        if z.ndim != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must be [B, {self.latent_dim}], got {z.shape}")
        if y.ndim != 2 or y.shape[-1] != self.num_classes:
            raise ValueError(f"y must be one-hot [B, {self.num_classes}], got {y.shape}")
        widths = self.block_widths()
        h = concat_condition(z, y)
        h = nn.Dense(4 * 4 * widths[0], use_bias=False, name="project")(h)
        h = h.reshape(h.shape[0], 4, 4, widths[0])
        h = nn.relu(self._norm(h, train, "project_bn"))
        for i, width in enumerate(widths[1:], start=1):
            h = Upsample2x(width, self.upsample, use_bias=False, name=f"up{i}")(h, train)
            h = nn.relu(self._norm(h, train, f"up{i}_bn"))
        h = Upsample2x(self.image_shape[-1], self.upsample, name="to_image")(h, train)
        return jnp.tanh(h)


class Discriminator(nn.Module):
    """Conditional projection discriminator ``D(x, y)`` (Miyato & Koyama 2018, eq. 3).

    ``num_blocks`` stride-2 4×4 convs with LeakyReLU(0.2), doubling width each block, global sum
    pooling to features ``phi(x)``, then ``D(x, y) = w·phi(x) + b + <V y, phi(x)>`` where ``V y``
    is the class embedding computed as a bias-free Dense of the one-hot ``y``.

    Attributes:
      num_classes: number of classes of the one-hot condition.
      base_width: channels of the first block at ``width_mult=1``.
      width_mult: scales every block's width.
      num_blocks: number of stride-2 conv blocks.
      spectral_norm: wrap every layer in ``nn.SpectralNorm`` (Miyato et al. 2018); its power
        iteration vectors live in the ``batch_stats`` collection.
    """

    num_classes: int
    base_width: int = 64
    width_mult: float = 1.0
    num_blocks: int = 3
    spectral_norm: bool = True

    def block_widths(self) -> tuple[int, ...]:
        """Output channels of the conv blocks: ``base_width * width_mult * 2**i``, at least 1."""
        return tuple(
            max(1, round(self.base_width * self.width_mult * 2**i)) for i in range(self.num_blocks)
        )

    def _layer(self, layer: nn.Module, x: jax.Array, train: bool) -> jax.Array:
        if self.spectral_norm:
            return nn.SpectralNorm(layer)(x, update_stats=train)
        return layer(x)

    @nn.compact
    def __call__(
        self, x: jax.Array, y: jax.Array, train: bool = False, return_features: bool = False
    ):
        """Scores images.

        Args:
          x: float32 ``[B, H, W, C]`` images in ``[-1, 1]``.
          y: float32 ``[B, num_classes]`` one-hot class.
          train: update spectral-norm power iteration statistics.
          return_features: also return the activations of every conv block.

        Returns:
          float32 logits ``[B]``; with ``return_features`` a tuple ``(logits, features)`` where
          ``features`` is a list of ``[B, H_i, W_i, C_i]`` block outputs.
        """
        if y.ndim != 2 or y.shape[-1] != self.num_classes:
            raise ValueError(f"y must be one-hot [B, {self.num_classes}], got {y.shape}")
        features = []
        h = x
        for width in self.block_widths():
            h = self._layer(nn.Conv(width, (4, 4), strides=(2, 2), padding="SAME"), h, train)
            h = nn.leaky_relu(h, 0.2)
            features.append(h)
        phi = jnp.sum(h, axis=(1, 2))
        logits = self._layer(nn.Dense(1), phi, train)[:, 0]
        embed = self._layer(nn.Dense(phi.shape[-1], use_bias=False), y.astype(phi.dtype), train)
        logits = logits + jnp.sum(embed * phi, axis=-1)
        return (logits, features) if return_features else logits
