"""The feed-forward style transfer network of Johnson, Alahi & Fei-Fei 2016 (§3.1 and the
supplementary material's architecture table), with conditional instance norm (Dumoulin et al.
2017, §2.2) so that one network holds many styles.

Layout: a 9×9 conv, two stride-2 3×3 convs (downsampling ×4), ``num_res_blocks`` residual
blocks, two ×2 upsamplings and a 9×9 conv to RGB with ``tanh``. Every conv but the last is
followed by `ConditionalInstanceNorm` and ReLU. Upsampling is a nearest resize then a 3×3 conv
(``lwgen.models.layers.Upsample2x`` in ``"resize_conv"`` mode: no checkerboard artefacts, Odena
et al. 2016, and RESIZE_NEAREST_NEIGHBOR + CONV_2D instead of TRANSPOSE_CONV in TFLite). The style
enters as a float one-hot vector; with ``num_styles=1`` it is the single-style network. The
network is fully convolutional: any ``H, W`` divisible by 4. Convolutions followed by instance
norm have no bias (the norm removes it; its gradient would be rounding noise that Adam amplifies).
"""

from __future__ import annotations

import jax
from flax import linen as nn

from lwgen.models.layers import ConditionalInstanceNorm, Upsample2x


class ResidualBlock(nn.Module):
    """Two 3×3 convs with conditional instance norm and an identity shortcut (He et al. 2016;
    Johnson et al. 2016 supp. Fig. 1, without the ReLU after the sum)."""

    features: int
    num_styles: int

    @nn.compact
    def __call__(self, x: jax.Array, style: jax.Array) -> jax.Array:
        """``[B, H, W, features]`` → same shape."""
        h = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False)(x)
        h = nn.relu(ConditionalInstanceNorm(self.num_styles)(h, style))
        h = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False)(h)
        return x + ConditionalInstanceNorm(self.num_styles)(h, style)


class TransformerNet(nn.Module):
    """Image transformation network ``f_W`` of Johnson et al. 2016 (1.68 M parameters at the
    default widths with one style), multi-style through conditional instance norm.

    Attributes:
      num_styles: styles held (length of the one-hot ``style`` input).
      widths: channels of the 9×9 conv and of the two downsampling convs (the residual blocks
        use the last); upsampling mirrors them.
      num_res_blocks: residual blocks at 1/4 resolution.
      upsample: ``lwgen.models.layers.UPSAMPLE_MODES`` entry (``"resize_conv"`` by default).
    """

    num_styles: int = 1
    widths: tuple[int, int, int] = (32, 64, 128)
    num_res_blocks: int = 5
    upsample: str = "resize_conv"

    @nn.compact
    def __call__(self, image: jax.Array, style: jax.Array, train: bool = False) -> jax.Array:
        """Stylises images.

        Args:
          image: float32 ``[B, H, W, 3]`` in ``[-1, 1]``, ``H`` and ``W`` divisible by 4.
          style: float32 ``[B, num_styles]`` one-hot style (or a convex mix of styles).
          train: selects the sub-pixel training form of the resize-convs (same values).

        Returns:
          float32 ``[B, H, W, 3]`` in ``[-1, 1]``.
        """
        w1, w2, w3 = self.widths

        def conv_norm(x, features, kernel, strides=1):
            conv = nn.Conv(features, (kernel, kernel), strides, padding="SAME", use_bias=False)
            x = conv(x)
            return nn.relu(ConditionalInstanceNorm(self.num_styles)(x, style))

        x = conv_norm(image, w1, 9)
        x = conv_norm(x, w2, 3, 2)
        x = conv_norm(x, w3, 3, 2)
        for _ in range(self.num_res_blocks):
            x = ResidualBlock(w3, self.num_styles)(x, style)
        for features in (w2, w1):
            x = Upsample2x(features, self.upsample, use_bias=False)(x, train=train)
            x = nn.relu(ConditionalInstanceNorm(self.num_styles)(x, style))
        return nn.tanh(nn.Conv(3, (9, 9), padding="SAME")(x))
