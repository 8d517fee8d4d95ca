"""Classifier judges: small CNNs that score generated images (trained in `lwgen.eval.judge`)."""

from __future__ import annotations

import jax
from flax import linen as nn


class JudgeCNN(nn.Module):
    """An all-convolutional classifier (Springenberg et al. 2015, "Striving for Simplicity", §2).

    Three 3×3 stride-2 convolutions + ReLU (downsampling by strided convolution instead of
    pooling, as in §2 of that paper) halve the resolution each; the flattened map goes through
    ``Dense(feature_dim)`` + ReLU (the features) and ``Dense(num_classes)`` (the logits).

    Attributes:
      num_classes: number of classes K.
      widths: convolution channels per stage.
      feature_dim: size D of the penultimate layer.
    """

    num_classes: int
    widths: tuple[int, ...] = (32, 64, 128)
    feature_dim: int = 128

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Classifies a batch.

        Args:
          x: float32 ``[B, H, W, C]`` images in ``[-1, 1]``.

        Returns:
          ``(logits float32 [B, K], features float32 [B, D])``.
        """
        for width in self.widths:
            x = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2))(x))
        features = nn.relu(nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.num_classes)(features), features
