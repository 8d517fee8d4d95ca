"""Text-conditioned DCGAN generator: the ``lwgen.models.dcgan`` blocks with three text fusions.

The sentence embedding is first mapped to a small condition ``c`` (Dense + LeakyReLU, as the text
projection of Reed et al. 2016, §4, "Generative Adversarial Text to Image Synthesis"), then fused:

* ``"concat"``: ``concat(z, c)`` feeds the first Dense (Reed et al. 2016, §4);
* ``"film"``: ``z`` alone feeds the first Dense and every block is modulated by ``FiLM(c)``
  after its BatchNorm (Perez et al. 2018; the deep fusion of Tao et al. 2022, DF-GAN §3.3);
* ``"cross_attention"``: ``concat(z, c)`` as in ``"concat"`` plus, after every hidden upsampling
  block, ``CrossAttention`` from the pixels to the token states (Xu et al. 2018, AttnGAN §3.1).

The discriminator (`TextDiscriminator`) is ``lwgen.models.dcgan.Discriminator`` on a learned text
condition in place of the one-hot class: its bias-free Dense of ``y`` is the projection of the
condition (Miyato & Koyama 2018, eq. 3). Every input is a float tensor, so all of it exports.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from lwgen.models.dcgan import Discriminator, generator_widths
from lwgen.models.layers import (
    UPSAMPLE_MODES,
    CrossAttention,
    FiLM,
    Upsample2x,
    concat_condition,
)

FUSIONS = ("concat", "film", "cross_attention")


def text_condition(text: jax.Array, dim: int, train: bool, axis_name: str | None) -> jax.Array:
    """``c = LeakyReLU(BatchNorm(Dense(text)))``: the text projection of Reed et al. 2016, §4,
    with batch normalisation (Ioffe & Szegedy 2015) of its output. Sentence embeddings of
    different captions are close (cosine ≈ 0.8 between two digits' captions); normalising each
    projected feature over the batch removes their common part, so the caption-specific part
    drives the condition from the first step. Float32 ``[B, D]`` → ``[B, dim]``."""
    c = nn.Dense(dim, use_bias=False, name="text_projection")(text)
    c = nn.BatchNorm(  # two-pass variance: 1 and N devices then agree to float tolerance
        use_running_average=not train, momentum=0.9, axis_name=axis_name,
        use_fast_variance=False, name="text_bn",
    )(c)  # fmt: skip
    return nn.leaky_relu(c, 0.2)


class TextGenerator(nn.Module):
    """``G(z, text[, tokens, token_mask])``: a DCGAN generator conditioned on text.

    Attributes:
      image_shape: ``(H, W, C)``; H = W, a power of two ≥ 8.
      text_dim: size of the sentence embedding (and of the token states).
      latent_dim: size of ``z``.
      cond_dim: size of the projected text condition ``c``.
      base_width, width_mult, upsample: as in ``lwgen.models.dcgan.Generator``.
      fusion: one of ``FUSIONS``.
      attention_dim: query/key width of ``CrossAttention``.
      axis_name: BatchNorm's mapped axis in training (``"batch"``), else None.
    """

    image_shape: Sequence[int] = (32, 32, 1)
    text_dim: int = 384
    latent_dim: int = 64
    cond_dim: int = 64
    base_width: int = 32
    width_mult: float = 1.0
    upsample: str = "resize_conv"
    fusion: str = "film"
    attention_dim: int = 32
    axis_name: str | None = None

    def _block_end(self, h, c, tokens, mask, train: bool, name: str) -> jax.Array:
        """BatchNorm, the block's fusion, ReLU."""
        h = nn.BatchNorm(
            use_running_average=not train, momentum=0.9, axis_name=self.axis_name, name=name + "_bn"
        )(h)
        if self.fusion == "film":
            h = FiLM(name=name + "_film")(h, c)
        h = nn.relu(h)
        if self.fusion == "cross_attention" and name != "project":
            h = CrossAttention(self.attention_dim, name=name + "_attn")(h, tokens, mask)
        return h

    @nn.compact
    def __call__(
        self,
        z: jax.Array,
        text: jax.Array,
        tokens: jax.Array | None = None,
        token_mask: jax.Array | None = None,
        train: bool = False,
    ) -> jax.Array:
        """Generates images.

        Args:
          z: float32 ``[B, latent_dim]`` from ``N(0, I)``.
          text: float32 ``[B, text_dim]`` sentence embeddings.
          tokens: float32 ``[B, L, text_dim]`` token states (``"cross_attention"`` only).
          token_mask: float32 ``[B, L]``, 1 real token, 0 padding (``"cross_attention"`` only).
          train: batch statistics in BatchNorm, sub-pixel resize-conv (see ``Upsample2x``).

        Returns:
          float32 ``[B, H, W, C]`` images in ``[-1, 1]``.

        Raises:
          ValueError: on an unknown fusion or upsampling mode, or wrong input shapes.
        """
        if self.fusion not in FUSIONS or self.upsample not in UPSAMPLE_MODES:
            raise ValueError(
                f"fusion {self.fusion!r} / upsample {self.upsample!r} must be in "
                f"{FUSIONS} / {UPSAMPLE_MODES}"
            )
        if text.ndim != 2 or text.shape[-1] != self.text_dim:
            raise ValueError(f"text must be [B, {self.text_dim}], got {text.shape}")
        if self.fusion == "cross_attention" and (tokens is None or token_mask is None):
            raise ValueError("fusion 'cross_attention' needs tokens and token_mask")
        widths = generator_widths(self.image_shape[0], self.base_width, self.width_mult)
        c = text_condition(text, self.cond_dim, train, self.axis_name)
        h = z if self.fusion == "film" else concat_condition(z, c)
        h = nn.Dense(4 * 4 * widths[0], use_bias=False, name="project")(h)
        h = self._block_end(h.reshape(-1, 4, 4, widths[0]), c, tokens, token_mask, train, "project")
        for i, width in enumerate(widths[1:], start=1):
            h = Upsample2x(width, self.upsample, use_bias=False, name=f"up{i}")(h, train)
            h = self._block_end(h, c, tokens, token_mask, train, f"up{i}")
        h = Upsample2x(self.image_shape[-1], self.upsample, name="to_image")(h, train)
        return jnp.tanh(h)


class TextDiscriminator(nn.Module):
    """``D(x, text)``: the projection discriminator of ``lwgen.models.dcgan`` on the learned text
    condition of `text_condition`. The projection has no spectral norm (a spectrally normalised
    map could not amplify the small differences between captions); the Lipschitz bound in ``x``
    is unchanged, since ``c`` does not depend on ``x``.

    Attributes:
      cond_dim: size of ``c``.
      base_width, width_mult, num_blocks, spectral_norm: as in ``Discriminator``.
      axis_name: the text BatchNorm's mapped axis in training (``"batch"``), else None.
    """

    cond_dim: int = 64
    base_width: int = 32
    width_mult: float = 1.0
    num_blocks: int = 3
    spectral_norm: bool = True
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, text: jax.Array, train: bool = False):
        """Scores float32 ``[B, H, W, C]`` images in [-1, 1] against float32 ``[B, D]`` text;
        returns float32 logits ``[B]``."""
        c = text_condition(text, self.cond_dim, train, self.axis_name)
        disc = Discriminator(
            self.cond_dim, self.base_width, self.width_mult, self.num_blocks, self.spectral_norm,
            name="image",
        )  # fmt: skip
        return disc(x, c, train=train)
